package idp_test

// Attacks on the MFA promise, replayed against the running provider (issue 7). Each
// test is the attack as it was reproduced, and asserts that it no longer gets through.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// noAuthorizeLimit lifts the per-address limit on new sign-ins, so that a test can
// prepare many sign-ins from 127.0.0.1.
func noAuthorizeLimit(c *idp.Config) { c.AuthorizeLimits.PerIP = 100000 }

// postForm posts form with client c and returns the status; safe in any goroutine.
func postForm(c *http.Client, u string, form url.Values) (int, error) {
	resp, err := c.PostForm(u, form)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// raceStatuses runs fn(0) … fn(n-1) in n goroutines released together and returns the
// statuses they got.
func raceStatuses(t *testing.T, n int, fn func(i int) (int, error)) []int {
	t.Helper()
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			st, err := fn(i)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			out[i] = st
		})
	}
	close(start)
	wg.Wait()
	return out
}

// auditReasons counts the events of type typ and user whose reason contains want.
func auditReasons(t *testing.T, st storage.Storage, userID, typ, want string) int {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), storage.AuditFilter{UserID: userID, Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if strings.Contains(e.Reason, want) {
			n++
		}
	}
	return n
}

// from makes every request of b appear, through the trusted proxy at 127.0.0.1, to come
// from addr.
func from(b *browser, addr string) *browser {
	b.Client.Transport = forwardingTransport{client: addr, next: http.DefaultTransport}
	return b
}

// TestAttackConcurrentPasswordGuesses: 40 concurrent wrong passwords for one account,
// spread over two provider instances on one database. Before, all 40 were checked (the
// limit is 5). Now at most 5 are, and the rest are refused without a check.
func TestAttackConcurrentPasswordGuesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			s1, s2 := be.open(t)
			a := newEnv(t, s1, noAuthorizeLimit)
			b := newEnv(t, s2, noAuthorizeLimit, func(c *idp.Config) { c.Sealer = a.sealer; c.Now = a.clock.Now })
			app := a.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			victim := a.createUser("victim@example.com", password)

			const n = 40
			clients := make([]*http.Client, n)
			forms := make([]url.Values, n)
			for i := range n {
				br := a.newBrowser()
				_, ch := pkce()
				p := br.Get(a.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
				if !p.IsLogin() {
					t.Fatalf("no sign-in page (status %d)", p.Status)
				}
				f := p.Hidden()
				f.Set("email", victim.Email)
				f.Set("password", fmt.Sprintf("guess-%d", i))
				clients[i], forms[i] = br.Client, f
			}
			statuses := raceStatuses(t, n, func(i int) (int, error) {
				issuer := a.issuer
				if i%2 == 1 {
					issuer = b.issuer
				}
				return postForm(clients[i], issuer+"/login", forms[i])
			})
			checked := auditReasons(t, s1, victim.ID, audit.EventLoginPassword, "wrong password")
			refused := 0
			for _, st := range statuses {
				if st == http.StatusTooManyRequests {
					refused++
				}
			}
			t.Logf("%d concurrent wrong passwords: %d checked, %d refused unchecked (%s)", n, checked, refused, reasonSummary(t, s1, victim.ID))
			if checked < 1 || checked > 5 {
				t.Fatalf("%d passwords checked, want 1..5", checked)
			}
			if checked+refused != n {
				t.Fatalf("checked %d + refused %d != %d (statuses %v)", checked, refused, n, statuses)
			}
		})
	}
}

