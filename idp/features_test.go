package idp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/storage/seal"
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
			es := e.createClient(admin.NewClient{Name: "ES", RedirectURIs: []string{"https://es.example.com/cb"}, SkipConsent: true})
			rs := e.createClient(admin.NewClient{Name: "RS", RedirectURIs: []string{"https://rs.example.com/cb"}, SkipConsent: true, IDTokenSigningAlg: "RS256"})
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
			// The new keys are published but do not sign before the publish delay.
			pending := loginCode(t, e, b, es, nil)
			if kid := jwtHeader(t, pending.IDToken).KeyID; kid != oldKid {
				t.Fatalf("a pending key signed: kid %s, want the old %s", kid, oldKid)
			}
			e.clock.Advance(keys.DefaultPublishDelay)
			after := loginCode(t, e, b, es, nil)
			newKid := jwtHeader(t, after.IDToken).KeyID
			if newKid == oldKid || !slices.Contains(ids, newKid) {
				t.Fatalf("after the publish delay the signing key is %s, want one of the rotated %v", newKid, ids)
			}
			// Access tokens follow the key that signs now (their signer is kept per key).
			if kid := jwtHeader(t, esTok.AccessToken).KeyID; kid != oldKid {
				t.Fatalf("access token before the rotation signed by %s, want %s", kid, oldKid)
			}
			if kid := jwtHeader(t, after.AccessToken).KeyID; kid != newKid {
				t.Fatalf("access token after the publish delay signed by %s, want %s", kid, newKid)
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
	c := e.createClient(admin.NewClient{Name: "Opaque", RedirectURIs: []string{"https://o.example.com/cb"}, SkipConsent: true, AccessTokenFormat: "opaque"})
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
	app := e.createClient(admin.NewClient{Name: "App", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
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

func TestPasswordRehashedWhenParametersChange(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	u := e.createUser("alice@example.com", password)
	weak, err := argon2id.CreateHash(password, &argon2id.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = weak
	if err := e.store.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
	loginCode(t, e, e.newBrowser(), app, nil)
	got, err := e.store.GetUser(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PasswordHash == weak || !strings.HasPrefix(got.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash not upgraded: %s", got.PasswordHash[:30])
	}
	if ok, rehash := pwhash.Verify(password, got.PasswordHash); !ok || rehash {
		t.Fatalf("upgraded hash: ok=%v rehash=%v", ok, rehash)
	}
}

func TestSecureCookiesUnderHTTPS(t *testing.T) {
	st := openSQLite(t)
	ts := httptest.NewUnstartedServer(nil)
	issuer := "https://" + ts.Listener.Addr().String()
	sealer, _ := seal.New(seal.NewKey())
	srv, err := idp.New(context.Background(), st, idp.Config{Issuer: issuer, Sealer: sealer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.StartTLS()
	defer ts.Close()
	adm := &admin.Admin{Store: st, Audit: srv.Auditor()}
	if _, err := adm.CreateUser(context.Background(), "test", admin.NewUser{Email: "alice@example.com", Password: password}); err != nil {
		t.Fatal(err)
	}
	c, _, err := adm.CreateClient(context.Background(), "test", admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	b := idptest.NewBrowser(t, issuer)
	b.Client.Transport = ts.Client().Transport
	_, ch := pkce()
	p := b.Get(idptest.AuthURL(issuer, testClient{ID: c.ID, RedirectURI: c.RedirectURIs[0]}, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	f := p.Hidden()
	f.Set("email", "alice@example.com")
	f.Set("password", password)
	req, _ := http.NewRequest(http.MethodPost, issuer+"/login", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range b.Client.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	resp, err := ts.Client().Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	names := map[string]bool{}
	for _, ck := range resp.Cookies() {
		names[ck.Name] = true
		if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie %s not Secure/HttpOnly/SameSite=Lax: %+v", ck.Name, ck)
		}
	}
	if !names["__Host-idp_session"] {
		t.Fatalf("no session cookie (status %d)", resp.StatusCode)
	}
}
