package idp_test

import (
	"net/http"
	"sync/atomic"
	"testing"

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
			_, total := st.snapshot()
			t.Logf("per SSO sign-in: %.1f store calls, %.1f browser round trips (+1 code exchange); %d sign-ins: %s",
				float64(total)/n, float64(ct.n.Load())/n, n, st)
		})
	}
}
