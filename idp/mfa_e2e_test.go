package idp_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// rfc6238 is an independent TOTP implementation (RFC 4226 dynamic truncation over
// HMAC-SHA1), used to check the provider's codes without its own library.
func rfc6238(key []byte, t time.Time, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(t.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for i := 0; i < digits; i++ {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

func TestRFC6238Vectors(t *testing.T) {
	key := []byte("12345678901234567890")
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"}, {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"}} {
		if got := rfc6238(key, time.Unix(v.unix, 0), 8); got != v.code {
			t.Fatalf("T=%d: got %s want %s", v.unix, got, v.code)
		}
	}
}

func totpKey(t *testing.T, secret string) []byte {
	t.Helper()
	k, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	return k
}

var (
	secretRE    = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7=]+)</code>`)
	backupRE    = regexp.MustCompile(`<li><code>([A-Z0-9-]{9})</code></li>`)
	remainingRE = regexp.MustCompile(`<strong id="backup-remaining">(\d+)</strong>`)
)

// accountPage signs b in to the account page (password, and the second factor through
// answer when one is asked for) and returns the page.
func accountPage(t *testing.T, e *env, b *browser, email string, answer func(page) page) page {
	t.Helper()
	p := b.Get(e.issuer + "/account/security")
	if p.IsLogin() {
		p = b.Login(p, email, password)
	}
	if isMFA(p) {
		if answer == nil {
			t.Fatal("second factor asked for but no answer given")
		}
		p = answer(p)
	}
	if !strings.Contains(p.Body, "Account security") {
		t.Fatalf("not the account page (status %d):\n%.800s", p.Status, p.Body)
	}
	return p
}

func isMFA(p page) bool { return strings.Contains(p.Body, `action="/login/mfa`) }

// enroll posts the enrolment form of kind with extra fields from the account page p.
func enroll(b *browser, e *env, p page, kind string, extra url.Values) page {
	f := url.Values{"csrf": {p.Hidden().Get("csrf")}, "kind": {kind}}
	for k, v := range extra {
		f[k] = v
	}
	return b.Post(e.issuer+"/account/security/enroll", f)
}

// confirm posts the code on an enrolment page.
func confirm(b *browser, e *env, p page, code string) page {
	f := p.Hidden()
	f.Set("code", code)
	return b.Post(e.issuer+"/account/security/confirm", f)
}

// answerMFA posts code on a second-factor page.
func answerMFA(b *browser, e *env, p page, code string) page {
	f := p.Hidden()
	f.Set("code", code)
	return b.Post(e.issuer+"/login/mfa", f)
}

// sendCode presses "Send code" on an e-mail/SMS second-factor page.
func sendCode(b *browser, e *env, p page) page {
	f := p.Hidden()
	return b.Post(e.issuer+"/login/mfa/send", f)
}

