package idp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage/seal"
)

// startMFALogin signs a fresh browser in with the password and returns the
// second-factor page.
func startMFALogin(t *testing.T, e *env, c testClient, email string) (*browser, page) {
	t.Helper()
	b := e.newBrowser()
	_, ch := pkce()
	p := b.Login(b.Get(e.authURL(c, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	if !isMFA(p) {
		t.Fatalf("no second-factor page (status %d)", p.Status)
	}
	return b, p
}

func TestMFALockout(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t))
			email := "locked@example.com"
			m.createUser(email, password)
			b := m.newBrowser()
			key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
			m.clock.Advance(30 * time.Second)

			b, p := startMFALogin(t, m.env, m.app, email)
			for i := 1; i <= 4; i++ {
				if p = answerMFA(b, m.env, p, "000000"); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "That did not work") {
					t.Fatalf("failure %d: status %d", i, p.Status)
				}
			}
			p = answerMFA(b, m.env, p, "000000")
			if !strings.Contains(p.Body, "Too many failed attempts. Try again after") {
				t.Fatalf("fifth failure does not lock:\n%.500s", p.Body)
			}
			// Locked: even the right code is refused, and the person is told until when.
			p = answerMFA(b, m.env, p, rfc6238(key, m.clock.Now(), 6))
			if p.Location != "" || !strings.Contains(p.Body, "Try again after") {
				t.Fatalf("right code accepted while locked (status %d)", p.Status)
			}
			if m.auditCount(audit.EventMFALockout, audit.ResultFailure) == 0 {
				t.Fatal("lockout not audited")
			}
			// The lock holds in every process: a second server on the same database agrees.
			second := newEnv(t, m.store, func(c *idp.Config) { c.Sealer = m.sealer; c.Now = m.clock.Now })
			b2, p2 := startMFALogin(t, second, m.app, email)
			if p2 = answerMFA(b2, second, p2, rfc6238(key, m.clock.Now(), 6)); !strings.Contains(p2.Body, "Try again after") {
				t.Fatalf("second process ignores the lock (status %d)", p2.Status)
			}
			// After the delay the right code works again.
			m.clock.Advance(2 * time.Minute)
			claims := loginWithFactor(t, m.env, m.app, email, func(b *browser, p page) page {
				return answerMFA(b, m.env, p, rfc6238(key, m.clock.Now(), 6))
			})
			wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
			wantMetrics(t, m.issuer, []metricWant{
				{"openidp_signins_total", map[string]string{"result": "failure", "factor": "totp"}, 5},
				{"openidp_signins_total", map[string]string{"result": "locked", "factor": "totp"}, 1},
				{"openidp_signins_total", map[string]string{"result": "success", "factor": "totp"}, 1},
				{"openidp_lockouts_total", map[string]string{"kind": "mfa"}, 2},
			})
		})
	}
}

