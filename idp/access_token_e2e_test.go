package idp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
)

// TestAccessTokenRFC9068: JWT access tokens are typed at+jwt (RFC 9068 §2.1) and carry
// the claims of §2.2: iss, exp, aud, sub, client_id, iat, jti, and for a person's
// token auth_time, acr and amr (§2.2.1); scope is one space-separated string (§2.2.3).
// ID tokens stay typ JWT. Userinfo and introspection still accept the token.
func TestAccessTokenRFC9068(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			user := e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true, Scopes: []string{"openid", "email", "profile"}})
			svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read", "api:write"}})

			person := loginCode(t, e, e.newBrowser(), app, url.Values{"scope": {"openid email profile"}})
			if got := jwtTyp(t, person.IDToken); got != "JWT" {
				t.Errorf("ID token typ = %q, want JWT", got)
			}
			cc := e.tokenRequest(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read api:write"}})
			if cc.Error != "" {
				t.Fatalf("client_credentials: %+v", cc)
			}

			tests := []struct {
				name      string
				token     string
				client    testClient
				sub       string
				scope     string
				person    bool
				wantClaim []string
			}{
				{"person", person.AccessToken, app, user.ID, "openid email profile", true,
					[]string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope", "auth_time", "acr", "amr"}},
				{"client_credentials", cc.AccessToken, svc, svc.ID, "api:read api:write", false,
					[]string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti", "scope"}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if got := jwtTyp(t, tc.token); got != "at+jwt" {
						t.Errorf("access token typ = %q, want at+jwt", got)
					}
					claims := verifyWithJWKS(t, e, tc.token, tc.client.ID)
					for _, c := range tc.wantClaim {
						if _, ok := claims[c]; !ok {
							t.Errorf("claim %q missing: %v", c, claims)
						}
					}
					if claims["iss"] != e.issuer || claims["sub"] != tc.sub || claims["client_id"] != tc.client.ID {
						t.Errorf("iss/sub/client_id = %v/%v/%v", claims["iss"], claims["sub"], claims["client_id"])
					}
					if claims["scope"] != tc.scope {
						t.Errorf("scope = %#v, want the string %q", claims["scope"], tc.scope)
					}
					if jti, _ := claims["jti"].(string); jti == "" {
						t.Errorf("jti = %v", claims["jti"])
					}
					if !tc.person {
						for _, c := range []string{"auth_time", "acr", "amr"} {
							if _, ok := claims[c]; ok {
								t.Errorf("client token has %s: %v", c, claims)
							}
						}
						return
					}
					if claims["acr"] != consent.ACRPassword {
						t.Errorf("acr = %v", claims["acr"])
					}
					if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
						t.Errorf("amr = %v", claims["amr"])
					}
					if at, _ := claims["auth_time"].(float64); at <= 0 {
						t.Errorf("auth_time = %v", claims["auth_time"])
					}
				})
			}

			// Every consumer inside the provider still accepts them.
			info, err := getUserinfo(e, person.AccessToken)
			if err != nil || info.Subject != user.ID {
				t.Errorf("userinfo with an at+jwt token: %+v, %v", info, err)
			}
			if got := introspect(t, e, svc, cc.AccessToken); got["active"] != true || got["scope"] != "api:read api:write" {
				t.Errorf("introspection of an at+jwt token = %v", got)
			}
		})
	}
}

// getUserinfo calls the userinfo endpoint with a bearer token.
func getUserinfo(e *env, token string) (*oidc.UserInfo, error) {
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("userinfo: %s", resp.Status)
	}
	var info oidc.UserInfo
	body, _ := io.ReadAll(resp.Body)
	return &info, info.UnmarshalJSON(body)
}