// loginWithFactor runs an authorization-code flow for c in a fresh browser, answering
// the second-factor page with answer, and returns the verified ID token's claims.
func loginWithFactor(t *testing.T, e *env, c testClient, email string, answer func(b *browser, p page) page) map[string]any {
	t.Helper()
	b := e.newBrowser()
	v, ch := pkce()
	p := b.Get(e.authURL(c, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	p = b.Login(p, email, password)
	if !isMFA(p) {
		t.Fatalf("no second-factor page after the password (status %d):\n%.600s", p.Status, p.Body)
	}
	p = answer(b, p)
	code := p.RedirectParams(t).Get("code")
	tr := e.tokenRequest(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {v}})
	if tr.IDToken == "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	return verifyWithJWKS(t, e, tr.IDToken, c.ID)
}

func amrOf(claims map[string]any) []string {
	var out []string
	for _, v := range claims["amr"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

func wantAuth(t *testing.T, claims map[string]any, amr []string, acr string) {
	t.Helper()
	if got := amrOf(claims); !slices.Equal(got, amr) || claims["acr"] != acr {
		t.Fatalf("amr=%v acr=%v, want amr=%v acr=%s", got, claims["acr"], amr, acr)
	}
}

// mfaEnv is a provider with a real SMTP server and a Twilio-speaking SMS API behind it.
type mfaEnv struct {
	*env
	smtp   *idptest.SMTPServer
	twilio *idptest.TwilioServer
	app    testClient
}

func newMFAEnv(t *testing.T, st storage.Storage, mutate ...func(*idp.Config)) *mfaEnv {
	t.Helper()
	smtpSrv := idptest.NewSMTPServer(t)
	tw := idptest.NewTwilioServer(t)
	host, portStr, _ := net.SplitHostPort(smtpSrv.Addr)
	port, _ := strconv.Atoi(portStr)
	mailer, err := mfa.NewSMTPSender(mfa.SMTPConfig{Host: host, Port: port, From: "openidp <id@example.com>", TLS: mfa.SMTPNoTLS})
	if err != nil {
		t.Fatal(err)
	}
	sms := &mfa.RetrySender{Next: mfa.NewTwilioSender(mfa.TwilioConfig{BaseURL: tw.URL, AccountSID: "AC123", AuthToken: "tok", From: "+15005550006"}), Backoff: time.Millisecond}
	e := newEnv(t, st, append([]func(*idp.Config){func(c *idp.Config) {
		c.MFA.EmailSender, c.MFA.SMSSender = mailer, sms
	}}, mutate...)...)
	app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
	return &mfaEnv{env: e, smtp: smtpSrv, twilio: tw, app: app}
}

// TestSecondFactorsEndToEnd enrols every factor kind through the account page, signs in
// to a relying party with password + that factor, and checks amr/acr in the verified ID
// token, on every backend.
func TestSecondFactorsEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t))
			t.Run("totp", func(t *testing.T) { runTOTP(t, m) })
			t.Run("backup codes", func(t *testing.T) { runBackup(t, m) })
			t.Run("email", func(t *testing.T) { runEmail(t, m) })
			t.Run("sms", func(t *testing.T) { runSMS(t, m) })
		})
	}
}

