package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
)

// countingTransport counts the HTTP requests a browser sends.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// TestSSOSignInCost counts the store calls and HTTP round trips of one SSO sign-in (an
// authorization request on an existing session, straight back to the client, and the
// code exchange): the load-independent cost of the path issue 9 wants at 500/s.
func TestSSOSignInCost(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := newCallCountingStore(be.open(t))
			e := newEnv(t, st, noAuthorizeLimit)
			e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			br := e.newBrowser()
			ct := &countingTransport{next: http.DefaultTransport}
			br.Client.Transport = ct
			loginCode(t, e, br, app, nil) // the password sign-in that starts the session
			loginCode(t, e, br, app, nil) // warm: first-use work (keys, caches) is not counted

			const n = 3
			st.reset()
			ct.n.Store(0)
			for range n {
				if tr := loginCode(t, e, br, app, nil); tr.IDToken == "" {
					t.Fatalf("SSO sign-in: %+v", tr)
				}
			}
			calls, total := st.snapshot()
			t.Logf("per SSO sign-in: %.1f store calls of the sign-in path, %.1f browser round trips (+1 code exchange); %d sign-ins: %s",
				float64(total)/n, float64(ct.n.Load())/n, n, st)
			if got := ct.n.Load(); got != n {
				t.Errorf("%d browser round trips for %d SSO sign-ins, want one each (/authorize straight back to the client)", got, n)
			}
			// The calls of the sign-in path (token issuance, audit, clients and keys are
			// other parts' business): each at most what one sign-in needs.
			for _, c := range []struct {
				method string
				want   int // per sign-in
			}{
				{"FinishAuthRequest", 1},     // stored once, finished, with its code, the session's client and the event
				{"CreateAuthRequest", 0},     // (FinishAuthRequest inserts it)
				{"AddSessionClient", 0},      // (it stores the session's client too)
				{"GetAuthRequest", 0},        // never read back within /authorize
				{"SetAuthRequestLogin", 0},   // the login record goes in with the insert
				{"SaveAuthCode", 0},          // so does the code
				{"GetSessionByTokenHash", 1}, // the session, once
				{"GetUser", 2},               // the person at /authorize and for the ID token
				{"GetTypePolicy", 1},         // the account type's policy, once
				{"ListFactors", 1},           // the factors, once
				{"GetConsent", 0},            // a first-party client: no consent page possible
				{"TouchSession", 0},          // last used within the minute: not written again
				{"ConsumeAuthCode", 1},
				{"DeleteAuthRequest", 0}, // deleted with the code's tokens, in IssueTokens' transaction
			} {
				if got := calls[c.method]; got != c.want*n {
					t.Errorf("%s called %d times in %d SSO sign-ins, want %d", c.method, got, n, c.want*n)
				}
			}
		})
	}
}

// TestSSOSessionTouchCoalesced: an SSO sign-in writes the session's LastSeenAt at most
// once a minute, and the idle timeout still ends the session (measured from the stored
// LastSeenAt: at most a minute early, never late).
func TestSSOSessionTouchCoalesced(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := newCallCountingStore(be.open(t))
			const idle = time.Hour
			e := newEnv(t, st, noAuthorizeLimit, func(c *idp.Config) { c.SessionIdle = idle })
			u := e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			br := e.newBrowser()
			loginCode(t, e, br, app, nil)
			lastSeen := func() time.Time {
				t.Helper()
				ss, err := e.store.ListUserSessions(context.Background(), u.ID)
				if err != nil || len(ss) != 1 {
					t.Fatalf("sessions: %v, %v", ss, err)
				}
				return ss[0].LastSeenAt
			}
			start := lastSeen()

			steps := []struct {
				name      string
				advance   time.Duration
				wantTouch int  // TouchSession calls in this step
				moved     bool // LastSeenAt is the step's time afterwards
			}{
				{"within the minute", 30 * time.Second, 0, false},
				{"again within the minute", 29 * time.Second, 0, false},
				{"past the minute", 2 * time.Second, 1, true},
				{"right after", time.Second, 0, false},
			}
			for _, s := range steps {
				e.clock.Advance(s.advance)
				st.reset()
				if tr := loginCode(t, e, br, app, nil); tr.IDToken == "" {
					t.Fatalf("%s: SSO sign-in failed: %+v", s.name, tr)
				}
				calls, _ := st.snapshot()
				if calls["TouchSession"] != s.wantTouch {
					t.Errorf("%s: TouchSession called %d times, want %d", s.name, calls["TouchSession"], s.wantTouch)
				}
				got := lastSeen()
				if s.moved {
					if got.Sub(start) < time.Minute {
						t.Errorf("%s: LastSeenAt %v not moved on (session started %v)", s.name, got, start)
					}
					start = got
				} else if !got.Equal(start) {
					t.Errorf("%s: LastSeenAt %v, want it unchanged at %v", s.name, got, start)
				}
			}

			// Idle for the timeout after the last stored use (one step ago, 1 s earlier):
			// the session is over and the password form is back.
			e.clock.Advance(idle)
			p := br.Get(e.authURL(app, nil))
			if !p.IsLogin() {
				t.Fatalf("after %v idle: want the password form, got %d %s", idle, p.Status, p.Location)
			}
		})
	}
}

