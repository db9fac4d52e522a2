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
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// browserStep bounds one step in the browser: a page load, a form post, a ceremony.
const browserStep = 20 * time.Second

// appOrigin is where the test client's redirect URI points. The host does not exist:
// the browser's requests to it are answered by the test (see catchCallbacks).
const appOrigin = "https://app.example.com"

// TestWebAuthnEndToEnd drives the provider's own pages in a real Chromium with a CDP
// virtual security key, on every backend: the key is added on the account page, a
// relying party's code flow is finished with password + key (amr hwk, acr phr), and a
// second provider whose WebAuthn origin does not match the page refuses the assertion.
func TestWebAuthnEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t) // first, so that a missing database skips before Chromium starts
			start := time.Now()
			w := newWebAuthnEnv(t, st)

			if !t.Run("add key on account page", w.addKeyOnAccountPage) {
				return
			}
			if !t.Run("sign in with password and key", w.signInWithKey) {
				return
			}
			t.Run("assertion for another origin refused", w.otherOriginRefused)
			t.Logf("%s: %v", be.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// webauthnEnv is a provider on http://localhost:PORT (WebAuthn refuses IP addresses),
// a Chromium with one virtual security key, a user and a relying party.
type webauthnEnv struct {
	*env
	browser   context.Context
	key       string // id of the virtual authenticator
	docs      *documentLog
	callbacks <-chan string
	app       testClient
	user      *storage.User
}

const webauthnEmail = "key@example.com"

func newWebAuthnEnv(t *testing.T, st storage.Storage) *webauthnEnv {
	t.Helper()
	e := newLocalhostEnv(t, st, nil, nil, nil)
	browser := idptest.NewChrome(t)
	w := &webauthnEnv{
		env:     e,
		browser: browser,
		key:     idptest.AddVirtualAuthenticator(t, browser, idptest.VirtualAuthenticator{Transport: "usb"}),
		docs:    watchDocuments(t, browser),
		app:     e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{appOrigin + "/cb"}, SkipConsent: true}),
		user:    e.createUser(webauthnEmail, password),
	}
	w.callbacks = catchCallbacks(t, browser, appOrigin)
	return w
}