func runTOTP(t *testing.T, m *mfaEnv) {
	email := "totp@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)
	p = enroll(b, m.env, p, "totp", nil)
	sm := secretRE.FindStringSubmatch(p.Body)
	if sm == nil || !strings.Contains(p.Body, `src="data:image/png;base64,`) || !strings.Contains(p.Body, "otpauth://totp/") {
		t.Fatalf("enrolment page lacks secret, QR or URI:\n%.800s", p.Body)
	}
	key := totpKey(t, sm[1])
	if len(key) != 20 {
		t.Fatalf("TOTP secret is %d bytes, want 20", len(key))
	}
	if !strings.Contains(p.Body, `autocomplete="one-time-code"`) || !strings.Contains(p.Body, `inputmode="numeric"`) {
		t.Fatal("OTP input lacks autocomplete/inputmode")
	}
	// A wrong code does not finish enrolment, and the page still shows the same key and
	// QR code to scan again.
	bad := confirm(b, m.env, p, "000000")
	if bad.Status != http.StatusUnauthorized {
		t.Fatalf("wrong enrolment code: status %d", bad.Status)
	}
	if again := secretRE.FindStringSubmatch(bad.Body); again == nil || again[1] != sm[1] ||
		!strings.Contains(bad.Body, `src="data:image/png;base64,`) || !strings.Contains(bad.Body, "otpauth://totp/") {
		t.Fatalf("after a wrong code the key or QR code is gone:\n%.1200s", bad.Body)
	}
	p = confirm(b, m.env, bad, rfc6238(key, m.clock.Now(), 6))
	if !strings.Contains(p.Body, "Sign-in method added") || !strings.Contains(p.Body, "Authenticator app") {
		t.Fatalf("enrolment not confirmed:\n%.800s", p.Body)
	}

	// Next time step: a code that has not been used yet.
	m.clock.Advance(30 * time.Second)
	code := rfc6238(key, m.clock.Now(), 6)
	claims := loginWithFactor(t, m.env, m.app, email, func(b *browser, p page) page {
		if !strings.Contains(p.Body, `autocomplete="one-time-code"`) {
			t.Fatal("TOTP input lacks autocomplete=one-time-code")
		}
		return answerMFA(b, m.env, p, code)
	})
	wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)

	// Replay of the accepted code is refused, with a clear message and an audit event.
	replayRefused := func(t *testing.T, e *env) {
		t.Helper()
		before := e.auditCount(audit.EventMFAVerify, audit.ResultFailure)
		b := e.newBrowser()
		_, ch := pkce()
		p := b.Login(b.Get(e.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
		p = answerMFA(b, e, p, code)
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "That did not work") || p.Location != "" {
			t.Fatalf("replayed code: status %d location %q", p.Status, p.Location)
		}
		if e.auditCount(audit.EventMFAVerify, audit.ResultFailure) != before+1 {
			t.Fatal("replay not audited")
		}
	}
	replayRefused(t, m.env)
	// ... also by a second process on the same database (same encryption key).
	second := newEnv(t, m.store, func(c *idp.Config) { c.Sealer = m.sealer; c.Now = m.clock.Now })
	replayRefused(t, second)

	// A code one step outside the window either side is refused.
	for _, off := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		m.clock.Advance(30 * time.Second)
		outside := rfc6238(key, m.clock.Now().Add(off), 6)
		b := m.newBrowser()
		_, ch := pkce()
		p := b.Login(b.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
		if p = answerMFA(b, m.env, p, outside); p.Status != http.StatusUnauthorized {
			t.Fatalf("code %v outside the window accepted (status %d)", off, p.Status)
		}
	}
	// Reset the lockout counter with a good login so later subtests start clean.
	m.clock.Advance(30 * time.Second)
	good := rfc6238(key, m.clock.Now(), 6)
	loginWithFactor(t, m.env, m.app, email, func(b *browser, p page) page { return answerMFA(b, m.env, p, good) })
}

// enrolTOTP adds an authenticator app for the signed-in browser b and returns its key.
func enrolTOTP(t *testing.T, e *env, b *browser, p page) []byte {
	t.Helper()
	p = enroll(b, e, p, "totp", nil)
	sm := secretRE.FindStringSubmatch(p.Body)
	if sm == nil {
		t.Fatalf("no TOTP secret on the enrolment page:\n%.600s", p.Body)
	}
	key := totpKey(t, sm[1])
	if p = confirm(b, e, p, rfc6238(key, e.clock.Now(), 6)); !strings.Contains(p.Body, "Sign-in method added") {
		t.Fatalf("TOTP enrolment not confirmed:\n%.600s", p.Body)
	}
	return key
}

var choiceRE = regexp.MustCompile(`<li><a href="([^"]+)">Backup code</a></li>`)

