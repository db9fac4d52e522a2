package idp_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// TestSessionsEndToEnd covers the life of SSO sessions across browsers: the limit on
// concurrent sessions, back-channel logout to relying parties, and the account page's
// session and remembered-device lists, on every backend.
func TestSessionsEndToEnd(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t), func(c *idp.Config) { c.MaxSessions = 5 })
			rp := newBackchannelRP(t)
			t.Run("session limit", func(t *testing.T) { runSessionLimit(t, e) })
			t.Run("back-channel logout", func(t *testing.T) { runBackchannelLogout(t, e, rp) })
			t.Run("account page sessions", func(t *testing.T) { runAccountSessions(t, e, rp) })
			t.Run("remembered devices", func(t *testing.T) { runRememberedDevices(t, e) })
		})
	}
}

// signIn runs a code flow for c in browser b as email (password only, consent allowed)
// and returns the verified ID token's claims.
func signIn(t *testing.T, e *env, b *browser, c testClient, email string, extra url.Values) map[string]any {
	t.Helper()
	v, ch := pkce()
	q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
	for k, vs := range extra {
		q[k] = vs
	}
	p := b.Get(e.authURL(c, q))
	if p.IsLogin() {
		p = b.Login(p, email, password)
	}
	if p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	code := p.RedirectParams(t).Get("code")
	if code == "" {
		t.Fatalf("no code: %s", p.Location)
	}
	tr := e.tokenRequest(c, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {v}})
	if tr.IDToken == "" {
		t.Fatalf("code exchange: %+v", tr)
	}
	return verifyWithJWKS(t, e, tr.IDToken, c.ID)
}

