package rs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIntrospection: a token that is not a JWS is sent to the introspection endpoint
// (RFC 7662) with the API's credentials, and the answer checked like a JWT's claims.
func TestIntrospection(t *testing.T) {
	p := newFakeProvider(t)
	clk := newClock()
	now := clk.now()
	answer := func(changes map[string]any) map[string]any {
		return with(map[string]any{
			"active":     true,
			"iss":        p.issuer(),
			"sub":        "user-1",
			"aud":        []string{testAudience},
			"client_id":  "shop-app",
			"token_type": "Bearer",
			"exp":        now.Add(15 * time.Minute).Unix(),
			"iat":        now.Unix(),
			"scope":      "openid orders:read",
			"auth_time":  now.Add(-time.Minute).Unix(),
			"acr":        ACRPhishingResistant,
			"amr":        []string{"hwk", "mfa", "pwd", "user"},
		}, changes)
	}

	tests := []struct {
		name     string
		answer   map[string]any // nil: the provider does not know the token
		secret   string         // the API's client secret; "" means the right one
		noCreds  bool
		wantErr  error
		wantDesc string
	}{
		{name: "active accepted", answer: answer(nil)},
		{name: "no iss in the answer accepted", answer: answer(map[string]any{"iss": nil})},
		{name: "inactive refused", answer: map[string]any{"active": false}, wantErr: ErrInvalidToken, wantDesc: "not active"},
		{name: "unknown token refused", wantErr: ErrInvalidToken, wantDesc: "not active"},
		{name: "no active member refused", answer: answer(map[string]any{"active": nil}), wantErr: ErrInvalidToken, wantDesc: "not active"},
		{name: "wrong iss refused", answer: answer(map[string]any{"iss": "https://evil.example.com"}), wantErr: ErrInvalidToken, wantDesc: "wrong issuer"},
		{name: "wrong aud refused", answer: answer(map[string]any{"aud": "shop-app"}), wantErr: ErrInvalidToken, wantDesc: "audience"},
		{name: "expired refused", answer: answer(map[string]any{"exp": now.Add(-time.Second).Unix()}), wantErr: ErrInvalidToken, wantDesc: "expired"},
		{name: "wrong API credentials: unavailable, not the client's fault", answer: answer(nil), secret: "wrong", wantErr: ErrUnavailable},
		{name: "no API credentials: refused", answer: answer(nil), noCreds: true, wantErr: ErrInvalidToken, wantDesc: "opaque tokens are not accepted"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := "opaque-" + strings.Repeat("x", i+1)
			if tt.answer != nil {
				p.set(func(p *fakeProvider) { p.active[token] = tt.answer })
			}
			v := p.verifier(t, clk, func(c *Config) {
				if tt.secret != "" {
					c.ClientSecret = tt.secret
				}
				if tt.noCreds {
					c.ClientID, c.ClientSecret = "", ""
				}
			})
			claims, err := v.Verify(context.Background(), token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Issuer != p.issuer() || claims.ACR != ACRPhishingResistant || !claims.HasScope("orders:read") {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var te *TokenError
			if tt.wantDesc != "" && (!errors.As(err, &te) || !strings.Contains(te.Description, tt.wantDesc)) {
				t.Fatalf("err = %v, want a description containing %q", err, tt.wantDesc)
			}
		})
	}
}

// TestIntrospectionCache: active answers are reused until min(exp, 30 s); inactive ones
// are not cached.
func TestIntrospectionCache(t *testing.T) {
	p := newFakeProvider(t)
	clk := newClock()
	now := clk.now()
	ctx := context.Background()
	active := func(exp time.Time) map[string]any {
		return map[string]any{"active": true, "iss": p.issuer(), "sub": "u", "client_id": "c",
			"aud": testAudience, "exp": exp.Unix(), "scope": "orders:read"}
	}
	p.set(func(p *fakeProvider) {
		p.active["long"] = active(now.Add(time.Hour))
		p.active["short"] = active(now.Add(10 * time.Second))
	})
	v := p.verifier(t, clk)
	intro := func() int { _, _, n := p.hits(); return n }

	for range 3 {
		if _, err := v.Verify(ctx, "long"); err != nil {
			t.Fatal(err)
		}
	}
	if n := intro(); n != 1 {
		t.Fatalf("introspected %d times, want 1", n)
	}
	clk.advance(DefaultIntrospectionCacheTTL)
	if _, err := v.Verify(ctx, "long"); err != nil {
		t.Fatal(err)
	}
	if n := intro(); n != 2 {
		t.Fatalf("after the cache TTL: introspected %d times, want 2", n)
	}

	// Cached no longer than the token lives.
	if _, err := v.Verify(ctx, "short"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("short-lived token after its exp: err = %v", err)
	}

	// A revoked token is seen as soon as the cached answer runs out.
	p.set(func(p *fakeProvider) { delete(p.active, "long") })
	clk.advance(DefaultIntrospectionCacheTTL)
	if _, err := v.Verify(ctx, "long"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked: err = %v, want invalid", err)
	}
	before := intro()
	for range 3 {
		_, _ = v.Verify(ctx, "long")
	}
	if n := intro(); n != before+3 {
		t.Fatalf("inactive answers were cached: %d introspections for 3 requests", n-before)
	}

	t.Run("cache off", func(t *testing.T) {
		v := p.verifier(t, clk, func(c *Config) { c.IntrospectionCacheTTL = -1 })
		p.set(func(p *fakeProvider) { p.active["fresh"] = active(clk.now().Add(time.Hour)) })
		before := intro()
		for range 3 {
			if _, err := v.Verify(ctx, "fresh"); err != nil {
				t.Fatal(err)
			}
		}
		if n := intro(); n != before+3 {
			t.Fatalf("introspected %d times, want 3", n-before)
		}
	})
}

func TestIntrospectionCacheBounded(t *testing.T) {
	var c introspectionCache
	now := newClock().now()
	claims := &Claims{Subject: "u"}
	for i := range maxIntrospectionCache + 10 {
		var key [32]byte
		key[0], key[1] = byte(i), byte(i>>8)
		c.put(key, claims, now.Add(time.Minute), now)
	}
	if n := len(c.entries); n > maxIntrospectionCache {
		t.Fatalf("cache holds %d answers, want at most %d", n, maxIntrospectionCache)
	}
}
