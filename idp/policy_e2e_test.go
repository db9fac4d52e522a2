package idp_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// setPolicy stores a client's MFA policy.
func (e *env) setPolicy(c testClient, p storage.MFAPolicy) {
	e.t.Helper()
	stored, err := e.store.GetClient(context.Background(), c.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	stored.Policy = p
	if err := e.store.UpdateClient(context.Background(), stored); err != nil {
		e.t.Fatal(err)
	}
}

// flow starts an authorization request in b and returns the first page plus the verifier.
func flow(t *testing.T, e *env, b *browser, c testClient, extra url.Values) (page, string) {
	t.Helper()
	v, ch := pkce()
	q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
	for k, vv := range extra {
		q[k] = vv
	}
	return b.Get(e.authURL(c, q)), v
}

// finishFlow exchanges the code on p and returns the verified ID-token claims.
func finishFlow(t *testing.T, e *env, c testClient, p page, verifier string) map[string]any {
	t.Helper()
	code := p.RedirectParams(t).Get("code")
	if code == "" {
		t.Fatalf("no code: %s", p.Location)
	}
	tr := e.tokenRequest(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}})
	if tr.IDToken == "" {
		t.Fatalf("exchange: %+v", tr)
	}
	return verifyWithJWKS(t, e, tr.IDToken, c.ID)
}

func TestPolicyEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t))
			email := "policy@example.com"
			m.createUser(email, password)
			b := m.newBrowser()
			key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
			code := func() string {
				m.clock.Advance(30 * time.Second)
				return rfc6238(key, m.clock.Now(), 6)
			}
			lax := m.createClient(admin.NewClient{Name: "Wiki", RedirectURIs: []string{"https://wiki.example.com/cb"}, SkipConsent: true})
			m.setPolicy(lax, storage.MFAPolicy{MFA: "off"})
			strict := m.createClient(admin.NewClient{Name: "Finance", RedirectURIs: []string{"https://fin.example.com/cb"}, SkipConsent: true})
			m.setPolicy(strict, storage.MFAPolicy{MFA: "required", Factors: []storage.FactorKind{"totp", "webauthn"}, MaxAge: 30 * time.Minute})

			t.Run("client A without MFA, then client B asks only for the missing factor", func(t *testing.T) {
				br := m.newBrowser()
				p, v := flow(t, m.env, br, lax, nil)
				p = br.Login(p, email, password)
				a := finishFlow(t, m.env, lax, p, v)
				wantAuth(t, a, []string{"pwd"}, consent.ACRPassword)

				p, v = flow(t, m.env, br, strict, nil)
				if p.IsLogin() || !isMFA(p) {
					t.Fatalf("client B did not go straight to the second factor (login form: %v, status %d)", p.IsLogin(), p.Status)
				}
				p = answerMFA(br, m.env, p, code())
				c := finishFlow(t, m.env, strict, p, v)
				wantAuth(t, c, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
				if c["auth_time"].(float64) <= a["auth_time"].(float64) {
					t.Fatal("auth_time did not move forward with the step-up")
				}
				// Back on client A in the same session: no prompt, and the session now has MFA.
				p, v = flow(t, m.env, br, lax, nil)
				wantAuth(t, finishFlow(t, m.env, lax, p, v), []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
				// Client B's 30-minute re-check: after 40 minutes only the factor is asked
				// again, not the password (the session is within its idle and absolute limits).
				m.clock.Advance(40 * time.Minute)
				p, v = flow(t, m.env, br, strict, nil)
				if p.IsLogin() || !isMFA(p) {
					t.Fatalf("expired second factor: login form %v, status %d", p.IsLogin(), p.Status)
				}
				p = answerMFA(br, m.env, p, code())
				finishFlow(t, m.env, strict, p, v)
			})

			t.Run("acr_values step-up", func(t *testing.T) {
				br := m.newBrowser()
				p, v := flow(t, m.env, br, lax, nil)
				finishFlow(t, m.env, lax, br.Login(p, email, password), v)
				p, v = flow(t, m.env, br, lax, url.Values{"acr_values": {consent.ACRMFA}})
				if p.IsLogin() || !isMFA(p) {
					t.Fatalf("acr_values=mfa did not ask (only) for the factor: status %d", p.Status)
				}
				wantAuth(t, finishFlow(t, m.env, lax, answerMFA(br, m.env, p, code()), v), []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
			})

			t.Run("essential acr in the claims parameter", func(t *testing.T) {
				br := m.newBrowser()
				p, v := flow(t, m.env, br, lax, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + consent.ACRMFA + `"]}}}`}})
				p = br.Login(p, email, password)
				if !isMFA(p) {
					t.Fatalf("essential acr did not ask for a second factor: status %d", p.Status)
				}
				wantAuth(t, finishFlow(t, m.env, lax, answerMFA(br, m.env, p, code()), v), []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
			})

			t.Run("an acr the provider cannot satisfy is an error, not a weaker token", func(t *testing.T) {
				br := m.newBrowser()
				p, _ := flow(t, m.env, br, lax, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["urn:example:platinum"]}}}`}})
				p = br.Login(p, email, password)
				if q := p.RedirectParams(t); q.Get("error") != "unmet_authentication_requirements" || q.Get("code") != "" {
					t.Fatalf("unknown essential acr: %v", q)
				}
				if m.auditCount(audit.EventLoginPolicy, audit.ResultFailure) == 0 {
					t.Fatal("refusal not audited")
				}
			})

			t.Run("max_age forces a fresh check of password and factor", func(t *testing.T) {
				br := m.newBrowser()
				p, v := flow(t, m.env, br, strict, nil)
				finishFlow(t, m.env, strict, answerMFA(br, m.env, br.Login(p, email, password), code()), v)
				m.clock.Advance(10 * time.Minute)
				p, v = flow(t, m.env, br, strict, url.Values{"max_age": {"300"}})
				if !p.IsLogin() {
					t.Fatalf("max_age=300 after 10 minutes did not ask for the password (status %d)", p.Status)
				}
				p = br.Login(p, email, password)
				if !isMFA(p) {
					t.Fatal("max_age did not re-check the second factor")
				}
				c := finishFlow(t, m.env, strict, answerMFA(br, m.env, p, code()), v)
				if now := float64(m.clock.Now().Unix()); now-c["auth_time"].(float64) > 5 {
					t.Fatalf("auth_time %v not fresh (now %v)", c["auth_time"], now)
				}
			})
		})
	}
}

func TestForcedEnrolmentWithGrace(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	second := newEnv(t, m.store, func(c *idp.Config) {
		c.Sealer, c.Now = m.sealer, m.clock.Now
		c.MFA.Grace = idp.GracePeriod{Logins: 1}
	})
	email := "newbie@example.com"
	m.createUser(email, password)
	app := second.createClient(admin.NewClient{Name: "Payroll", RedirectURIs: []string{"https://pay.example.com/cb"}, SkipConsent: true})
	second.setPolicy(app, storage.MFAPolicy{MFA: "required"})

	// Within the grace period: let through with the password, audited.
	b := second.newBrowser()
	p, v := flow(t, second, b, app, nil)
	wantAuth(t, finishFlow(t, second, app, b.Login(p, email, password), v), []string{"pwd"}, consent.ACRPassword)
	if second.auditCount(audit.EventMFAGrace, audit.ResultSuccess) != 1 {
		t.Fatal("grace login not audited")
	}
	// Grace used up: the login continues into enrolment and issues tokens only after it.
	b = second.newBrowser()
	p, v = flow(t, second, b, app, nil)
	p = b.Login(p, email, password)
	if p.Location != "" || !strings.Contains(p.Body, `id="enrol-required"`) {
		t.Fatalf("not sent to enrolment (status %d, location %q)", p.Status, p.Location)
	}
	key := enrolTOTP(t, second, b, p)
	p = b.Get(second.issuer + "/account/security")
	if !strings.Contains(p.Body, `id="continue"`) {
		t.Fatalf("no way back to the sign-in after enrolling:\n%.600s", p.Body)
	}
	_ = key
	href := regexpFind(t, `<a class="button" id="continue" href="([^"]+)"`, p.Body)
	p = b.Get(second.issuer + href)
	c := finishFlow(t, second, app, p, v)
	wantAuth(t, c, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
	if second.auditCount(audit.EventMFAEnrolRequired, "") != 1 {
		t.Fatal("forced enrolment not audited")
	}
}