// newLocalhostEnv is newEnv with the issuer on localhost. A nil clock or sealer gets a
// new one; a second provider on the same store passes those of the first.
func newLocalhostEnv(tb testing.TB, st storage.Storage, clk *clock, sealer *seal.Sealer, wa *mfa.WebAuthnConfig) *env {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	_, port, _ := strings.Cut(ts.Listener.Addr().String(), "127.0.0.1:")
	if port == "" {
		tb.Fatalf("httptest listens on %s, not 127.0.0.1", ts.Listener.Addr())
	}
	issuer := "http://localhost:" + port
	if clk == nil {
		clk = &clock{}
	}
	if sealer == nil {
		var err error
		if sealer, err = seal.New(seal.NewKey()); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := idp.Config{
		Issuer: issuer, Sealer: sealer, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if wa != nil {
		cfg.MFA.WebAuthn = *wa
	}
	srv, err := idp.New(context.Background(), st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	tb.Cleanup(ts.Close)
	e := &env{t: tb, store: st, server: srv, issuer: issuer, clock: clk, sealer: sealer}
	e.admin = &admin.Admin{Store: st, Audit: srv.Auditor(), Keys: srv.Keys(), Now: clk.Now}
	return e
}

// 1. Sign in to the account page with the password and add the security key.
func (w *webauthnEnv) addKeyOnAccountPage(t *testing.T) {
	w.freshBrowser(t)
	w.do(t, "open the account page", chromedp.Navigate(w.issuer+"/account/security"))
	w.typePassword(t)
	w.waitFor(t, "the account page", `document.querySelector("h1")?.textContent === "Account security"`)

	w.do(t, "add a security key",
		chromedp.SendKeys(chromedp.CSS("#wa-name"), "YubiKey"),
		chromedp.Click(chromedp.CSS(`form.enroll:has(input[name="kind"][value="webauthn"]) button[type="submit"]`)),
	)
	// The enrolment page runs navigator.credentials.create and posts the result.
	w.waitFor(t, "the key to be added",
		`document.querySelector(".success")?.textContent === "Sign-in method added."`)
	listed := w.eval(t, `document.querySelector("table.factors")?.innerText ?? ""`)
	if !strings.Contains(listed, "Security key or passkey (YubiKey)") {
		t.Fatalf("key not listed on the account page: %q", listed)
	}

	if creds := idptest.VirtualCredentials(t, w.browser, w.key); len(creds) != 1 || creds[0].RpID != "localhost" {
		t.Fatalf("virtual authenticator holds %+v, want one credential for localhost", creds)
	}
	factors, err := w.store.ListFactors(context.Background(), w.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(factors) != 1 || factors[0].Kind != storage.FactorWebAuthn || !factors[0].Confirmed || factors[0].Name != "YubiKey" {
		t.Fatalf("stored factors: %+v", factors)
	}
}

// 2. A relying party's authorization-code flow with PKCE: password, then the
// second-factor page runs the assertion by itself.
func (w *webauthnEnv) signInWithKey(t *testing.T) {
	w.freshBrowser(t)
	verifier, challenge := pkce()
	w.do(t, "open the authorization URL",
		chromedp.Navigate(w.authURL(w.app, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
	w.typePassword(t)

	q := w.waitCallback(t)
	if q.Get("code") == "" {
		t.Fatalf("callback without a code: %v", q)
	}
	tr := w.tokenRequest(w.app, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {w.app.RedirectURI}, "code_verifier": {verifier}})
	if tr.IDToken == "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	claims := verifyWithJWKS(t, w.env, tr.IDToken, w.app.ID)
	if claims["sub"] != w.user.ID {
		t.Fatalf("sub %v, want %s", claims["sub"], w.user.ID)
	}
	wantAuth(t, claims, []string{"hwk", "mfa", "pwd", "user"}, consent.ACRPhishingResistant)
}

// 3. A second provider on the same database, on another port, whose WebAuthn
// configuration accepts only the first provider's origin. The browser signs the
// origin it really is on, and the provider refuses the assertion.
func (w *webauthnEnv) otherOriginRefused(t *testing.T) {
	other := newLocalhostEnv(t, w.store, w.clock, w.sealer,
		&mfa.WebAuthnConfig{RPID: "localhost", RPOrigins: []string{w.issuer}})
	failures := func() int {
		t.Helper()
		evs, err := w.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventMFAVerify, UserID: w.user.ID})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Result == audit.ResultFailure && strings.Contains(ev.Reason, "kind=webauthn") {
				n++
			}
		}
		return n
	}
	before := failures()

	w.freshBrowser(t)
	w.docs.reset()
	_, challenge := pkce()
	w.do(t, "open the authorization URL of the other provider",
		chromedp.Navigate(other.authURL(w.app, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
	w.typePassword(t)

	mfaURL := other.issuer + "/login/mfa"
	status := w.docs.waitN(t, mfaURL, 1)
	if status != http.StatusUnauthorized {
		t.Fatalf("POST /login/mfa answered %d, want 401", status)
	}
	w.waitFor(t, "the error message", `document.querySelector("p.error")?.textContent.startsWith("That did not work")`)
	if got := failures(); got != before+1 {
		t.Fatalf("%d mfa.verify failures audited for the user, want %d", got, before+1)
	}
	// The page stays put: the ceremony does not restart by itself (with a key that
	// answers at once that would be a loop of failures into the lockout)...
	time.Sleep(500 * time.Millisecond)
	if n := w.docs.count(mfaURL); n != 1 {
		t.Fatalf("the second-factor form was posted %d times by itself, want once", n)
	}
	if got := failures(); got != before+1 {
		t.Fatalf("%d mfa.verify failures audited, want %d", got, before+1)
	}
	// ... the person retries with the button, and is refused again.
	w.do(t, "retry", chromedp.Click(chromedp.CSS("#webauthn-start")))
	if status := w.docs.waitN(t, mfaURL, 2); status != http.StatusUnauthorized {
		t.Fatalf("retried POST /login/mfa answered %d, want 401", status)
	}
	if got := failures(); got != before+2 {
		t.Fatalf("%d mfa.verify failures audited after the retry, want %d", got, before+2)
	}
	select {
	case u := <-w.callbacks:
		t.Fatalf("the relying party got a callback: %s", u)
	default:
	}
}

// freshBrowser deletes every cookie, so the next page starts without a session (the
// virtual authenticator, and the credential it holds, stay).
func (w *webauthnEnv) freshBrowser(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.browser, browserStep)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clear cookies: %v", err)
	}
}

// typePassword fills in and submits the sign-in form.
func (w *webauthnEnv) typePassword(t *testing.T) {
	t.Helper()
	w.waitFor(t, "the sign-in form", `document.querySelector("form[action='/login'] #password") !== null`)
	w.do(t, "sign in with the password",
		chromedp.SendKeys(chromedp.CSS("#email"), webauthnEmail),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
	)
}

// do runs actions in the browser within browserStep.
func (w *webauthnEnv) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.browser, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, w.pageState())
	}
}

// eval returns the string value of a JavaScript expression on the current page.
func (w *webauthnEnv) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.browser, browserStep)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// waitFor waits up to browserStep for a JavaScript expression to be true on a page that
// has finished loading, across page loads (an evaluation that fails because the page is
// changing is retried). Waiting for the load matters to a click that follows: chromedp
// clicks at the element's position, and a page whose stylesheet is still loading can
// move the element after that position was read, so that the click lands elsewhere.
func (w *webauthnEnv) waitFor(t *testing.T, what, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.browser, browserStep)
	defer cancel()
	for {
		ectx, ecancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool]("document.readyState === 'complete' && Boolean("+js+")"))
		ecancel()
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error %v)\n%s", what, ctx.Err(), err, w.pageState())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitCallback waits for the browser to be sent to the relying party and returns the
// query of that redirect.
func (w *webauthnEnv) waitCallback(t *testing.T) url.Values {
	t.Helper()
	select {
	case raw := <-w.callbacks:
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Query()
	case <-time.After(browserStep):
		t.Fatalf("no redirect to the relying party within %v\n%s", browserStep, w.pageState())
		return nil
	}
}

