// Package keys generates, seals, rotates and loads the provider's token-signing keys.
package keys