func TestRememberedDevice(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "device@example.com"
	u := m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	app := m.createClient(admin.NewClient{Name: "Mail", RedirectURIs: []string{"https://mail.example.com/cb"}, SkipConsent: true})
	m.setPolicy(app, storage.MFAPolicy{MFA: "required", RememberDevice: 720 * time.Hour})

	br := m.newBrowser()
	p, v := flow(t, m.env, br, app, nil)
	p = br.Login(p, email, password)
	if !strings.Contains(p.Body, `name="remember"`) {
		t.Fatal("no remember-this-device choice although the policy allows it")
	}
	f := p.Hidden()
	m.clock.Advance(30 * time.Second)
	f.Set("code", rfc6238(key, m.clock.Now(), 6))
	f.Set("remember", "1")
	finishFlow(t, m.env, app, br.Post(m.issuer+"/login/mfa", f), v)

	// A new sign-in in the same browser (session gone, device cookie kept): password only.
	signOut(t, m.env, br)
	p, v = flow(t, m.env, br, app, nil)
	p = br.Login(p, email, password)
	if isMFA(p) {
		t.Fatal("remembered device still asked for the second factor")
	}
	wantAuth(t, finishFlow(t, m.env, app, p, v), []string{"pwd"}, consent.ACRPassword)
	if m.auditCount(audit.EventLoginDevice, audit.ResultSuccess) != 1 {
		t.Fatal("device skip not audited")
	}
	// Another browser is not remembered.
	other := m.newBrowser()
	p, _ = flow(t, m.env, other, app, nil)
	if p = other.Login(p, email, password); !isMFA(p) {
		t.Fatal("an unremembered browser skipped the second factor")
	}
	// An explicit acr request always asks, remembered device or not.
	p, _ = flow(t, m.env, br, app, url.Values{"acr_values": {consent.ACRMFA}, "prompt": {"login"}})
	if p = br.Login(p, email, password); !isMFA(p) {
		t.Fatal("acr_values request skipped the factor on a remembered device")
	}
	// Revoked: asks again.
	if n, err := m.server.RevokeDevices(context.Background(), u.ID, "test"); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	signOut(t, m.env, br)
	p, _ = flow(t, m.env, br, app, nil)
	if p = br.Login(p, email, password); !isMFA(p) {
		t.Fatal("revoked device still skips the second factor")
	}
}

// signOut drops the browser's SSO session cookie (as closing the browser would) but
// keeps its other cookies.
func signOut(t *testing.T, e *env, b *browser) {
	t.Helper()
	u, _ := url.Parse(e.issuer)
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "idp_session", Value: "", Path: "/", MaxAge: -1}})
}

func regexpFind(t *testing.T, pattern, s string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%q not found", pattern)
	}
	return html.UnescapeString(m[1])
}

func TestPasswordChangeForgetsDevicesAndEndsSessions(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "pw@example.com"
	u := m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	app := m.createClient(admin.NewClient{Name: "Mail", RedirectURIs: []string{"https://mail.example.com/cb"}, SkipConsent: true})
	m.setPolicy(app, storage.MFAPolicy{MFA: "required", RememberDevice: 720 * time.Hour})
	p, v := flow(t, m.env, b, app, url.Values{"prompt": {"login"}})
	p = b.Login(p, email, password)
	f := p.Hidden()
	m.clock.Advance(30 * time.Second)
	f.Set("code", rfc6238(key, m.clock.Now(), 6))
	f.Set("remember", "1")
	finishFlow(t, m.env, app, b.Post(m.issuer+"/login/mfa", f), v)
	if d, _ := m.store.ListUserDevices(context.Background(), u.ID); len(d) != 1 {
		t.Fatalf("%d devices remembered, want 1", len(d))
	}
	m.admin.EndSessions = m.server.EndUserSessions
	if err := m.admin.SetPassword(context.Background(), "test", email, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	if d, _ := m.store.ListUserDevices(context.Background(), u.ID); len(d) != 0 {
		t.Fatalf("%d devices survive the password change", len(d))
	}
	// The old session is gone, the device no longer skips the factor, the old password fails.
	p, _ = flow(t, m.env, b, app, url.Values{"prompt": {"none"}})
	if p.RedirectParams(t).Get("error") != "login_required" {
		t.Fatal("session survived the password change")
	}
	p, _ = flow(t, m.env, b, app, nil)
	if got := b.Login(p, email, password); got.Status != http.StatusUnauthorized {
		t.Fatalf("old password accepted: %d", got.Status)
	}
	p, _ = flow(t, m.env, b, app, nil)
	if got := b.Login(p, email, "a brand new passphrase"); !isMFA(got) {
		t.Fatal("forgotten device still skips the second factor")
	}
}

func TestAuditRetentionKeepsAVerifiableChain(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *idp.Config) { c.AuditRetention = time.Hour })
	e.createUser("old@example.com", password) // audited now
	e.clock.Advance(2 * time.Hour)
	e.createUser("new@example.com", password)
	e.server.ApplyAuditRetentionForTest(context.Background())
	evs, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{})
	for _, ev := range evs {
		if strings.Contains(ev.Reason, "old@example.com") {
			t.Fatal("event older than the retention survived")
		}
	}
	res, err := audit.VerifyChain(context.Background(), e.store, audit.ChainKeysOf(e.sealer))
	if err != nil || !res.Intact || res.Checked == 0 || res.Keyed != res.Checked {
		t.Fatalf("chain after retention: %+v %v", res, err)
	}
}

