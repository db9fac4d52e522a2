package idp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/mfa"
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
			t.Run("remove the password", p.removePassword)
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
	if !strings.Contains(listed, "Security key or passkey (Chrome on Linux)") || !strings.Contains(listed, "Synced passkey") {
		t.Fatalf("passkey not listed under the browser's name, as synced: %q", listed)
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
	form.Set("response", forgedAssertion(p.issuer, p.user.ID))
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

// 5. With a passkey, the person removes their password on the account page (the
// passkey sign-in above is recent enough); from then on the password form refuses it as
// it refuses a wrong password, and the passkey is the last way in, so it stays.
func (p *passkeyEnv) removePassword(t *testing.T) {
	// Signed out: the account page's sign-in offers the passkey behind a button, which
	// stores the sign-in and runs the ceremony on its page.
	p.freshBrowser(t)
	p.do(t, "open the account page", chromedp.Navigate(p.issuer+"/account/security"))
	p.waitFor(t, "the account page's sign-in", `document.querySelector("#passkey-start") !== null`)
	p.do(t, "sign in with a passkey", chromedp.Click(chromedp.CSS("#passkey-start")))
	p.waitFor(t, "the account page", `document.querySelector("#remove-password") !== null`)
	p.do(t, "remove the password", chromedp.Click(chromedp.CSS("#remove-password")))
	p.waitFor(t, "the confirmation", `document.querySelector(".success")?.textContent.startsWith("Password removed") && document.querySelector("#no-password") !== null`)
	u, err := p.store.GetUser(storeCtx(t), p.user.ID)
	if err != nil || u.PasswordHash != "" {
		t.Fatalf("user after removing the password: %+v, %v", u, err)
	}
	if n := p.auditCount(audit.EventPasswordRemove, audit.ResultSuccess); n != 1 {
		t.Fatalf("%d password removals audited, want 1", n)
	}
	wantPasswordRefused(t, p.env, p.app, webauthnEmail, password)

	factors, err := p.store.ListFactors(storeCtx(t), p.user.ID)
	if err != nil || len(factors) != 1 {
		t.Fatalf("factors %+v, %v", factors, err)
	}
	p.do(t, "remove the passkey", chromedp.Click(chromedp.CSS(`form[action="/account/security/remove"] button`)))
	p.waitFor(t, "the refusal", `document.querySelector("p.error")?.textContent.startsWith("You cannot remove this sign-in method")`)
	if factors, err := p.store.ListFactors(storeCtx(t), p.user.ID); err != nil || len(factors) != 1 {
		t.Fatalf("the last passkey of an account without a password was removed: %+v, %v", factors, err)
	}
}

// wantPasswordRefused signs in to c by password as email and checks that the answer is
// the one for a wrong password (401, the same message), and the password form again.
func wantPasswordRefused(t *testing.T, e *env, c testClient, email, pw string) {
	t.Helper()
	b := e.newBrowser()
	got := b.Login(b.Get(e.authURL(c, nil)), email, pw)
	unknown := b.Login(b.Get(e.authURL(c, nil)), "nobody-"+email, pw)
	if got.Status != http.StatusUnauthorized || !strings.Contains(got.Body, "Incorrect email or password.") || !got.IsLogin() {
		t.Fatalf("password sign-in of an account without a password: %d\n%.400s", got.Status, got.Body)
	}
	if unknown.Status != got.Status || strings.Count(unknown.Body, "Incorrect email or password.") != strings.Count(got.Body, "Incorrect email or password.") {
		t.Fatalf("an account without a password answers unlike an unknown one: %d vs %d", got.Status, unknown.Status)
	}
}

// TestPasskeyOnlyAccount: an administrator creates a person without a password and
// e-mails them an enrolment link (over a real SMTP conversation); in Chromium the
// person registers a device-bound passkey on it, the link is then used up, and the
// person signs in to a client with the passkey alone (amr hwk mfa user, acr phr), while
// the password form refuses the account like a wrong password. On every backend.
func TestPasskeyOnlyAccount(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := &auditSwitchStore{Storage: be.open(t)}
			e := newLocalhostEnv(t, st, nil, nil, nil)
			browser := idptest.NewChrome(t)
			key := idptest.AddVirtualAuthenticator(t, browser, idptest.VirtualAuthenticator{Transport: "internal"})
			w := &webauthnEnv{env: e, browser: browser, key: key, docs: watchDocuments(t, browser),
				app: e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{appOrigin + "/cb"}, SkipConsent: true})}
			w.callbacks = catchCallbacks(t, browser, appOrigin)
			strict := e.createClient(admin.NewClient{Name: "Treasury", RedirectURIs: []string{appOrigin + "/treasury/cb"}, SkipConsent: true})
			e.setPolicy(strict, storage.MFAPolicy{MFA: "required", PhishingResistant: true})

			smtpSrv := idptest.NewSMTPServer(t)
			host, portStr, _ := net.SplitHostPort(smtpSrv.Addr)
			port, _ := strconv.Atoi(portStr)
			mailer, err := mfa.NewSMTPSender(mfa.SMTPConfig{Host: host, Port: port, From: "openidp <id@example.com>", TLS: mfa.SMTPNoTLS})
			if err != nil {
				t.Fatal(err)
			}
			adm := *e.admin
			adm.Issuer, adm.Mail = e.issuer, mailer.Send

			const email = "cy@example.com"
			if _, err := adm.CreateUser(storeCtx(t), "test", admin.NewUser{Email: email, Password: password, NoPassword: true}); err == nil {
				t.Fatal("CreateUser took a password and NoPassword")
			}
			u, err := adm.CreateUser(storeCtx(t), "test", admin.NewUser{Email: email, Name: "Cy", NoPassword: true})
			if err != nil {
				t.Fatal(err)
			}
			if u.PasswordHash != "" {
				t.Fatal("a passkey-only account got a password hash")
			}
			wantPasswordRefused(t, e, w.app, email, "")
			wantPasswordRefused(t, e, w.app, email, password)

			res, err := adm.EnrolmentLink(storeCtx(t), "test", email, "")
			if err != nil || !res.Mailed {
				t.Fatalf("enrolment link: %+v, %v", res, err)
			}
			msg := smtpSrv.Last(t, 1)
			_, body, _ := strings.Cut(msg.Data, "\r\n\r\n")
			text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
			if err != nil {
				t.Fatal(err)
			}
			link := regexp.MustCompile(`https?://\S+/enrol\?\S+`).FindString(string(text))
			if len(msg.To) != 1 || msg.To[0] != email || link != res.Link {
				t.Fatalf("mail to %v with link %q, want %s with %q:\n%s", msg.To, link, email, res.Link, msg.Data)
			}

			w.do(t, "open the enrolment link", chromedp.Navigate(link))
			w.waitFor(t, "the enrolment page", `document.querySelector("#enrol-start") !== null`)
			w.do(t, "set up a passkey", chromedp.Click(chromedp.CSS("#enrol-start")))
			w.waitFor(t, "the passkey to be registered", `document.querySelector("#enrol-done") !== null`)
			creds := idptest.VirtualCredentials(t, browser, key)
			if len(creds) != 1 || !creds[0].IsResidentCredential {
				t.Fatalf("virtual authenticator holds %+v, want one discoverable credential", creds)
			}
			if n := e.auditCount(audit.EventMFAEnrolLink, audit.ResultSuccess); n != 1 {
				t.Fatalf("%d enrolment links used, want 1", n)
			}

			// The link is used up.
			w.do(t, "open the enrolment link again", chromedp.Navigate(link))
			w.waitFor(t, "the enrolment page", `document.querySelector("#enrol-start") !== null`)
			w.docs.reset()
			w.do(t, "set up a passkey again", chromedp.Click(chromedp.CSS("#enrol-start")))
			if status := w.docs.waitN(t, e.issuer+"/enrol", 1); status != http.StatusBadRequest {
				t.Fatalf("a used enrolment link answered %d, want 400", status)
			}

			// A passkey sign-in whose audit event cannot be written does not happen: 500,
			// and no session is left behind.
			w.freshBrowser(t)
			st.failAudit.Store(true)
			w.docs.reset()
			w.do(t, "open the authorization URL with the audit trail unwritable", chromedp.Navigate(e.authURL(strict, nil)))
			if status := w.docs.waitN(t, e.issuer+"/login/passkey", 1); status != http.StatusInternalServerError {
				t.Fatalf("an unaudited passkey sign-in answered %d, want 500", status)
			}
			st.failAudit.Store(false)
			if ss, err := e.store.ListUserSessions(storeCtx(t), u.ID); err != nil || len(ss) != 0 {
				t.Fatalf("an unaudited passkey sign-in left sessions %+v (%v)", ss, err)
			}

			// Sign in with the passkey alone, to a client that requires phishing resistance.
			w.freshBrowser(t)
			verifier, challenge := pkce()
			w.do(t, "open the authorization URL",
				chromedp.Navigate(e.authURL(strict, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
			q := w.waitCallback(t)
			tr := e.tokenRequest(strict, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
				"redirect_uri": {strict.RedirectURI}, "code_verifier": {verifier}})
			if tr.IDToken == "" {
				t.Fatalf("code exchange: %+v", tr)
			}
			claims := verifyWithJWKS(t, e, tr.IDToken, strict.ID)
			if claims["sub"] != u.ID {
				t.Fatalf("sub %v, want %s", claims["sub"], u.ID)
			}
			wantAuth(t, claims, []string{"hwk", "mfa", "user"}, consent.ACRPhishingResistant)

			// The account page: no password, nothing to remove.
			w.do(t, "open the account page", chromedp.Navigate(e.issuer+"/account/security"))
			w.waitFor(t, "the account page without a password", `document.querySelector("#no-password") !== null && document.querySelector("#remove-password") === null`)
			if detail := w.eval(t, `document.querySelector(".factor-detail")?.textContent ?? ""`); detail != "Kept on this one device or key" {
				t.Fatalf("a device-bound passkey is described as %q", detail)
			}
		})
	}
}

