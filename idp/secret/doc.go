// Package secret makes the random tokens, identifiers, hashes and MACs the provider hands out and checks.
package secret
