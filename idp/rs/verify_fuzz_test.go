package rs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary tokens to Verify: it must not panic, and must refuse
// everything but the provider's own valid tokens.
func FuzzVerify(f *testing.F) {
	es := newSigner(f, "es-1", jose.ES256)
	p := newFakeProvider(f, es)
	clk := newClock()
	v := p.verifier(f, clk, func(c *Config) { c.ClientID = "" }) // no introspection
	valid := es.sign(f, "at+jwt", p.accessClaims(clk.now()))

	f.Add(valid)
	f.Add(unsignedToken(f, p.accessClaims(clk.now())))
	f.Add(es.sign(f, "JWT", p.accessClaims(clk.now())))
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJFUzI1NiJ9..")
	f.Add("opaque")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err == nil {
			if token != valid && !strings.HasPrefix(token, valid[:strings.LastIndex(valid, ".")]) {
				t.Fatalf("accepted a token the provider never signed: %q", token)
			}
			if claims.Subject == "" || claims.ClientID == "" {
				t.Fatalf("accepted claims without sub or client_id: %+v", claims)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %v matches neither ErrInvalidToken nor ErrUnavailable", err)
		}
	})
}