func runBackup(t *testing.T, m *mfaEnv) {
	email := "backup@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)
	enrolTOTP(t, m.env, b, p)
	p = accountPage(t, m.env, b, email, nil)
	p = b.Post(m.issuer+"/account/security/backup-codes", url.Values{"csrf": {p.Hidden().Get("csrf")}})
	codes := backupRE.FindAllStringSubmatch(p.Body, -1)
	if len(codes) != 10 {
		t.Fatalf("%d backup codes shown, want 10:\n%.800s", len(codes), p.Body)
	}
	first := codes[0][1]
	// The chooser offers the authenticator app (used most recently) first and the
	// backup codes one click away.
	pickBackup := func(b *browser, p page) page {
		t.Helper()
		if !strings.Contains(p.Body, "<h2>Authenticator app</h2>") {
			t.Fatalf("most recently used factor not offered first:\n%.600s", p.Body)
		}
		mm := choiceRE.FindStringSubmatch(p.Body)
		if mm == nil {
			t.Fatalf("no backup-code choice:\n%.800s", p.Body)
		}
		return b.Get(m.issuer + html.UnescapeString(mm[1]))
	}
	// Lost phone: sign in with a backup code. The sign-in continues only after a new
	// factor is enrolled; the lost one can be removed on the way.
	lost, err := m.store.ListFactors(t.Context(), m.userID(email))
	if err != nil {
		t.Fatal(err)
	}
	rb := m.newBrowser()
	p, v := flow(t, m.env, rb, m.app, nil)
	p = answerMFA(rb, m.env, pickBackup(rb, rb.Login(p, email, password)), strings.ToLower(first))
	if p.Location != "" || !strings.Contains(p.Body, `id="recovered"`) {
		t.Fatalf("backup-code sign-in was not sent to enrol a new factor (status %d, location %q)", p.Status, p.Location)
	}
	if m.auditCount(audit.EventMFAEnrolRequired, "") == 0 {
		t.Fatal("recovery enrolment not audited")
	}
	// Going back to the application before enrolling is refused the same way.
	if again := rb.Get(m.issuer + "/login?id=" + url.QueryEscape(regexpFind(t, `href="/login\?id=([^"]+)"`, p.Body))); !strings.Contains(again.Body, `id="recovered"`) {
		t.Fatalf("skipped enrolment after a backup-code sign-in (status %d)", again.Status)
	}
	newKey := enrolTOTP(t, m.env, rb, accountPage(t, m.env, rb, email, nil))
	_ = newKey
	for _, f := range lost {
		if f.Kind == "totp" {
			ap := accountPage(t, m.env, rb, email, nil)
			rp := rb.Post(m.issuer+"/account/security/remove", url.Values{"csrf": {ap.Hidden().Get("csrf")}, "factor": {f.ID}})
			if !strings.Contains(rp.Body, "Sign-in method removed") {
				t.Fatalf("could not remove the lost factor (status %d)", rp.Status)
			}
		}
	}
	ap := accountPage(t, m.env, rb, email, nil)
	claims := finishFlow(t, m.env, m.app, rb.Get(m.issuer+regexpFind(t, `<a class="button" id="continue" href="([^"]+)"`, ap.Body)), v)
	wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)

	// A used code is refused.
	b2 := m.newBrowser()
	_, ch := pkce()
	p = b2.Login(b2.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	if p = answerMFA(b2, m.env, pickBackup(b2, p), first); p.Status != http.StatusUnauthorized {
		t.Fatalf("used backup code accepted (status %d)", p.Status)
	}
	// The account page shows how many are left.
	p = accountPage(t, m.env, b, email, nil)
	if mm := remainingRE.FindStringSubmatch(p.Body); mm == nil || mm[1] != "9" {
		t.Fatalf("remaining count not 9: %v", mm)
	}
	// Regenerating invalidates every earlier code.
	p = b.Post(m.issuer+"/account/security/backup-codes", url.Values{"csrf": {p.Hidden().Get("csrf")}})
	if len(backupRE.FindAllStringSubmatch(p.Body, -1)) != 10 {
		t.Fatal("regeneration did not show 10 new codes")
	}
	b3 := m.newBrowser()
	p = b3.Login(b3.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	if p = answerMFA(b3, m.env, pickBackup(b3, p), codes[1][1]); p.Status != http.StatusUnauthorized {
		t.Fatalf("old backup code accepted after regeneration (status %d)", p.Status)
	}
	if err := regulation.UnlockUser(t.Context(), m.store, m.userID(email)); err != nil {
		t.Fatal(err)
	}
}

func runEmail(t *testing.T, m *mfaEnv) {
	email := "mail@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)
	n := m.smtp.Count()
	p = enroll(b, m.env, p, "email", nil)
	msg := m.smtp.Last(t, n+1)
	if len(msg.To) != 1 || msg.To[0] != email {
		t.Fatalf("verification mail sent to %v", msg.To)
	}
	p = confirm(b, m.env, p, idptest.Code(t, msg.Data))
	if !strings.Contains(p.Body, "Sign-in method added") {
		t.Fatalf("email factor not confirmed:\n%.600s", p.Body)
	}
	// The new factor is announced to the address it proved.
	if notice := m.smtp.Last(t, n+2); len(notice.To) != 1 || notice.To[0] != email || !strings.Contains(notice.Data, "was added to your") {
		t.Fatalf("factor addition not announced: to %v\n%.400s", notice.To, notice.Data)
	}

	claims := loginWithFactor(t, m.env, m.app, email, func(b *browser, p page) page {
		p = sendCode(b, m.env, p)
		code := idptest.Code(t, m.smtp.Last(t, n+3).Data)
		return answerMFA(b, m.env, p, code)
	})
	wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)

	// A fourth attempt at one code is refused even when it is the right code.
	b2 := m.newBrowser()
	_, ch := pkce()
	p = b2.Login(b2.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	p = sendCode(b2, m.env, p)
	code := idptest.Code(t, m.smtp.Last(t, n+4).Data)
	for i := 0; i < 3; i++ {
		p = answerMFA(b2, m.env, p, "999999")
	}
	p = answerMFA(b2, m.env, p, code)
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "expired or was used up") {
		t.Fatalf("fourth attempt: status %d\n%.500s", p.Status, p.Body)
	}
	// Clear the lockout counter for later subtests.
	if err := regulation.UnlockUser(t.Context(), m.store, m.userID(email)); err != nil {
		t.Fatal(err)
	}
}

