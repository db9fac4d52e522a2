package idp_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// Issue 7, finding 5: anonymous requests must have bounded cost. These tests replay each
// attack: huge /authorize parameters, many /authorize requests from one address, a huge
// User-Agent on failed logins, and logins beyond the password-hash memory budget.

// countingStore counts the auth requests stored through it.
type countingStore struct {
	storage.Storage
	authRequests atomic.Int64
}

func (s *countingStore) CreateAuthRequest(ctx context.Context, r *storage.AuthRequest) error {
	err := s.Storage.CreateAuthRequest(ctx, r)
	if err == nil {
		s.authRequests.Add(1)
	}
	return err
}

// noRedirects is a client that shows every redirect instead of following it.
var noRedirects = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type authorizeAnswer struct {
	status   int
	location *url.URL // nil unless a redirect
	body     string
}

// redirectedTo reports whether the answer redirects to uri (ignoring its query).
func (a authorizeAnswer) redirectedTo(uri string) bool {
	if a.location == nil {
		return false
	}
	u := *a.location
	u.RawQuery = ""
	return u.String() == uri
}

func authorizeRequest(t *testing.T, e *env, method string, params url.Values) authorizeAnswer {
	t.Helper()
	var req *http.Request
	if method == http.MethodPost {
		req, _ = http.NewRequest(method, e.issuer+"/authorize", strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(method, e.issuer+"/authorize?"+params.Encode(), nil)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := authorizeAnswer{status: resp.StatusCode, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		if a.location, err = url.Parse(loc); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func authorizeParams(c testClient, extra url.Values) url.Values {
	q := url.Values{"client_id": {c.ID}, "redirect_uri": {c.RedirectURI}, "response_type": {"code"},
		"scope": {"openid profile"}, "state": {"st-" + randString()}, "nonce": {"n-" + randString()}}
	for k, v := range extra {
		q[k] = v
	}
	return q
}

func TestAuthorizeLimits(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := &countingStore{Storage: be.open(t)}
			e := newEnv(t, st)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
			other := e.createClient(admin.NewClient{Name: "Other", RedirectURIs: []string{"https://other.example.com/cb"}})
			long := func(n int) string { return strings.Repeat("x", n) }
			const (
				stored   = "stored"   // accepted: on to the login page
				page     = "page"     // refused with a 400 page
				redirect = "redirect" // refused with invalid_request at the client's redirect URI
			)
			tests := []struct {
				name      string
				method    string
				params    url.Values
				want      string
				wantState bool // the refusal echoes state
			}{
				{"limits themselves", http.MethodGet, authorizeParams(app, url.Values{"state": {long(2048)}, "nonce": {long(512)},
					"login_hint": {long(256)}, "code_challenge": {long(43)}, "code_challenge_method": {"S256"}}), stored, false},
				{"9 MB state in a POST body", http.MethodPost, authorizeParams(app, url.Values{"state": {long(9 << 20)}}), page, false},
				{"body over 16 KiB", http.MethodPost, authorizeParams(app, url.Values{"foo": {long(17 << 10)}}), page, false},
				{"query over 16 KiB", http.MethodGet, authorizeParams(app, url.Values{"foo": {long(17 << 10)}}), page, false},
				{"state", http.MethodGet, authorizeParams(app, url.Values{"state": {long(2049)}}), redirect, false},
				{"state in a POST body", http.MethodPost, authorizeParams(app, url.Values{"state": {long(2049)}}), redirect, false},
				{"nonce", http.MethodGet, authorizeParams(app, url.Values{"nonce": {long(513)}}), redirect, true},
				{"login_hint", http.MethodGet, authorizeParams(app, url.Values{"login_hint": {long(257)}}), redirect, true},
				{"scope", http.MethodGet, authorizeParams(app, url.Values{"scope": {"openid " + long(1024)}}), redirect, true},
				{"acr_values", http.MethodGet, authorizeParams(app, url.Values{"acr_values": {long(513)}}), redirect, true},
				{"claims", http.MethodGet, authorizeParams(app, url.Values{"claims": {`{"id_token":{"x":` + long(4096) + `}}`}}), redirect, true},
				{"ui_locales", http.MethodGet, authorizeParams(app, url.Values{"ui_locales": {strings.Repeat("en ", 90)}}), redirect, true},
				{"id_token_hint", http.MethodGet, authorizeParams(app, url.Values{"id_token_hint": {long(8193)}}), redirect, true},
				{"code_challenge too short (RFC 7636 4.2)", http.MethodGet, authorizeParams(app, url.Values{"code_challenge": {long(42)}, "code_challenge_method": {"S256"}}), redirect, true},
				{"code_challenge too long (RFC 7636 4.2)", http.MethodGet, authorizeParams(app, url.Values{"code_challenge": {long(129)}, "code_challenge_method": {"S256"}}), redirect, true},
				{"second value of a parameter", http.MethodGet, authorizeParams(app, url.Values{"nonce": {"n", long(513)}}), redirect, true},
				{"redirect_uri: never redirected to", http.MethodGet, authorizeParams(app, url.Values{"redirect_uri": {app.RedirectURI + "?" + long(2048)}}), page, false},
				{"unknown client", http.MethodGet, authorizeParams(testClient{ID: "nope", RedirectURI: app.RedirectURI}, url.Values{"nonce": {long(513)}}), page, false},
				{"redirect_uri of another client", http.MethodGet, authorizeParams(testClient{ID: app.ID, RedirectURI: other.RedirectURI}, url.Values{"nonce": {long(513)}}), page, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := st.authRequests.Load()
					got := authorizeRequest(t, e, tt.method, tt.params)
					rows := st.authRequests.Load() - before
					switch tt.want {
					case stored:
						if rows != 1 || got.location == nil || got.location.Path != "/login" {
							t.Fatalf("status %d, location %v, %d rows stored; want a redirect to /login and 1 row", got.status, got.location, rows)
						}
						return
					case page:
						if got.status != http.StatusBadRequest || got.location != nil || !strings.Contains(got.body, "<html") {
							t.Fatalf("status %d, location %v; want a 400 page\n%.300s", got.status, got.location, got.body)
						}
					case redirect:
						if !got.redirectedTo(tt.params.Get("redirect_uri")) {
							t.Fatalf("status %d, location %v; want a redirect to %s\n%.300s", got.status, got.location, tt.params.Get("redirect_uri"), got.body)
						}
						q := got.location.Query()
						if q.Get("error") != "invalid_request" || q.Get("error_description") == "" {
							t.Fatalf("redirected with %v, want error=invalid_request and a description", q)
						}
						if gotState, want := q.Get("state"), tt.params.Get("state"); tt.wantState != (gotState != "") || (tt.wantState && gotState != want) {
							t.Fatalf("state echoed %q (%d bytes), want it echoed: %v", gotState, len(gotState), tt.wantState)
						}
					}
					if rows != 0 {
						t.Fatalf("%d auth requests stored, want none", rows)
					}
				})
			}
		})
	}
}

