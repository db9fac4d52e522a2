package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/openidp/idp/idp"
)

func jwtHeader(t *testing.T, token string) jose.Header {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	return parsed.Headers[0]
}

func TestSigningAlgorithmsAndKeyRotation(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t), func(c *idp.Config) { c.KeyRetention = time.Hour })
			e.createUser("alice@example.com", password)
			es := e.createClient(idp.NewClient{Name: "ES", RedirectURIs: []string{"https://es.example.com/cb"}, SkipConsent: true})
			rs := e.createClient(idp.NewClient{Name: "RS", RedirectURIs: []string{"https://rs.example.com/cb"}, SkipConsent: true, IDTokenSigningAlg: "RS256"})
			b := e.newBrowser()

			esTok := loginCode(t, e, b, es, nil)
			rsTok := loginCode(t, e, b, rs, nil)
			if h := jwtHeader(t, esTok.IDToken); h.Algorithm != "ES256" {
				t.Fatalf("default client got %s", h.Algorithm)
			}
			if h := jwtHeader(t, rsTok.IDToken); h.Algorithm != "RS256" {
				t.Fatalf("RS256 client got %s", h.Algorithm)
			}
			verifyWithJWKS(t, e, rsTok.IDToken, rs.ID)
			oldKid := jwtHeader(t, esTok.IDToken).KeyID

			ids, err := e.admin.RotateKeys(context.Background(), "test")
			if err != nil || len(ids) != 2 {
				t.Fatalf("rotate: %v %v", ids, err)
			}
			after := loginCode(t, e, b, es, nil)
			newKid := jwtHeader(t, after.IDToken).KeyID
			if newKid == oldKid {
				t.Fatal("rotation did not change the signing key")
			}
			// Tokens signed before the rotation still verify: the old key stays published.
			verifyWithJWKS(t, e, esTok.IDToken, es.ID)
			verifyWithJWKS(t, e, after.IDToken, es.ID)

			// After the retention period the old key leaves the JWKS.
			e.clock.Advance(2 * time.Hour)
			var set jose.JSONWebKeySet
			getJSON(t, e.issuer+"/keys", &set)
			if len(set.Key(oldKid)) != 0 {
				t.Fatal("retired key still published after retention")
			}
			if len(set.Key(newKid)) != 1 || len(set.Keys) != 2 {
				t.Fatalf("JWKS after retention has %d keys", len(set.Keys))
			}
		})
	}
}

func TestOpaqueAccessTokens(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	user := e.createUser("alice@example.com", password)
	c := e.createClient(idp.NewClient{Name: "Opaque", RedirectURIs: []string{"https://o.example.com/cb"}, SkipConsent: true, AccessTokenFormat: "opaque"})
	tr := loginCode(t, e, e.newBrowser(), c, nil)
	if strings.Count(tr.AccessToken, ".") == 2 {
		if _, err := jwt.ParseSigned(tr.AccessToken, []jose.SignatureAlgorithm{jose.ES256, jose.RS256}); err == nil {
			t.Fatal("opaque client received a signed JWT access token")
		}
	}
	if got := introspect(t, e, c, tr.AccessToken); got["active"] != true || got["sub"] != user.ID {
		t.Fatalf("introspection of opaque token = %v", got)
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo with opaque token: %s", resp.Status)
	}
	// Expired: the provider's clock moves past the 15-minute default lifetime.
	e.clock.Advance(16 * time.Minute)
	if got := introspect(t, e, c, tr.AccessToken); got["active"] != false {
		t.Fatalf("expired opaque token active: %v", got)
	}
}

func TestOperationalEndpointsAndHeaders(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	app := e.createClient(idp.NewClient{Name: "App", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	// Token responses are never cached (RFC 6749 5.1).
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(app.ID, app.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token endpoint: %s, Cache-Control %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	// CORS: any origin may call, but never with credentials.
	req, _ = http.NewRequest(http.MethodGet, e.issuer+"/keys", nil)
	req.Header.Set("Origin", "https://evil.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Credentials") == "true" {
		t.Fatal("CORS allows credentials")
	}
	// A readiness probe fails when the database is gone.
	e.store.Close()
	resp, err = http.Get(e.issuer + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a closed database: %s", resp.Status)
	}
}

func TestCookiesAreHardened(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.createUser("alice@example.com", password)
	app := e.createClient(idp.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	b := e.newBrowser()
	_, ch := pkce()
	p := b.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	f := p.Hidden()
	f.Set("email", "alice@example.com")
	f.Set("password", password)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Client.Transport.RoundTrip(withCookies(t, b, req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name == "idp_session" {
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
				t.Fatalf("session cookie not hardened: %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("no session cookie set (status %d)", resp.StatusCode)
	}
}

func withCookies(t *testing.T, b *browser, req *http.Request) *http.Request {
	t.Helper()
	for _, c := range b.Client.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	if b.Client.Transport == nil {
		b.Client.Transport = http.DefaultTransport
	}
	return req
}