// TestSSOAuthorizeOutcomes: with a session cookie, /authorize answers the sign-ins that
// need no page itself, and every other outcome exactly as without that shortcut: the
// page is shown (its auth request stored), or the error page.
func TestSSOAuthorizeOutcomes(t *testing.T) {
	e := newEnv(t, openSQLite(t), noAuthorizeLimit)
	e.createUser("alice@example.com", password)
	first := e.createClient(admin.NewClient{Name: "First", RedirectURIs: []string{"https://first.example.com/cb"}, SkipConsent: true})
	third := e.createClient(admin.NewClient{Name: "Third", RedirectURIs: []string{"https://third.example.com/cb"}})
	br := e.newBrowser()
	ct := &countingTransport{next: http.DefaultTransport}
	br.Client.Transport = ct
	loginCode(t, e, br, first, nil)

	type outcome int
	const (
		code outcome = iota
		loginPage
		consentPage
		errorPage
	)
	rows := []struct {
		name   string
		c      testClient
		extra  url.Values
		want   outcome
		visits int64 // browser requests to the provider
	}{
		{"first-party app: straight back", first, nil, code, 1},
		{"prompt=none: straight back", first, url.Values{"prompt": {"none"}}, code, 1},
		{"prompt=login: the password form", first, url.Values{"prompt": {"login"}}, loginPage, 2},
		{"max_age=0: the password form", first, url.Values{"max_age": {"0"}}, loginPage, 2},
		{"third-party app without consent: the consent page", third, nil, consentPage, 2},
		{"unregistered redirect_uri: the error page", first, url.Values{"redirect_uri": {"https://evil.example.com/cb"}}, errorPage, 1},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			_, challenge := pkce()
			q := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			for k, v := range row.extra {
				q[k] = v
			}
			ct.n.Store(0)
			p := br.Get(e.authURL(row.c, q))
			if got := ct.n.Load(); got != row.visits {
				t.Errorf("%d requests to the provider, want %d", got, row.visits)
			}
			switch row.want {
			case code:
				if p.RedirectParams(t).Get("code") == "" {
					t.Fatalf("no code: %s", p.Location)
				}
			case loginPage:
				// The page's auth request was stored: the password completes it.
				p = br.Login(p, "alice@example.com", password)
				if p.RedirectParams(t).Get("code") == "" {
					t.Fatalf("no code after the password: %s", p.Location)
				}
			case consentPage:
				p = br.Consent(p, "allow")
				if p.RedirectParams(t).Get("code") == "" {
					t.Fatalf("no code after consent: %s", p.Location)
				}
				// Consent given: the next sign-in to that app needs no page.
				ct.n.Store(0)
				p = br.Get(e.authURL(row.c, nil))
				if p.RedirectParams(t).Get("code") == "" || ct.n.Load() != 1 {
					t.Fatalf("after consent: %d requests, %s", ct.n.Load(), p.Location)
				}
			case errorPage:
				if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, "redirect_uri") || !strings.Contains(p.Body, "<html") {
					t.Fatalf("want the HTML error page, got %d %s:\n%.400s", p.Status, p.Location, p.Body)
				}
			}
		})
	}
}