// TestAuthorizeRatePerAddress: 300 anonymous /authorize requests from one address store
// at most AuthorizeLimits.PerIP rows; the rest go back to the client as
// temporarily_unavailable, until the window has passed.
func TestAuthorizeRatePerAddress(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := &countingStore{Storage: be.open(t)}
			e := newEnv(t, st)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
			const requests = 300
			var toLogin, refused int
			for range requests {
				got := authorizeRequest(t, e, http.MethodGet, authorizeParams(app, nil))
				switch {
				case got.location != nil && got.location.Path == "/login":
					toLogin++
				case got.redirectedTo(app.RedirectURI) && got.location.Query().Get("error") == "temporarily_unavailable":
					refused++
				default:
					t.Fatalf("unexpected answer: status %d, location %v\n%.300s", got.status, got.location, got.body)
				}
			}
			rows := st.authRequests.Load()
			t.Logf("%d GET /authorize from one address: %d stored, %d refused", requests, rows, refused)
			if rows != idp.DefaultAuthorizePerIP || toLogin != idp.DefaultAuthorizePerIP || refused != requests-idp.DefaultAuthorizePerIP {
				t.Fatalf("%d rows stored, %d to login, %d refused; want %d, %d, %d", rows, toLogin, refused,
					idp.DefaultAuthorizePerIP, idp.DefaultAuthorizePerIP, requests-idp.DefaultAuthorizePerIP)
			}
			e.clock.Advance(idp.DefaultAuthorizeWindow)
			if got := authorizeRequest(t, e, http.MethodGet, authorizeParams(app, nil)); got.location == nil || got.location.Path != "/login" {
				t.Fatalf("after the window: status %d, location %v", got.status, got.location)
			}
		})
	}
}