func runSMS(t *testing.T, m *mfaEnv) {
	email := "sms@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)
	csrf := p.Hidden().Get("csrf")
	// Invalid and landline numbers are refused with a clear message.
	for _, tc := range []struct{ phone, want string }{
		{"+44 12345", "not a valid phone number"},
		{"+44 20 7946 0018", "not a mobile number"},
	} {
		got := enroll(b, m.env, p, "sms", url.Values{"phone": {tc.phone}})
		if got.Status != http.StatusBadRequest || !strings.Contains(got.Body, tc.want) {
			t.Fatalf("phone %q: status %d, body lacks %q", tc.phone, got.Status, tc.want)
		}
	}
	_ = csrf
	n := len(m.twilio.Messages())
	p = enroll(b, m.env, p, "sms", url.Values{"phone": {"+44 7400 123456"}})
	msgs := m.twilio.Messages()
	if len(msgs) != n+1 || msgs[n].To != "+447400123456" || msgs[n].User != "AC123" || msgs[n].Password != "tok" {
		t.Fatalf("provider request: %+v", msgs)
	}
	p = confirm(b, m.env, p, idptest.Code(t, msgs[n].Body))
	if !strings.Contains(p.Body, "Sign-in method added") {
		t.Fatalf("sms factor not confirmed:\n%.600s", p.Body)
	}
	// The provider fails once: the code still arrives after a retry, and the failure is audited.
	m.twilio.FailNext = 1
	failures := m.auditCount("mfa.provider.failure", "")
	claims := loginWithFactor(t, m.env, m.app, email, func(b *browser, p page) page {
		p = sendCode(b, m.env, p)
		msgs := m.twilio.Messages()
		return answerMFA(b, m.env, p, idptest.Code(t, msgs[len(msgs)-1].Body))
	})
	wantAuth(t, claims, []string{"mfa", "pwd", "sms"}, consent.ACRMFA)
	if m.auditCount("mfa.provider.failure", "") != failures+1 {
		t.Fatal("provider failure not audited")
	}

	// An expired code is refused.
	b2 := m.newBrowser()
	_, ch := pkce()
	p = b2.Login(b2.Get(m.authURL(m.app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	p = sendCode(b2, m.env, p)
	msgs = m.twilio.Messages()
	m.clock.Advance(11 * time.Minute)
	p = answerMFA(b2, m.env, p, idptest.Code(t, msgs[len(msgs)-1].Body))
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "expired") {
		t.Fatalf("expired SMS code: status %d", p.Status)
	}
}

func (e *env) userID(email string) string {
	e.t.Helper()
	u, err := e.store.GetUserByEmail(e.t.Context(), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}
