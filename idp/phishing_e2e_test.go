package idp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
)

// TestPhishingResistantClient signs in to a client whose policy demands a
// phishing-resistant second factor ({MFA: required, PhishingResistant: true}), on every
// backend, with a real Chromium and a CDP virtual security key. The person has an
// authenticator app and a security key (both added on the account page): the app is
// never offered, and a forged POST naming it with a valid current code is refused; the
// key's assertion issues a code whose ID token says acr phr and amr hwk+mfa. A person
// with only an authenticator app is sent to enrol instead of being issued a code.
func TestPhishingResistantClient(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t) // first, so that a missing database skips before Chromium starts
			start := time.Now()
			p := newPhishingEnv(t, st)

			if !t.Run("authenticator app and security key on the account page", p.enrolBoth) {
				return
			}
			if !t.Run("authenticator app neither offered nor accepted", p.totpRefused) {
				return
			}
			if !t.Run("security key accepted", p.keyAccepted) {
				return
			}
			t.Run("only an authenticator app: sent to enrol", p.totpOnlyEnrols)
			t.Logf("%s: %v", be.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// phishingEnv is a webauthnEnv (localhost provider, Chromium, virtual security key,
// user webauthnEmail) plus a client that accepts only phishing-resistant factors.
type phishingEnv struct {
	*webauthnEnv
	strict testClient

	totpKey             []byte // the person's authenticator app
	totpID, keyFactorID string // their factor ids

	// The Chromium sign-in to strict left at the second-factor page by totpRefused and
	// finished by keyAccepted.
	authRequestID, verifier string
}

const strictClientName = "Treasury"

func newPhishingEnv(t *testing.T, st storage.Storage) *phishingEnv {
	t.Helper()
	w := newWebAuthnEnv(t, st)
	strict := w.createClient(admin.NewClient{Name: strictClientName, RedirectURIs: []string{appOrigin + "/treasury/cb"}, SkipConsent: true})
	w.setPolicy(strict, storage.MFAPolicy{MFA: "required", PhishingResistant: true})
	return &phishingEnv{webauthnEnv: w, strict: strict}
}

// storeCtx is a context with a deadline for direct store calls.
func storeCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// nextTOTP moves the provider's clock to the next 30-second step and returns the
// authenticator app's code for it (a code not used before: the provider refuses replays).
func (p *phishingEnv) nextTOTP() string {
	p.clock.Advance(30 * time.Second)
	return rfc6238(p.totpKey, p.clock.Now(), 6)
}

// 1. The authenticator app is added over HTTP; then, in Chromium, the person signs in
// to the account page with password + app code and adds the security key.
func (p *phishingEnv) enrolBoth(t *testing.T) {
	b := p.newBrowser()
	p.totpKey = enrolTOTP(t, p.env, b, accountPage(t, p.env, b, webauthnEmail, nil))

	p.freshBrowser(t)
	p.do(t, "open the account page", chromedp.Navigate(p.issuer+"/account/security"))
	p.typePassword(t)
	p.waitFor(t, "the authenticator-app challenge", `document.querySelector("form[action='/login/mfa'] #code") !== null`)
	p.do(t, "answer with the app",
		chromedp.SendKeys(chromedp.CSS("#code"), p.nextTOTP()),
		chromedp.Click(chromedp.CSS(`form[action="/login/mfa"] button[type="submit"]`)),
	)
	p.waitFor(t, "the account page", `document.querySelector("h1")?.textContent === "Account security"`)

	p.do(t, "add a security key",
		chromedp.SendKeys(chromedp.CSS("#wa-name"), "YubiKey"),
		chromedp.Click(chromedp.CSS(`form.enroll:has(input[name="kind"][value="webauthn"]) button[type="submit"]`)),
	)
	p.waitFor(t, "the key to be added",
		`document.querySelector(".success")?.textContent === "Sign-in method added."`)
	listed := p.eval(t, `document.querySelector("table.factors")?.innerText ?? ""`)
	if !strings.Contains(listed, "Authenticator app") || !strings.Contains(listed, "Security key or passkey (YubiKey)") {
		t.Fatalf("account page does not list both factors: %q", listed)
	}
	if creds := idptest.VirtualCredentials(t, p.browser, p.key); len(creds) != 1 || creds[0].RpID != "localhost" {
		t.Fatalf("virtual authenticator holds %+v, want one credential for localhost", creds)
	}

	factors, err := p.store.ListFactors(storeCtx(t), p.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range factors {
		if !f.Confirmed {
			continue
		}
		switch f.Kind {
		case storage.FactorTOTP:
			p.totpID = f.ID
		case storage.FactorWebAuthn:
			p.keyFactorID = f.ID
		}
	}
	if p.totpID == "" || p.keyFactorID == "" {
		t.Fatalf("stored factors lack a confirmed app and key: %+v", factors)
	}
}

// mfaPageView is what the second-factor page shows, read from its DOM.
type mfaPageView struct {
	Heading    string   `json:"heading"`    // the <h2> naming the chosen factor
	Forms      []string `json:"forms"`      // id (or "") of every form posting to /login/mfa or /login/mfa/send
	Factor     string   `json:"factor"`     // the factor the WebAuthn form names
	AuthReq    string   `json:"authReq"`    // the auth request id the form names
	CodeInputs int      `json:"codeInputs"` // OTP inputs
	Choices    []string `json:"choices"`    // "Other ways to verify"
	Text       string   `json:"text"`
	HTML       string   `json:"html"`
}

const readMFAPage = `(() => {
	const wa = document.getElementById("webauthn-form");
	return {
		heading: document.querySelector("h2")?.textContent ?? "",
		forms: Array.from(document.querySelectorAll("form[action^='/login/mfa']"), f => f.getAttribute("id") ?? ""), // not f.id: the input named "id" shadows it
		factor: wa?.elements.factor?.value ?? "",
		authReq: wa?.elements.id?.value ?? "",
		codeInputs: document.querySelectorAll("input[name=code], input[autocomplete=one-time-code]").length,
		choices: Array.from(document.querySelectorAll("ul.choices a"), a => a.textContent),
		text: document.body.innerText,
		html: document.documentElement.outerHTML,
	};
})()`

// 2. A sign-in to the strict client in Chromium: the second-factor page offers only the
// key, and posting the app's valid current code (from the page itself, with its CSRF
// token and session) is refused. Over plain HTTP, asking for the app by the chooser's
// factor parameter does not bring it up either.
func (p *phishingEnv) totpRefused(t *testing.T) {
	// Hold the key back so the page's automatic ceremony waits while the page is inspected.
	idptest.SetUserPresence(t, p.browser, p.key, false)
	defer idptest.SetUserPresence(t, p.browser, p.key, true)

	p.freshBrowser(t)
	verifier, challenge := pkce()
	p.do(t, "open the authorization URL of the strict client",
		chromedp.Navigate(p.authURL(p.strict, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
	p.typePassword(t)
	p.waitFor(t, "the second-factor page", `document.querySelector("form[action^='/login/mfa']") !== null`)

	view := p.readMFA(t)
	p.checkKeyOnly(t, view.Heading, view.Forms, view.Factor, view.CodeInputs, view.Choices, view.Text, view.HTML)
	if view.AuthReq == "" {
		t.Fatal("the second-factor form names no auth request")
	}
	p.authRequestID, p.verifier = view.AuthReq, verifier

	// The forged POST: the page's own fields, the app's factor id and a valid code.
	before := p.verifyEvents(t)
	code := p.nextTOTP()
	forged := p.fetchForm(t, "/login/mfa", p.totpID, code)
	if forged.Type == "opaqueredirect" || forged.Status != http.StatusBadRequest ||
		!strings.Contains(forged.Body, "Choose one of your sign-in methods") {
		t.Fatalf("forged POST with the app's code: type %s status %d\n%.600s", forged.Type, forged.Status, forged.Body)
	}
	if got := p.verifyEvents(t); got != before {
		t.Fatalf("the app's code was checked (%d mfa.verify events, want %d)", got, before)
	}
	p.checkNotIssued(t, p.authRequestID)

	// The same over plain HTTP, in another browser: the chooser link for the app and a
	// forged form post.
	b := p.newBrowser()
	pg, _ := flow(t, p.env, b, p.strict, nil)
	pg = b.Login(pg, webauthnEmail, password)
	if !isMFA(pg) || pg.Location != "" {
		t.Fatalf("no second-factor page over HTTP (status %d, location %q)", pg.Status, pg.Location)
	}
	f := pg.Hidden()
	arID := f.Get("id")
	chooser := b.Get(p.issuer + "/login?" + url.Values{"id": {arID}, "factor": {p.totpID}}.Encode())
	if chooser.Status != http.StatusOK || chooser.Location != "" {
		t.Fatalf("chooser for the app: status %d, location %q", chooser.Status, chooser.Location)
	}
	if chosen := chooser.Hidden().Get("factor"); chosen != p.keyFactorID {
		t.Fatalf("asking for the app by factor=%s brought up factor %q, want the key %s", p.totpID, chosen, p.keyFactorID)
	}
	if strings.Contains(chooser.Body, `name="code"`) || strings.Contains(chooser.Body, "Authenticator app") || strings.Contains(chooser.Body, p.totpID) {
		t.Fatalf("the app is offered on the chooser page:\n%.1200s", chooser.Body)
	}
	f.Set("factor", p.totpID)
	f.Set("code", p.nextTOTP())
	f.Del("response")
	refused := b.Post(p.issuer+"/login/mfa", f)
	if refused.Location != "" {
		t.Fatalf("forged HTTP POST was sent on to %s", refused.Location)
	}
	if refused.Status != http.StatusBadRequest || !strings.Contains(refused.Body, "Choose one of your sign-in methods") {
		t.Fatalf("forged HTTP POST: status %d\n%.600s", refused.Status, refused.Body)
	}
	if got := p.verifyEvents(t); got != before {
		t.Fatalf("the app's code was checked (%d mfa.verify events, want %d)", got, before)
	}
	p.checkNotIssued(t, arID)
	// Going back to the sign-in still asks for the key.
	if again := b.Get(p.issuer + "/login?id=" + url.QueryEscape(arID)); again.Location != "" || again.Hidden().Get("factor") != p.keyFactorID {
		t.Fatalf("after the forged POST: status %d location %q factor %q", again.Status, again.Location, again.Hidden().Get("factor"))
	}
	select {
	case u := <-p.callbacks:
		t.Fatalf("the relying party got a callback: %s", u)
	default:
	}
}

// 3. Back in Chromium, the same sign-in (left at the second-factor page) completes with
// the key: a code for the strict client, an ID token with acr phr and amr hwk+mfa.
func (p *phishingEnv) keyAccepted(t *testing.T) {
	if p.authRequestID == "" {
		t.Fatal("no sign-in left at the second-factor page")
	}
	idptest.SetUserPresence(t, p.browser, p.key, true)
	p.do(t, "reload the second-factor page",
		chromedp.Navigate(p.issuer+"/login?id="+url.QueryEscape(p.authRequestID)))

	q := p.waitCallback(t)
	if q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("callback without a code: %v", q)
	}
	tr := p.tokenRequest(p.strict, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {p.strict.RedirectURI}, "code_verifier": {p.verifier}})
	if tr.IDToken == "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	claims := verifyWithJWKS(t, p.env, tr.IDToken, p.strict.ID)
	if claims["sub"] != p.user.ID {
		t.Fatalf("sub %v, want %s", claims["sub"], p.user.ID)
	}
	amr := amrOf(claims)
	if claims["acr"] != consent.ACRPhishingResistant || !slices.Contains(amr, "hwk") || !slices.Contains(amr, "mfa") {
		t.Fatalf("acr=%v amr=%v, want acr %s and amr with hwk and mfa", claims["acr"], amr, consent.ACRPhishingResistant)
	}
	if slices.Contains(amr, "otp") {
		t.Fatalf("amr %v claims the authenticator app, which was never accepted", amr)
	}
}

// 4. A person whose only second factor is an authenticator app signs in to the strict
// client in a fresh browser. The provider sends them to enrol (a redirect to
// /account/security?required=1, audited) and issues no code. The account page
// itself asks for the app first (a password alone must not open the account page of a
// person who has a second factor: it could add a key); after that, the pending sign-in
// to the strict client still issues no code and shows the account page with the
// enrol-required notice.
func (p *phishingEnv) totpOnlyEnrols(t *testing.T) {
	email := "app-only@example.com"
	p.createUser(email, password)
	b := p.newBrowser()
	key := enrolTOTP(t, p.env, b, accountPage(t, p.env, b, email, nil))
	before := p.auditCount(audit.EventMFAEnrolRequired, "")

	br := p.newBrowser()
	var hops []string // every redirect the browser followed inside the provider
	follow := br.Client.CheckRedirect
	br.Client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		hops = append(hops, req.URL.RequestURI())
		return follow(req, via)
	}
	pg, _ := flow(t, p.env, br, p.strict, nil)
	arID := pg.Hidden().Get("id")
	hops = nil
	pg = br.Login(pg, email, password)
	if pg.Location != "" {
		t.Fatalf("sent on to the relying party: %s", pg.Location)
	}
	// The application's name is not in the URL (it would be spoofable); the page takes it
	// from the pending sign-in.
	enrolURL := "/account/security?required=1"
	if !slices.Contains(hops, enrolURL) {
		t.Fatalf("not sent to %s; redirects followed: %q", enrolURL, hops)
	}
	if got := p.auditCount(audit.EventMFAEnrolRequired, ""); got != before+1 {
		t.Fatalf("%d mfa.enrol.required events, want %d", got, before+1)
	}
	p.checkNotIssued(t, arID)

	// The account page's own sign-in asks for the app (not the strict client's login).
	if !isMFA(pg) || !strings.Contains(pg.Body, "to continue to <strong>Account security</strong>") || pg.Hidden().Get("id") == arID {
		t.Fatalf("after the enrol redirect: status %d at %s, want the account page's second-factor step:\n%.1200s", pg.Status, pg.URL, pg.Body)
	}
	pg = answerMFA(br, p.env, pg, func() string { p.clock.Advance(30 * time.Second); return rfc6238(key, p.clock.Now(), 6) }())
	if pg.Location != "" || pg.URL.Path != "/account/security" || !strings.Contains(pg.Body, "<h1>Account security</h1>") {
		t.Fatalf("after the account page's second factor: status %d at %s location %q:\n%.1200s", pg.Status, pg.URL, pg.Location, pg.Body)
	}
	p.checkNotIssued(t, arID)
	// The notice survives the account page's own sign-in.
	if !strings.Contains(pg.Body, `id="enrol-required"`) || !strings.Contains(pg.Body, strictClientName) {
		t.Errorf("account page reached through its own second-factor step lacks the enrol-required notice for %s (at %s)", strictClientName, pg.URL)
	}

	// The pending sign-in to the strict client, resumed with the app-verified session:
	// still no code, the account page with the notice.
	cont := regexpFind(t, `<a class="button" id="continue" href="([^"]+)"`, pg.Body)
	if cont != "/login?id="+url.QueryEscape(arID) {
		t.Fatalf("continue link %q, want the pending sign-in %s", cont, arID)
	}
	pg = br.Get(p.issuer + cont)
	if pg.Location != "" {
		t.Fatalf("the app-verified session was issued a code: %s", pg.Location)
	}
	if pg.URL.RequestURI() != enrolURL || !strings.Contains(pg.Body, `id="enrol-required"`) || !strings.Contains(pg.Body, strictClientName) {
		t.Fatalf("not sent to enrolment (status %d at %s):\n%.1200s", pg.Status, pg.URL, pg.Body)
	}
	if got := p.auditCount(audit.EventMFAEnrolRequired, ""); got != before+2 {
		t.Fatalf("%d mfa.enrol.required events, want %d", got, before+2)
	}
	p.checkNotIssued(t, arID)
}

// readMFA reads the second-factor page in Chromium.
func (p *phishingEnv) readMFA(t *testing.T) mfaPageView {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.browser, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[mfaPageView](readMFAPage))
	if err != nil {
		t.Fatalf("read the second-factor page: %v\n%s", err, p.pageState())
	}
	return v
}

// checkKeyOnly fails unless a second-factor page offers the security key and nothing else.
func (p *phishingEnv) checkKeyOnly(t *testing.T, heading string, forms []string, factor string, codeInputs int, choices []string, text, html string) {
	t.Helper()
	if heading != "Security key or passkey (YubiKey)" {
		t.Errorf("the page offers %q, want the security key", heading)
	}
	if !slices.Equal(forms, []string{"webauthn-form"}) || factor != p.keyFactorID {
		t.Errorf("second-factor forms %q naming factor %q, want only the WebAuthn form for %s", forms, factor, p.keyFactorID)
	}
	if codeInputs != 0 {
		t.Errorf("%d code inputs on the page, want none", codeInputs)
	}
	if len(choices) != 0 {
		t.Errorf("other ways to verify offered: %q", choices)
	}
	if strings.Contains(text, "Authenticator app") || strings.Contains(html, p.totpID) {
		t.Errorf("the authenticator app is mentioned on the page")
	}
	if t.Failed() {
		t.FailNow()
	}
}

// fetchResult is the answer to a fetch from the page.
type fetchResult struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// fetchForm posts, from the current page and with its session, the WebAuthn form's
// auth request id and CSRF token to path, naming factor with code; redirects are not
// followed (a redirect shows as type "opaqueredirect").
func (p *phishingEnv) fetchForm(t *testing.T, path, factor, code string) fetchResult {
	t.Helper()
	args, _ := json.Marshal(map[string]string{"path": path, "factor": factor, "code": code})
	js := `(async (a) => {
		const f = document.getElementById("webauthn-form");
		const body = new URLSearchParams({id: f.elements.id.value, csrf: f.elements.csrf.value,
			factor: a.factor, challenge: "", code: a.code});
		const r = await fetch(a.path, {method: "POST", body, redirect: "manual", credentials: "same-origin"});
		return {type: r.type, status: r.status, body: await r.text()};
	})(` + string(args) + `)`
	ctx, cancel := context.WithTimeout(p.browser, browserStep)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[fetchResult](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("forged POST from the page: %v\n%s", err, p.pageState())
	}
	return res
}

// verifyEvents counts the person's mfa.verify audit events (success or failure).
func (p *phishingEnv) verifyEvents(t *testing.T) int {
	t.Helper()
	evs, err := p.store.ListAudit(storeCtx(t), storage.AuditFilter{Type: audit.EventMFAVerify, UserID: p.user.ID})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// checkNotIssued fails if the auth request was finished or its login records a second factor.
func (p *phishingEnv) checkNotIssued(t *testing.T, id string) {
	t.Helper()
	ar, err := p.store.GetAuthRequest(storeCtx(t), id)
	if err != nil {
		t.Fatalf("auth request %s: %v", id, err)
	}
	if ar.Login.Done || slices.Contains(ar.Login.AMR, "mfa") || slices.Contains(ar.Login.AMR, "otp") {
		t.Fatalf("the refused sign-in advanced: done=%v amr=%v acr=%s", ar.Login.Done, ar.Login.AMR, ar.Login.ACR)
	}
}