// TestAttackConcurrentTOTPGuesses: someone with the password sends 60 concurrent wrong
// TOTP codes for one sign-in, half to each of two provider instances. Before, 18 (two
// processes) or all 40 (one) were checked. Now at most 5 are, and the right code is
// refused afterwards too.
func TestAttackConcurrentTOTPGuesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			s1, s2 := be.open(t)
			m := newMFAEnv(t, s1)
			second := newEnv(t, s2, func(c *idp.Config) { c.Sealer = m.sealer; c.Now = m.clock.Now })
			email := "totp-victim@example.com"
			m.createUser(email, password)
			owner := m.newBrowser()
			key := enrolTOTP(t, m.env, owner, accountPage(t, m.env, owner, email, nil))
			m.clock.Advance(30 * time.Second)

			br, p := startMFALogin(t, m.env, m.app, email)
			form := p.Hidden()
			right := rfc6238(key, m.clock.Now(), 6)
			wrong := "000000"
			if wrong == right {
				wrong = "000001"
			}
			form.Set("code", wrong)
			const n = 60
			raceStatuses(t, n, func(i int) (int, error) {
				issuer := m.issuer
				if i%2 == 1 {
					issuer = second.issuer
				}
				return postForm(br.Client, issuer+"/login/mfa", form)
			})
			id := m.userID(email)
			checked := auditReasons(t, s1, id, audit.EventMFAVerify, "invalid code")
			locked := auditReasons(t, s1, id, audit.EventMFAVerify, "locked")
			t.Logf("%d concurrent wrong codes: %d checked, %d refused unchecked", n, checked, locked)
			if checked < 1 || checked > 5 {
				t.Fatalf("%d codes checked, want 1..5", checked)
			}
			if checked+locked != n {
				t.Fatalf("checked %d + refused %d != %d", checked, locked, n)
			}
			if p = answerMFA(br, m.env, p, right); p.Location != "" || !strings.Contains(p.Body, "Try again after") {
				t.Fatalf("right code accepted after the attack (status %d)", p.Status)
			}
		})
	}
}

// TestAttackLockoutAsAWeapon: an attacker elsewhere fails the password and, knowing it,
// the second factor, from many addresses, past every account-wide ceiling. The owner
// still signs in from the browser they used before; a new browser is held back.
func TestAttackLockoutAsAWeapon(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t), noAuthorizeLimit, func(c *idp.Config) {
				proxies, err := idp.ParseTrustedProxies("127.0.0.1/32")
				if err != nil {
					t.Fatal(err)
				}
				c.TrustedProxies = proxies
				c.LoginLimits.AccountBackoffAfter = 6
				c.MFA.Limits.AccountBackoffAfter = 4
				c.MFA.Limits.MaxFailures = 8
			})
			email := "owner@example.com"
			m.createUser(email, password)
			owner := from(m.newBrowser(), "198.51.100.7")
			key := enrolTOTP(t, m.env, owner, accountPage(t, m.env, owner, email, nil))
			m.clock.Advance(30 * time.Second)
			// The owner's browser completes a sign-in (password and app): it is now known.
			// Then the owner signs out, so every later sign-in there needs both factors.
			loginIn := func(b *browser, pw string) page {
				_, ch := pkce()
				return b.Login(b.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, pw)
			}
			_, ch := pkce()
			if p := owner.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})); p.Location == "" {
				t.Fatalf("owner's sign-in to the app failed (status %d)", p.Status)
			}
			signOut(t, m.env, owner)

			// Wrong passwords from 10 addresses, 2 each: past the account-wide back-off.
			for i := range 10 {
				attacker := from(m.newBrowser(), fmt.Sprintf("203.0.113.%d", i+1))
				for range 2 {
					if p := loginIn(attacker, "not-the-password"); p.Status != http.StatusUnauthorized && p.Status != http.StatusTooManyRequests {
						t.Fatalf("attacker's guess: status %d", p.Status)
					}
				}
			}
			if p := loginIn(from(m.newBrowser(), "203.0.113.99"), password); p.Status != http.StatusTooManyRequests {
				t.Fatalf("new browser, new address, right password during the back-off: status %d, want 429", p.Status)
			}
			m.clock.Advance(30 * time.Second)
			p := loginIn(owner, password)
			if !isMFA(p) {
				t.Fatalf("owner locked out of the password step from a known browser (status %d)\n%.300s", p.Status, p.Body)
			}
			if p = answerMFA(owner, m.env, p, rfc6238(key, m.clock.Now(), 6)); p.Location == "" {
				t.Fatalf("owner's sign-in during the attack failed (status %d)", p.Status)
			}
			signOut(t, m.env, owner)

			// Later, second-factor failures up to the permanent lock, from many addresses
			// that all know the password (one try each, waiting out the back-off between).
			m.clock.Advance(2 * time.Hour)
			for i := range 10 {
				attacker := from(m.newBrowser(), fmt.Sprintf("192.0.2.%d", i+1))
				if ap := loginIn(attacker, password); isMFA(ap) {
					answerMFA(attacker, m.env, ap, "000000")
				}
				m.clock.Advance(time.Hour)
			}
			id := m.userID(email)
			if auditReasons(t, m.store, id, audit.EventMFALockout, "an administrator must unlock it") == 0 {
				t.Fatalf("the account-wide second-factor ceiling was never reached: %s", reasonSummary(t, m.store, id))
			}
			stranger := from(m.newBrowser(), "192.0.2.200")
			if sp := loginIn(stranger, password); !isMFA(sp) {
				t.Fatalf("new browser: no second-factor page (status %d)", sp.Status)
			} else if sp = answerMFA(stranger, m.env, sp, rfc6238(key, m.clock.Now(), 6)); sp.Location != "" || !strings.Contains(sp.Body, "locked") {
				t.Fatalf("new browser passed the permanently locked second factor (status %d)", sp.Status)
			}
			m.clock.Advance(30 * time.Second)
			if p = loginIn(owner, password); !isMFA(p) {
				t.Fatalf("owner: no second-factor page (status %d)", p.Status)
			}
			if p = answerMFA(owner, m.env, p, rfc6238(key, m.clock.Now(), 6)); p.Location == "" {
				t.Fatalf("owner locked out of the second factor from a known browser (status %d)\n%.300s", p.Status, p.Body)
			}
			// The owner's success ended the account's consecutive failures everywhere.
			m.clock.Advance(30 * time.Second)
			later := from(m.newBrowser(), "192.0.2.201")
			if lp := loginIn(later, password); !isMFA(lp) {
				t.Fatalf("after the owner's success: no second-factor page (status %d)", lp.Status)
			} else if lp = answerMFA(later, m.env, lp, rfc6238(key, m.clock.Now(), 6)); lp.Location == "" {
				t.Fatalf("the permanent lock outlived the owner's success (status %d)", lp.Status)
			}
		})
	}
}