// TestPolicyEdgeCases pins down behaviours the documentation review found broken.
func TestPolicyEdgeCases(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	graced := newEnv(t, m.store, func(c *idp.Config) {
		c.Sealer, c.Now = m.sealer, m.clock.Now
		c.MFA.Grace = idp.GracePeriod{Logins: 2}
	})

	t.Run("grace login through a consent page uses one grace login", func(t *testing.T) {
		email := "consent-grace@example.com"
		u := graced.createUser(email, password)
		app := graced.createClient(admin.NewClient{Name: "Needs consent", RedirectURIs: []string{"https://c.example.com/cb"}})
		graced.setPolicy(app, storage.MFAPolicy{MFA: "required"})
		b := graced.newBrowser()
		p, v := flow(t, graced, b, app, nil)
		p = b.Consent(b.Login(p, email, password), "allow")
		finishFlow(t, graced, app, p, v)
		got, _ := graced.store.GetUser(context.Background(), u.ID)
		if got.MFAGraceLogins != 1 {
			t.Fatalf("grace logins used: %d, want 1", got.MFAGraceLogins)
		}
	})

	t.Run("no grace for a request that asks for mfa itself", func(t *testing.T) {
		email := "acr-grace@example.com"
		graced.createUser(email, password)
		app := graced.createClient(admin.NewClient{Name: "Strict", RedirectURIs: []string{"https://s.example.com/cb"}, SkipConsent: true})
		graced.setPolicy(app, storage.MFAPolicy{MFA: "required"})
		b := graced.newBrowser()
		p, _ := flow(t, graced, b, app, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + consent.ACRMFA + `"]}}}`}})
		p = b.Login(p, email, password)
		if p.Location != "" || !strings.Contains(p.Body, `id="enrol-required"`) {
			t.Fatalf("essential acr met by a grace login (status %d, location %q)", p.Status, p.Location)
		}
	})

	t.Run("account-type policy excluding every method: enrolment, not a loop", func(t *testing.T) {
		email := "typed@example.com"
		u := m.createUser(email, password)
		b := m.newBrowser()
		enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
		u.Type = "ops"
		if err := m.store.UpdateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		if err := m.store.SetTypePolicy(context.Background(), "ops", storage.MFAPolicy{MFA: "required", Factors: []storage.FactorKind{"sms"}}); err != nil {
			t.Fatal(err)
		}
		br := m.newBrowser()
		p, _ := flow(t, m.env, br, m.app, nil)
		p = br.Login(p, email, password)
		// Sent to enrol a phone; the account page's own sign-in accepts the app it has.
		if !isMFA(p) || !strings.Contains(p.Body, "Account security") || !strings.Contains(p.Body, "Authenticator app") {
			t.Fatalf("expected the account page's second-factor step with the app (status %d):\n%.400s", p.Status, p.Body)
		}
	})

	t.Run("a remembered device respects the shorter period of another client", func(t *testing.T) {
		email := "two-clients@example.com"
		m.createUser(email, password)
		b := m.newBrowser()
		key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
		long := m.createClient(admin.NewClient{Name: "Long", RedirectURIs: []string{"https://long.example.com/cb"}, SkipConsent: true})
		short := m.createClient(admin.NewClient{Name: "Short", RedirectURIs: []string{"https://short.example.com/cb"}, SkipConsent: true})
		m.setPolicy(long, storage.MFAPolicy{MFA: "required", RememberDevice: 720 * time.Hour})
		m.setPolicy(short, storage.MFAPolicy{MFA: "required", RememberDevice: time.Hour})
		br := m.newBrowser()
		p, v := flow(t, m.env, br, long, nil)
		f := br.Login(p, email, password).Hidden()
		m.clock.Advance(30 * time.Second)
		f.Set("code", rfc6238(key, m.clock.Now(), 6))
		f.Set("remember", "1")
		finishFlow(t, m.env, long, br.Post(m.issuer+"/login/mfa", f), v)
		m.clock.Advance(90 * time.Minute)
		signOut(t, m.env, br)
		p, _ = flow(t, m.env, br, short, nil)
		if p = br.Login(p, email, password); !isMFA(p) {
			t.Fatal("a device remembered 90 minutes ago skipped the factor for a client allowing 1 h")
		}
		signOut(t, m.env, br)
		p, _ = flow(t, m.env, br, long, nil)
		if p = br.Login(p, email, password); isMFA(p) {
			t.Fatal("the device no longer stands in for the client allowing 720 h")
		}
	})
}