// promptNoneError asks for a silent sign-in to c in b and returns the error the relying
// party gets ("" when it gets a code).
func promptNoneError(t *testing.T, e *env, b *browser, c testClient) string {
	t.Helper()
	_, ch := pkce()
	p := b.Get(e.authURL(c, url.Values{"prompt": {"none"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	q := p.RedirectParams(t)
	if q.Get("error") == "" && q.Get("code") == "" {
		t.Fatalf("prompt=none: neither code nor error: %v", q)
	}
	return q.Get("error")
}

// auditEvents returns the audit events of type typ.
func (e *env) auditEvents(typ string) []storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func runSessionLimit(t *testing.T, e *env) {
	email := "limit@example.com"
	u := e.createUser(email, password)
	app := e.createClient(admin.NewClient{Name: "Limit app", RedirectURIs: []string{"https://limit.example.com/cb"}, SkipConsent: true})

	var browsers []*browser
	var sids []string
	for i := 0; i < 6; i++ {
		b := e.newBrowser()
		claims := signIn(t, e, b, app, email, nil)
		browsers = append(browsers, b)
		sids = append(sids, claims["sid"].(string))
		e.clock.Advance(time.Second)
	}
	sessions, err := e.store.ListUserSessions(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 5 {
		t.Fatalf("%d sessions after 6 sign-ins with a limit of 5", len(sessions))
	}
	for _, s := range sessions {
		if s.ID == sids[0] {
			t.Fatal("the oldest session survived the limit")
		}
	}
	if got := promptNoneError(t, e, browsers[0], app); got != "login_required" {
		t.Fatalf("prompt=none in the evicted browser: error=%q, want login_required", got)
	}
	for i := 1; i < 6; i++ {
		if got := promptNoneError(t, e, browsers[i], app); got != "" {
			t.Fatalf("prompt=none in browser %d: error=%q", i+1, got)
		}
	}
	var ended []storage.AuditEvent
	for _, ev := range e.auditEvents(audit.EventSessionEnd) {
		if ev.UserID == u.ID {
			ended = append(ended, ev)
		}
	}
	if len(ended) != 1 || ended[0].Reason != "session limit" || ended[0].Result != audit.ResultSuccess {
		t.Fatalf("session.end events of the user = %+v, want one with reason \"session limit\"", ended)
	}
}

// backchannelRP is a relying party's back-channel logout endpoint: it records every
// logout token it is sent.
type backchannelRP struct {
	*httptest.Server
	got chan string

	mu       sync.Mutex
	failNext int           // answer this many requests with 503
	hold     chan struct{} // when set, requests wait until it is closed
}

func newBackchannelRP(t *testing.T) *backchannelRP {
	rp := &backchannelRP{got: make(chan string, 50)}
	rp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		hold, fail := rp.hold, rp.failNext > 0
		if fail {
			rp.failNext--
		}
		rp.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostFormValue("logout_token") == "" {
			http.Error(w, "no logout_token", http.StatusBadRequest)
			return
		}
		rp.got <- r.PostFormValue("logout_token")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.Close)
	return rp
}

// tokens waits for the deliveries in flight and returns every token received since the
// last call.
func (rp *backchannelRP) tokens(t *testing.T, e *env) []string {
	t.Helper()
	e.server.Backchannel().Wait()
	var out []string
	for {
		select {
		case tok := <-rp.got:
			out = append(out, tok)
		default:
			return out
		}
	}
}

// verifyLogoutToken checks a logout token as a relying party must (OIDC Back-Channel
// Logout 1.0, 2.6): signature against the JWKS, typ, iss, aud, iat/exp, jti, the event,
// sid and sub, and no nonce. It returns the claims and the signing algorithm.
func verifyLogoutToken(t *testing.T, e *env, token string) (map[string]any, string) {
	t.Helper()
	var set jose.JSONWebKeySet
	getJSON(t, e.issuer+"/keys", &set)
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse logout token: %v", err)
	}
	h := parsed.Headers[0]
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Fatalf("logout token typ = %v, want logout+jwt", typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		t.Fatalf("logout token kid %q not in the JWKS", h.KeyID)
	}
	var std jwt.Claims
	var all map[string]any
	if err := parsed.Claims(keys[0].Key, &std, &all); err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: e.issuer, Time: e.clock.Now()}, time.Minute); err != nil {
		t.Fatalf("logout token claims: %v", err)
	}
	if std.IssuedAt == nil || std.Expiry == nil || std.Expiry.Time().Sub(std.IssuedAt.Time()) != 2*time.Minute || std.ID == "" {
		t.Fatalf("logout token iat/exp/jti = %v/%v/%q", std.IssuedAt, std.Expiry, std.ID)
	}
	events, ok := all["events"].(map[string]any)
	if ev, found := events["http://schemas.openid.net/event/backchannel-logout"]; !ok || !found {
		t.Fatalf("logout token events = %v", all["events"])
	} else if m, ok := ev.(map[string]any); !ok || len(m) != 0 {
		t.Fatalf("back-channel logout event = %v, want {}", ev)
	}
	if _, has := all["nonce"]; has {
		t.Fatal("logout token has a nonce")
	}
	if all["sid"] == "" || all["sid"] == nil || std.Subject == "" {
		t.Fatalf("logout token sid/sub = %v/%q", all["sid"], std.Subject)
	}
	return all, h.Algorithm
}

// logoutTokensFor verifies tokens and returns them by audience, failing on an audience
// seen twice.
func logoutTokensFor(t *testing.T, e *env, tokens []string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, tok := range tokens {
		claims, alg := verifyLogoutToken(t, e, tok)
		var aud string
		switch a := claims["aud"].(type) {
		case string:
			aud = a
		case []any:
			if len(a) != 1 {
				t.Fatalf("logout token aud = %v, want one client", a)
			}
			aud = a[0].(string)
		}
		if _, dup := out[aud]; dup {
			t.Fatalf("two logout tokens for %s", aud)
		}
		claims["alg"] = alg
		out[aud] = claims
	}
	return out
}

func runBackchannelLogout(t *testing.T, e *env, rp *backchannelRP) {
	email := "bcl@example.com"
	u := e.createUser(email, password)
	var disco oidc.DiscoveryConfiguration
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &disco)
	if !disco.BackChannelLogoutSupported || !disco.BackChannelLogoutSessionSupported {
		t.Fatalf("discovery: backchannel_logout_supported=%v backchannel_logout_session_supported=%v",
			disco.BackChannelLogoutSupported, disco.BackChannelLogoutSessionSupported)
	}
	es := e.createClient(admin.NewClient{Name: "BCL ES256", RedirectURIs: []string{"https://es.example.com/cb"}, SkipConsent: true,
		BackchannelLogoutURI: rp.URL + "/es"})
	rs := e.createClient(admin.NewClient{Name: "BCL RS256", RedirectURIs: []string{"https://rs.example.com/cb"}, SkipConsent: true,
		IDTokenSigningAlg: "RS256", BackchannelLogoutURI: rp.URL + "/rs"})
	quiet := e.createClient(admin.NewClient{Name: "No BCL", RedirectURIs: []string{"https://quiet.example.com/cb"}, SkipConsent: true})

	// One browser signs in to three apps; two of them want back-channel logout.
	b := e.newBrowser()
	sid := signIn(t, e, b, es, email, nil)["sid"].(string)
	if got := signIn(t, e, b, rs, email, nil)["sid"]; got != sid {
		t.Fatalf("SSO sign-in got sid %v, want %s", got, sid)
	}
	signIn(t, e, b, quiet, email, nil)
	// Signing in again in the same browser (prompt=login) keeps the sid the apps hold.
	e.clock.Advance(time.Minute)
	if got := signIn(t, e, b, es, email, url.Values{"prompt": {"login"}})["sid"]; got != sid {
		t.Fatalf("sid after prompt=login = %v, want %s (unchanged)", got, sid)
	}
	if toks := rp.tokens(t, e); len(toks) != 0 {
		t.Fatalf("%d logout tokens sent before any logout", len(toks))
	}

	// The person signs out on the logout page; the first delivery to one app fails once.
	rp.mu.Lock()
	rp.failNext = 1
	rp.mu.Unlock()
	p := b.Get(e.issuer + "/logout")
	if p.Status != http.StatusOK || p.Hidden().Get("csrf") == "" {
		t.Fatalf("logout page: status %d", p.Status)
	}
	p = b.Post(e.issuer+"/logout", p.Hidden())
	if p.Status != http.StatusOK || p.URL.Path != "/logged-out" {
		t.Fatalf("after logout: status %d at %s", p.Status, p.URL)
	}
	got := logoutTokensFor(t, e, rp.tokens(t, e))
	if len(got) != 2 || got[es.ID] == nil || got[rs.ID] == nil {
		t.Fatalf("logout tokens for %v, want %s and %s", keysOf(got), es.ID, rs.ID)
	}
	for aud, c := range got {
		if c["sub"] != u.ID || c["sid"] != sid {
			t.Fatalf("logout token for %s: sub=%v sid=%v, want %s %s", aud, c["sub"], c["sid"], u.ID, sid)
		}
	}
	if got[es.ID]["alg"] != "ES256" || got[rs.ID]["alg"] != "RS256" {
		t.Fatalf("logout token algorithms: %v for ES256 client, %v for RS256 client", got[es.ID]["alg"], got[rs.ID]["alg"])
	}
	if errCode := promptNoneError(t, e, b, es); errCode != "login_required" {
		t.Fatalf("prompt=none after logout: %q", errCode)
	}
	var deliveries []storage.AuditEvent
	for _, ev := range e.auditEvents(audit.EventBackchannelLogout) {
		if ev.UserID == u.ID {
			deliveries = append(deliveries, ev)
		}
	}
	retried := false
	for _, ev := range deliveries {
		if ev.Result != audit.ResultSuccess || strings.Contains(ev.Reason, "eyJ") {
			t.Fatalf("back-channel audit event %+v", ev)
		}
		retried = retried || strings.Contains(ev.Reason, "attempts=2")
	}
	if len(deliveries) != 2 || !retried {
		t.Fatalf("back-channel audit events = %+v, want 2 successes, one after a retry", deliveries)
	}
	if !hasEnd(e, u.ID, "logout") {
		t.Fatal("no session.end event for the logout")
	}

	// RP-initiated logout with id_token_hint ends the session the same way.
	b2 := e.newBrowser()
	v, ch := pkce()
	p = b2.Get(e.authURL(es, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
	p = b2.Login(p, email, password)
	tr := e.tokenRequest(es, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
		"redirect_uri": {es.RedirectURI}, "code_verifier": {v}})
	sid2 := verifyWithJWKS(t, e, tr.IDToken, es.ID)["sid"]
	b2.Get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {tr.IDToken}, "client_id": {es.ID}}.Encode())
	got = logoutTokensFor(t, e, rp.tokens(t, e))
	if len(got) != 1 || got[es.ID] == nil || got[es.ID]["sid"] != sid2 {
		t.Fatalf("RP-initiated logout: logout tokens %v, want one for %s with sid %v", got, es.ID, sid2)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// hasEnd reports whether a session of user ended with that reason.
func hasEnd(e *env, userID, reason string) bool {
	for _, ev := range e.auditEvents(audit.EventSessionEnd) {
		if ev.UserID == userID && ev.Reason == reason {
			return true
		}
	}
	return false
}

var (
	sessionIDRE      = regexp.MustCompile(`name="session" value="([^"]+)"`)
	currentSessionRE = regexp.MustCompile(`<tr class="current">[\s\S]*?name="session" value="([^"]+)"`)
	deviceIDRE       = regexp.MustCompile(`name="device" value="([^"]+)"`)
)

func matches(re *regexp.Regexp, body string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func runAccountSessions(t *testing.T, e *env, rp *backchannelRP) {
	email := "sessions@example.com"
	u := e.createUser(email, password)
	app := e.createClient(admin.NewClient{Name: "Sessions app", RedirectURIs: []string{"https://sessions.example.com/cb"}, SkipConsent: true,
		BackchannelLogoutURI: rp.URL + "/sessions"})

	// A phone signs in to the app; a laptop opens the account page.
	phone := e.newBrowser()
	phoneSID := signIn(t, e, phone, app, email, nil)["sid"].(string)
	laptop := e.newBrowser()
	p := accountPage(t, e, laptop, email, nil)
	ids := matches(sessionIDRE, p.Body)
	cur := currentSessionRE.FindStringSubmatch(p.Body)
	if len(ids) != 2 || !strings.Contains(p.Body, "Active sessions") || cur == nil || cur[1] == phoneSID || !strings.Contains(p.Body, "This session") {
		t.Fatalf("account page sessions %v (current %v), want the phone's %s and this one:\n%.1500s", ids, cur, phoneSID, p.Body)
	}
	laptopSID := cur[1]
	if !strings.Contains(p.Body, "Password") || !strings.Contains(p.Body, "127.0.0.1") {
		t.Fatal("session list lacks the sign-in method or the IP address")
	}

	// Another person's session cannot be ended from here.
	other := e.createUser("other-sessions@example.com", password)
	ob := e.newBrowser()
	signIn(t, e, ob, app, "other-sessions@example.com", nil)
	otherSessions, _ := e.store.ListUserSessions(t.Context(), other.ID)
	if len(otherSessions) != 1 {
		t.Fatalf("other user has %d sessions", len(otherSessions))
	}
	rp.tokens(t, e)
	if r := laptop.Post(e.issuer+"/account/security/sessions/end", url.Values{"csrf": {p.Hidden().Get("csrf")}, "session": {otherSessions[0].ID}}); r.Status != http.StatusNotFound {
		t.Fatalf("ending another person's session: status %d", r.Status)
	}
	// Nor without the CSRF token.
	if r := laptop.Post(e.issuer+"/account/security/sessions/end", url.Values{"session": {phoneSID}}); r.Status != http.StatusForbidden {
		t.Fatalf("ending a session without CSRF: status %d", r.Status)
	}
	if errCode := promptNoneError(t, e, ob, app); errCode != "" {
		t.Fatalf("other person's session hurt: %q", errCode)
	}

	// Ending the phone's session signs the phone out, at once, even while the app's
	// back-channel endpoint is slow.
	hold := make(chan struct{})
	rp.mu.Lock()
	rp.hold = hold
	rp.mu.Unlock()
	start := time.Now()
	p = laptop.Post(e.issuer+"/account/security/sessions/end", url.Values{"csrf": {p.Hidden().Get("csrf")}, "session": {phoneSID}})
	elapsed := time.Since(start)
	rp.mu.Lock()
	rp.hold = nil
	rp.mu.Unlock()
	close(hold)
	if elapsed > 2*time.Second {
		t.Fatalf("ending a session waited %v for the relying party", elapsed)
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Session ended.") {
		t.Fatalf("after ending the phone's session: status %d:\n%.600s", p.Status, p.Body)
	}
	if ids := matches(sessionIDRE, p.Body); len(ids) != 1 || ids[0] != laptopSID {
		t.Fatalf("sessions after ending the phone's: %v, want only %s", ids, laptopSID)
	}
	got := logoutTokensFor(t, e, rp.tokens(t, e))
	if len(got) != 1 || got[app.ID] == nil || got[app.ID]["sid"] != phoneSID || got[app.ID]["sub"] != u.ID {
		t.Fatalf("logout tokens after ending the phone's session: %v", got)
	}
	if errCode := promptNoneError(t, e, phone, app); errCode != "login_required" {
		t.Fatalf("prompt=none on the phone after its session ended: %q", errCode)
	}
	if !hasEnd(e, u.ID, "ended on account page") {
		t.Fatal("no session.end event for the account page")
	}

	// Ending this browser's own session signs it out.
	p = laptop.Post(e.issuer+"/account/security/sessions/end", url.Values{"csrf": {p.Hidden().Get("csrf")}, "session": {laptopSID}})
	if p.URL.Path != "/logged-out" {
		t.Fatalf("ending the current session landed on %s (status %d)", p.URL, p.Status)
	}
	if p = laptop.Get(e.issuer + "/account/security"); !p.IsLogin() {
		t.Fatalf("account page after signing out: status %d, not the login form", p.Status)
	}
	if left, _ := e.store.ListUserSessions(t.Context(), u.ID); len(left) != 0 {
		t.Fatalf("%d sessions left", len(left))
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// deviceCookie returns the value of the browser's trusted-device cookie, or "".
func deviceCookie(t *testing.T, e *env, b *browser) string {
	t.Helper()
	iss, _ := url.Parse(e.issuer)
	for _, c := range b.Client.Jar.Cookies(iss) {
		if c.Name == "idp_device" {
			return c.Value
		}
	}
	return ""
}

func runRememberedDevices(t *testing.T, e *env) {
	ctx := t.Context()
	email := "devices@example.com"
	u := e.createUser(email, password)
	b := e.newBrowser()
	key := enrolTOTP(t, e, b, accountPage(t, e, b, email, nil))
	app := e.createClient(admin.NewClient{Name: "Devices app", RedirectURIs: []string{"https://devices.example.com/cb"}, SkipConsent: true})
	c, err := e.store.GetClient(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	c.Policy.RememberDevice = 30 * 24 * time.Hour
	if err := e.store.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	totp := func(b *browser, p page, remember bool) page {
		e.clock.Advance(30 * time.Second)
		f := p.Hidden()
		f.Set("code", rfc6238(key, e.clock.Now(), 6))
		if remember {
			f.Set("remember", "1")
		}
		return b.Post(e.issuer+"/login/mfa", f)
	}
	startLogin := func(b *browser) page {
		_, ch := pkce()
		return b.Login(b.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
	}

	// Sign in with "remember this device".
	d := e.newBrowser()
	p := startLogin(d)
	if !isMFA(p) || !strings.Contains(p.Body, `name="remember"`) {
		t.Fatalf("second-factor page without \"remember this device\" (status %d):\n%.600s", p.Status, p.Body)
	}
	if p = totp(d, p, true); p.RedirectParams(t).Get("code") == "" {
		t.Fatalf("sign-in with remember: %s", p.Location)
	}
	if deviceCookie(t, e, d) == "" {
		t.Fatal("no device cookie after \"remember this device\"")
	}
	devices, err := e.store.ListUserDevices(ctx, u.ID)
	if err != nil || len(devices) != 1 || devices[0].Name != "Go HTTP client" || devices[0].IP != "127.0.0.1" {
		t.Fatalf("devices = %+v, %v", devices, err)
	}
	deviceID := devices[0].ID

	// The account page lists it.
	p = accountPage(t, e, d, email, func(p page) page { return totp(d, p, false) })
	if ids := matches(deviceIDRE, p.Body); len(ids) != 1 || ids[0] != deviceID || !strings.Contains(p.Body, "Remembered devices") {
		t.Fatalf("account page devices %v, want %s", ids, deviceID)
	}

	// Signed out and in again, the remembered browser skips the second factor.
	p = d.Post(e.issuer+"/account/security/sessions/end", url.Values{"csrf": {p.Hidden().Get("csrf")}, "session": {matches(currentSessionRE, p.Body)[0]}})
	if p.URL.Path != "/logged-out" {
		t.Fatalf("sign-out landed on %s", p.URL)
	}
	if p = startLogin(d); isMFA(p) || p.RedirectParams(t).Get("code") == "" {
		t.Fatalf("remembered device asked for the second factor again (status %d)", p.Status)
	}

	// Another person's remembered device does not help this person, in any browser.
	bob := e.createUser("bob-devices@example.com", password)
	bobToken := randString()
	if err := e.store.CreateDevice(ctx, &storage.Device{ID: "bob-device", UserID: bob.ID, TokenHash: sha256Hex(bobToken), Name: "Firefox on Linux",
		CreatedAt: e.clock.Now(), LastUsedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	shared := e.newBrowser()
	iss, _ := url.Parse(e.issuer)
	shared.Client.Jar.SetCookies(iss, []*http.Cookie{{Name: "idp_device", Value: bobToken, Path: "/"}})
	if p = startLogin(shared); !isMFA(p) {
		t.Fatalf("another person's device cookie skipped the second factor (status %d)", p.Status)
	}

	// Forget it on the account page: the browser is asked for the second factor again.
	p = accountPage(t, e, d, email, func(p page) page { return totp(d, p, false) })
	if r := d.Post(e.issuer+"/account/security/devices/forget", url.Values{"csrf": {p.Hidden().Get("csrf")}, "device": {"bob-device"}}); r.Status != http.StatusNotFound {
		t.Fatalf("forgetting another person's device: status %d", r.Status)
	}
	p = d.Post(e.issuer+"/account/security/devices/forget", url.Values{"csrf": {p.Hidden().Get("csrf")}, "device": {deviceID}})
	if !strings.Contains(p.Body, "Device forgotten.") || len(matches(deviceIDRE, p.Body)) != 0 {
		t.Fatalf("after forgetting: status %d:\n%.800s", p.Status, p.Body)
	}
	if deviceCookie(t, e, d) != "" {
		t.Fatal("device cookie kept after forgetting this browser")
	}
	if left, _ := e.store.ListUserDevices(ctx, u.ID); len(left) != 0 {
		t.Fatalf("%d devices left", len(left))
	}
	if left, _ := e.store.ListUserDevices(ctx, bob.ID); len(left) != 1 {
		t.Fatal("another person's device was forgotten")
	}
	if len(e.auditEvents(audit.EventDeviceRemember)) == 0 || len(e.auditEvents(audit.EventDeviceRevoke)) == 0 {
		t.Fatal("device.remember / device.revoke not audited")
	}
	e.server.EndUserSessions(ctx, u.ID, "test")
	if p = startLogin(d); !isMFA(p) {
		t.Fatalf("forgotten device skipped the second factor (status %d)", p.Status)
	}

	// An administrator (or a password change) revokes every device of a person.
	if n, err := e.server.RevokeDevices(ctx, bob.ID, "password changed"); err != nil || n != 1 {
		t.Fatalf("RevokeDevices = %d, %v", n, err)
	}
}