// pageState describes the current page for a failure message: its URL, any WebAuthn
// error the script showed, and the start of its text.
func (w *webauthnEnv) pageState() string {
	ctx, cancel := context.WithTimeout(w.browser, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" +
		"webauthn-error: " + (document.getElementById("webauthn-error")?.textContent ?? "none") + "\n" +
		(document.body?.innerText ?? "").slice(0, 800)`))
	if err != nil {
		return "page state unavailable: " + err.Error()
	}
	return "page: " + s
}

// catchCallbacks answers the browser's requests under origin (the relying party, which
// does not exist here) with an empty page, and sends the URLs of the pages it loads
// there on the channel.
func catchCallbacks(t *testing.T, browser context.Context, origin string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(browser)
	events := chromedp.Events(ctx, fetch.RequestPaused) // subscribed before Fetch.enable
	ectx, ecancel := context.WithTimeout(ctx, browserStep)
	defer ecancel()
	if _, err := chromedp.Call(ectx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: origin + "/*"}},
	}); err != nil {
		cancel()
		t.Fatalf("enable request interception: %v", err)
	}
	urls := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			if ev.ResourceType == network.ResourceTypeDocument { // not its favicon
				select {
				case urls <- ev.Request.URL:
				default:
				}
			}
			fctx, fcancel := context.WithTimeout(ctx, browserStep)
			_, _ = chromedp.Call(fctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID: ev.RequestID, ResponseCode: http.StatusOK,
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html"}},
				Body:            []byte(`<!doctype html><title>relying party</title><p>callback</p>`),
			})
			fcancel()
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return urls
}

// documentLog records the HTTP status of every page (document) the browser loads.
type documentLog struct {
	mu      sync.Mutex
	entries []documentEntry
	changed chan struct{} // closed and replaced on every entry
}

type documentEntry struct {
	url    string
	status int
}

func watchDocuments(t *testing.T, browser context.Context) *documentLog {
	t.Helper()
	ctx, cancel := context.WithCancel(browser)
	events := chromedp.Events(ctx, network.ResponseReceived)
	l := &documentLog{changed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			if ev.Type != network.ResourceTypeDocument || ev.Response == nil {
				continue
			}
			l.mu.Lock()
			l.entries = append(l.entries, documentEntry{ev.Response.URL, int(ev.Response.Status)})
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l
}

func (l *documentLog) reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

func (l *documentLog) count(u string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if e.url == u {
			n++
		}
	}
	return n
}

// waitN returns the status of the nth page loaded from u since the last reset,
// waiting up to browserStep for it.
func (l *documentLog) waitN(t *testing.T, u string, nth int) int {
	t.Helper()
	timeout := time.After(browserStep)
	for {
		l.mu.Lock()
		seen := 0
		for _, e := range l.entries {
			if e.url == u {
				if seen++; seen == nth {
					l.mu.Unlock()
					return e.status
				}
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no page from %s within %v", u, browserStep)
		}
	}
}
