package idp_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
)

// TestPromptAndMaxAge checks OIDC Core 3.1.2.1 prompt and max_age handling against an
// existing SSO session.
func TestPromptAndMaxAge(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.createUser("alice@example.com", password)
	e.createUser("bob@example.com", password)
	app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	b := e.newBrowser()
	first := loginCode(t, e, b, app, nil) // password + consent, session established
	firstClaims := verifyWithJWKS(t, e, first.IDToken, app.ID)
	firstAuth := int64(firstClaims["auth_time"].(float64))

	start := func(extra url.Values) page {
		t.Helper()
		_, ch := pkce()
		q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
		for k, v := range extra {
			q[k] = v
		}
		return b.Get(e.authURL(app, q))
	}

	tests := []struct {
		name        string
		advance     time.Duration
		params      url.Values
		wantLogin   bool
		wantConsent bool
	}{
		{"session and consent: straight back", 0, nil, false, false},
		{"prompt=none with session and consent", 0, url.Values{"prompt": {"none"}}, false, false},
		{"prompt=login forces the password", 0, url.Values{"prompt": {"login"}}, true, false},
		{"prompt=consent forces consent", 0, url.Values{"prompt": {"consent"}}, false, true},
		{"max_age not exceeded", 0, url.Values{"max_age": {"3600"}}, false, false},
		{"max_age exceeded forces the password", 10 * time.Minute, url.Values{"max_age": {"300"}}, true, false},
		{"max_age=0 forces the password", 0, url.Values{"max_age": {"0"}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			p := start(tt.params)
			if p.IsLogin() != tt.wantLogin {
				t.Fatalf("login form shown = %v, want %v", p.IsLogin(), tt.wantLogin)
			}
			if p.IsLogin() {
				p = b.Login(p, "alice@example.com", password)
			}
			if p.IsConsent() != tt.wantConsent {
				t.Fatalf("consent shown = %v, want %v", p.IsConsent(), tt.wantConsent)
			}
			if p.IsConsent() {
				p = b.Consent(p, "allow")
			}
			if code := p.RedirectParams(t).Get("code"); code == "" {
				t.Fatalf("no code: %s", p.Location)
			}
		})
	}

	t.Run("prompt=none with max_age exceeded gives login_required", func(t *testing.T) {
		e.clock.Advance(10 * time.Minute)
		p := start(url.Values{"prompt": {"none"}, "max_age": {"60"}})
		if got := p.RedirectParams(t).Get("error"); got != "login_required" {
			t.Fatalf("error = %q", got)
		}
	})

	t.Run("prompt=none without consent gives consent_required", func(t *testing.T) {
		other := e.createClient(admin.NewClient{Name: "Other", RedirectURIs: []string{"https://other.example.com/cb"}})
		_, ch := pkce()
		p := b.Get(e.authURL(other, url.Values{"prompt": {"none"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}))
		if got := p.RedirectParams(t).Get("error"); got != "consent_required" {
			t.Fatalf("error = %q", got)
		}
	})

	t.Run("re-authentication moves auth_time forward", func(t *testing.T) {
		tr := loginCode(t, e, b, app, url.Values{"prompt": {"login"}})
		c := verifyWithJWKS(t, e, tr.IDToken, app.ID)
		if got := int64(c["auth_time"].(float64)); got <= firstAuth {
			t.Fatalf("auth_time %d not after first login %d", got, firstAuth)
		}
	})

	t.Run("id_token_hint for another user forces the password", func(t *testing.T) {
		other := e.newBrowser()
		bobTokens := func() tokenResponse {
			v, ch := pkce()
			p := other.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}))
			p = other.Login(p, "bob@example.com", password)
			p = other.Consent(p, "allow")
			return e.tokenRequest(app, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
				"redirect_uri": {app.RedirectURI}, "code_verifier": {v}})
		}()
		if bobTokens.IDToken == "" {
			t.Fatalf("bob login failed: %+v", bobTokens)
		}
		// Alice's browser, hinting at bob.
		if p := start(url.Values{"id_token_hint": {bobTokens.IDToken}}); !p.IsLogin() {
			t.Fatalf("hint for another user did not ask for the password (status %d)", p.Status)
		}
		if p := start(url.Values{"id_token_hint": {bobTokens.IDToken}, "prompt": {"none"}}); p.RedirectParams(t).Get("error") != "login_required" {
			t.Fatalf("prompt=none with foreign hint: %s", p.Location)
		}
	})
}