// forgedAssertion is a well-formed passkey assertion naming userID, for no challenge of
// ours and with no valid signature.
func forgedAssertion(origin, userID string) string {
	clientData, _ := json.Marshal(map[string]string{"type": "webauthn.get", "challenge": "AAAA", "origin": origin})
	enc := base64.RawURLEncoding.EncodeToString
	forged, _ := json.Marshal(map[string]any{
		"id": enc([]byte("forged")), "rawId": enc([]byte("forged")), "type": "public-key",
		"response": map[string]string{
			"clientDataJSON":    enc(clientData),
			"authenticatorData": enc(make([]byte, 37)),
			"signature":         enc([]byte("not a signature")),
			"userHandle":        enc([]byte(userID)),
		},
	})
	return string(forged)
}

// TestAttackConcurrentPasskeyGuesses: 60 concurrent forged passkey assertions naming
// one person, for one sign-in, half to each of two provider instances on one database.
// Each is reserved with the regulator before it is checked, so at most LockAfter (5)
// are checked and the rest are refused unchecked, in every process.
func TestAttackConcurrentPasskeyGuesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			s1, s2 := be.open(t)
			e := newLocalhostEnv(t, s1, nil, nil, nil)
			second := newLocalhostEnv(t, s2, e.clock, e.sealer, nil)
			victim := e.createUser("passkey-victim@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{appOrigin + "/cb"}, SkipConsent: true})
			b := e.newBrowser()
			page := b.Get(e.authURL(app, nil))
			if !strings.Contains(page.Body, `action="/login/passkey"`) {
				t.Fatalf("the sign-in page offers no passkey:\n%.600s", page.Body)
			}
			form := page.Hidden()
			form.Set("response", forgedAssertion(e.issuer, victim.ID))
			const n = 60
			raceStatuses(t, n, func(i int) (int, error) {
				issuer := e.issuer
				if i%2 == 1 {
					issuer = second.issuer
				}
				return postForm(b.Client, issuer+"/login/passkey", form)
			})
			// Checked: refused by the signature check, or (the sign-in's challenge allows
			// three tries) because the challenge was used up.
			checked := auditReasons(t, s1, victim.ID, audit.EventLoginPasskey, "invalid code") +
				auditReasons(t, s1, victim.ID, audit.EventLoginPasskey, "challenge expired or used up")
			locked := auditReasons(t, s1, victim.ID, audit.EventLoginPasskey, "rate limited")
			t.Logf("%d concurrent forged assertions: %d checked, %d refused unchecked", n, checked, locked)
			if checked < 1 || checked > 5 {
				t.Fatalf("%d assertions checked, want 1..5", checked)
			}
			if checked+locked != n {
				evs, _ := s1.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventLoginPasskey})
				var reasons []string
				for _, ev := range evs {
					reasons = append(reasons, ev.Reason)
				}
				t.Fatalf("checked %d + refused %d != %d; audited: %q", checked, locked, n, reasons)
			}
		})
	}
}

// auditSwitchStore is a store whose audit appends fail while failAudit is set, as when
// the audit table cannot be written; with failType set, only appends of that event type.
type auditSwitchStore struct {
	storage.Storage
	failAudit atomic.Bool
	failType  atomic.Value // string
}

func (s *auditSwitchStore) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if t, _ := s.failType.Load().(string); s.failAudit.Load() && (t == "" || t == e.Type) {
		return errors.New("audit unwritable")
	}
	return s.Storage.AppendAudit(ctx, e)
}
