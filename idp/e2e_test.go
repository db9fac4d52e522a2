package idp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

const password = "correct horse battery"

// TestEndToEnd drives the provider as relying parties do, on every backend.
func TestEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			runRelyingPartyFlow(t, e)
		})
	}
}

type nonceKey struct{}

func runRelyingPartyFlow(t *testing.T, e *env) {
	ctx := context.Background()
	user := e.createUser("alice@example.com", password)
	app := e.createClient(admin.NewClient{Name: "App One", RedirectURIs: []string{"https://app1.example.com/cb"},
		PostLogoutRedirectURIs: []string{"https://app1.example.com/bye"}})
	app2 := e.createClient(admin.NewClient{Name: "App Two", RedirectURIs: []string{"https://app2.example.com/cb"}, SkipConsent: true})

	// Discovery, as the client library does it.
	party, err := rp.NewRelyingPartyOIDC(ctx, e.issuer, app.ID, app.Secret, app.RedirectURI,
		[]string{"openid", "profile", "email", "offline_access"},
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string { s, _ := ctx.Value(nonceKey{}).(string); return s })))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var disco oidc.DiscoveryConfiguration
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &disco)
	if disco.Issuer != e.issuer || !slices.Contains(disco.CodeChallengeMethodsSupported, oidc.CodeChallengeMethodS256) ||
		!slices.Contains(disco.GrantTypesSupported, oidc.GrantTypeClientCredentials) || !slices.Contains(disco.GrantTypesSupported, oidc.GrantTypeRefreshToken) ||
		disco.EndSessionEndpoint == "" || disco.RevocationEndpoint == "" || disco.IntrospectionEndpoint == "" ||
		!slices.Equal(disco.ACRValuesSupported, idp.ACRValuesSupported) || !slices.Contains(disco.ClaimsSupported, "sid") {
		t.Fatalf("discovery document incomplete: %+v", disco)
	}

	b := e.newBrowser()
	verifier, challenge := pkce()
	nonce := "nonce-" + randString()
	authURL := rp.AuthURL("state-1", party, rp.WithCodeChallenge(challenge), rp.AuthURLOpt(rp.WithURLParam("nonce", nonce)))
	if !strings.Contains(authURL, "code_challenge_method=S256") {
		t.Fatalf("client library did not ask for S256: %s", authURL)
	}
	p := b.Get(authURL)
	p = b.Login(p, "Alice@Example.com", password)
	p = b.Consent(p, "allow")
	q := p.RedirectParams(t)
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("callback params = %v", q)
	}
	loginTime := e.clock.Now()

	// Code exchange with PKCE; the library verifies the ID token against the JWKS.
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](context.WithValue(ctx, nonceKey{}, nonce), q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	claims := tokens.IDTokenClaims
	if claims.Subject != user.ID || !slices.Contains(claims.Audience, app.ID) || claims.Nonce != nonce ||
		claims.AccessTokenHash == "" || !slices.Equal(claims.AuthenticationMethodsReferences, []string{"pwd"}) ||
		claims.AuthenticationContextClassReference != consent.ACRPassword {
		t.Fatalf("ID token claims = %+v", claims)
	}
	if at := claims.GetAuthTime(); at.Before(loginTime.Add(-5*time.Second)) || at.After(loginTime.Add(time.Second)) {
		t.Fatalf("auth_time %v not near login %v", at, loginTime)
	}
	if claims.SessionID == "" {
		t.Fatal("ID token has no sid")
	}
	// Independent check of the signature against the JWKS with go-jose.
	verifyWithJWKS(t, e, tokens.IDToken, app.ID)
	// The access token is a JWT a resource server can verify offline, typed as one
	// (RFC 9068 §2.1); the ID token keeps typ JWT.
	atClaims := verifyWithJWKS(t, e, tokens.AccessToken, "")
	if got, want := jwtTyp(t, tokens.AccessToken), "at+jwt"; got != want {
		t.Fatalf("access token typ = %q, want %q", got, want)
	}
	if got, want := jwtTyp(t, tokens.IDToken), "JWT"; got != want {
		t.Fatalf("ID token typ = %q, want %q", got, want)
	}
	if atClaims["sub"] != user.ID || !strings.Contains(atClaims["scope"].(string), "email") {
		t.Fatalf("access token claims = %v", atClaims)
	}

	// Userinfo with the access token.
	info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, "Bearer", user.ID, party)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info.Email != "alice@example.com" || info.Name != user.Name {
		t.Fatalf("userinfo = %+v", info)
	}

	// Introspection by the client that owns the token.
	if got := introspect(t, e, app, tokens.AccessToken); got["active"] != true || got["sub"] != user.ID {
		t.Fatalf("introspection = %v", got)
	}

	// Refresh with rotation: a new refresh token, a new ID token that keeps acr.
	refreshed, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, party, tokens.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if refreshed.RefreshToken == "" || refreshed.RefreshToken == tokens.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	if refreshed.IDTokenClaims.AuthenticationContextClassReference != consent.ACRPassword ||
		!slices.Equal(refreshed.IDTokenClaims.AuthenticationMethodsReferences, []string{"pwd"}) ||
		refreshed.IDTokenClaims.Subject != user.ID {
		t.Fatalf("refreshed ID token claims = %+v", refreshed.IDTokenClaims)
	}

	// The successor is used in turn; replaying the first refresh token then is reuse
	// (its successor is no longer current, so the reuse grace window does not apply):
	// rejected, and it kills the family.
	refreshed2 := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.RefreshToken}})
	if refreshed2.RefreshToken == "" {
		t.Fatalf("second refresh: %+v", refreshed2)
	}
	replay := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens.RefreshToken}})
	if replay.Error != "invalid_grant" {
		t.Fatalf("replayed refresh token: %+v", replay)
	}
	after := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed2.RefreshToken}})
	if after.Error != "invalid_grant" {
		t.Fatalf("family member after reuse still works: %+v", after)
	}
	if got := introspect(t, e, app, refreshed2.AccessToken); got["active"] != false {
		t.Fatalf("access token of a revoked family still active: %v", got)
	}
	if e.auditCount(audit.EventRefreshReuse, "") == 0 {
		t.Fatal("reuse detection not audited")
	}

	// SSO: the second client signs the same browser in without a password (first-party: no consent).
	p = b.Get(e.authURL(app2, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
	q2 := p.RedirectParams(t)
	if q2.Get("code") == "" {
		t.Fatalf("SSO did not return a code: %v", q2)
	}
	tr2 := e.tokenRequest(app2, url.Values{"grant_type": {"authorization_code"}, "code": {q2.Get("code")},
		"redirect_uri": {app2.RedirectURI}, "code_verifier": {verifier}})
	if tr2.Error != "" {
		t.Fatalf("SSO code exchange: %+v", tr2)
	}
	c2 := verifyWithJWKS(t, e, tr2.IDToken, app2.ID)
	if c2["sub"] != user.ID || c2["sid"] != claims.SessionID || int64(c2["auth_time"].(float64)) != claims.AuthTime.AsTime().Unix() {
		t.Fatalf("SSO ID token claims = %v", c2)
	}
	if e.auditCount(audit.EventLoginSSO, audit.ResultSuccess) == 0 {
		t.Fatal("SSO login not audited")
	}

	// A fresh session-bound login again for revocation tests.
	fresh := loginCode(t, e, b, app, nil)
	// Revoke the refresh token: the family and its access token stop working.
	if err := rp.RevokeToken(ctx, party, fresh.RefreshToken, "refresh_token"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if r := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}}); r.Error != "invalid_grant" {
		t.Fatalf("revoked refresh token still works: %+v", r)
	}
	if got := introspect(t, e, app, fresh.AccessToken); got["active"] != false {
		t.Fatalf("access token of revoked refresh token still active: %v", got)
	}
	// Revoke an access token on its own.
	fresh2 := loginCode(t, e, b, app, nil)
	if err := rp.RevokeToken(ctx, party, fresh2.AccessToken, "access_token"); err != nil {
		t.Fatalf("revoke access token: %v", err)
	}
	if got := introspect(t, e, app, fresh2.AccessToken); got["active"] != false {
		t.Fatalf("revoked access token still active: %v", got)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](ctx, fresh2.AccessToken, "Bearer", user.ID, party); err == nil {
		t.Fatal("userinfo accepted a revoked JWT access token")
	}
	if e.auditCount(audit.EventTokenRevoke, audit.ResultSuccess) < 2 {
		t.Fatal("revocations not audited")
	}

	// client_credentials.
	svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"}})
	cc := e.tokenRequest(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}})
	if cc.Error != "" || cc.AccessToken == "" || cc.IDToken != "" {
		t.Fatalf("client_credentials: %+v", cc)
	}
	ccClaims := verifyWithJWKS(t, e, cc.AccessToken, "")
	if got := jwtTyp(t, cc.AccessToken); got != "at+jwt" {
		t.Fatalf("client_credentials access token typ = %q, want at+jwt", got)
	}
	if ccClaims["sub"] != svc.ID || ccClaims["scope"] != "api:read" {
		t.Fatalf("client_credentials token claims = %v", ccClaims)
	}
	if got := introspect(t, e, svc, cc.AccessToken); got["active"] != true || got["client_id"] != svc.ID {
		t.Fatalf("client_credentials introspection = %v", got)
	}
	// Another client may not introspect it.
	if got := introspect(t, e, app, cc.AccessToken); got["active"] != false {
		t.Fatalf("foreign client introspected a token: %v", got)
	}

	// RP-initiated logout with id_token_hint ends the session; prompt=none then fails.
	p = b.Get(disco.EndSessionEndpoint + "?" + url.Values{"id_token_hint": {tokens.IDToken}, "client_id": {app.ID},
		"post_logout_redirect_uri": {"https://app1.example.com/bye"}, "state": {"bye-state"}}.Encode())
	if !strings.HasPrefix(p.Location, "https://app1.example.com/bye") || !strings.Contains(p.Location, "state=bye-state") {
		t.Fatalf("logout redirect = %q (status %d)", p.Location, p.Status)
	}
	if sessions, _ := e.store.ListUserSessions(ctx, user.ID); len(sessions) != 0 {
		t.Fatalf("session survived logout: %d left", len(sessions))
	}
	p = b.Get(e.authURL(app2, url.Values{"prompt": {"none"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
	if got := p.RedirectParams(t).Get("error"); got != "login_required" {
		t.Fatalf("prompt=none after logout: error=%q", got)
	}
	if e.auditCount(audit.EventLogout, audit.ResultSuccess) == 0 {
		t.Fatal("logout not audited")
	}
}

// loginCode runs a complete code flow for c in browser b (which may already have a
// session) and returns the token response.
func loginCode(t testing.TB, e *env, b *browser, c testClient, extra url.Values) tokenResponse {
	t.Helper()
	g := authorizeCode(t, e, b, c, extra)
	tr := e.tokenRequest(c, url.Values{"grant_type": {"authorization_code"}, "code": {g.code},
		"redirect_uri": {c.RedirectURI}, "code_verifier": {g.verifier}})
	if tr.Error != "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	return tr
}

// verifyWithJWKS checks a JWT's signature against the published JWKS (and its audience
// when aud is set) with go-jose alone, and returns its claims.
func verifyWithJWKS(t testing.TB, e *env, token, aud string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	getJSON(t, e.issuer+"/keys", &set)
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key: %s", k.KeyID)
		}
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) == 0 {
		t.Fatalf("kid %q not in JWKS", parsed.Headers[0].KeyID)
	}
	var std jwt.Claims
	var all map[string]any
	if err := parsed.Claims(keys[0].Key, &std, &all); err != nil {
		t.Fatalf("signature check: %v", err)
	}
	// op signs ID tokens with the real clock, whatever the provider's test clock says;
	// access tokens (at+jwt, minted by the provider) carry the provider's clock.
	exp := jwt.Expected{Issuer: e.issuer, Time: time.Now()}
	if typ, _ := parsed.Headers[0].ExtraHeaders[jose.HeaderType].(string); typ == "at+jwt" {
		exp.Time = e.clock.Now()
	}
	if aud != "" {
		exp.AnyAudience = jwt.Audience{aud}
	}
	if err := std.ValidateWithLeeway(exp, time.Minute); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return all
}

// jwtTyp returns the typ header of a signed JWT.
func jwtTyp(t testing.TB, token string) string {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	typ, _ := parsed.Headers[0].ExtraHeaders[jose.HeaderType].(string)
	return typ
}

// introspect calls the introspection endpoint as client c.
func introspect(t testing.TB, e *env, c testClient, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("introspection %d: %s", resp.StatusCode, body)
	}
	return out
}

var _ = storage.ErrNotFound
