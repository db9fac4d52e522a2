package idp_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// backends lists the storage backends every end-to-end test runs on.
var backends = []struct {
	name string
	open func(tb testing.TB) storage.Storage
}{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

func openSQLite(tb testing.TB) storage.Storage {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "idp.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}

func openPostgres(tb testing.TB) storage.Storage {
	tb.Helper()
	dsn := pgtest.NewDatabase(tb)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}

// clock is a settable clock shared by the server under test.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// env is a running provider with a store the test can inspect.
type env struct {
	t      testing.TB
	store  storage.Storage
	server *idp.Server
	issuer string
	clock  *clock
	admin  *idp.Admin
}

func newEnv(tb testing.TB, st storage.Storage, mutate ...func(*idp.Config)) *env {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		tb.Fatal(err)
	}
	clk := &clock{}
	cfg := idp.Config{
		Issuer: issuer, Sealer: sealer, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := idp.New(context.Background(), st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	tb.Cleanup(ts.Close)
	e := &env{t: tb, store: st, server: srv, issuer: issuer, clock: clk}
	e.admin = &idp.Admin{Store: st, Audit: srv.Auditor(), Keys: srv.Keys(), Now: clk.Now}
	return e
}

func (e *env) createUser(email, password string) *storage.User {
	e.t.Helper()
	u, err := e.admin.CreateUser(context.Background(), "test", idp.NewUser{Email: email, Name: "Test " + email, Password: password})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// testClient is a registered client as the relying party knows it.
type testClient struct {
	ID, Secret, RedirectURI string
}

func (e *env) createClient(in idp.NewClient) testClient {
	e.t.Helper()
	if len(in.RedirectURIs) == 0 && !(len(in.GrantTypes) == 1 && in.GrantTypes[0] == "client_credentials") {
		in.RedirectURIs = []string{"https://app.example.com/callback"}
	}
	if in.Name == "" {
		in.Name = "Test app"
	}
	c, secret, err := e.admin.CreateClient(context.Background(), "test", in)
	if err != nil {
		e.t.Fatal(err)
	}
	tc := testClient{ID: c.ID, Secret: secret}
	if len(c.RedirectURIs) > 0 {
		tc.RedirectURI = c.RedirectURIs[0]
	}
	return tc
}

func (e *env) auditCount(typ, result string) int {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if result == "" || ev.Result == result {
			n++
		}
	}
	return n
}

// browser is a cookie-keeping HTTP client that stops at redirects leaving the provider.
type browser struct {
	t      testing.TB
	c      *http.Client
	issuer string
}

func (e *env) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: e.t, issuer: e.issuer}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), e.issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// page is a response as the browser saw it.
type page struct {
	status   int
	url      *url.URL // final URL inside the provider
	location string   // redirect target outside the provider, if any
	body     string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL, location: resp.Header.Get("Location"), body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hidden returns the hidden form fields of a page.
func (p page) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func (p page) isLogin() bool   { return strings.Contains(p.body, `action="/login"`) }
func (p page) isConsent() bool { return strings.Contains(p.body, `action="/consent"`) }

// redirectParams returns the query of the redirect to the relying party.
func (p page) redirectParams(t testing.TB) url.Values {
	t.Helper()
	if p.location == "" {
		t.Fatalf("expected a redirect to the relying party, got status %d at %s:\n%.600s", p.status, p.url, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// login submits the password form on p.
func (b *browser) login(p page, email, password string) page {
	b.t.Helper()
	if !p.isLogin() {
		b.t.Fatalf("expected the login form, got status %d:\n%.600s", p.status, p.body)
	}
	f := p.hidden()
	f.Set("email", email)
	f.Set("password", password)
	return b.post(b.issuer+"/login", f)
}

// consent answers the consent page on p.
func (b *browser) consent(p page, action string) page {
	b.t.Helper()
	if !p.isConsent() {
		b.t.Fatalf("expected the consent page, got status %d:\n%.600s", p.status, p.body)
	}
	f := p.hidden()
	f.Set("action", action)
	return b.post(b.issuer+"/consent", f)
}

// pkce returns a fresh S256 verifier and challenge.
func pkce() (verifier, challenge string) {
	verifier = randString()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func randString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authURL builds an authorization request.
func (e *env) authURL(c testClient, extra url.Values) string {
	q := url.Values{
		"client_id":     {c.ID},
		"redirect_uri":  {c.RedirectURI},
		"response_type": {"code"},
		"scope":         {"openid profile email offline_access"},
		"state":         {"st-" + randString()},
		"nonce":         {"n-" + randString()},
	}
	for k, v := range extra {
		q[k] = v
	}
	return e.issuer + "/authorize?" + q.Encode()
}

// tokenResponse is the token endpoint's JSON.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
	status       int
}

// tokenRequest posts form to the token endpoint, authenticating with basic auth when
// c.Secret is set.
func (e *env) tokenRequest(c testClient, form url.Values) tokenResponse {
	e.t.Helper()
	return e.postToken(e.issuer+"/oauth/token", c, form)
}

func (e *env) postToken(endpoint string, c testClient, form url.Values) tokenResponse {
	e.t.Helper()
	if c.Secret == "" {
		form.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil && !errors.Is(err, io.EOF) {
		e.t.Fatalf("token response: %v", err)
	}
	tr.status = resp.StatusCode
	return tr
}
