package rs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// This file holds the fakes the tests run against: a provider on httptest serving
// discovery, a JWKS and introspection, signing keys, and a clock.

const (
	testAudience     = "https://api.example.com"
	testClientID     = "orders-api"
	testClientSecret = "s3cret:with/odd chars"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// signer is one of the provider's signing keys.
type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // the private key
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// newSigner makes a key for alg. RSA keys are slow to make, so the tests share one
// (under different kids).
func newSigner(t testing.TB, kid string, alg jose.SignatureAlgorithm) *signer {
	t.Helper()
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS256, jose.PS256:
		rsaOnce.Do(func() { rsaKey, err = rsa.GenerateKey(rand.Reader, 2048) })
		key = rsaKey
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("newSigner: no key for %s", alg)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", alg, err)
	}
	return &signer{kid: kid, alg: alg, key: key}
}

// public is the JWK the provider publishes for s.
func (s *signer) public() jose.JSONWebKey {
	priv := jose.JSONWebKey{Key: s.key, KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
	return priv.Public()
}

// sign makes a compact JWS of claims with header typ (none when empty).
func (s *signer) sign(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: jose.JSONWebKey{Key: s.key, KeyID: s.kid}}, opts)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return out
}

// fakeProvider serves discovery, a JWKS and introspection, and counts what it is asked.
type fakeProvider struct {
	srv *httptest.Server

	mu           sync.Mutex
	keys         []jose.JSONWebKey
	cacheControl string // Cache-Control of the JWKS answer
	etag         string // ETag of the JWKS answer; empty sends none
	down         bool   // answer 503 to everything
	jwksHits     int
	notModified  int // JWKS answers that were 304
	discHits     int
	introHits    int
	// active maps opaque tokens to their introspection answers; others are inactive.
	active map[string]map[string]any
}

func newFakeProvider(t testing.TB, signers ...*signer) *fakeProvider {
	t.Helper()
	p := &fakeProvider{cacheControl: "public, max-age=3600", active: map[string]map[string]any{}}
	p.setKeys(signers...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.discHits++
		down := p.down
		p.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":                 p.issuer(),
			"jwks_uri":               p.issuer() + "/keys",
			"introspection_endpoint": p.issuer() + "/oauth/introspect",
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.jwksHits++
		if p.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", p.cacheControl)
		if p.etag != "" {
			w.Header().Set("ETag", p.etag)
			if r.Header.Get("If-None-Match") == p.etag {
				p.notModified++
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: p.keys})
	})
	mux.HandleFunc("POST /oauth/introspect", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.introHits++
		if p.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		// client_secret_basic: the id and secret are form-encoded, then Basic.
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != testClientID || secret != testClientSecret {
			w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		answer, found := p.active[r.PostFormValue("token")]
		if !found {
			answer = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) issuer() string { return p.srv.URL }

// setKeys replaces the published key set (a rotation).
func (p *fakeProvider) setKeys(signers ...*signer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = nil
	for _, s := range signers {
		p.keys = append(p.keys, s.public())
	}
}

func (p *fakeProvider) set(f func(p *fakeProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *fakeProvider) hits() (jwks, discovery, introspection int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jwksHits, p.discHits, p.introHits
}

// verifier returns a Verifier for p on clk, after mods.
func (p *fakeProvider) verifier(t testing.TB, clk *clock, mods ...func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Issuer:       p.issuer(),
		Audience:     testAudience,
		HTTPClient:   p.srv.Client(),
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		Now:          clk.now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// accessClaims are the claims of a valid user access token (RFC 9068 §2.2) at now.
func (p *fakeProvider) accessClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       p.issuer(),
		"sub":       "user-1",
		"aud":       []string{testAudience},
		"client_id": "shop-app",
		"exp":       now.Add(15 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       "at-1",
		"scope":     "openid orders:read",
		"auth_time": now.Add(-2 * time.Minute).Unix(),
		"acr":       ACRMFA,
		"amr":       []string{"mfa", "otp", "pwd"},
	}
}

// with returns a copy of claims with changes applied; a nil value deletes the claim.
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// unsignedToken is a JWS with alg none.
func unsignedToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + enc(payload) + "."
}
