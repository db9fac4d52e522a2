// Package conformance is the protocol-free test suite every storage.Storage backend must
// pass.
package conformance
