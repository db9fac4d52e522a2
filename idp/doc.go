// Package idp wires the OpenID Connect provider (zitadel/oidc's op package) to our
// storage and owns the login flow: the password step, SSO sessions, consent, and the
// steps later factors slot into. It also holds the operator actions (Admin) that the CLI
// and admin API share.
package idp
