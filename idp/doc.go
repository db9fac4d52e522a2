// Package idp wires the OpenID Connect provider (zitadel/oidc's op package) to our
// storage and owns the login flow: the password step, SSO sessions, consent, and the
// steps later factors slot into. Its files are grouped by prefix: server* (wiring),
// op_* (the OIDC storage adapter), login_* (sign-in and SSO sessions), account_* (the
// account page) and api_* (the JSON APIs). The wings live in sub-packages: admin
// (operator actions), audit (the audit trail), backchannel (back-channel logout), keys
// (signing keys), secret (tokens, ids, MACs), pwhash (passwords) and regulation
// (guessing limits).
package idp
