package idp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// The fuzz targets of this package drive a real Server on a fresh SQLite database (one
// per fuzzing process) with requests built from the fuzzer's input. An input may name
// values of the running server by placeholders ("$AR" for a live auth request, "$CSRF"
// for a valid form token, ...; see fuzzVars), so that the fuzzer gets past the CSRF check
// and the lookups to the code behind them instead of stopping at the first refusal.
//
// Every iteration is kept cheap: users share one argon2id hash computed at start-up, and
// each iteration gets fresh sessions and auth requests from the store rather than
// through the password form.

// fuzzPassword is the password of every person a fuzzEnv creates.
const fuzzPassword = "correct horse battery staple"

// fuzzRedirectURI is the redirect URI of the fuzzEnv's client.
const fuzzRedirectURI = "https://app.example.com/callback"

// fuzzCSRFValue is the CSRF cookie a fuzzed browser holds; fuzzEnv.csrfToken is its token.
const fuzzCSRFValue = "fuzz-csrf-cookie-value-0123456789abcdef"

// fuzzLog collects the server's log lines of the current request, for failure messages.
type fuzzLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *fuzzLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 64<<10 {
		l.buf.Reset()
	}
	return l.buf.Write(p)
}

func (l *fuzzLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// fuzzMailbox is the e-mail sender of a fuzzEnv: it keeps every code sent, by address.
type fuzzMailbox struct {
	mu    sync.Mutex
	codes map[string][]string
}

var fuzzSixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

func (m *fuzzMailbox) Send(_ context.Context, to, _, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.codes == nil {
		m.codes = map[string][]string{}
	}
	m.codes[to] = append(m.codes[to], fuzzSixDigits.FindString(body))
	return nil
}

// sent returns the codes sent to address so far.
func (m *fuzzMailbox) sent(address string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.codes[address])
}

// fuzzEnv is a running provider for one fuzz target.
type fuzzEnv struct {
	s      *Server
	store  storage.Storage
	issuer string
	admin  *admin.Admin
	hash   string          // argon2id hash of fuzzPassword
	client *storage.Client // confidential, needs consent, may ask for "account"
	// clientSecret is the secret of client.
	clientSecret string
	csrfToken    string // the form token of fuzzCSRFValue
	mail         *fuzzMailbox
	log          *fuzzLog
	ip           atomic.Uint32
}

// newFuzzEnv starts a provider (listening, for the parts that call it over HTTP, such as
// the demo relying party) with e-mail codes and a confidential client that needs consent.
// mutate may change the configuration; e.store and e.issuer are set when it runs.
func newFuzzEnv(f *testing.F, mutate ...func(*fuzzEnv, *Config)) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "idp.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		f.Fatal(err)
	}
	// op logs refused requests through the default logger.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	f.Cleanup(func() { slog.SetDefault(prev) })

	ts := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	e := &fuzzEnv{store: st, issuer: "http://localhost:" + port, mail: &fuzzMailbox{}, log: &fuzzLog{}}
	cfg := Config{
		Issuer: e.issuer, Sealer: sealer, Logger: slog.New(slog.NewTextHandler(e.log, nil)),
		MFA: MFAConfig{EmailSender: e.mail},
	}
	for _, m := range mutate {
		m(e, &cfg)
	}
	if e.s, err = New(ctx, st, cfg); err != nil {
		f.Fatal(err)
	}
	ts.Config.Handler = e.s
	ts.Start()
	f.Cleanup(ts.Close)

	e.admin = &admin.Admin{Store: st, Audit: e.s.audit, Keys: e.s.keys, Now: e.s.now, Issuer: e.issuer}
	if e.hash, err = pwhash.Hash(fuzzPassword); err != nil {
		f.Fatal(err)
	}
	e.client, e.clientSecret, err = e.admin.CreateClient(ctx, "fuzz", admin.NewClient{
		Name: "Fuzz app", RedirectURIs: []string{fuzzRedirectURI}, Scopes: []string{"openid", "profile", "email", "account"},
		AccessTokenLifetime: 24 * time.Hour, // tokens outlive long fuzzing runs
	})
	if err != nil {
		f.Fatal(err)
	}
	e.csrfToken = secret.MAC(e.s.csrfKey, "csrf", fuzzCSRFValue)
	return e
}

// nextIP returns a new client address: per-address limits never build up across
// iterations, so later iterations reach the same code as the first.
func (e *fuzzEnv) nextIP() string {
	n := e.ip.Add(1)
	return "10." + strconv.Itoa(int(n>>16&0xff)) + "." + strconv.Itoa(int(n>>8&0xff)) + "." + strconv.Itoa(int(n&0xff)) + ":40000"
}