// apiCall calls the self-service API with a bearer token and decodes the JSON answer.
func apiCall(t *testing.T, e *env, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.issuer+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func TestSelfServiceAPI(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "api@example.com"
	m.createUser(email, password)
	app := m.createClient(admin.NewClient{Name: "Own UI", RedirectURIs: []string{"https://own.example.com/cb"}, SkipConsent: true,
		Scopes: []string{"openid", "profile", "email", "offline_access", "account"}})
	b := m.newBrowser()
	v, ch := pkce()
	p := b.Login(b.Get(m.authURL(app, url.Values{"scope": {"openid account"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	tr := m.tokenRequest(app, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")}, "redirect_uri": {app.RedirectURI}, "code_verifier": {v}})
	token := tr.AccessToken
	if token == "" {
		t.Fatalf("no access token: %+v", tr)
	}

	if st, _ := apiCall(t, m.env, "", "GET", "/api/v1/me/mfa", nil); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d", st)
	}
	// Browser applications on other origins may call it (bearer tokens, no cookies).
	pre, _ := http.NewRequest(http.MethodOptions, m.issuer+"/api/v1/me/mfa/totp", nil)
	pre.Header.Set("Origin", "https://own.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(pre); err != nil || resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("CORS preflight: %v %v", resp, err)
	}
	noScope := loginCode(t, m.env, m.newBrowserLoggedIn(t, email), m.app, nil).AccessToken
	if st, out := apiCall(t, m.env, noScope, "GET", "/api/v1/me/mfa", nil); st != http.StatusForbidden || out["error"] != "insufficient_scope" {
		t.Fatalf("token without account scope: %d %v", st, out)
	}
	st, out := apiCall(t, m.env, token, "GET", "/api/v1/me/mfa", nil)
	if st != http.StatusOK || len(out["factors"].([]any)) != 0 {
		t.Fatalf("status: %d %v", st, out)
	}

	st, out = apiCall(t, m.env, token, "POST", "/api/v1/me/mfa/totp", map[string]any{})
	if st != http.StatusCreated || out["secret"] == nil || !strings.HasPrefix(out["otpauth_uri"].(string), "otpauth://totp/") ||
		!strings.HasPrefix(out["qr_png"].(string), "data:image/png;base64,") {
		t.Fatalf("start totp: %d %v", st, out)
	}
	key := totpKey(t, out["secret"].(string))
	totpID := out["factor_id"].(string)
	if st, out = apiCall(t, m.env, token, "POST", "/api/v1/me/mfa/totp/verify", map[string]any{"code": "000000"}); st != http.StatusBadRequest || out["error"] != "invalid_code" {
		t.Fatalf("wrong code: %d %v", st, out)
	}
	if st, out = apiCall(t, m.env, token, "POST", "/api/v1/me/mfa/totp/verify", map[string]any{"code": rfc6238(key, m.clock.Now(), 6)}); st != http.StatusOK {
		t.Fatalf("verify totp: %d %v", st, out)
	}

	// Regenerating backup codes needs a verification once a factor exists.
	if st, out = apiCall(t, m.env, token, "POST", "/api/v1/me/mfa/backup-codes", map[string]any{}); st != http.StatusBadRequest || out["error"] != "verification_required" {
		t.Fatalf("backup codes without verification: %d %v", st, out)
	}
	m.clock.Advance(30 * time.Second)
	st, out = apiCall(t, m.env, token, "POST", "/api/v1/me/mfa/backup-codes", map[string]any{
		"verification": map[string]any{"factor_id": totpID, "code": rfc6238(key, m.clock.Now(), 6)}})
	if st != http.StatusCreated || len(out["codes"].([]any)) != 10 {
		t.Fatalf("backup codes: %d %v", st, out)
	}
	backup := out["codes"].([]any)[0].(string)
	st, out = apiCall(t, m.env, token, "GET", "/api/v1/me/mfa", nil)
	if st != http.StatusOK || len(out["factors"].([]any)) != 2 || out["backup_codes_remaining"].(float64) != 10 {
		t.Fatalf("status after enrolment: %d %v", st, out)
	}

	// Removing needs a verification too; a backup code serves.
	if st, _ = apiCall(t, m.env, token, "DELETE", "/api/v1/me/mfa/"+totpID, nil); st != http.StatusBadRequest {
		t.Fatalf("delete without verification: %d", st)
	}
	var backupID string
	for _, f := range out["factors"].([]any) {
		if f.(map[string]any)["kind"] == "backup" {
			backupID = f.(map[string]any)["id"].(string)
		}
	}
	if st, out = apiCall(t, m.env, token, "DELETE", "/api/v1/me/mfa/"+totpID, map[string]any{
		"verification": map[string]any{"factor_id": backupID, "code": backup}}); st != http.StatusNoContent {
		t.Fatalf("delete: %d %v", st, out)
	}
	if _, err := m.store.GetFactor(context.Background(), totpID); err == nil {
		t.Fatal("factor still stored after DELETE")
	}
	if m.auditCount(audit.EventMFARemove, audit.ResultSuccess) != 1 || m.auditCount(audit.EventMFARegenerate, audit.ResultSuccess) != 1 {
		t.Fatal("remove/regenerate not audited")
	}
	// A revoked token no longer works.
	m.admin.DisableUser(context.Background(), "test", email)
	if st, _ = apiCall(t, m.env, token, "GET", "/api/v1/me/mfa", nil); st != http.StatusUnauthorized {
		t.Fatalf("token of a disabled user: %d", st)
	}
}

// newBrowserLoggedIn returns a browser with a password session for email.
func (e *env) newBrowserLoggedIn(t *testing.T, email string) *browser {
	t.Helper()
	b := e.newBrowser()
	accountPage(t, e, b, email, nil)
	return b
}

// TestEncryptionKeyRotation re-encrypts everything under a new key and proves that a
// provider holding only the new key still signs tokens and verifies TOTP codes.
func TestEncryptionKeyRotation(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "rotate@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))

	newKey := seal.NewKey()
	both, _ := seal.New(newKey, m.rawKey)
	res, err := m.admin.Reencrypt(context.Background(), "test", both)
	if err != nil {
		t.Fatal(err)
	}
	if res.SigningKeys < 2 || res.Factors != 1 || res.ServerSecrets < 3 {
		t.Fatalf("re-encrypted %+v", res)
	}
	if again, _ := m.admin.Reencrypt(context.Background(), "test", both); again.SigningKeys+again.Factors+again.ServerSecrets != 0 {
		t.Fatalf("second run re-encrypted again: %+v", again)
	}
	onlyNew, _ := seal.New(newKey)
	rotated := newEnv(t, m.store, func(c *idp.Config) { c.Sealer = onlyNew; c.Now = m.clock.Now })
	m.clock.Advance(30 * time.Second)
	claims := loginWithFactor(t, rotated, m.app, email, func(b *browser, p page) page {
		return answerMFA(b, rotated, p, rfc6238(key, m.clock.Now(), 6))
	})
	wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
	if rotated.auditCount(audit.EventAdminReencrypt, audit.ResultSuccess) != 2 {
		t.Fatal("re-encryption not audited")
	}
}

// TestAccountSensitiveChangesNeedFreshSignIn: removing a factor on the account page
// after the session's last sign-in grew old sends the person through the password and
// second factor again before anything is removed.
func TestAccountSensitiveChangesNeedFreshSignIn(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "fresh@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	key := enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	factors, err := m.store.ListFactors(context.Background(), m.userID(email))
	if err != nil || len(factors) != 1 {
		t.Fatalf("factors: %v %v", factors, err)
	}
	m.clock.Advance(11 * time.Minute)
	p := accountPage(t, m.env, b, email, nil)
	p = b.Post(m.issuer+"/account/security/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}, "factor": {factors[0].ID}})
	if !p.IsLogin() {
		t.Fatalf("stale session removed a factor without signing in again (status %d)", p.Status)
	}
	if _, err := m.store.GetFactor(context.Background(), factors[0].ID); err != nil {
		t.Fatal("factor removed before the fresh sign-in")
	}
	p = b.Login(p, email, password)
	if !isMFA(p) {
		t.Fatalf("fresh sign-in skipped the second factor (status %d)", p.Status)
	}
	p = answerMFA(b, m.env, p, rfc6238(key, m.clock.Now(), 6))
	if !strings.Contains(p.Body, "Account security") {
		t.Fatalf("not back on the account page (status %d)", p.Status)
	}
	p = b.Post(m.issuer+"/account/security/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}, "factor": {factors[0].ID}})
	if !strings.Contains(p.Body, "Sign-in method removed") {
		t.Fatalf("removal after fresh sign-in failed (status %d):\n%.500s", p.Status, p.Body)
	}
}
