package idp_test

import (
	"context"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// The password reset by e-mail (login_reset.go), end to end over HTTP with a real SMTP
// conversation, on both backends.

const newPassword = "a brand new passphrase"

var (
	resetLinkRE = regexp.MustCompile(`(http://[^\s]+/password/reset\?token=([A-Za-z0-9_-]+))`)
	// csrfRE finds what differs between two answers that must otherwise be equal: the
	// CSRF token and the id of each browser's own sign-in.
	csrfRE = regexp.MustCompile(`name="csrf" value="[^"]*"|\?id=[A-Za-z0-9_-]+`)
	// forgotLinkRE finds "Forgot your password?" on the sign-in page.
	forgotLinkRE = regexp.MustCompile(`<a href="(/password/forgot\?id=[^"]+)">Forgot your password\?</a>`)
)

// addVerifiedAddress gives the user a confirmed e-mail factor for their own address,
// which is what makes an address verified.
func addVerifiedAddress(t *testing.T, e *env, userID, addr string) {
	t.Helper()
	now := e.clock.Now()
	if err := e.store.CreateFactor(t.Context(), &storage.Factor{ID: secret.NewID(), UserID: userID, Kind: storage.FactorEmail,
		Name: "E-mail", Target: addr, Confirmed: true, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// forgot opens "Forgot your password?" from a sign-in of m.app in b, posts email and
// returns the answer.
func forgot(t *testing.T, m *mfaEnv, b *browser, email string) page {
	t.Helper()
	_, ch := pkce()
	login := b.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	link := forgotLinkRE.FindStringSubmatch(login.Body)
	if link == nil {
		t.Fatalf("no \"Forgot your password?\" link on the sign-in page:\n%.800s", login.Body)
	}
	return forgotAt(t, b, b.Issuer+strings.ReplaceAll(link[1], "&amp;", "&"), email)
}

// forgotAt loads the request form at u and posts email.
func forgotAt(t *testing.T, b *browser, u, email string) page {
	t.Helper()
	p := b.Get(u)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/password/forgot"`) {
		t.Fatalf("reset request form: status %d\n%.600s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("email", email)
	return b.Post(b.Issuer+"/password/forgot", f)
}

// resetLinkIn returns the link in the n-th message, checking it went to addr.
func resetLinkIn(t *testing.T, m *mfaEnv, n int, addr string) string {
	t.Helper()
	msg := m.smtp.Last(t, n)
	if len(msg.To) != 1 || msg.To[0] != addr {
		t.Fatalf("reset mail sent to %v, want %s", msg.To, addr)
	}
	text, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(msg.Data)))
	if err != nil {
		t.Fatalf("decode message: %v", err)
	}
	sm := resetLinkRE.FindStringSubmatch(string(text))
	if sm == nil {
		t.Fatalf("no reset link in the message:\n%s", msg.Data)
	}
	if len(sm[2]) != 43 { // 256 bits, base64url
		t.Fatalf("reset token %q has %d characters, want 43 (256 bits)", sm[2], len(sm[2]))
	}
	return sm[1]
}

// postNewPassword loads the link in b and posts pw twice.
func postNewPassword(t *testing.T, b *browser, link, pw string) page {
	t.Helper()
	p := b.Get(link)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/password/reset"`) {
		t.Fatalf("new-password form: status %d\n%.600s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("password", pw)
	f.Set("confirm", pw)
	return b.Post(b.Issuer+"/password/reset", f)
}

func isResetMFA(p page) bool { return strings.Contains(p.Body, `action="/password/reset/mfa`) }

// answerResetMFA posts code on the second-factor page of a reset.
func answerResetMFA(b *browser, p page, code string) page {
	f := p.Hidden()
	f.Set("code", code)
	return b.Post(b.Issuer+"/password/reset/mfa", f)
}

// passwordWorks reports whether pw gets past the password step of a sign-in to c.
func passwordWorks(t *testing.T, e *env, c testClient, email, pw string) bool {
	t.Helper()
	b := e.newBrowser()
	_, ch := pkce()
	p := b.Login(b.Get(e.authURL(c, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, pw)
	return !p.IsLogin()
}

func TestPasswordResetEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := &auditSwitchStore{Storage: be.open(t)}
			m := newMFAEnv(t, st)
			t.Run("UnknownAndKnownIndistinguishable", func(t *testing.T) { runResetIndistinguishable(t, m) })
			t.Run("SecondFactorBeforeNewPassword", func(t *testing.T) { runResetWithTOTP(t, m) })
			t.Run("SingleUseUnderConcurrency", func(t *testing.T) { runResetConcurrent(t, m) })
			t.Run("Expiry", func(t *testing.T) { runResetExpiry(t, m) })
			t.Run("NewerPendingPasswordWins", func(t *testing.T) { runResetStalePending(t, m) })
			t.Run("UnauditedResetDoesNotHappen", func(t *testing.T) { runResetUnaudited(t, m, st) })
		})
	}
}

// runResetIndistinguishable: an address with an account and one without get the same
// status and page (the CSRF token aside); only the account's verified address gets mail.
func runResetIndistinguishable(t *testing.T, m *mfaEnv) {
	known := "known@example.com"
	u := m.createUser(known, password)
	addVerifiedAddress(t, m.env, u.ID, known)
	unverified := m.createUser("unverified@example.com", password)

	before := m.smtp.Count()
	var pages []page
	for _, addr := range []string{known, "nobody@example.com", unverified.Email} {
		pages = append(pages, forgot(t, m, m.newBrowser(), addr))
	}
	m.server.WaitPasswordResets()
	for i, p := range pages {
		if p.Status != pages[0].Status || csrfRE.ReplaceAllString(p.Body, "") != csrfRE.ReplaceAllString(pages[0].Body, "") {
			t.Fatalf("answer %d differs from the first: status %d vs %d\n%s\n---\n%s", i, p.Status, pages[0].Status, p.Body, pages[0].Body)
		}
	}
	if pages[0].Status != http.StatusOK || !strings.Contains(pages[0].Body, "Check your e-mail") {
		t.Fatalf("reset request answer: status %d\n%.600s", pages[0].Status, pages[0].Body)
	}
	if got := m.smtp.Count() - before; got != 1 {
		t.Fatalf("%d messages sent, want 1 (to the known account's verified address only)", got)
	}
	resetLinkIn(t, m, before+1, known)
	if n := m.auditCount(audit.EventPasswordResetRequest, audit.ResultSuccess); n != 1 {
		t.Errorf("%d successful reset requests audited, want 1", n)
	}
	if n := m.auditCount(audit.EventPasswordResetRequest, audit.ResultFailure); n != 2 {
		t.Errorf("%d refused reset requests audited, want 2 (unknown, unverified)", n)
	}
}

// runResetWithTOTP: a person with TOTP must give a code before the new password counts;
// wrong codes are limited; then sessions end, devices are forgotten, other links die.
func runResetWithTOTP(t *testing.T, m *mfaEnv) {
	email := "totp-reset@example.com"
	u := m.createUser(email, password)
	// An existing session (it enrols TOTP) and a remembered device.
	old := m.newBrowser()
	key := enrolTOTP(t, m.env, old, accountPage(t, m.env, old, email, nil))
	addVerifiedAddress(t, m.env, u.ID, email)
	if err := m.store.CreateDevice(t.Context(), &storage.Device{ID: "dev-1", UserID: u.ID, TokenHash: secret.Hash("device"),
		Name: "Firefox on Linux", CreatedAt: m.clock.Now(), LastUsedAt: m.clock.Now(), ExpiresAt: m.clock.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	n := m.smtp.Count()
	forgot(t, m, m.newBrowser(), email)
	forgot(t, m, m.newBrowser(), email) // a second link, which the reset must invalidate
	m.server.WaitPasswordResets()
	first, second := resetLinkIn(t, m, n+1, email), resetLinkIn(t, m, n+2, email)

	b := m.newBrowser()
	// Bad input is refused with the form again.
	p := b.Get(first)
	f := p.Hidden()
	f.Set("password", newPassword)
	f.Set("confirm", newPassword+"x")
	if bad := b.Post(m.issuer+"/password/reset", f); bad.Status != http.StatusBadRequest || !strings.Contains(bad.Body, "not the same") {
		t.Fatalf("mismatched passwords: status %d\n%.600s", bad.Status, bad.Body)
	}
	// Without the CSRF token nothing happens.
	f.Set("confirm", newPassword)
	f.Del("csrf")
	if bad := b.Post(m.issuer+"/password/reset", f); bad.Status != http.StatusForbidden {
		t.Fatalf("no CSRF token: status %d", bad.Status)
	}

	p = postNewPassword(t, b, first, newPassword)
	if !isResetMFA(p) || !strings.Contains(p.Body, "Authenticator app") {
		t.Fatalf("no second-factor page after the new password (status %d):\n%.800s", p.Status, p.Body)
	}
	// Pending: the old password still works, the new one does not.
	if !passwordWorks(t, m.env, m.app, email, password) || passwordWorks(t, m.env, m.app, email, newPassword) {
		t.Fatal("the new password counted before the second factor was passed")
	}
	// Wrong codes are limited like at sign-in (5, then a back-off).
	for i := range 5 {
		if p = answerResetMFA(b, p, "000000"); p.Status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: status %d\n%.600s", i+1, p.Status, p.Body)
		}
	}
	right := rfc6238(key, m.clock.Now(), 6)
	if p = answerResetMFA(b, p, right); p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many failed attempts") {
		t.Fatalf("right code after 5 wrong ones: status %d, want 429\n%.600s", p.Status, p.Body)
	}
	if passwordWorks(t, m.env, m.app, email, newPassword) {
		t.Fatal("the new password counted without the second factor")
	}
	if n := m.auditCount(audit.EventPasswordResetFailure, audit.ResultFailure); n < 6 {
		t.Errorf("%d reset failures audited, want at least 6", n)
	}

	m.clock.Advance(2 * time.Minute) // past the back-off, within the link's 15 minutes
	if p = answerResetMFA(b, p, rfc6238(key, m.clock.Now(), 6)); p.Status != http.StatusOK || !strings.Contains(p.Body, "Password changed") {
		t.Fatalf("right code: status %d\n%.800s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, `href="/login?id=`) {
		t.Errorf("the done page does not lead back to the sign-in the person came from:\n%.600s", p.Body)
	}
	if passwordWorks(t, m.env, m.app, email, password) || !passwordWorks(t, m.env, m.app, email, newPassword) {
		t.Fatal("after the reset the old password works or the new one does not")
	}
	// The old session is over.
	if p := old.Get(m.issuer + "/account/security"); !p.IsLogin() {
		t.Fatalf("the session from before the reset still works (status %d)", p.Status)
	}
	// Remembered devices are forgotten.
	if ds, err := m.store.ListUserDevices(t.Context(), u.ID); err != nil || len(ds) != 0 {
		t.Fatalf("devices after the reset: %v %v", ds, err)
	}
	// Both links are used up.
	for _, link := range []string{first, second} {
		if p := m.newBrowser().Get(link); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Reset link not valid") {
			t.Fatalf("link after the reset: status %d\n%.400s", p.Status, p.Body)
		}
	}
	// The person is told.
	if notice := m.smtp.Last(t, n+3); !strings.Contains(notice.Data, "your password was changed") || notice.To[0] != email {
		t.Fatalf("no notice of the change:\n%s", notice.Data)
	}
	if n := m.auditCount(audit.EventPasswordResetComplete, audit.ResultSuccess); n != 1 {
		t.Errorf("%d completed resets audited, want 1", n)
	}
}

// runResetConcurrent: N browsers post a new password with one link at once; exactly one
// wins. The person's only verified address is removed after the link was sent, so the
// link alone guards the reset (no second factor to pass).
func runResetConcurrent(t *testing.T, m *mfaEnv) {
	email := "race@example.com"
	u := m.createUser(email, password)
	addVerifiedAddress(t, m.env, u.ID, email)
	n := m.smtp.Count()
	forgot(t, m, m.newBrowser(), email)
	m.server.WaitPasswordResets()
	link := resetLinkIn(t, m, n+1, email)
	if _, err := m.store.DeleteUserFactors(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}

	const racers = 8
	forms := make([]url.Values, racers)
	browsers := make([]*browser, racers)
	for i := range racers {
		browsers[i] = m.newBrowser()
		forms[i] = browsers[i].Get(link).Hidden()
		forms[i].Set("password", newPassword+string(rune('a'+i)))
		forms[i].Set("confirm", newPassword+string(rune('a'+i)))
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		wins  []int
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			p := browsers[i].Post(m.issuer+"/password/reset", forms[i])
			switch {
			case p.Status == http.StatusOK && strings.Contains(p.Body, "Password changed"):
				mu.Lock()
				wins = append(wins, i)
				mu.Unlock()
			case p.Status == http.StatusBadRequest && strings.Contains(p.Body, "Reset link not valid"):
			default:
				t.Errorf("racer %d: status %d\n%.300s", i, p.Status, p.Body)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d concurrent redemptions of one link won, want exactly 1", len(wins))
	}
	if !passwordWorks(t, m.env, m.app, email, newPassword+string(rune('a'+wins[0]))) {
		t.Fatal("the winner's password does not work")
	}
}

// runResetExpiry: a link older than 15 minutes shows the readable invalid-link page and
// changes nothing.
func runResetExpiry(t *testing.T, m *mfaEnv) {
	email := "late@example.com"
	u := m.createUser(email, password)
	addVerifiedAddress(t, m.env, u.ID, email)
	n := m.smtp.Count()
	forgot(t, m, m.newBrowser(), email)
	m.server.WaitPasswordResets()
	link := resetLinkIn(t, m, n+1, email)
	b := m.newBrowser()
	f := b.Get(link).Hidden()
	m.clock.Advance(idp.ResetLinkLifetime + time.Second)
	for _, p := range []page{b.Get(link), func() page {
		f.Set("password", newPassword)
		f.Set("confirm", newPassword)
		return b.Post(m.issuer+"/password/reset", f)
	}()} {
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "has expired") || !strings.Contains(p.Body, "<h1>Reset link not valid</h1>") {
			t.Fatalf("expired link: status %d\n%.600s", p.Status, p.Body)
		}
	}
	if !passwordWorks(t, m.env, m.app, email, password) {
		t.Fatal("an expired link changed the password")
	}
	// A made-up token gets the same page.
	if p := b.Get(m.issuer + "/password/reset?token=" + idptest.RandString()); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Reset link not valid") {
		t.Fatalf("unknown link: status %d", p.Status)
	}
}

// runResetStalePending: two windows post different passwords with one link; the
// second-factor page of the first is then stale and changes nothing, and the second
// completes with an e-mail code (the factor of a person whose only method is e-mail).
func runResetStalePending(t *testing.T, m *mfaEnv) {
	email := "two-windows@example.com"
	u := m.createUser(email, password)
	addVerifiedAddress(t, m.env, u.ID, email)
	n := m.smtp.Count()
	forgot(t, m, m.newBrowser(), email)
	m.server.WaitPasswordResets()
	link := resetLinkIn(t, m, n+1, email)

	first, second := m.newBrowser(), m.newBrowser()
	p1 := postNewPassword(t, first, link, newPassword+"1")
	p2 := postNewPassword(t, second, link, newPassword+"2")
	if !isResetMFA(p1) || !isResetMFA(p2) || !strings.Contains(p2.Body, "Send code") {
		t.Fatalf("no e-mail second-factor page (status %d, %d):\n%.600s", p1.Status, p2.Status, p2.Body)
	}
	if stale := first.Post(m.issuer+"/password/reset/mfa/send", p1.Hidden()); stale.Status != http.StatusConflict || !strings.Contains(stale.Body, "Start again") {
		t.Fatalf("second-factor page of a replaced password: status %d\n%.500s", stale.Status, stale.Body)
	}
	p2 = second.Post(m.issuer+"/password/reset/mfa/send", p2.Hidden())
	code := idptest.Code(t, m.smtp.Last(t, n+2).Data)
	if p := answerResetMFA(second, p2, code); p.Status != http.StatusOK || !strings.Contains(p.Body, "Password changed") {
		t.Fatalf("e-mail code: status %d\n%.600s", p.Status, p.Body)
	}
	if !passwordWorks(t, m.env, m.app, email, newPassword+"2") || passwordWorks(t, m.env, m.app, email, newPassword+"1") {
		t.Fatal("the replaced password took effect, or the newer one did not")
	}
}

// runResetUnaudited: a reset whose completion event cannot be written does not happen:
// the old password still works and the new one does not.
func runResetUnaudited(t *testing.T, m *mfaEnv, st *auditSwitchStore) {
	email := "unaudited@example.com"
	u := m.createUser(email, password)
	addVerifiedAddress(t, m.env, u.ID, email)
	n := m.smtp.Count()
	forgot(t, m, m.newBrowser(), email)
	m.server.WaitPasswordResets()
	link := resetLinkIn(t, m, n+1, email)
	b := m.newBrowser()
	p := postNewPassword(t, b, link, newPassword)
	if !isResetMFA(p) {
		t.Fatalf("no second-factor page (status %d):\n%.600s", p.Status, p.Body)
	}
	p = b.Post(m.issuer+"/password/reset/mfa/send", p.Hidden())
	code := idptest.Code(t, m.smtp.Last(t, n+2).Data)
	st.failType.Store(audit.EventPasswordResetComplete) // the factor's check is audited; the completion is not
	st.failAudit.Store(true)
	done := answerResetMFA(b, p, code)
	st.failAudit.Store(false)
	st.failType.Store("")
	if done.Status != http.StatusInternalServerError {
		t.Fatalf("an unaudited reset answered %d, want 500:\n%.600s", done.Status, done.Body)
	}
	if passwordWorks(t, m.env, m.app, email, newPassword) || !passwordWorks(t, m.env, m.app, email, password) {
		t.Fatal("an unaudited reset changed the password")
	}
}

// TestPasswordResetRateLimits: requests are limited per address typed (per account) and
// per source address, the same for addresses with and without an account.
func TestPasswordResetRateLimits(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t), func(c *idp.Config) {
				c.MFA.SendLimits = idp.SendLimits{PerDestinationHour: 2, PerDestinationDay: 3, PerAddressHour: 4, PerAddressDay: 5}
				c.LoginLimits.PerIP = 3
			})
			email := "limited@example.com"
			u := m.createUser(email, password)
			addVerifiedAddress(t, m.env, u.ID, email)
			n := m.smtp.Count()
			for _, tc := range []struct {
				addr   string
				status int
			}{
				{email, http.StatusOK}, {email, http.StatusOK}, {email, http.StatusTooManyRequests}, // per account
				{"ghost@example.com", http.StatusOK}, {"ghost@example.com", http.StatusOK}, {"ghost@example.com", http.StatusTooManyRequests},
				{"other@example.com", http.StatusTooManyRequests}, // per source address: 4 per hour
			} {
				p := forgot(t, m, m.newBrowser(), tc.addr)
				if p.Status != tc.status {
					t.Fatalf("request for %s: status %d, want %d\n%.500s", tc.addr, p.Status, tc.status, p.Body)
				}
				if tc.status == http.StatusTooManyRequests && !strings.Contains(p.Body, "Too many reset requests") {
					t.Fatalf("limited request: no explanation\n%.500s", p.Body)
				}
			}
			m.server.WaitPasswordResets()
			if got := m.smtp.Count() - n; got != 2 {
				t.Fatalf("%d links sent, want 2", got)
			}
			// Reset requests never use up the person's sign-in codes.
			if n := m.auditCount(audit.EventMFACodeLimited, ""); n != 0 {
				t.Errorf("%d sign-in code sends refused, want 0", n)
			}
			link := resetLinkIn(t, m, n+1, email)
			// Guessing link tokens is limited per source address (here 3 per window);
			// then even the right link is refused unchecked, and it was not used up.
			b := m.newBrowser()
			for i := range 3 {
				if p := b.Get(m.issuer + "/password/reset?token=" + idptest.RandString()); p.Status != http.StatusBadRequest {
					t.Fatalf("guess %d: status %d", i+1, p.Status)
				}
			}
			if p := b.Get(link); p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many") {
				t.Fatalf("link after 3 wrong guesses: status %d, want 429\n%.400s", p.Status, p.Body)
			}
			m.clock.Advance(16 * time.Minute) // the guessing window, and the link, have passed
			if p := b.Get(link); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "has expired") {
				t.Fatalf("link after the window: status %d\n%.400s", p.Status, p.Body)
			}
		})
	}
}

// TestPasswordResetScreenshot runs the reset in Chromium: the link on the sign-in page,
// the request, the link from the mail, the new-password form (screenshot
// password-reset) and the second factor before it takes effect.
func TestPasswordResetScreenshot(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "chrome-reset@example.com"
	u := m.createUser(email, password)
	addVerifiedAddress(t, m.env, u.ID, email)
	ctx := idptest.NewChrome(t)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, ch := pkce()
	n := m.smtp.Count()
	run("open the sign-in page", chromedp.Navigate(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})),
		chromedp.WaitVisible(chromedp.CSS(`a[href^="/password/forgot"]`)))
	run("ask for a link", chromedp.Click(chromedp.CSS(`a[href^="/password/forgot"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/password/forgot"] #email`)),
		// Loaded before the click: chromedp clicks at the button's position, which the
		// stylesheet may still move while the page loads.
		chromedp.Poll[chromedp.Void](`document.readyState === "complete"`),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.Click(chromedp.CSS(`form[action="/password/forgot"] button[type="submit"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/password/forgot"]`)))
	if !strings.Contains(text(), "Check your e-mail") {
		t.Fatalf("after the request:\n%s", text())
	}
	m.server.WaitPasswordResets()
	link := resetLinkIn(t, m, n+1, email)
	run("open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#confirm")),
		chromedp.SendKeys(chromedp.CSS("#password"), newPassword),
		chromedp.SendKeys(chromedp.CSS("#confirm"), newPassword))
	saveScreenshot(ctx, t, "password-reset")
	run("set the password", chromedp.Click(chromedp.CSS(`form[action="/password/reset"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/password/reset/mfa/send"]`)))
	if !strings.Contains(text(), "Verify it's you") {
		t.Fatalf("no second factor asked for:\n%s", text())
	}
	if passwordWorks(t, m.env, m.app, email, newPassword) {
		t.Fatal("the new password counted before the second factor")
	}
}