// TestCacheableKeysAndDiscovery: the JWKS and the discovery document are public and
// cacheable (max-age, strong ETag, 304 to a matching If-None-Match); token responses stay
// no-store.
func TestCacheableKeysAndDiscovery(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *idp.Config) { c.JWKSMaxAge = 15 * time.Minute })
	svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})

	get := func(t *testing.T, path, ifNoneMatch string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.issuer+path, nil)
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	tests := []struct {
		path         string
		cacheControl string
	}{
		{"/keys", "public, max-age=900"},                             // configured
		{"/.well-known/openid-configuration", "public, max-age=300"}, // default
	}
	etags := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, tc.path, "")
			etag := resp.Header.Get("ETag")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != tc.cacheControl ||
				!strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
				t.Fatalf("status %d, Cache-Control %q, ETag %q", resp.StatusCode, resp.Header.Get("Cache-Control"), etag)
			}
			if resp.Header.Get("Pragma") != "" || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.HasPrefix(body, "{") {
				t.Fatalf("headers %v, body %.40q", resp.Header, body)
			}
			// The same state gives the same tag; a matching tag gets 304 without a body.
			again, _ := get(t, tc.path, "")
			if again.Header.Get("ETag") != etag {
				t.Fatalf("ETag changed without a change: %q then %q", etag, again.Header.Get("ETag"))
			}
			for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
				nm, nmBody := get(t, tc.path, inm)
				if nm.StatusCode != http.StatusNotModified || nmBody != "" || nm.Header.Get("ETag") != etag ||
					nm.Header.Get("Cache-Control") != tc.cacheControl {
					t.Fatalf("If-None-Match %s: status %d, ETag %q, Cache-Control %q, body %q", inm, nm.StatusCode,
						nm.Header.Get("ETag"), nm.Header.Get("Cache-Control"), nmBody)
				}
			}
			if stale, _ := get(t, tc.path, `"stale"`); stale.StatusCode != http.StatusOK {
				t.Fatalf("If-None-Match with another tag: status %d", stale.StatusCode)
			}
			etags[tc.path] = etag
		})
	}

	// A rotation changes the key set, so its tag.
	if _, err := e.admin.RotateKeys(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, "/keys", etags["/keys"]); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etags["/keys"] {
		t.Fatalf("after rotation: status %d, ETag %q (was %q)", resp.StatusCode, resp.Header.Get("ETag"), etags["/keys"])
	}

	// Responses carrying tokens are never cached.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(svc.ID, svc.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response: status %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

// TestConfigRefusesPublishDelayBelowJWKSMaxAge: a verifier could cache the key set for
// longer than a new key waits before it signs.
func TestConfigRefusesPublishDelayBelowJWKSMaxAge(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	_, err := idp.New(context.Background(), e.store, idp.Config{Issuer: e.issuer, Sealer: e.sealer,
		JWKSMaxAge: time.Hour, KeyPublishDelay: 30 * time.Minute})
	if err == nil || !strings.Contains(err.Error(), "publish delay") {
		t.Fatalf("New = %v, want a publish delay error", err)
	}
}

// jwksSnapshot is a key set as a verifier caches it.
type jwksSnapshot struct {
	fetched time.Time
	set     jose.JSONWebKeySet
}

func fetchJWKS(t *testing.T, e *env) jwksSnapshot {
	t.Helper()
	s := jwksSnapshot{fetched: e.clock.Now()}
	getJSON(t, e.issuer+"/keys", &s.set)
	return s
}

// verify checks token's signature and time claims with the cached set only, as a
// verifier that does not refetch on an unknown kid would.
func (s jwksSnapshot) verify(t *testing.T, e *env, token string) error {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	found := s.set.Key(parsed.Headers[0].KeyID)
	if len(found) == 0 {
		return fmt.Errorf("kid %s not in the cached key set", parsed.Headers[0].KeyID)
	}
	var std jwt.Claims
	if err := parsed.Claims(found[0].Key, &std); err != nil {
		return err
	}
	return std.ValidateWithLeeway(jwt.Expected{Issuer: e.issuer, Time: e.clock.Now()}, time.Minute)
}