// loginForm opens a login page for c in a new browser and returns the browser and the
// form's hidden fields.
func loginForm(t *testing.T, e *env, c testClient) (*browser, url.Values) {
	t.Helper()
	b := e.newBrowser()
	p := b.Get(e.authURL(c, nil))
	if !p.IsLogin() {
		t.Fatalf("expected the login form, got status %d:\n%.600s", p.Status, p.Body)
	}
	return b, p.Hidden()
}

// postLogin submits the login form with b's cookies and the given User-Agent, and
// returns the answer without following a redirect.
func postLogin(t *testing.T, e *env, b *browser, form url.Values, userAgent string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", userAgent)
	c := &http.Client{Jar: b.Client.Jar, Timeout: 30 * time.Second, CheckRedirect: noRedirects.CheckRedirect}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestFailedLoginAuditCapped: a refused login with a 60 KB User-Agent still writes its
// audit event, with the user agent cut to 512 bytes.
func TestFailedLoginAuditCapped(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
			b, form := loginForm(t, e, app)
			form.Set("email", "nobody@example.com")
			form.Set("password", "wrong password")
			ua := "Mozilla/5.0 " + strings.Repeat("é", 30<<10) // 60 KB, two bytes per é
			if resp := postLogin(t, e, b, form, ua); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventLoginPassword})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Result != audit.ResultFailure {
				t.Fatalf("audit events %+v, want one failed login", evs)
			}
			got := evs[0].UserAgent
			if len(got) > 512 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") ||
				!strings.HasPrefix(ua, strings.TrimSuffix(got, "…")) {
				t.Fatalf("stored user agent: %d bytes, valid UTF-8 %v, %q…%q", len(got), utf8.ValidString(got), got[:20], got[len(got)-10:])
			}
		})
	}
}

// TestLoginBusy: with the password-hash memory budget taken, a login is answered with
// 503, Retry-After and a page, not checked and not counted as a wrong password; once
// memory is free, the same form works.
func TestLoginBusy(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t), func(c *idp.Config) {
				c.PasswordHashMemory = 19 << 20
				c.PasswordHashWait = 50 * time.Millisecond
			})
			e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
			b, form := loginForm(t, e, app)
			form.Set("email", "alice@example.com")
			form.Set("password", password)

			release := e.server.HoldPasswordHashesForTest()
			resp := postLogin(t, e, b, form, "test")
			body, _ := io.ReadAll(resp.Body)
			release()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503\n%.300s", resp.StatusCode, body)
			}
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<html") {
				t.Fatalf("503 without a page: %s\n%.300s", resp.Header.Get("Content-Type"), body)
			}
			if n := e.auditCount(audit.EventLoginPassword, audit.ResultFailure); n != 0 {
				t.Fatalf("%d failed logins recorded for a login that was never checked", n)
			}

			if resp := postLogin(t, e, b, form, "test"); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("after the budget freed: status %d, want 303", resp.StatusCode)
			}
		})
	}
}

// TestAdminCreateUserBusy: the admin API shares the budget, answering 503 with
// Retry-After when it is taken.
func TestAdminCreateUserBusy(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *idp.Config) {
		c.PasswordHashMemory = 19 << 20
		c.PasswordHashQueue = -1
	})
	token, _ := adminToken(t, e, "Provisioning", []string{"admin"}, "admin")
	release := e.server.HoldPasswordHashesForTest()
	st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", map[string]any{"email": "bob@example.com", "password": password})
	release()
	if st != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
		t.Fatalf("got %d %v, want 503 temporarily_unavailable", st, out)
	}
	if _, err := e.store.GetUserByEmail(context.Background(), "bob@example.com"); err == nil {
		t.Fatal("user created although the password was not hashed")
	}
	if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", map[string]any{"email": "bob@example.com", "password": password}); st != http.StatusCreated {
		t.Fatalf("after the budget freed: %d %v", st, out)
	}
}
