// Package audit records the provider's tamper-evident audit trail, names every event in
// it, and verifies and prunes the chain. The chain is keyed (HMAC under a key derived
// from the encryption key, see ChainKeysOf) and anchored by signed checkpoints
// (Checkpointer, VerifyCheckpoints) that can be kept outside the database.
package audit
