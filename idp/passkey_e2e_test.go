package idp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
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

// TestPasskeyScreenshot drives passkeys end to end in a real Chromium with a CDP
// virtual platform authenticator that makes synced passkeys (resident keys, user
// verification, BE and BS set), on every backend: a passkey is registered on the
// account page; a sign-in by passkey alone, offered by conditional mediation on the
// e-mail field, reaches a client whose policy requires phishing resistance (ID token
// acr phr, amr mfa swk user); step-up from that passkey session to a client that
// requires MFA asks for nothing, until the policy's re-check age has passed; and
// guessing at passkey sign-ins is limited. The screenshots passkey-account and
// passkey-signin are taken when IDP_SCREENSHOTS is set.
func TestPasskeyScreenshot(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t) // first, so that a missing database skips before Chromium starts
			start := time.Now()
			p := newPasskeyEnv(t, st)
			if !t.Run("register a passkey on the account page", p.register) {
				return
			}
			if !t.Run("sign in by passkey alone through conditional UI", p.conditionalSignIn) {
				return
			}
			t.Run("step-up from the passkey session", p.stepUp)
			t.Run("sign-in page", p.signInPage)
			t.Run("guessing limited", p.guessingLimited)
			t.Logf("%s: %v", be.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// passkeyEnv is a webauthnEnv whose authenticator is a synced platform authenticator,
// with a client that requires phishing resistance and one that requires MFA re-checked
// every passkeyRecheck.
type passkeyEnv struct {
	*webauthnEnv
	strict, stepup testClient
}

const passkeyRecheck = 5 * time.Minute

func newPasskeyEnv(t *testing.T, st storage.Storage) *passkeyEnv {
	t.Helper()
	e := newLocalhostEnv(t, st, nil, nil, nil)
	browser := idptest.NewChrome(t)
	w := &webauthnEnv{
		env:     e,
		browser: browser,
		key:     idptest.AddVirtualAuthenticator(t, browser, idptest.VirtualAuthenticator{Transport: "internal", BackupEligible: true, BackupState: true}),
		docs:    watchDocuments(t, browser),
		app:     e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{appOrigin + "/cb"}, SkipConsent: true}),
		user:    e.createUser(webauthnEmail, password),
	}
	w.callbacks = catchCallbacks(t, browser, appOrigin)
	p := &passkeyEnv{webauthnEnv: w}
	p.strict = e.createClient(admin.NewClient{Name: "Treasury", RedirectURIs: []string{appOrigin + "/treasury/cb"}, SkipConsent: true})
	e.setPolicy(p.strict, storage.MFAPolicy{MFA: "required", PhishingResistant: true})
	p.stepup = e.createClient(admin.NewClient{Name: "Payroll", RedirectURIs: []string{appOrigin + "/payroll/cb"}, SkipConsent: true})
	e.setPolicy(p.stepup, storage.MFAPolicy{MFA: "required", MaxAge: passkeyRecheck})
	return p
}

// 1. The passkey is added on the account page without a name: it is named after the
// browser, listed, and held by the authenticator as a discoverable credential.
func (p *passkeyEnv) register(t *testing.T) {
	p.freshBrowser(t)
	p.do(t, "open the account page", chromedp.Navigate(p.issuer+"/account/security"))
	p.typePassword(t)
	p.waitFor(t, "the account page", `document.querySelector("h1")?.textContent === "Account security"`)
	p.do(t, "add a passkey",
		chromedp.Click(chromedp.CSS(`form.enroll:has(input[name="kind"][value="webauthn"]) button[type="submit"]`)))
	p.waitFor(t, "the passkey to be added", `document.querySelector(".success")?.textContent === "Sign-in method added."`)
	listed := p.eval(t, `document.querySelector("table.factors")?.innerText ?? ""`)
	if !strings.Contains(listed, "Security key or passkey (Chrome on Linux)") {
		t.Fatalf("passkey not listed under the browser's name: %q", listed)
	}
	creds := idptest.VirtualCredentials(t, p.browser, p.key)
	if len(creds) != 1 || !creds[0].IsResidentCredential || string(creds[0].UserHandle) != base64.StdEncoding.EncodeToString([]byte(p.user.ID)) && string(creds[0].UserHandle) != p.user.ID {
		t.Fatalf("virtual authenticator holds %+v, want one discoverable credential for the user", creds)
	}
	saveScreenshot(p.browser, t, "passkey-account")
}

