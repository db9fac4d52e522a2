package rs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestNewVerifierNeedsIssuerAndAudience(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no issuer", Config{Audience: testAudience}},
		{"relative issuer", Config{Issuer: "id.example.com", Audience: testAudience}},
		{"no audience", Config{Issuer: "https://id.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.cfg); err == nil {
				t.Fatal("NewVerifier accepted an incomplete config")
			}
		})
	}
}

// TestVerifyJWT follows RFC 9068 §4, the validation of a JWT access token.
func TestVerifyJWT(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	rs := newSigner(t, "rs-1", jose.RS256)
	ps := newSigner(t, "ps-1", jose.PS256)
	ed := newSigner(t, "ed-1", jose.EdDSA)
	stranger := newSigner(t, "es-1", jose.ES256) // same kid, key the provider never published
	p := newFakeProvider(t, es, rs, ps, ed)
	clk := newClock()
	now := clk.now()
	base := p.accessClaims(now)

	hs256 := func(t *testing.T) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "es-1"}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := sig.Sign([]byte(`{"iss":"` + p.issuer() + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}

	tests := []struct {
		name     string
		token    func(t *testing.T) string
		leeway   time.Duration
		wantDesc string // "" means accepted
	}{
		{"ES256 at+jwt accepted", func(t *testing.T) string { return es.sign(t, "at+jwt", base) }, 0, ""},
		{"RS256 at+jwt accepted", func(t *testing.T) string { return rs.sign(t, "at+jwt", base) }, 0, ""},
		{"PS256 at+jwt accepted", func(t *testing.T) string { return ps.sign(t, "at+jwt", base) }, 0, ""},
		{"EdDSA at+jwt accepted", func(t *testing.T) string { return ed.sign(t, "at+jwt", base) }, 0, ""},
		{"typ application/at+jwt accepted", func(t *testing.T) string { return es.sign(t, "application/at+jwt", base) }, 0, ""},
		{"typ compared case-insensitively", func(t *testing.T) string { return es.sign(t, "AT+JWT", base) }, 0, ""},
		{"aud as a single string accepted", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"aud": testAudience}))
		}, 0, ""},
		{"aud naming other audiences too accepted", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"aud": []string{"https://other.example.com", testAudience}}))
		}, 0, ""},
		{"client_credentials token (no auth_time, acr, amr) accepted", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"sub": "svc", "client_id": "svc", "auth_time": nil, "acr": nil, "amr": nil}))
		}, 0, ""},
		{"expired within the leeway accepted", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))
		}, 30 * time.Second, ""},

		// RFC 9068 §4: typ must be at+jwt, so an ID token or another JWT is refused.
		{"typ JWT refused", func(t *testing.T) string { return es.sign(t, "JWT", base) }, 0, "typ is not at+jwt"},
		{"no typ refused", func(t *testing.T) string { return es.sign(t, "", base) }, 0, "typ is not at+jwt"},
		{"ID token refused", func(t *testing.T) string {
			return es.sign(t, "JWT", map[string]any{
				"iss": p.issuer(), "sub": "user-1", "aud": testAudience, "azp": testAudience,
				"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
			})
		}, 0, "typ is not at+jwt"},
		{"wrong iss refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"iss": "https://evil.example.com"}))
		}, 0, "wrong issuer"},
		{"iss with a trailing slash refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"iss": p.issuer() + "/"}))
		}, 0, "wrong issuer"},
		{"wrong aud refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"aud": []string{"shop-app"}}))
		}, 0, "not for this audience"},
		{"no aud refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"aud": nil}))
		}, 0, "not for this audience"},
		{"expired refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-time.Second).Unix()}))
		}, 0, "expired"},
		{"expired beyond the leeway refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-31 * time.Second).Unix()}))
		}, 30 * time.Second, "expired"},
		{"no exp refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"exp": nil}))
		}, 0, "no expiry"},
		{"nbf in the future refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"nbf": now.Add(time.Minute).Unix()}))
		}, 0, "not valid yet"},
		{"iat in the future refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"iat": now.Add(time.Minute).Unix()}))
		}, 0, "issued in the future"},
		{"exp not a number refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"exp": "tomorrow"}))
		}, 0, "malformed claims"},
		{"no sub refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"sub": nil}))
		}, 0, "no subject"},
		{"no client_id refused", func(t *testing.T) string {
			return es.sign(t, "at+jwt", with(base, map[string]any{"client_id": nil}))
		}, 0, "no client_id"},
		{"alg none refused", func(t *testing.T) string { return unsignedToken(t, base) }, 0, "algorithm not accepted"},
		{"HS256 refused", hs256, 0, "algorithm not accepted"},
		{"unknown kid refused", func(t *testing.T) string {
			return newSigner(t, "nobody", jose.ES256).sign(t, "at+jwt", base)
		}, 0, "unknown signing key"},
		{"known kid, other key refused", func(t *testing.T) string { return stranger.sign(t, "at+jwt", base) }, 0, "bad signature"},
		{"tampered payload refused", func(t *testing.T) string {
			parts := strings.Split(es.sign(t, "at+jwt", base), ".")
			other := strings.Split(es.sign(t, "at+jwt", with(base, map[string]any{"scope": "admin"})), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, 0, "bad signature"},
		{"JWE refused", func(t *testing.T) string { return "a.b.c.d.e" }, 0, "encrypted"},
		{"garbage JWS refused", func(t *testing.T) string { return "a.b.c" }, 0, "algorithm not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.verifier(t, clk, func(c *Config) { c.Leeway = tt.leeway })
			claims, err := v.Verify(context.Background(), tt.token(t))
			if tt.wantDesc == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Subject == "" || claims.ClientID == "" || !claims.HasScope("orders:read") {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify: err = %v, want an invalid token", err)
			}
			if !strings.Contains(te.Description, tt.wantDesc) {
				t.Fatalf("description = %q, want it to contain %q", te.Description, tt.wantDesc)
			}
		})
	}
}

