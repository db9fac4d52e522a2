package idp

import (
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/storage"
)

// authRequest adapts a stored AuthRequest to op.AuthRequest. Its audience is the
// client's: op reads it for the ID token only, since access tokens are minted by us
// (op_access_token.go) with the resources of RFC 8707 as their audience.
type authRequest struct {
	r *storage.AuthRequest
}

var _ op.AuthRequest = authRequest{}

func (a authRequest) GetID() string                      { return a.r.ID }
func (a authRequest) GetACR() string                     { return a.r.Login.ACR }
func (a authRequest) GetAMR() []string                   { return a.r.Login.AMR }
func (a authRequest) GetAudience() []string              { return []string{a.r.ClientID} }
func (a authRequest) GetAuthTime() time.Time             { return a.r.Login.AuthTime }
func (a authRequest) GetClientID() string                { return a.r.ClientID }
func (a authRequest) GetNonce() string                   { return a.r.Nonce }
func (a authRequest) GetRedirectURI() string             { return a.r.RedirectURI }
func (a authRequest) GetScopes() []string                { return a.r.Scopes }
func (a authRequest) GetState() string                   { return a.r.State }
func (a authRequest) GetSubject() string                 { return a.r.Login.UserID }
func (a authRequest) Done() bool                         { return a.r.Login.Done }
func (a authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.r.ResponseType) }
func (a authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.r.ResponseMode) }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.r.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.r.CodeChallenge, Method: oidc.CodeChallengeMethod(a.r.CodeChallengeMethod)}
}

// refreshRequest adapts a stored RefreshToken to op.RefreshTokenRequest.
type refreshRequest struct {
	rt     *storage.RefreshToken
	scopes []string
	// grace, when set, answers a retry within the reuse grace window: rt is the
	// successor issued before (op_refresh_grace.go).
	grace *graceRetry
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string                 { return r.rt.AMR }
func (r *refreshRequest) GetAudience() []string            { return r.rt.Audience }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.rt.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.rt.ClientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.rt.UserID }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// clientCredentialsRequest is the token request of the client_credentials grant; the
// subject is the client itself.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
}

func (c *clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c *clientCredentialsRequest) GetAudience() []string { return []string{c.clientID} }
func (c *clientCredentialsRequest) GetScopes() []string   { return c.scopes }

// client adapts a stored Client to op.Client.
type client struct {
	c      *storage.Client
	issuer string
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }

// ApplicationType is web for confidential clients and native for public ones (native
// allows custom schemes and RFC 8252 loopback redirects).
func (c *client) ApplicationType() op.ApplicationType {
	if c.c.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is basic for private_key_jwt clients too: their assertion is verified
// before op sees the request and replaced by a one-request Basic credential
// (op_client_auth.go).
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, 0, len(c.c.GrantTypes))
	for _, g := range c.c.GrantTypes {
		out = append(out, oidc.GrantType(g))
	}
	return out
}

func (c *client) LoginURL(id string) string { return c.issuer + "/login?id=" + id }

// AccessTokenType is always bearer: op then hands the token value to tokenCrypto, which
// returns the RFC 9068 JWT opStorage minted for clients that get JWT access tokens
// (jwtAccessTokens; op_access_token.go), and an encrypted opaque token otherwise.
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }

// jwtAccessTokens reports whether the client gets JWT access tokens (the default) rather
// than opaque ones.
func (c *client) jwtAccessTokens() bool { return c.c.AccessTokenFormat != "opaque" }

func (c *client) IDTokenLifetime() time.Duration {
	if c.c.IDTokenLifetime > 0 {
		return c.c.IDTokenLifetime
	}
	return time.Hour
}

func (c *client) DevMode() bool { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed lets every scope through op's filter: CreateAuthRequest then refuses
// scopes the client may not request with invalid_scope instead of silently dropping them.
func (c *client) IsScopeAllowed(string) bool { return true }

func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) accessTokenLifetime() time.Duration {
	if c.c.AccessTokenLifetime > 0 {
		return c.c.AccessTokenLifetime
	}
	return 15 * time.Minute
}

func (c *client) refreshTokenLifetime() time.Duration {
	if c.c.RefreshTokenLifetime > 0 {
		return c.c.RefreshTokenLifetime
	}
	return 720 * time.Hour
}