// TestAttackSelfServiceBypass: with only the password, sign in at a client whose policy
// is "off" and that may ask for scope "account", then enrol the attacker's own
// authenticator through the self-service API. Before: {"confirmed":true}, and MFA
// clients accepted the attacker. Now: refused without proof of an existing factor.
func TestAttackSelfServiceBypass(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t))
			email := "bypass@example.com"
			m.createUser(email, password)
			owner := m.newBrowser()
			key := enrolTOTP(t, m.env, owner, accountPage(t, m.env, owner, email, nil))
			id := m.userID(email)
			legacy := m.createClient(admin.NewClient{Name: "Legacy", RedirectURIs: []string{"https://legacy.example.com/cb"}, SkipConsent: true,
				Scopes: []string{"openid", "account"}})
			m.setPolicy(legacy, storage.MFAPolicy{MFA: "off"})

			attacker := m.newBrowser()
			v, ch := pkce()
			p := attacker.Login(attacker.Get(m.authURL(legacy, url.Values{"scope": {"openid account"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
			tr := m.tokenRequest(legacy, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
				"redirect_uri": {legacy.RedirectURI}, "code_verifier": {v}})
			if tr.AccessToken == "" {
				t.Fatalf("no token for the password-only sign-in: %+v", tr)
			}
			before, _ := m.store.ListFactors(context.Background(), id)

			st, out := apiCall(t, m.env, tr.AccessToken, "POST", "/api/v1/me/mfa/totp", map[string]any{})
			if st != http.StatusBadRequest || out["error"] != "verification_required" {
				t.Fatalf("enrolment with a password-only token: %d %v", st, out)
			}
			if st, out = apiCall(t, m.env, tr.AccessToken, "POST", "/api/v1/me/mfa/totp/verify", map[string]any{"code": "123456"}); st != http.StatusNotFound {
				t.Fatalf("confirm without a started enrolment: %d %v", st, out)
			}
			after, _ := m.store.ListFactors(context.Background(), id)
			if len(after) != len(before) {
				t.Fatalf("factors changed by the refused calls: %d → %d", len(before), len(after))
			}
			if auditReasons(t, m.store, id, audit.EventMFAEnrollStart, "refused") == 0 {
				t.Fatal("refused enrolment not audited")
			}

			// With proof of the existing factor, the same token may add one; the person
			// hears of it.
			m.clock.Advance(30 * time.Second)
			var totpID string
			for _, f := range before {
				if f.Kind == "totp" {
					totpID = f.ID
				}
			}
			mails := m.smtp.Count()
			st, out = apiCall(t, m.env, tr.AccessToken, "POST", "/api/v1/me/mfa/totp", map[string]any{
				"verification": map[string]any{"factor_id": totpID, "code": rfc6238(key, m.clock.Now(), 6)}})
			if st != http.StatusCreated {
				t.Fatalf("enrolment with proof: %d %v", st, out)
			}
			newKey := totpKey(t, out["secret"].(string))
			if st, out = apiCall(t, m.env, tr.AccessToken, "POST", "/api/v1/me/mfa/totp/verify", map[string]any{"code": rfc6238(newKey, m.clock.Now(), 6)}); st != http.StatusOK {
				t.Fatalf("confirm with proof: %d %v", st, out)
			}
			if notice := m.smtp.Last(t, mails+1); len(notice.To) != 1 || notice.To[0] != email || !strings.Contains(notice.Data, "was added to your") {
				t.Fatalf("addition not announced: %v %.300s", notice.To, notice.Data)
			}

			// A token from a session whose second factor is fresh needs no verification —
			// for ten minutes.
			m.clock.Advance(30 * time.Second)
			full := m.createClient(admin.NewClient{Name: "Full", RedirectURIs: []string{"https://full.example.com/cb"}, SkipConsent: true,
				Scopes: []string{"openid", "account"}})
			fb := m.newBrowser()
			v, ch = pkce()
			p = fb.Login(fb.Get(m.authURL(full, url.Values{"scope": {"openid account"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
			if !isMFA(p) {
				t.Fatalf("no second-factor page (status %d)", p.Status)
			}
			f := p.Hidden()
			f.Set("factor", totpID) // the owner's app, not the one just added
			f.Set("code", rfc6238(key, m.clock.Now(), 6))
			p = fb.Post(m.issuer+"/login/mfa", f)
			ftr := m.tokenRequest(full, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
				"redirect_uri": {full.RedirectURI}, "code_verifier": {v}})
			if st, out = apiCall(t, m.env, ftr.AccessToken, "POST", "/api/v1/me/mfa/totp", map[string]any{}); st != http.StatusCreated {
				t.Fatalf("enrolment from a fresh second-factor session: %d %v", st, out)
			}
			m.clock.Advance(11 * time.Minute)
			if st, out = apiCall(t, m.env, ftr.AccessToken, "POST", "/api/v1/me/mfa/totp", map[string]any{}); st != http.StatusBadRequest || out["error"] != "verification_required" {
				t.Fatalf("enrolment eleven minutes after the second factor: %d %v", st, out)
			}
		})
	}
}

// TestAttackAccountPageAddNeedsFreshSecondFactor: the account page's add-a-method form,
// from a session whose second factor is older than ten minutes, asks for a fresh sign-in
// and creates nothing; right after one, it works.
func TestAttackAccountPageAddNeedsFreshSecondFactor(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "page@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	id := m.userID(email)
	m.clock.Advance(11 * time.Minute)
	p := b.Get(m.issuer + "/account/security")
	before, _ := m.store.ListFactors(context.Background(), id)
	p = enroll(b, m.env, p, "totp", nil)
	if !p.IsLogin() {
		t.Fatalf("adding a method with a stale second factor did not ask for a fresh sign-in (status %d)\n%.400s", p.Status, p.Body)
	}
	if after, _ := m.store.ListFactors(context.Background(), id); len(after) != len(before) {
		t.Fatalf("a factor was created: %d → %d", len(before), len(after))
	}
	p = b.Login(p, email, password)
	if !isMFA(p) {
		t.Fatalf("fresh sign-in did not ask for the second factor (status %d)", p.Status)
	}
	p = answerMFA(b, m.env, p, rfc6238(key, m.clock.Now(), 6))
	if p = enroll(b, m.env, p, "totp", nil); !strings.Contains(p.Body, `id="totp-secret"`) {
		t.Fatalf("adding right after a fresh sign-in refused (status %d)\n%.400s", p.Status, p.Body)
	}
}

// TestRemovingTheLastRequiredFactorIsRefused: a person whose account type requires MFA
// cannot remove their last factor that counts (API and page); it stays, and the refusal
// is audited.
func TestRemovingTheLastRequiredFactorIsRefused(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	ctx := context.Background()
	email := "staff@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	id := m.userID(email)
	if _, err := m.admin.SetTypePolicy(ctx, "test", "staff", storage.MFAPolicy{MFA: "required"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.admin.SetUserType(ctx, "test", email, "staff"); err != nil {
		t.Fatal(err)
	}
	fs, _ := m.store.ListFactors(ctx, id)
	p := b.Get(m.issuer + "/account/security")
	p = b.Post(m.issuer+"/account/security/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}, "factor": {fs[0].ID}})
	if p.Status != http.StatusConflict || !strings.Contains(p.Body, "your account must keep one") {
		t.Fatalf("removing the last required factor: status %d\n%.400s", p.Status, p.Body)
	}
	if _, err := m.store.GetFactor(ctx, fs[0].ID); err != nil {
		t.Fatalf("factor gone: %v", err)
	}
	if auditReasons(t, m.store, id, audit.EventMFARemove, "refused") != 1 {
		t.Fatal("refusal not audited")
	}
	_ = key
}

// TestAttackSessionFixation: the session cookie a browser has before its second factor
// (or before enrolling one) is worthless afterwards: the value changes and the old one
// no longer signs anyone in.
func TestAttackSessionFixation(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "fixed@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)
	sessionValue := func(b *browser) string {
		u, _ := url.Parse(m.issuer)
		for _, c := range b.Client.Jar.Cookies(u) {
			if c.Name == "idp_session" {
				return c.Value
			}
		}
		t.Fatal("no session cookie")
		return ""
	}
	preEnrol := sessionValue(b)
	key := enrolTOTP(t, m.env, b, p)
	if sessionValue(b) == preEnrol {
		t.Fatal("session cookie not rotated when a factor was enrolled")
	}

	m.clock.Advance(30 * time.Second)
	nb, p := startMFALogin(t, m.env, m.app, email)
	prePMFA := sessionValue(nb)
	if p = answerMFA(nb, m.env, p, rfc6238(key, m.clock.Now(), 6)); p.Location == "" {
		t.Fatalf("second factor refused (status %d)", p.Status)
	}
	if sessionValue(nb) == prePMFA {
		t.Fatal("session cookie not rotated when the second factor was verified")
	}
	// A browser holding the pre-MFA value (planted or stolen) is not signed in.
	planted := m.newBrowser()
	u, _ := url.Parse(m.issuer)
	for _, old := range []string{preEnrol, prePMFA} {
		planted.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "idp_session", Value: old, Path: "/"}})
		_, ch := pkce()
		got := planted.Get(m.authURL(m.app, url.Values{"prompt": {"none"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		if e := got.RedirectParams(t).Get("error"); e != "login_required" {
			t.Fatalf("old session cookie still signs in: error %q", e)
		}
	}
}

// TestAttackAccountMessageInjection: /account/security?msg=... showed any text on the
// provider's own page. Now only notices named by code appear.
func TestAttackAccountMessageInjection(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	email := "msg@example.com"
	e.createUser(email, password)
	b := e.newBrowser()
	accountPage(t, e, b, email, nil)
	lure := "Your account is compromised. Call +1 555 0100 now"
	p := b.Get(e.issuer + "/account/security?msg=" + url.QueryEscape(lure))
	if p.Status != http.StatusOK || strings.Contains(p.Body, "compromised") {
		t.Fatalf("attacker text shown on the account page (status %d)", p.Status)
	}
	if p = b.Get(e.issuer + "/account/security?msg=removed"); !strings.Contains(p.Body, "Sign-in method removed.") {
		t.Fatal("a notice named by its code is not shown")
	}
}

// TestAnonymousAccountVisitsWriteNothing: anonymous GET /account/security stored an auth
// request each time. Now the sign-in form is shown without storing anything, and the
// request is stored when a password is posted.
func TestAnonymousAccountVisitsWriteNothing(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	email := "visit@example.com"
	e.createUser(email, password)
	far := e.clock.Now().Add(10 * 365 * 24 * time.Hour)
	if _, err := e.store.DeleteExpired(ctx, far); err != nil {
		t.Fatal(err)
	}
	var b *browser
	var p page
	for range 20 {
		b = e.newBrowser()
		if p = b.Get(e.issuer + "/account/security?x=1"); !p.IsLogin() {
			t.Fatalf("anonymous visit: no sign-in form (status %d)", p.Status)
		}
	}
	if n, err := e.store.DeleteExpired(ctx, far); err != nil || n != 0 {
		t.Fatalf("20 anonymous visits stored %d rows (%v)", n, err)
	}
	// The same form still signs in.
	if p = b.Login(p, email, password); !strings.Contains(p.Body, "Account security") {
		t.Fatalf("sign-in from the unstored form failed (status %d)\n%.400s", p.Status, p.Body)
	}
}

// TestSMSPumpingLimits: codes per destination and per source address are bounded, on
// top of the per-account limit; refusals are audited and send nothing.
func TestSMSPumpingLimits(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t), func(c *idp.Config) {
		c.MFA.SendLimits = idp.SendLimits{PerDestinationHour: 2, PerDestinationDay: 3, PerAddressHour: 4, PerAddressDay: 5}
	})
	enrolSMS := func(email, phone string) page {
		b := m.newBrowser()
		if _, err := m.store.GetUserByEmail(context.Background(), email); err != nil {
			m.createUser(email, password)
		}
		return enroll(b, m.env, accountPage(t, m.env, b, email, nil), "sms", url.Values{"phone": {phone}})
	}
	sent := func() int { return len(m.twilio.Messages()) }
	const target = "+44 7400 123456"
	for i, email := range []string{"p1@example.com", "p2@example.com"} {
		if p := enrolSMS(email, target); p.Status != http.StatusOK || sent() != i+1 {
			t.Fatalf("send %d to the target: status %d, %d sent", i+1, p.Status, sent())
		}
	}
	// A third account, the same destination: refused by the destination's hourly limit.
	if p := enrolSMS("p3@example.com", target); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Too many codes were sent") || sent() != 2 {
		t.Fatalf("third code to one destination: status %d, %d sent", p.Status, sent())
	}
	// Other destinations from the same address: two more, then the address's limit.
	for i, phone := range []string{"+44 7400 123457", "+44 7400 123458"} {
		if p := enrolSMS(fmt.Sprintf("q%d@example.com", i), phone); p.Status != http.StatusOK {
			t.Fatalf("code to %s: status %d", phone, p.Status)
		}
	}
	if p := enrolSMS("q9@example.com", "+44 7400 123459"); p.Status != http.StatusBadRequest || sent() != 4 {
		t.Fatalf("fifth code from one address: status %d, %d sent", p.Status, sent())
	}
	evs, _ := m.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventMFACodeLimited})
	var reasons []string
	for _, e := range evs {
		reasons = append(reasons, e.Reason)
	}
	if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, "destination per hour") }) ||
		!slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, "address per hour") }) {
		t.Fatalf("send refusals not audited: %v", reasons)
	}
}

// reasonSummary counts the audit reasons of a user's events, for the test log.
func reasonSummary(t *testing.T, st storage.Storage, userID string) string {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), storage.AuditFilter{UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Type+": "+e.Reason]++
	}
	return fmt.Sprint(counts)
}