func TestVerifyJWTClaims(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	p := newFakeProvider(t, es)
	clk := newClock()
	now := clk.now()
	v := p.verifier(t, clk)

	got, err := v.Verify(context.Background(), es.sign(t, "at+jwt", with(p.accessClaims(now), map[string]any{"sid": "session-9"})))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := &Claims{
		Issuer:   p.issuer(),
		Subject:  "user-1",
		ClientID: "shop-app",
		Audience: []string{testAudience},
		Scopes:   []string{"openid", "orders:read"},
		ACR:      ACRMFA,
		AMR:      []string{"mfa", "otp", "pwd"},
		AuthTime: now.Add(-2 * time.Minute),
		Expiry:   now.Add(15 * time.Minute),
		IssuedAt: now,
		JWTID:    "at-1",
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Claims{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	var extra struct {
		SID string `json:"sid"`
	}
	if err := got.Decode(&extra); err != nil || extra.SID != "session-9" {
		t.Errorf("Decode: sid = %q, err = %v", extra.SID, err)
	}
}

// TestKeyRotation: a token signed with a key the cached set lacks makes the verifier
// refetch the set once; a set that still lists the old key keeps verifying old tokens.
func TestKeyRotation(t *testing.T) {
	oldKey := newSigner(t, "key-1", jose.ES256)
	newKey := newSigner(t, "key-2", jose.RS256)
	p := newFakeProvider(t, oldKey)
	clk := newClock()
	v := p.verifier(t, clk)
	ctx := context.Background()
	claims := p.accessClaims(clk.now())
	oldToken := oldKey.sign(t, "at+jwt", claims)

	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Fatalf("old token before rotation: %v", err)
	}
	if jwks, _, _ := p.hits(); jwks != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", jwks)
	}

	// The provider rotates: it signs with key-2 and still publishes key-1.
	p.setKeys(newKey, oldKey)
	clk.advance(DefaultRefetchInterval)
	newToken := newKey.sign(t, "at+jwt", p.accessClaims(clk.now()))
	if _, err := v.Verify(ctx, newToken); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	if jwks, _, _ := p.hits(); jwks != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refetch for the unknown kid)", jwks)
	}
	for i := range 3 {
		if _, err := v.Verify(ctx, oldToken); err != nil {
			t.Fatalf("old token after rotation (%d): %v", i, err)
		}
		if _, err := v.Verify(ctx, newToken); err != nil {
			t.Fatalf("new token again (%d): %v", i, err)
		}
	}
	if jwks, _, _ := p.hits(); jwks != 2 {
		t.Fatalf("JWKS fetched %d times, want still 2: both keys are cached", jwks)
	}

	// key-1 is retired: once the set is refetched, tokens it signed are refused.
	p.setKeys(newKey)
	clk.advance(time.Hour + time.Second) // max-age=3600 ran out
	oldToken = oldKey.sign(t, "at+jwt", p.accessClaims(clk.now()))
	newToken = newKey.sign(t, "at+jwt", p.accessClaims(clk.now()))
	if _, err := v.Verify(ctx, newToken); err != nil {
		t.Fatalf("new token after key-1 retired: %v", err)
	}
	if _, err := v.Verify(ctx, oldToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("old token after key-1 retired: err = %v, want invalid", err)
	}
}