// TestCachedJWKSThroughRotation: a resource server that caches the key set for its
// max-age, and never refetches early, keeps verifying through a rotation. The new key
// is published a publish delay (at least the max-age) before it signs, so any copy a
// verifier may still hold when the key first signs already has it; tokens of the old key
// verify for the retention after it stopped signing.
func TestCachedJWKSThroughRotation(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			const maxAge, delay, retention = 10 * time.Minute, time.Hour, 2 * time.Hour
			e := newEnv(t, be.open(t), func(c *idp.Config) {
				c.JWKSMaxAge, c.KeyPublishDelay, c.KeyRetention = maxAge, delay, retention
			})
			svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
			token := func() (string, string) {
				t.Helper()
				tr := e.tokenRequest(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}})
				if tr.Error != "" {
					t.Fatalf("client_credentials: %+v", tr)
				}
				return tr.AccessToken, jwtKid(t, tr.AccessToken)
			}
			oldToken, oldKid := token()
			beforeRotation := fetchJWKS(t, e)

			rotating := e.clock.Now()
			ids, err := e.admin.RotateKeys(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			rotatedAt := e.clock.Now()
			// Pending: published by the provider, but the old key still signs.
			if _, kid := token(); kid != oldKid {
				t.Fatalf("a pending key signed (%s)", kid)
			}
			list, err := e.server.Keys().List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range list {
				want := keys.StateActive
				if slices.Contains(ids, k.ID) {
					want = keys.StatePending
				}
				// The rotation happened between rotating and rotatedAt, however long it took.
				if k.State != want || (want == keys.StatePending && (k.ActivatesAt.After(rotatedAt.Add(delay)) || k.ActivatesAt.Before(rotating.Add(delay).Truncate(time.Microsecond)))) {
					t.Errorf("key %s: state %s (want %s), signs from %v", k.ID, k.State, want, k.ActivatesAt)
				}
			}

			// A verifier that fetched the set just before the rotation must refetch (its
			// copy expires) before the new key signs.
			if rotatedAt.Add(delay).Sub(beforeRotation.fetched) < maxAge {
				t.Fatalf("the new key signs %s after the last key set without it was served; max-age is %s",
					rotatedAt.Add(delay).Sub(beforeRotation.fetched), maxAge)
			}
			if err := beforeRotation.verify(t, e, oldToken); err != nil {
				t.Fatalf("old token with the pre-rotation key set: %v", err)
			}

			// The oldest copy a verifier may hold when the new key first signs was fetched
			// one max-age before that, well after the rotation.
			e.clock.Advance(delay - maxAge + 30*time.Second)
			cached := fetchJWKS(t, e)
			if len(cached.set.Keys) != 4 {
				t.Fatalf("key set while pending has %d keys, want 4 (2 active + 2 pending)", len(cached.set.Keys))
			}
			e.clock.Advance(maxAge - 20*time.Second) // past the activation; cached is still fresh
			if e.clock.Now().Sub(cached.fetched) >= maxAge {
				t.Fatal("test error: cached copy expired")
			}
			newToken, newKid := token()
			if !slices.Contains(ids, newKid) {
				t.Fatalf("after the publish delay the token is signed by %s, want a rotated key %v", newKid, ids)
			}
			if err := cached.verify(t, e, newToken); err != nil {
				t.Fatalf("new-key token with the key set cached before the new key signed: %v", err)
			}
			// The old key's tokens still verify with a fresh set, for the retention.
			fresh := fetchJWKS(t, e)
			if len(fresh.set.Key(oldKid)) == 0 {
				t.Fatal("the old key left the key set right after it stopped signing")
			}
			if err := fresh.verify(t, e, newToken); err != nil {
				t.Fatal(err)
			}
			oldSig, err := jwt.ParseSigned(oldToken, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if err := oldSig.Claims(fresh.set.Key(oldKid)[0].Key, &jwt.Claims{}); err != nil {
				t.Fatalf("old token's signature with the fresh set: %v", err)
			}
			// After the retention it is gone.
			e.clock.Advance(retention + time.Minute)
			if late := fetchJWKS(t, e); len(late.set.Key(oldKid)) != 0 || len(late.set.Keys) != 2 {
				t.Fatalf("after the retention: old key published %v, %d keys", len(late.set.Key(oldKid)) != 0, len(late.set.Keys))
			}
		})
	}
}

func jwtKid(t *testing.T, token string) string {
	t.Helper()
	return jwtHeader(t, token).KeyID
}

// A JWT access token whose signature fails after its write (the signature is made while
// the store writes the token) gets the client server_error, while the token stays
// stored with its token.issue event: the write succeeded, so it is not logged as a
// failed audit write, but as a token stored and not signed.
func TestAccessTokenSignFailsAfterWrite(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			logs := &idptest.LockedBuffer{}
			e := newEnv(t, be.open(t), func(c *idp.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
			svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"}})
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
			ok := e.tokenRequest(svc, form)
			if ok.Error != "" {
				t.Fatalf("client_credentials: %+v", ok)
			}
			e.server.BreakAccessTokenSigningForTest(jwtKid(t, ok.AccessToken))

			got := e.tokenRequest(svc, form)
			if got.Error != "server_error" || got.AccessToken != "" {
				t.Fatalf("with the signature failing: %+v, want server_error and no token", got)
			}
			events, err := e.store.ListAudit(t.Context(), storage.AuditFilter{ClientID: svc.ID, Type: audit.EventTokenIssue})
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 2 {
				t.Fatalf("%d token.issue events, want 2 (the token issued, the token stored but not signed)", len(events))
			}
			for _, ev := range events {
				if _, err := e.store.GetAccessToken(t.Context(), ev.TokenID); err != nil {
					t.Errorf("token %s of event %d: %v", ev.TokenID, ev.ID, err)
				}
			}
			if s := logs.String(); !strings.Contains(s, "access token stored but not signed") || strings.Contains(s, "audit write failed") {
				t.Fatalf("logs:\n%s\nwant the unsigned token logged, no failed audit write", s)
			}
		})
	}
}
