package idp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"testing"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// forwardingTransport plays a reverse proxy: it adds X-Forwarded-For to every request.
type forwardingTransport struct {
	client string
	next   http.RoundTripper
}

func (f forwardingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.client)
	return f.next.RoundTrip(r)
}

// TestLoginLimitsBehindProxy checks that the per-address limit on failed passwords counts
// the address a trusted proxy forwards, and that the header is ignored from a peer that
// is not trusted. The test's requests come from 127.0.0.1, the "proxy"; every attempt
// names a different account, so that only the per-address counter matters.
func TestLoginLimitsBehindProxy(t *testing.T) {
	const clientA, clientB = "203.0.113.1", "2001:db8::b"
	tests := []struct {
		name    string
		trusted []netip.Prefix
		wantIP  map[string]string // client -> address recorded
		wantBOK bool              // B may still sign in once A is limited
	}{
		{
			name:    "proxy trusted: each forwarded address has its own limit",
			trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			wantIP:  map[string]string{clientA: clientA, clientB: clientB},
			wantBOK: true,
		},
		{
			name:    "proxy not trusted: the header is ignored and everyone shares the peer's limit",
			trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			wantIP:  map[string]string{clientA: "127.0.0.1", clientB: "127.0.0.1"},
			wantBOK: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const perIP = 3
			e := newEnv(t, openSQLite(t), func(c *idp.Config) {
				c.TrustedProxies = tt.trusted
				c.LoginLimits.PerIP = perIP
			})
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
			users := make([]*storage.User, perIP+1)
			for i := range users {
				users[i] = e.createUser(fmt.Sprintf("user%d@example.com", i), password)
			}
			browserFrom := func(client string) *browser {
				b := e.newBrowser()
				b.Client.Transport = forwardingTransport{client: client, next: http.DefaultTransport}
				return b
			}
			_, ch := pkce()
			q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}

			a := browserFrom(clientA)
			for i := range perIP {
				if p := a.Login(a.Get(e.authURL(app, q)), users[i].Email, "not the password"); p.Status != http.StatusUnauthorized {
					t.Fatalf("wrong password %d from A: status %d", i+1, p.Status)
				}
			}
			last := users[perIP]
			if p := a.Login(a.Get(e.authURL(app, q)), last.Email, password); p.Status != http.StatusTooManyRequests {
				t.Fatalf("A after %d failures: status %d, want 429 (per-address limit)", perIP, p.Status)
			}

			// B, through the same proxy, signs in to the account A was refused for.
			b := browserFrom(clientB)
			p := b.Login(b.Get(e.authURL(app, q)), last.Email, password)
			if tt.wantBOK {
				if p.RedirectParams(t).Get("code") == "" {
					t.Fatalf("B: no code: %s", p.Location)
				}
			} else if p.Status != http.StatusTooManyRequests {
				t.Fatalf("B: status %d, want 429: the forwarded address was believed from an untrusted peer", p.Status)
			}

			// Audit events and sessions record the same address.
			evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{UserID: users[0].ID, Type: audit.EventLoginPassword})
			if err != nil || len(evs) != 1 {
				t.Fatalf("audit of A's first attempt: %v, %d events", err, len(evs))
			}
			if evs[0].IP != tt.wantIP[clientA] {
				t.Errorf("audit IP of A = %q, want %q", evs[0].IP, tt.wantIP[clientA])
			}
			if tt.wantBOK {
				sessions, err := e.store.ListUserSessions(context.Background(), last.ID)
				if err != nil || len(sessions) != 1 {
					t.Fatalf("B's sessions: %v, %d", err, len(sessions))
				}
				if sessions[0].IP != tt.wantIP[clientB] {
					t.Errorf("session IP of B = %q, want %q", sessions[0].IP, tt.wantIP[clientB])
				}
			}
		})
	}
}
