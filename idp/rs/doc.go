// Package rs lets an API (a resource server) accept the provider's access tokens: it
// verifies them offline against the cached JWKS, or by introspection when they are
// opaque, and answers RFC 6750 and RFC 9470 challenges when a request needs more.
package rs