// TestRefetchRateLimited: a flood of tokens naming unknown keys costs the provider one
// fetch per refetch interval, not one per token.
func TestRefetchRateLimited(t *testing.T) {
	known := newSigner(t, "known", jose.ES256)
	p := newFakeProvider(t, known)
	clk := newClock()
	v := p.verifier(t, clk)
	ctx := context.Background()
	claims := p.accessClaims(clk.now())
	if _, err := v.Verify(ctx, known.sign(t, "at+jwt", claims)); err != nil {
		t.Fatal(err)
	}
	bogus := newSigner(t, "bogus", jose.ES256)
	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = (&signer{kid: "bogus-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), alg: bogus.alg, key: bogus.key}).sign(t, "at+jwt", claims)
	}

	tests := []struct {
		name     string
		advance  time.Duration
		wantJWKS int
	}{
		{"right after the first fetch: none", 0, 1},
		{"after the interval: one refetch", DefaultRefetchInterval, 2},
		{"within the interval: none", DefaultRefetchInterval / 2, 2},
		{"after the interval: one more", DefaultRefetchInterval / 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.advance(tt.advance)
			for _, tok := range tokens {
				if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("unknown kid: err = %v, want invalid", err)
				}
			}
			if jwks, _, _ := p.hits(); jwks != tt.wantJWKS {
				t.Fatalf("JWKS fetched %d times, want %d", jwks, tt.wantJWKS)
			}
		})
	}
	if _, disc, _ := p.hits(); disc != 1 {
		t.Errorf("discovery fetched %d times, want 1", disc)
	}
}

// TestKeySetCaching: the set is reused for its Cache-Control max-age, revalidated with
// If-None-Match when the provider sent an ETag, and kept when the provider is down.
func TestKeySetCaching(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	ctx := context.Background()

	t.Run("max-age honoured", func(t *testing.T) {
		p := newFakeProvider(t, es)
		p.set(func(p *fakeProvider) { p.cacheControl = "max-age=60" })
		clk := newClock()
		v := p.verifier(t, clk)
		token := es.sign(t, "at+jwt", p.accessClaims(clk.now()))
		steps := []struct {
			advance  time.Duration
			wantJWKS int
		}{{0, 1}, {59 * time.Second, 1}, {2 * time.Second, 2}, {30 * time.Second, 2}}
		for _, s := range steps {
			clk.advance(s.advance)
			if _, err := v.Verify(ctx, token); err != nil {
				t.Fatal(err)
			}
			if jwks, _, _ := p.hits(); jwks != s.wantJWKS {
				t.Fatalf("after +%v: JWKS fetched %d times, want %d", s.advance, jwks, s.wantJWKS)
			}
		}
	})

	t.Run("no-cache still fetches at most once per refetch interval", func(t *testing.T) {
		p := newFakeProvider(t, es)
		p.set(func(p *fakeProvider) { p.cacheControl = "no-cache" })
		clk := newClock()
		v := p.verifier(t, clk)
		token := es.sign(t, "at+jwt", p.accessClaims(clk.now()))
		for range 20 {
			if _, err := v.Verify(ctx, token); err != nil {
				t.Fatal(err)
			}
			clk.advance(time.Second)
		}
		if jwks, _, _ := p.hits(); jwks != 2 {
			t.Fatalf("JWKS fetched %d times in 20 s, want 2", jwks)
		}
	})

	t.Run("ETag revalidation", func(t *testing.T) {
		p := newFakeProvider(t, es)
		p.set(func(p *fakeProvider) { p.cacheControl = "max-age=60"; p.etag = `"v1"` })
		clk := newClock()
		v := p.verifier(t, clk)
		token := es.sign(t, "at+jwt", p.accessClaims(clk.now()))
		for range 3 {
			if _, err := v.Verify(ctx, token); err != nil {
				t.Fatal(err)
			}
			clk.advance(61 * time.Second)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.jwksHits != 3 || p.notModified != 2 {
			t.Fatalf("JWKS hits = %d, 304s = %d; want 3 and 2", p.jwksHits, p.notModified)
		}
	})

	t.Run("provider down: the cached set keeps serving", func(t *testing.T) {
		p := newFakeProvider(t, es)
		p.set(func(p *fakeProvider) { p.cacheControl = "max-age=60" })
		clk := newClock()
		v := p.verifier(t, clk)
		token := es.sign(t, "at+jwt", with(p.accessClaims(clk.now()), map[string]any{"exp": clk.now().Add(time.Hour).Unix()}))
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		p.set(func(p *fakeProvider) { p.down = true })
		for range 30 {
			clk.advance(5 * time.Second)
			if _, err := v.Verify(ctx, token); err != nil {
				t.Fatalf("with the provider down: %v", err)
			}
		}
		// 150 s: stale after 60 s, then one attempt per refetch interval.
		if jwks, _, _ := p.hits(); jwks > 1+10 {
			t.Fatalf("JWKS fetched %d times while down, want at most one per %v", jwks, DefaultRefetchInterval)
		}
	})

	t.Run("provider down and nothing cached: unavailable", func(t *testing.T) {
		p := newFakeProvider(t, es)
		p.set(func(p *fakeProvider) { p.down = true })
		clk := newClock()
		v := p.verifier(t, clk)
		token := es.sign(t, "at+jwt", p.accessClaims(clk.now()))
		for range 5 {
			_, err := v.Verify(ctx, token)
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
		}
		if _, disc, _ := p.hits(); disc != 1 {
			t.Fatalf("discovery fetched %d times, want 1 (retries are rate-limited)", disc)
		}
		p.set(func(p *fakeProvider) { p.down = false })
		clk.advance(DefaultRefetchInterval)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("after the provider came back: %v", err)
		}
	})
}

