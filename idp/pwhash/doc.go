// Package pwhash hashes and verifies passwords with argon2id.
package pwhash
