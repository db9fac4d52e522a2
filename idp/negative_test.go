package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// state counts what a failed request must not leave behind.
type state struct{ sessions, issued, consents int }

func snapshot(t *testing.T, e *env, userID, clientID string) state {
	t.Helper()
	sess, err := e.store.ListUserSessions(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var consents int
	if _, err := e.store.GetConsent(context.Background(), userID, clientID); err == nil {
		consents = 1
	}
	return state{sessions: len(sess), issued: e.auditCount(audit.EventTokenIssue, ""), consents: consents}
}

// TestNegative checks that bad requests get the error the RFCs name and change nothing.
func TestNegative(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			runNegative(t, e)
		})
	}
}

func runNegative(t *testing.T, e *env) {
	user := e.createUser("alice@example.com", password)
	app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	pub := e.createClient(admin.NewClient{Name: "SPA", Public: true, RedirectURIs: []string{"https://spa.example.com/cb"}})

	// codeFor returns a fresh code (and its PKCE verifier) from a logged-in browser.
	b := e.newBrowser()
	codeFor := func(t *testing.T, c testClient) (code, verifier string) {
		t.Helper()
		v, ch := pkce()
		p := b.Get(e.authURL(c, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		if p.IsLogin() {
			p = b.Login(p, user.Email, password)
		}
		if p.IsConsent() {
			p = b.Consent(p, "allow")
		}
		return p.RedirectParams(t).Get("code"), v
	}
	exchange := func(c testClient, code, verifier string) tokenResponse {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}}
		if verifier != "" {
			f.Set("code_verifier", verifier)
		}
		return e.tokenRequest(c, f)
	}

	tokenCases := []struct {
		name       string
		run        func(t *testing.T) tokenResponse
		wantError  string
		wantStatus int
	}{
		{"missing PKCE verifier", func(t *testing.T) tokenResponse {
			code, _ := codeFor(t, app)
			return exchange(app, code, "")
		}, "invalid_request", http.StatusBadRequest},
		{"wrong PKCE verifier", func(t *testing.T) tokenResponse {
			code, _ := codeFor(t, app)
			return exchange(app, code, randString())
		}, "invalid_grant", http.StatusBadRequest},
		{"reused code", func(t *testing.T) tokenResponse {
			code, v := codeFor(t, app)
			if first := exchange(app, code, v); first.Error != "" {
				t.Fatalf("first exchange: %+v", first)
			}
			return exchange(app, code, v)
		}, "invalid_grant", http.StatusBadRequest},
		{"expired code", func(t *testing.T) tokenResponse {
			code, v := codeFor(t, app)
			e.clock.Advance(2 * time.Minute)
			return exchange(app, code, v)
		}, "invalid_grant", http.StatusBadRequest},
		{"wrong client secret", func(t *testing.T) tokenResponse {
			code, v := codeFor(t, app)
			bad := app
			bad.Secret = randString()
			return exchange(bad, code, v)
		}, "invalid_client", http.StatusUnauthorized},
		{"redirect_uri differs at token endpoint", func(t *testing.T) tokenResponse {
			code, v := codeFor(t, app)
			other := app
			other.RedirectURI = "https://app.example.com/other"
			return exchange(other, code, v)
		}, "invalid_grant", http.StatusBadRequest},
		{"public client without verifier", func(t *testing.T) tokenResponse {
			code, _ := codeFor(t, pub)
			return exchange(pub, code, "")
		}, "invalid_request", http.StatusBadRequest},
		{"unknown grant type", func(t *testing.T) tokenResponse {
			return e.tokenRequest(app, url.Values{"grant_type": {"password"}, "username": {user.Email}, "password": {password}})
		}, "unsupported_grant_type", http.StatusBadRequest},
		{"client_credentials for a client without that grant", func(t *testing.T) tokenResponse {
			return e.tokenRequest(app, url.Values{"grant_type": {"client_credentials"}})
		}, "unauthorized_client", http.StatusBadRequest},
	}
	for _, tc := range tokenCases {
		t.Run("token/"+tc.name, func(t *testing.T) {
			issuedBefore := e.auditCount(audit.EventTokenIssue, "")
			tr := tc.run(t)
			issuedDuring := e.auditCount(audit.EventTokenIssue, "") - issuedBefore
			if tr.Error != tc.wantError || tr.Status != tc.wantStatus {
				t.Fatalf("got error %q (%s) status %d, want %q status %d", tr.Error, tr.ErrorDesc, tr.Status, tc.wantError, tc.wantStatus)
			}
			if tr.AccessToken != "" || tr.IDToken != "" {
				t.Fatal("tokens issued despite the error")
			}
			// A reused code succeeded once, on purpose; nothing else may have issued tokens.
			if want := map[bool]int{true: 1, false: 0}[tc.name == "reused code"]; issuedDuring != want {
				t.Fatalf("%d token issues recorded, want %d", issuedDuring, want)
			}
		})
	}

	// Errors at /authorize that go back to the relying party.
	fresh := e.newBrowser() // no session
	authCases := []struct {
		name      string
		b         *browser
		c         testClient
		params    url.Values
		wantError string
	}{
		{"prompt=none without a session", fresh, app, url.Values{"prompt": {"none"}}, "login_required"},
		{"unknown scope", fresh, app, url.Values{"scope": {"openid admin:everything"}}, "invalid_scope"},
		{"scope the client may not request", fresh, app, url.Values{"scope": {"openid account"}}, "invalid_scope"},
		{"PKCE plain", fresh, app, url.Values{"code_challenge": {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs"}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{"public client without PKCE", fresh, pub, nil, "invalid_request"},
		// RFC 6749 4.1.2.1: a response type the provider does not offer (only code).
		{"unregistered response type", fresh, app, url.Values{"response_type": {"token"}}, "unsupported_response_type"},
	}
	for _, tc := range authCases {
		t.Run("authorize/"+tc.name, func(t *testing.T) {
			before := snapshot(t, e, user.ID, tc.c.ID)
			p := tc.b.Get(e.authURL(tc.c, tc.params))
			q := p.RedirectParams(t)
			if q.Get("error") != tc.wantError || q.Get("state") == "" || q.Get("code") != "" {
				t.Fatalf("redirect params = %v, want error=%s with state", q, tc.wantError)
			}
			if !strings.HasPrefix(p.Location, tc.c.RedirectURI) {
				t.Fatalf("error sent to %q", p.Location)
			}
			if after := snapshot(t, e, user.ID, tc.c.ID); after != before {
				t.Fatalf("state changed: %+v -> %+v", before, after)
			}
		})
	}

	t.Run("authorize/wrong redirect URI is never redirected to", func(t *testing.T) {
		p := fresh.Get(e.authURL(testClient{ID: app.ID, RedirectURI: "https://evil.example.com/cb"}, nil))
		if p.Location != "" || p.Status != http.StatusBadRequest {
			t.Fatalf("status %d, location %q", p.Status, p.Location)
		}
		if !strings.Contains(p.Body, "redirect_uri") {
			t.Fatalf("error does not name redirect_uri: %s", p.Body)
		}
		p = fresh.Get(e.authURL(testClient{ID: app.ID, RedirectURI: app.RedirectURI + "/"}, nil))
		if p.Location != "" || p.Status != http.StatusBadRequest {
			t.Fatalf("trailing-slash variant accepted: status %d, location %q", p.Status, p.Location)
		}
	})

	t.Run("login/bad password and unknown account look the same", func(t *testing.T) {
		before := snapshot(t, e, user.ID, app.ID)
		br := e.newBrowser()
		_, ch := pkce()
		p := br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		bad := br.Login(p, user.Email, "wrong password!")
		unknown := br.Login(br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), "nobody@example.com", "wrong password!")
		for _, got := range []page{bad, unknown} {
			if got.Status != http.StatusUnauthorized || !strings.Contains(got.Body, "Incorrect email or password.") || !got.IsLogin() {
				t.Fatalf("status %d body %.300s", got.Status, got.Body)
			}
		}
		if after := snapshot(t, e, user.ID, app.ID); after != before {
			t.Fatalf("state changed: %+v -> %+v", before, after)
		}
		if e.auditCount(audit.EventLoginPassword, audit.ResultFailure) < 2 {
			t.Fatal("failed logins not audited")
		}
	})

	t.Run("login/CSRF token missing or wrong", func(t *testing.T) {
		before := snapshot(t, e, user.ID, app.ID)
		br := e.newBrowser()
		_, ch := pkce()
		p := br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		for _, csrf := range []string{"", "forged"} {
			f := p.Hidden()
			f.Set("csrf", csrf)
			f.Set("email", user.Email)
			f.Set("password", password)
			got := br.Post(e.issuer+"/login", f)
			if got.Status != http.StatusForbidden || !strings.Contains(got.Body, "security token") {
				t.Fatalf("csrf=%q: status %d", csrf, got.Status)
			}
		}
		if after := snapshot(t, e, user.ID, app.ID); after != before {
			t.Fatalf("state changed: %+v -> %+v", before, after)
		}
	})

	t.Run("consent/deny returns access_denied and stores nothing", func(t *testing.T) {
		other := e.createClient(admin.NewClient{Name: "Other", RedirectURIs: []string{"https://other.example.com/cb"}})
		_, ch := pkce()
		p := b.Get(e.authURL(other, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		p = b.Consent(p, "deny")
		if q := p.RedirectParams(t); q.Get("error") != "access_denied" {
			t.Fatalf("deny: %v", q)
		}
		if _, err := e.store.GetConsent(context.Background(), user.ID, other.ID); err == nil {
			t.Fatal("consent stored after deny")
		}
	})

	t.Run("login/disabled account", func(t *testing.T) {
		mallory := e.createUser("mallory@example.com", password)
		if err := e.admin.DisableUser(context.Background(), "test", mallory.ID); err != nil {
			t.Fatal(err)
		}
		br := e.newBrowser()
		_, ch := pkce()
		p := br.Login(br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), mallory.Email, password)
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Incorrect email or password.") {
			t.Fatalf("disabled account: status %d", p.Status)
		}
	})

	t.Run("login/rate limited per account, even with the right password", func(t *testing.T) {
		bob := e.createUser("bob@example.com", password)
		br := e.newBrowser()
		_, ch := pkce()
		start := br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		for i := 0; i < 5; i++ {
			if p := br.Login(start, bob.Email, "not the password"); p.Status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: status %d", i+1, p.Status)
			}
		}
		p := br.Login(start, bob.Email, password)
		if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many failed sign-in attempts") {
			t.Fatalf("6th attempt: status %d %.300s", p.Status, p.Body)
		}
		if sess, _ := e.store.ListUserSessions(context.Background(), bob.ID); len(sess) != 0 {
			t.Fatal("session created while rate limited")
		}
		// After the window the right password works again.
		e.clock.Advance(16 * time.Minute)
		p = br.Login(br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), bob.Email, password)
		if !p.IsConsent() {
			t.Fatalf("after the window: status %d %.300s", p.Status, p.Body)
		}
		evs, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{UserID: bob.ID, Type: audit.EventLoginPassword})
		var limited bool
		for _, ev := range evs {
			limited = limited || strings.Contains(ev.Reason, "rate limited")
		}
		if !limited {
			t.Fatal("rate limiting not audited")
		}
	})

	t.Run("callback/completed request cannot be redeemed from another browser", func(t *testing.T) {
		br := e.newBrowser()
		_, ch := pkce()
		p := br.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		id := p.Hidden().Get("id")
		p = br.Login(p, user.Email, password)
		if !p.IsConsent() && p.Location == "" {
			t.Fatalf("unexpected page %d", p.Status)
		}
		attacker := e.newBrowser()
		got := attacker.Get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(id))
		if got.Location != "" || got.Status != http.StatusForbidden {
			t.Fatalf("foreign browser got status %d location %q", got.Status, got.Location)
		}
	})
}