func TestParseKeySetSkipsUnusableKeys(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	pub, err := es.public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"keys":[` +
		`{"kty":"oct","k":"c2VjcmV0","kid":"hmac"},` +
		`{"kty":"XYZ","kid":"future"},` +
		`{"kty":"EC","crv":"P-256","use":"enc","kid":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},` +
		string(pub) + `]}`
	keys, err := parseKeySet([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].KeyID != "es-1" {
		t.Fatalf("keys = %v, want only es-1", keys)
	}
	if _, err := parseKeySet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a set of only symmetric keys was accepted")
	}
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		header map[string]string
		want   time.Duration
	}{
		{map[string]string{}, defaultKeySetTTL},
		{map[string]string{"Cache-Control": "public, max-age=600"}, 10 * time.Minute},
		{map[string]string{"Cache-Control": "max-age=600", "Age": "100"}, 500 * time.Second},
		{map[string]string{"Cache-Control": "max-age=600, no-cache"}, 0},
		{map[string]string{"Cache-Control": "no-store"}, 0},
		{map[string]string{"Cache-Control": "max-age=99999999"}, maxKeySetTTL},
		{map[string]string{"Cache-Control": "max-age=-5"}, defaultKeySetTTL},
	}
	for _, tt := range tests {
		h := make(map[string][]string)
		for k, v := range tt.header {
			h[k] = []string{v}
		}
		if got := cacheTTL(h); got != tt.want {
			t.Errorf("cacheTTL(%v) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// TestConcurrentRotation: many requests at once with a key the cache lacks cause one
// fetch, and all of them succeed.
func TestConcurrentRotation(t *testing.T) {
	oldKey := newSigner(t, "key-1", jose.ES256)
	newKey := newSigner(t, "key-2", jose.ES256)
	p := newFakeProvider(t, oldKey)
	clk := newClock()
	v := p.verifier(t, clk)
	ctx := context.Background()
	if _, err := v.Verify(ctx, oldKey.sign(t, "at+jwt", p.accessClaims(clk.now()))); err != nil {
		t.Fatal(err)
	}
	p.setKeys(newKey, oldKey)
	clk.advance(DefaultRefetchInterval)
	token := newKey.sign(t, "at+jwt", p.accessClaims(clk.now()))

	errs := make(chan error, 50)
	for range cap(errs) {
		go func() {
			_, err := v.Verify(ctx, token)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if jwks, _, _ := p.hits(); jwks != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", jwks)
	}
}
