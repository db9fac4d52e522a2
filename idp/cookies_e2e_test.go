package idp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/seal"
)

// recordingTransport keeps the request URL and response headers of every round trip.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []recordedResponse
}

type recordedResponse struct {
	url    string
	header http.Header
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(r)
	if err == nil {
		rt.mu.Lock()
		rt.seen = append(rt.seen, recordedResponse{url: r.Method + " " + r.URL.Path, header: resp.Header.Clone()})
		rt.mu.Unlock()
	}
	return resp, err
}

// newTLSEnv is newEnv with an https issuer served over TLS; it returns the transport that
// trusts the test server's certificate.
func newTLSEnv(t *testing.T) (*env, http.RoundTripper) {
	t.Helper()
	st := openSQLite(t)
	ts := httptest.NewUnstartedServer(nil)
	issuer := "https://" + ts.Listener.Addr().String()
	rawKey := seal.NewKey()
	sealer, err := seal.New(rawKey)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	srv, err := idp.New(context.Background(), st, idp.Config{Issuer: issuer, Sealer: sealer, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.StartTLS()
	t.Cleanup(ts.Close)
	e := &env{t: t, store: st, server: srv, issuer: issuer, clock: clk, sealer: sealer, rawKey: rawKey}
	e.admin = &admin.Admin{Store: st, Audit: srv.Auditor(), Keys: srv.Keys(), Now: clk.Now}
	return e, ts.Client().Transport
}

// cookieFlow signs in (password form, consent), signs in again from the session alone,
// and signs out, through transport, and returns every response the browser received.
func cookieFlow(t *testing.T, e *env, transport http.RoundTripper) []recordedResponse {
	t.Helper()
	e.createUser("alice@example.com", password)
	app := e.createClient(admin.NewClient{Name: "App"})
	rec := &recordingTransport{next: transport}
	b := idptest.NewBrowser(t, e.issuer)
	b.Client.Transport = rec
	_, ch := pkce()
	q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}

	// The CSRF cookie is read back by the login and consent forms.
	p := b.Consent(b.Login(b.Get(e.authURL(app, q)), "alice@example.com", password), "allow")
	if p.RedirectParams(t).Get("code") == "" {
		t.Fatalf("no code after sign-in: %s", p.Location)
	}
	// The session cookie is read back: prompt=none succeeds.
	q.Set("prompt", "none")
	if p := b.Get(e.authURL(app, q)); p.RedirectParams(t).Get("code") == "" {
		t.Fatalf("prompt=none with a session: %s", p.Location)
	}
	// Signing out clears it under the same name: prompt=none then fails.
	p = b.Get(e.issuer + "/logout")
	b.Post(e.issuer+"/logout", p.Hidden())
	if p := b.Get(e.authURL(app, q)); p.RedirectParams(t).Get("error") != "login_required" {
		t.Fatalf("prompt=none after sign-out: %s", p.Location)
	}
	return rec.seen
}

// setCookies returns the cookies set by the responses, by name.
func setCookies(seen []recordedResponse) map[string][]*http.Cookie {
	out := map[string][]*http.Cookie{}
	for _, r := range seen {
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			out[c.Name] = append(out[c.Name], c)
		}
	}
	return out
}

func TestHTTPSIssuerHostCookiesAndHSTS(t *testing.T) {
	e, transport := newTLSEnv(t)
	seen := cookieFlow(t, e, transport)
	for _, r := range seen {
		if got := r.header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
			t.Errorf("%s: Strict-Transport-Security = %q", r.url, got)
		}
	}
	cookies := setCookies(seen)
	for _, name := range []string{"__Host-idp_session", "__Host-idp_csrf"} {
		if len(cookies[name]) == 0 {
			t.Errorf("no %s cookie set; cookies: %v", name, cookies)
		}
	}
	cleared := false
	for name, cs := range cookies {
		for _, c := range cs {
			if !strings.HasPrefix(name, "__Host-") || !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
				t.Errorf("cookie %s is not a __Host- cookie (Secure, Path=/, no Domain, HttpOnly): %+v", name, c)
			}
			cleared = cleared || (name == "__Host-idp_session" && c.MaxAge < 0)
		}
	}
	if !cleared {
		t.Error("sign-out did not clear __Host-idp_session")
	}

	// Without the prefix the cookie is not the provider's: a session cookie planted
	// under the bare name (by a sibling subdomain, or over http) is ignored.
	app := e.createClient(admin.NewClient{Name: "Other", SkipConsent: true})
	e.createUser("bob@example.com", password)
	b := idptest.NewBrowser(t, e.issuer)
	b.Client.Transport = transport
	_, ch := pkce()
	q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
	p := b.Login(b.Get(e.authURL(app, q)), "bob@example.com", password)
	if p.RedirectParams(t).Get("code") == "" {
		t.Fatalf("bob: no code: %s", p.Location)
	}
	iss, _ := url.Parse(e.issuer)
	var bobSession string
	for _, c := range b.Client.Jar.Cookies(iss) {
		if c.Name == "__Host-idp_session" {
			bobSession = c.Value
		}
	}
	if bobSession == "" {
		t.Fatalf("bob's session cookie = %q", bobSession)
	}
	planted := idptest.NewBrowser(t, e.issuer)
	planted.Client.Transport = transport
	planted.Client.Jar.SetCookies(iss, []*http.Cookie{{Name: "idp_session", Value: bobSession, Path: "/"}})
	q.Set("prompt", "none")
	if p := planted.Get(e.authURL(app, q)); p.RedirectParams(t).Get("error") != "login_required" {
		t.Fatalf("unprefixed session cookie was accepted on an https issuer: %s", p.Location)
	}
}

func TestHTTPIssuerPlainCookiesNoHSTS(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	seen := cookieFlow(t, e, http.DefaultTransport)
	for _, r := range seen {
		if got := r.header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: Strict-Transport-Security = %q on an http issuer", r.url, got)
		}
	}
	cookies := setCookies(seen)
	for _, name := range []string{"idp_session", "idp_csrf"} {
		if len(cookies[name]) == 0 {
			t.Errorf("no %s cookie set; cookies: %v", name, cookies)
		}
	}
	for name, cs := range cookies {
		for _, c := range cs {
			if strings.HasPrefix(name, "__Host-") || c.Secure {
				t.Errorf("cookie %s on an http issuer: %+v", name, c)
			}
		}
	}
}