// 2. No session: the sign-in page of the strict client offers the passkey in the e-mail
// field's autofill (conditional mediation). Chromium's virtual environment answers a
// conditional request at once, as a person picking the passkey from the autofill would:
// nothing is typed or clicked.
func (p *passkeyEnv) conditionalSignIn(t *testing.T) {
	p.freshBrowser(t)
	before := p.auditCount(audit.EventLoginPasskey, audit.ResultSuccess)
	verifier, challenge := pkce()
	p.do(t, "open the authorization URL",
		chromedp.Navigate(p.authURL(p.strict, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
	q := p.waitCallback(t)
	if q.Get("code") == "" {
		t.Fatalf("callback without a code: %v", q)
	}
	tr := p.tokenRequest(p.strict, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {p.strict.RedirectURI}, "code_verifier": {verifier}})
	if tr.IDToken == "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	claims := verifyWithJWKS(t, p.env, tr.IDToken, p.strict.ID)
	if claims["sub"] != p.user.ID {
		t.Fatalf("sub %v, want %s", claims["sub"], p.user.ID)
	}
	wantAuth(t, claims, []string{"mfa", "swk", "user"}, consent.ACRPhishingResistant)
	if got := p.auditCount(audit.EventLoginPasskey, audit.ResultSuccess); got != before+1 {
		t.Fatalf("%d successful passkey sign-ins audited, want %d", got, before+1)
	}
	if n := p.auditCount(audit.EventLoginPassword, audit.ResultSuccess); n != 1 {
		t.Fatalf("%d password sign-ins audited, want only the account page's one", n)
	}
}

// The sign-in page as a person sees it, with a "Sign in with a passkey" button and the
// e-mail field marked for passkey autofill. The authenticator waits for a touch meanwhile.
func (p *passkeyEnv) signInPage(t *testing.T) {
	p.freshBrowser(t)
	idptest.SetUserPresence(t, p.browser, p.key, false)
	defer idptest.SetUserPresence(t, p.browser, p.key, true)
	p.do(t, "open the authorization URL", chromedp.Navigate(p.authURL(p.app, nil)))
	p.waitFor(t, "the sign-in page with passkeys",
		`document.querySelector("#email")?.getAttribute("autocomplete") === "username webauthn" && document.querySelector("#webauthn-start")?.textContent === "Sign in with a passkey"`)
	saveScreenshot(p.browser, t, "passkey-signin")
	p.do(t, "leave the page", chromedp.Navigate("about:blank"))
}

// 3. The passkey session satisfies a client requiring MFA at once; after the policy's
// re-check age the passkey is asked for again (and only it), and the tokens still say
// what the session proved.
func (p *passkeyEnv) stepUp(t *testing.T) {
	checks := func() int { return p.auditCount(audit.EventMFAVerify, audit.ResultSuccess) }
	signIn := func(t *testing.T) map[string]any {
		t.Helper()
		verifier, challenge := pkce()
		p.do(t, "open the authorization URL",
			chromedp.Navigate(p.authURL(p.stepup, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
		q := p.waitCallback(t)
		tr := p.tokenRequest(p.stepup, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {p.stepup.RedirectURI}, "code_verifier": {verifier}})
		if tr.IDToken == "" {
			t.Fatalf("code exchange: %+v", tr)
		}
		return verifyWithJWKS(t, p.env, tr.IDToken, p.stepup.ID)
	}
	before := checks()
	claims := signIn(t)
	if got := checks(); got != before {
		t.Fatalf("%d second-factor checks during step-up from a fresh passkey session, want none", got-before)
	}
	wantAuth(t, claims, []string{"mfa", "swk", "user"}, consent.ACRPhishingResistant)

	p.clock.Advance(passkeyRecheck + time.Minute)
	claims = signIn(t)
	if got := checks(); got != before+1 {
		t.Fatalf("%d second-factor checks after the re-check age, want one", got-before)
	}
	wantAuth(t, claims, []string{"mfa", "swk", "user"}, consent.ACRPhishingResistant)
}

// 4. Forged passkey assertions naming the person: each is reserved under the person's
// second-factor limits from this address before it is checked, so after LockAfter
// failures the next is refused unchecked.
func (p *passkeyEnv) guessingLimited(t *testing.T) {
	b := p.newBrowser()
	page := b.Get(p.authURL(p.app, nil))
	if !strings.Contains(page.Body, `action="/login/passkey"`) {
		t.Fatalf("the sign-in page offers no passkey:\n%.600s", page.Body)
	}
	form := page.Hidden()
	clientData, _ := json.Marshal(map[string]string{"type": "webauthn.get", "challenge": "AAAA", "origin": p.issuer})
	enc := base64.RawURLEncoding.EncodeToString
	forged, _ := json.Marshal(map[string]any{
		"id": enc([]byte("forged")), "rawId": enc([]byte("forged")), "type": "public-key",
		"response": map[string]string{
			"clientDataJSON":    enc(clientData),
			"authenticatorData": enc(make([]byte, 37)),
			"signature":         enc([]byte("not a signature")),
			"userHandle":        enc([]byte(p.user.ID)),
		},
	})
	form.Set("response", string(forged))
	limited := p.auditCount(audit.EventLoginPasskey, audit.ResultFailure)
	const lockAfter = 5 // MFALimits.LockAfter's default
	for i := 1; i <= lockAfter; i++ {
		if got := b.Post(p.issuer+"/login/passkey", form); got.Status != http.StatusUnauthorized {
			t.Fatalf("forged assertion %d answered %d, want 401:\n%.400s", i, got.Status, got.Body)
		}
	}
	got := b.Post(p.issuer+"/login/passkey", form)
	if got.Status != http.StatusTooManyRequests || !strings.Contains(got.Body, "Too many failed sign-in attempts") {
		t.Fatalf("assertion after %d failures answered %d, want 429:\n%.400s", lockAfter, got.Status, got.Body)
	}
	evs, err := p.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventLoginPasskey, UserID: p.user.ID})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range evs {
		if ev.Result == audit.ResultFailure {
			reasons = append(reasons, ev.Reason)
		}
	}
	if len(reasons) != limited+lockAfter+1 || !strings.HasPrefix(reasons[len(reasons)-1], "rate limited") {
		t.Fatalf("passkey failures audited for the person: %q", reasons)
	}
}