// serve answers r from a fresh client address and returns the response and the server's
// log lines of it.
func (e *fuzzEnv) serve(r *http.Request) (*httptest.ResponseRecorder, string) {
	return e.serveFrom(r, e.nextIP())
}

// serveFrom answers r from the client address addr (host:port).
func (e *fuzzEnv) serveFrom(r *http.Request, addr string) (*httptest.ResponseRecorder, string) {
	r.RemoteAddr = addr
	e.log.take()
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, r)
	return rec, e.log.take()
}

// fuzzUser is a person of the fuzzEnv and what the test knows about their factors.
type fuzzUser struct {
	*storage.User
	totpSecret string
	factors    map[storage.FactorKind]string // factor id by kind
	backup     []string
}

// newUser creates a person (with the shared password hash) without factors.
func (e *fuzzEnv) newUser(tb testing.TB) *fuzzUser {
	tb.Helper()
	now := e.s.now()
	id := secret.NewID()
	u := &storage.User{ID: id, Email: strings.ToLower("fuzz-"+id) + "@example.com", Name: "Fuzz " + id, PasswordHash: e.hash, CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return &fuzzUser{User: u, factors: map[storage.FactorKind]string{}}
}

// setupCtx is the context of set-up work done directly on the server: a request from an
// address of its own, so that per-address limits never build up.
func (e *fuzzEnv) setupCtx() context.Context {
	addr := e.nextIP()
	return withRequestInfo(context.Background(), &requestInfo{ID: "fuzz-setup", IP: addr[:strings.LastIndexByte(addr, ':')]})
}

// newMFAUser creates a person with an authenticator app, e-mail codes and backup codes.
func (e *fuzzEnv) newMFAUser(tb testing.TB) *fuzzUser {
	tb.Helper()
	u := e.newUser(tb)
	e.addFactors(tb, u)
	return u
}

// addFactors enrols an authenticator app, e-mail codes and backup codes for u.
func (e *fuzzEnv) addFactors(tb testing.TB, u *fuzzUser) {
	tb.Helper()
	ctx := e.setupCtx()
	enr, err := e.s.startEnroll(ctx, u.User, storage.FactorTOTP, mfa.EnrollRequest{Name: "Phone"})
	if err != nil {
		tb.Fatal(err)
	}
	// Confirmed with the previous time step's code (within the allowed drift), so that
	// the current code is still unused: "$CODE" can succeed.
	if err := e.s.confirmEnroll(ctx, u.User, enr.Factor.ID, enr.ChallengeID, fuzzTOTPCode(tb, enr.Secret, e.s.now().Add(-30*time.Second))); err != nil {
		tb.Fatal(err)
	}
	u.totpSecret, u.factors[storage.FactorTOTP] = enr.Secret, enr.Factor.ID

	if enr, err = e.s.startEnroll(ctx, u.User, storage.FactorEmail, mfa.EnrollRequest{Email: u.Email}); err != nil {
		tb.Fatal(err)
	}
	codes := e.mail.sent(u.Email)
	if err := e.s.confirmEnroll(ctx, u.User, enr.Factor.ID, enr.ChallengeID, codes[len(codes)-1]); err != nil {
		tb.Fatal(err)
	}
	u.factors[storage.FactorEmail] = enr.Factor.ID

	if enr, err = e.s.startEnroll(ctx, u.User, storage.FactorBackup, mfa.EnrollRequest{}); err != nil {
		tb.Fatal(err)
	}
	u.backup, u.factors[storage.FactorBackup] = enr.Codes, enr.Factor.ID
}

var fuzzTOTPOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func fuzzTOTPCode(tb testing.TB, secret string, at time.Time) string {
	tb.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, fuzzTOTPOpts)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// newSession stores a live SSO session of u, password-only or with a second factor, and
// returns it with its cookie value.
func (e *fuzzEnv) newSession(tb testing.TB, u *fuzzUser, withMFA bool) (*storage.Session, string) {
	tb.Helper()
	now := e.s.now()
	value := secret.Token(32)
	sess := &storage.Session{
		ID: secret.NewID(), TokenHash: secret.Hash(value), UserID: u.ID, AuthTime: now, PasswordAt: now,
		AMR: []string{mfa.AMRPassword}, ACR: consent.ACRPassword, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(24 * time.Hour),
	}
	if withMFA {
		sess.MFAAt, sess.Factors = now, []storage.FactorKind{storage.FactorTOTP}
		sess.AMR, sess.ACR = combineAMR([]string{mfa.AMRPassword, mfa.AMROTP}), consent.ACRMFA
	}
	if err := e.store.CreateSession(context.Background(), sess); err != nil {
		tb.Fatal(err)
	}
	return sess, value
}

// newDevice stores a remembered device of u and returns it with its cookie value.
func (e *fuzzEnv) newDevice(tb testing.TB, u *fuzzUser) (*storage.Device, string) {
	tb.Helper()
	now := e.s.now()
	value := secret.Token(32)
	d := &storage.Device{ID: secret.NewID(), UserID: u.ID, TokenHash: secret.Hash(value), Name: "Firefox on Linux", IP: "10.0.0.1",
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	if err := e.store.CreateDevice(context.Background(), d); err != nil {
		tb.Fatal(err)
	}
	return d, value
}

// newAuthRequest stores a live authorization request of the fuzzEnv's client, attached
// to sess (as after the password step) unless sess is nil.
func (e *fuzzEnv) newAuthRequest(tb testing.TB, sess *storage.Session) *storage.AuthRequest {
	tb.Helper()
	now := e.s.now()
	ar := &storage.AuthRequest{
		ID: secret.NewID(), ClientID: e.client.ID, RedirectURI: fuzzRedirectURI, State: "fuzz-state", Nonce: "fuzz-nonce",
		Scopes: []string{"openid", "profile"}, ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute),
	}
	if sess != nil {
		ar.Login = storage.AuthLogin{UserID: sess.UserID, SessionID: sess.ID, AuthTime: sess.AuthTime, AMR: sess.AMR, ACR: sess.ACR}
	}
	if err := e.store.CreateAuthRequest(context.Background(), ar); err != nil {
		tb.Fatal(err)
	}
	return ar
}

// fuzzVars replaces placeholders in fuzzed input with values of the running server,
// longest name first (so "$SESSION2" is not read as "$SESSION" and a "2").
type fuzzVars map[string]string

func (v fuzzVars) expand(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(names))
	for _, k := range names {
		pairs = append(pairs, k, v[k])
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// cookie returns "name=value" for the cookie the server calls base.
func (e *fuzzEnv) cookie(base, value string) string { return e.s.cookieName(base) + "=" + value }

// formRequest builds a form POST to path with the Cookie header cookies (none if empty).
func (e *fuzzEnv) formRequest(path, body, cookies string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookies != "" {
		r.Header.Set("Cookie", cookies)
	}
	return r
}

// cookieValue returns the value of the first cookie the server calls base in r, as the
// server reads it, or "".
func (e *fuzzEnv) cookieValue(r *http.Request, base string) string {
	c, err := r.Cookie(e.s.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}

// parsedForm parses a copy of a form request the way the handlers do (body limit
// included), for the test to know what the handler saw. ok is false when the form cannot
// be parsed.
func (e *fuzzEnv) parsedForm(path, body, cookies string, limit int64) (r *http.Request, ok bool) {
	r = e.formRequest(path, body, cookies)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
	return r, r.ParseForm() == nil
}

// validCSRF reports whether the parsed request r carries a valid CSRF token.
func (e *fuzzEnv) validCSRF(r *http.Request) bool {
	c, err := r.Cookie(e.s.cookieName(csrfCookie))
	return err == nil && c.Value != "" && r.PostFormValue("csrf") == secret.MAC(e.s.csrfKey, "csrf", c.Value)
}

// setsCookie reports whether the response sets (not clears) the cookie the server calls base.
func (e *fuzzEnv) setsCookie(rec *httptest.ResponseRecorder, base string) bool {
	for _, c := range rec.Result().Cookies() {
		if c.Name == e.s.cookieName(base) && c.MaxAge >= 0 && c.Value != "" {
			return true
		}
	}
	return false
}

// fuzzCSRFRefused reports whether rec is the page of a failed CSRF check.
func fuzzCSRFRefused(rec *httptest.ResponseRecorder) bool {
	return rec.Code == http.StatusForbidden && strings.Contains(rec.Body.String(), "Form expired")
}

// fuzzNoServerError fails the fuzz iteration on a 5xx answer: for a request that only
// differs from a good one in what the client sent, that means the input was not handled.
func fuzzNoServerError(t *testing.T, what string, rec *httptest.ResponseRecorder, logs string) {
	t.Helper()
	if rec.Code >= 500 {
		fuzzFail(t, what, rec, logs, "a server error for client input")
	}
}

// fuzzFail fails the fuzz iteration with what was sent (what), what came back and the
// server's log of it.
func fuzzFail(t *testing.T, what string, rec *httptest.ResponseRecorder, logs, format string, args ...any) {
	t.Helper()
	if len(what) > 1000 {
		what = what[:1000] + "…"
	}
	if len(logs) > 4000 {
		logs = logs[:4000] + "…"
	}
	t.Fatalf("%s\n"+format+"\nstatus %d, Location %q\nbody: %.400s\nlog:\n%s",
		append(append([]any{what}, args...), rec.Code, rec.Header().Get("Location"), rec.Body.String(), logs)...)
}
