package idp_test

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// axeScript is axe-core (MPL-2.0, Deque Systems; its licence header is kept in the
// file and the full licence is testdata/axe-core.LICENSE), injected into pages to check
// their accessibility.
//
//go:embed testdata/axe.min.js
var axeScript string

// consoleDriver drives the admin console in Chromium.
type consoleDriver struct {
	*env
	browser context.Context
	key     []byte // the administrator's TOTP key
}

func (d *consoleDriver) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, d.pageState())
	}
}

func (d *consoleDriver) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v\n%s", js, err, d.pageState())
	}
	return s
}

// waitFor waits for a JavaScript condition on the current page, across page loads.
func (d *consoleDriver) waitFor(t *testing.T, what, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
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
			t.Fatalf("waiting for %s: %v (last error %v)\n%s", what, ctx.Err(), err, d.pageState())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *consoleDriver) pageState() string {
	ctx, cancel := context.WithTimeout(d.browser, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body?.innerText ?? "").slice(0, 1200)`))
	if err != nil {
		return "page state unavailable: " + err.Error()
	}
	return "page: " + s
}

// open loads path and waits for its h1 to read h1.
func (d *consoleDriver) open(t *testing.T, path, h1 string) {
	t.Helper()
	d.do(t, "open "+path, chromedp.Navigate(d.issuer+path))
	d.waitH1(t, h1)
}

// waitH1 waits for a page loaded since the last markStale whose h1 reads h1.
func (d *consoleDriver) waitH1(t *testing.T, h1 string) {
	t.Helper()
	js, _ := json.Marshal(h1)
	d.waitFor(t, "the page "+h1, `window.consoleStale !== true && document.querySelector("h1")?.textContent.trim() === `+string(js))
}

// markStale marks the current document, so that waitH1 waits for the next one.
func (d *consoleDriver) markStale(t *testing.T) {
	t.Helper()
	d.eval(t, `window.consoleStale = true; ""`)
}

// click clicks the element sel and waits for the next page's h1.
func (d *consoleDriver) click(t *testing.T, sel, h1 string) {
	t.Helper()
	d.markStale(t)
	d.do(t, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
	d.waitH1(t, h1)
}

// setValue sets a form control's value (text, textarea, select).
func (d *consoleDriver) setValue(t *testing.T, sel, v string) {
	t.Helper()
	d.do(t, "fill "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
}

func (d *consoleDriver) text(t *testing.T, sel string) string {
	t.Helper()
	js, _ := json.Marshal(sel)
	return d.eval(t, `document.querySelector(`+string(js)+`)?.textContent.trim() ?? ""`)
}

// axeViolation is one rule axe-core found broken, with the elements that break it.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeViolations runs axe-core on the current page.
func (d *consoleDriver) axeViolations(t *testing.T, page string) []axeViolation {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axeScript+"\n;true")); err != nil {
		t.Fatalf("inject axe-core on %s: %v", page, err)
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map(n => n.target.join(" "))})))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run axe-core on %s: %v", page, err)
	}
	return vs
}

// axe fails the test on any axe-core violation on the current page.
func (d *consoleDriver) axe(t *testing.T, page string) {
	t.Helper()
	for _, v := range d.axeViolations(t, page) {
		t.Errorf("axe on %s: %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// totp types the administrator's current code into the second-factor page.
func (d *consoleDriver) totp(t *testing.T) {
	t.Helper()
	d.waitFor(t, "the second-factor page", `document.querySelector("form[action='/login/mfa'] #code") !== null`)
	d.clock.Advance(31 * time.Second) // a TOTP step is accepted once
	d.do(t, "enter the TOTP code",
		chromedp.SendKeys(chromedp.CSS("#code"), rfc6238(d.key, d.clock.Now(), 6)),
		chromedp.Click(chromedp.CSS(`form[action="/login/mfa"] button[type="submit"]`)))
}

func (d *consoleDriver) password(t *testing.T, email string) {
	t.Helper()
	d.waitFor(t, "the sign-in form", `document.querySelector("form[action='/login'] #password") !== null`)
	d.do(t, "sign in with the password",
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
}

func (d *consoleDriver) clearCookies(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clear cookies: %v", err)
	}
}

// fetch runs a fetch from the current page (with its cookies) and returns status and body.
func (d *consoleDriver) fetch(t *testing.T, path string, post url.Values) fetchResult {
	t.Helper()
	args, _ := json.Marshal(map[string]any{"path": path, "post": post != nil, "body": post.Encode()})
	js := `(async (a) => {
		const init = a.post ? {method: "POST", body: new URLSearchParams(a.body), redirect: "manual", credentials: "same-origin"} : {credentials: "same-origin"};
		const r = await fetch(a.path, init);
		return {type: r.type, status: r.status, body: await r.text()};
	})(` + string(args) + `)`
	ctx, cancel := context.WithTimeout(d.browser, browserStep)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[fetchResult](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s: %v", path, err)
	}
	return res
}

// TestAdminConsoleScreenshots drives the admin console in Chromium: who gets in
// (an administrator with a fresh second factor; a non-administrator is refused; a
// session without a second factor, or with an old one, is stepped up), every kind of
// change, each audited with the administrator as actor and refused without the CSRF
// token, and axe-core on every page. With IDP_SCREENSHOTS set it saves the console's
// pictures for docs/admin-console.md.
func TestAdminConsoleScreenshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, openSQLite(t))
	const adminEmail, staffEmail, adaEmail = "admin@example.com", "staff@example.com", "ada@example.com"
	adminUser, err := e.admin.CreateUserOfType(ctx, "test", admin.NewUser{Email: adminEmail, Name: "Grace Admin", Password: password}, "admin", []string{"security"})
	if err != nil {
		t.Fatal(err)
	}
	hb := e.newBrowser()
	key := enrolTOTP(t, e, hb, accountPage(t, e, hb, adminEmail, nil))
	e.createUser(staffEmail, password)
	ada := e.createUser(adaEmail, password)
	// Ada has an authenticator app and a session for the console to see.
	ab := e.newBrowser()
	adaKey := enrolTOTP(t, e, ab, accountPage(t, e, ab, adaEmail, nil))
	_ = adaKey
	open := e.createClient(admin.NewClient{Name: "Open app", RedirectURIs: []string{appOrigin + "/cb"}, SkipConsent: true})
	if _, err := e.admin.SetClientPolicy(ctx, "test", open.ID, storage.MFAPolicy{MFA: consent.ModeOff}); err != nil {
		t.Fatal(err)
	}

	chrome := idptest.NewChrome(t)
	callbacks := catchCallbacks(t, chrome, appOrigin)
	d := &consoleDriver{env: e, browser: chrome, key: key}
	d.do(t, "size the window", chromedp.EmulateViewport(1280, 900))
	waitCallback := func() {
		t.Helper()
		select {
		case <-callbacks:
		case <-time.After(browserStep):
			t.Fatalf("no redirect to the application\n%s", d.pageState())
		}
	}
	// signInToOpenApp leaves a password-only session in the browser.
	signInToOpenApp := func(email string) {
		t.Helper()
		d.clearCookies(t)
		d.do(t, "open the application's sign-in", chromedp.Navigate(e.authURL(open, nil)))
		d.password(t, email)
		waitCallback()
	}

	t.Run("a non-administrator is refused", func(t *testing.T) {
		signInToOpenApp(staffEmail)
		d.open(t, "/admin/clients", "Not allowed")
		d.axe(t, "refusal")
	})

	t.Run("an administrator with TOTP signs in", func(t *testing.T) {
		d.clearCookies(t)
		d.do(t, "open the console", chromedp.Navigate(e.issuer+"/admin"))
		d.password(t, adminEmail)
		d.totp(t)
		d.waitH1(t, "Clients")
		if got := d.text(t, ".who"); !strings.Contains(got, adminEmail) {
			t.Errorf("console says %q, want the administrator's e-mail", got)
		}
	})

	t.Run("a session without a second factor is stepped up", func(t *testing.T) {
		signInToOpenApp(adminEmail)
		d.do(t, "open the console", chromedp.Navigate(e.issuer+"/admin/people"))
		d.totp(t)
		d.waitH1(t, "People")
	})

	t.Run("an old second factor is asked for again", func(t *testing.T) {
		e.clock.Advance(61 * time.Minute)
		d.do(t, "open the console", chromedp.Navigate(e.issuer+"/admin/keys"))
		d.totp(t)
		d.waitH1(t, "Signing keys")
	})

	var clientID, firstSecret string
	t.Run("clients", func(t *testing.T) {
		d.open(t, "/admin/clients", "Clients")
		d.axe(t, "clients")
		d.click(t, "#new-client", "Register a client")
		d.axe(t, "new client")
		d.setValue(t, "#name", "Shop")
		d.setValue(t, "#redirect-uris", "http://shop.example/cb")
		d.click(t, "#save-client", "Register a client")
		if got := d.text(t, "#form-error"); !strings.Contains(got, "https") {
			t.Errorf("an http redirect URI: error %q", got)
		}
		d.setValue(t, "#redirect-uris", "https://shop.example/cb")
		d.click(t, "#save-client", "Client registered")
		d.axe(t, "client secret")
		clientID, firstSecret = d.text(t, "#client-id"), d.text(t, "#client-secret")
		c, err := e.store.GetClient(ctx, clientID)
		if err != nil || firstSecret == "" || !bytes.Equal(c.SecretHash, secret.HashClientSecret(firstSecret)) {
			t.Fatalf("registered client %q: %v, secret shown %q does not match", clientID, err, firstSecret)
		}

		d.open(t, "/admin/clients/"+clientID, "Shop")
		if body := d.eval(t, `document.body.innerHTML`); strings.Contains(body, firstSecret) {
			t.Error("the client page shows the secret again")
		}
		d.setValue(t, "#name", "Shop 2")
		d.setValue(t, "#bcl", "https://shop.example/logout")
		d.click(t, "#save-client", "Shop 2")
		if c, _ := e.store.GetClient(ctx, clientID); c.Name != "Shop 2" || c.BackchannelLogoutURI != "https://shop.example/logout" {
			t.Errorf("after edit: name %q, back-channel URI %q", c.Name, c.BackchannelLogoutURI)
		}

		// The MFA policy editor and the explain panel.
		d.setValue(t, "#mfa", consent.ModeRequired)
		d.do(t, "tick TOTP", chromedp.Click(chromedp.CSS(`#policy-form input[name=factor][value=totp]`)))
		d.setValue(t, "#max-age", "12h")
		d.click(t, "#save-policy", "Shop 2")
		if c, _ := e.store.GetClient(ctx, clientID); c.Policy.MFA != consent.ModeRequired || !slices.Equal(c.Policy.Factors, []storage.FactorKind{storage.FactorTOTP}) || c.Policy.MaxAge != 12*time.Hour {
			t.Errorf("stored policy %+v", c.Policy)
		}
		d.setValue(t, "#explain", adaEmail)
		d.markStale(t)
		d.do(t, "explain", chromedp.Submit(chromedp.CSS("#explain-form")))
		d.waitFor(t, "the explanation", `window.consoleStale !== true && document.querySelector("#outcome") !== null`)
		if got := d.text(t, "#outcome"); !strings.Contains(got, "totp") {
			t.Errorf("explanation for Ada: %q, want her TOTP to be asked for", got)
		}
		if got := d.text(t, "#reasons"); got == "" {
			t.Error("the explanation gives no reasons")
		}
		d.axe(t, "client policy and explanation")
		saveScreenshot(d.browser, t, "console-client-policy")

		d.click(t, "#rotate-secret", "Replace the client secret?")
		if got := d.eval(t, `document.querySelector("main").innerText`); !strings.Contains(got, "The application Shop 2 stops working") || strings.Contains(got, "Saved.") {
			t.Errorf("confirmation page: %q", got)
		}
		if d.eval(t, `String(document.querySelector("#done") === null)`) != "true" {
			t.Error("the confirmation page shows a success notice")
		}
		d.axe(t, "confirmation")
		d.click(t, "#confirm", "New client secret")
		second := d.text(t, "#client-secret")
		if c, _ := e.store.GetClient(ctx, clientID); second == "" || second == firstSecret || !bytes.Equal(c.SecretHash, secret.HashClientSecret(second)) {
			t.Errorf("rotated secret %q not the stored one", second)
		}

		d.open(t, "/admin/clients/"+clientID, "Shop 2")
		d.click(t, "#delete-client", "Delete this client?")
		d.click(t, "#confirm", "Clients")
		if _, err := e.store.GetClient(ctx, clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("client after delete: %v", err)
		}
		if got := d.text(t, "#done"); got != "Deleted." {
			t.Errorf("after delete: notice %q", got)
		}
		d.open(t, "/admin/clients", "Clients")
		saveScreenshot(d.browser, t, "console-clients")
	})

	t.Run("people", func(t *testing.T) {
		d.open(t, "/admin/people?q=ada", "People")
		if got := d.text(t, "#people"); !strings.Contains(got, adaEmail) || strings.Contains(got, staffEmail) {
			t.Errorf("search for ada shows %q", got)
		}
		d.axe(t, "people")
		saveScreenshot(d.browser, t, "console-people")
		d.click(t, "#people a", adaEmail)
		if got := d.text(t, "#factor-list"); !strings.Contains(got, "Authenticator app") {
			t.Errorf("Ada's factors: %q", got)
		}
		if got := d.text(t, "#person-sessions"); got == "" {
			t.Error("Ada's session is not listed")
		}
		d.axe(t, "person")
		saveScreenshot(d.browser, t, "console-person")

		// A recovery link, shown once, never written to the audit trail.
		d.setValue(t, "#link-reason", "new phone")
		d.click(t, "#issue-link", "Issue a recovery link?")
		if got := d.eval(t, `document.querySelector("#reason").value`); got != "new phone" {
			t.Errorf("the confirmation lost the reason: %q", got)
		}
		d.click(t, "#confirm", adaEmail)
		link := d.text(t, "#recovery-link")
		if !strings.HasPrefix(link, e.issuer+"/recovery?") {
			t.Fatalf("recovery link %q", link)
		}
		d.open(t, "/admin/people/"+ada.ID, adaEmail)
		if strings.Contains(d.eval(t, `document.body.innerText`), link) {
			t.Error("the recovery link is shown again")
		}
		if evs, _ := e.store.ListAudit(ctx, storage.AuditFilter{Type: audit.EventAdminMFAReset}); len(evs) != 1 ||
			strings.Contains(evs[0].Reason, link) || !strings.Contains(evs[0].Reason, `reason="new phone"`) {
			t.Errorf("recovery link audit: %+v", evs)
		}

		// Reset MFA: the reason is required, also when the browser's check is bypassed.
		d.markStale(t)
		d.eval(t, `document.querySelector("#reset-reason").removeAttribute("required"); document.querySelector("#reset-form").submit(); ""`)
		d.waitH1(t, "Reset the second factors?")
		d.eval(t, `document.querySelector("#reason").removeAttribute("required"); ""`)
		d.click(t, "#confirm", "Reset the second factors?")
		if got := d.text(t, "#reason-error"); !strings.Contains(got, "reason is required") {
			t.Errorf("reset without a reason: %q", got)
		}
		if fs, _ := e.store.ListFactors(ctx, ada.ID); len(fs) == 0 {
			t.Fatal("factors removed without a reason")
		}
		d.setValue(t, "#reason", "lost her phone")
		d.click(t, "#confirm", adaEmail)
		if fs, _ := e.store.ListFactors(ctx, ada.ID); len(fs) != 0 {
			t.Errorf("%d factors left after the reset", len(fs))
		}

		// Two new sessions: end one, then sign her out everywhere.
		accountPage(t, e, e.newBrowser(), adaEmail, nil)
		accountPage(t, e, e.newBrowser(), adaEmail, nil)
		d.open(t, "/admin/people/"+ada.ID, adaEmail)
		d.click(t, "#person-sessions button", "End this session?")
		d.click(t, "#confirm", adaEmail)
		if ss, _ := e.store.ListUserSessions(ctx, ada.ID); len(ss) != 1 {
			t.Errorf("%d sessions left after ending one of two", len(ss))
		}
		d.click(t, "#end-all", "Sign this person out everywhere?")
		d.setValue(t, "#reason", "precaution")
		d.click(t, "#confirm", adaEmail)
		if ss, _ := e.store.ListUserSessions(ctx, ada.ID); len(ss) != 0 {
			t.Errorf("%d sessions left", len(ss))
		}

		d.click(t, "#disable", "Disable this account?")
		d.click(t, "#confirm", adaEmail)
		if got := d.text(t, "#status"); got != "Disabled" {
			t.Errorf("status after disable: %q", got)
		}
		if u, _ := e.store.GetUser(ctx, ada.ID); !u.Disabled {
			t.Error("Ada is not disabled")
		}
	})

	t.Run("a passkey-only person", func(t *testing.T) {
		const cyEmail = "cy@example.com"
		d.open(t, "/admin/people", "People")
		d.setValue(t, "#new-email", cyEmail)
		d.setValue(t, "#new-password", password)
		d.eval(t, `document.querySelector("#new-no-password").checked = true; ""`)
		d.click(t, "#create-person button[type=submit]", "People")
		if got := d.text(t, "#form-error"); !strings.Contains(got, "not both") {
			t.Fatalf("a password and no password: %q", got)
		}
		d.setValue(t, "#new-email", cyEmail)
		d.eval(t, `document.querySelector("#new-password").value = ""; ""`)
		d.eval(t, `document.querySelector("#new-no-password").checked = true; ""`)
		d.click(t, "#create-person button[type=submit]", cyEmail)
		link := d.text(t, "#enrolment-link")
		if !strings.HasPrefix(link, e.issuer+"/enrol?") {
			t.Fatalf("enrolment link %q", link)
		}
		if got := d.text(t, "#passwordless"); got == "" {
			t.Error("the person's page does not say there is no password")
		}
		u, err := e.store.GetUserByEmail(ctx, cyEmail)
		if err != nil || u.PasswordHash != "" {
			t.Fatalf("stored person %+v, %v", u, err)
		}
		d.click(t, "#issue-enrolment-link", cyEmail)
		if again := d.text(t, "#enrolment-link"); again == link || !strings.HasPrefix(again, e.issuer+"/enrol?") {
			t.Fatalf("second enrolment link %q (first %q)", again, link)
		}
		if evs, _ := e.store.ListAudit(ctx, storage.AuditFilter{Type: audit.EventAdminEnrolLink, UserID: u.ID}); len(evs) != 2 || strings.Contains(evs[0].Reason, link) {
			t.Errorf("enrolment link audit: %+v", evs)
		}
	})

	t.Run("account type policies", func(t *testing.T) {
		d.open(t, "/admin/policies", "Account type policies")
		d.setValue(t, "#new-type", "staff")
		d.setValue(t, "#new-mfa", consent.ModeRequired)
		d.click(t, `#type-policy-form button[type=submit]`, "Account type policies")
		if p, err := e.store.GetTypePolicy(ctx, "staff"); err != nil || p.MFA != consent.ModeRequired {
			t.Errorf("staff policy %+v, %v", p, err)
		}
		d.axe(t, "account type policies")
	})

	t.Run("keys", func(t *testing.T) {
		before, _ := e.store.ListSigningKeys(ctx)
		d.open(t, "/admin/keys", "Signing keys")
		d.axe(t, "keys")
		// The check can fail: an input without a label is a violation.
		d.eval(t, `document.querySelector("main").insertAdjacentHTML("beforeend", "<input type=text id=unlabelled>"); ""`)
		if vs := d.axeViolations(t, "keys with an unlabelled input"); len(vs) == 0 {
			t.Error("axe-core found nothing wrong with an unlabelled input")
		}
		d.click(t, "#rotate-keys", "Rotate the signing keys?")
		d.click(t, "#confirm", "Signing keys")
		if after, _ := e.store.ListSigningKeys(ctx); len(after) <= len(before) {
			t.Errorf("keys: %d before, %d after the rotation", len(before), len(after))
		}
	})

	t.Run("a change without the CSRF token is refused", func(t *testing.T) {
		d.open(t, "/admin/keys", "Signing keys")
		before, _ := e.store.ListSigningKeys(ctx)
		for _, form := range []url.Values{{"confirm": {"yes"}}, {"confirm": {"yes"}, "csrf": {"forged"}}} {
			if res := d.fetch(t, "/admin/keys/rotate", form); res.Status != 403 {
				t.Errorf("POST %v: status %d, want 403", form, res.Status)
			}
		}
		if after, _ := e.store.ListSigningKeys(ctx); len(after) != len(before) {
			t.Error("a forged POST rotated the keys")
		}
	})

	t.Run("audit", func(t *testing.T) {
		d.open(t, "/admin/audit?person="+url.QueryEscape(adaEmail)+"&type="+audit.EventAdminUserDisable, "Audit trail")
		if got := d.text(t, "#events tbody"); !strings.Contains(got, audit.EventAdminUserDisable) || strings.Contains(got, audit.EventAdminMFAReset) {
			t.Errorf("filtered audit: %q", got)
		}
		d.open(t, "/admin/audit?verify=1", "Audit trail")
		if got := d.text(t, "#chain-result"); !strings.Contains(got, "intact") {
			t.Errorf("chain verification: %q", got)
		}
		d.axe(t, "audit")
		saveScreenshot(d.browser, t, "console-audit")
		res := d.fetch(t, "/admin/audit/export?type="+audit.EventAdminClientCreate, nil)
		lines := strings.Split(strings.TrimSpace(res.Body), "\n")
		var line admin.AuditLine
		if res.Status != 200 || len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &line) != nil || line.ClientID != clientID || line.Hash == "" {
			t.Errorf("export: status %d, %d lines:\n%s", res.Status, len(lines), res.Body)
		}
	})

	t.Run("end every session of a client", func(t *testing.T) {
		if ss, _ := e.store.ListClientSessions(ctx, open.ID); len(ss) == 0 {
			t.Fatal("nobody is signed in to the open app")
		}
		d.open(t, "/admin/clients/"+open.ID, "Open app")
		if got := d.text(t, "#client-sessions"); !strings.Contains(got, staffEmail) {
			t.Errorf("sessions of the open app: %q", got)
		}
		d.click(t, "#end-client-sessions", "End every session of this client?")
		d.setValue(t, "#reason", "app compromised")
		d.markStale(t)
		d.do(t, "confirm", chromedp.Click(chromedp.CSS("#confirm")))
		// The administrator's own session signed in to the app too: it ended with the rest.
		d.waitFor(t, "the sign-in form", `window.consoleStale !== true && document.querySelector("form[action='/login'] #password") !== null`)
		if ss, _ := e.store.ListClientSessions(ctx, open.ID); len(ss) != 0 {
			t.Errorf("%d sessions of the app left", len(ss))
		}
	})

	// Every change above is in the trail, with the administrator as the actor.
	events, err := e.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byAdmin := map[string]bool{}
	for _, ev := range events {
		if strings.HasPrefix(ev.Reason, "actor=user:"+adminEmail+" ") && ev.Result == audit.ResultSuccess {
			byAdmin[ev.Type] = true
		}
	}
	for _, typ := range []string{
		audit.EventAdminClientCreate, audit.EventAdminClientUpdate, audit.EventAdminClientSecret, audit.EventAdminClientDelete,
		audit.EventAdminMFAReset, audit.EventAdminSessionsEnd, audit.EventAdminUserDisable, audit.EventAdminPolicySet, audit.EventAdminKeyRotate,
		audit.EventAdminSessionEnd, audit.EventAdminClientSessionsEnd,
	} {
		if !byAdmin[typ] {
			t.Errorf("no %s event with the administrator as actor", typ)
		}
	}
	_ = adminUser
}
