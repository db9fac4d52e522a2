// Package audit records the provider's tamper-evident audit trail, names every event in it, and verifies and prunes the chain.
package audit
