package idp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/rs"
	"github.com/openidp/idp/storage"
)

// TestRFC9470StepUpFromAnAPI: an API protected by package rs answers a password-only
// token with 401 insufficient_user_authentication naming the acr it needs; the relying
// party signs in again with those acr_values, the person is asked only for the second
// factor, and the new token is accepted.
func TestRFC9470StepUpFromAnAPI(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			m := newMFAEnv(t, be.open(t))
			email := "stepup@example.com"
			m.createUser(email, password)
			owner := m.newBrowser()
			key := enrolTOTP(t, m.env, owner, accountPage(t, m.env, owner, email, nil))
			reports := m.createClient(admin.NewClient{Name: "Reports", RedirectURIs: []string{"https://reports.example.com/cb"}, SkipConsent: true})
			m.setPolicy(reports, storage.MFAPolicy{MFA: "off"})

			verifier, err := rs.NewVerifier(rs.Config{Issuer: m.issuer, Audience: reports.ID, Now: m.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			api := httptest.NewServer(verifier.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := rs.FromContext(r.Context())
				_ = json.NewEncoder(w).Encode(map[string]any{"sub": c.Subject, "acr": c.ACR})
			}), rs.RequireACR(rs.ACRMFA)))
			t.Cleanup(api.Close)
			call := func(token string) (*http.Response, map[string]any) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				out := map[string]any{}
				_ = json.NewDecoder(resp.Body).Decode(&out)
				return resp, out
			}

			// A password-only sign-in (the client's policy asks for nothing more).
			b := m.newBrowser()
			v, ch := pkce()
			p := b.Login(b.Get(m.authURL(reports, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
			tr := m.tokenRequest(reports, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
				"redirect_uri": {reports.RedirectURI}, "code_verifier": {v}})
			resp, _ := call(tr.AccessToken)
			challenge := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="insufficient_user_authentication"`) ||
				!strings.Contains(challenge, `acr_values="`+consent.ACRMFA+`"`) {
				t.Fatalf("password-only token: %d %q", resp.StatusCode, challenge)
			}

			// The relying party re-authorizes with the acr_values from the header: only the
			// second factor is asked for.
			acr := challenge[strings.Index(challenge, `acr_values="`)+len(`acr_values="`):]
			acr = acr[:strings.IndexByte(acr, '"')]
			m.clock.Advance(30 * time.Second)
			v, ch = pkce()
			p = b.Get(m.authURL(reports, url.Values{"acr_values": {acr}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}))
			if p.IsLogin() || !isMFA(p) {
				t.Fatalf("step-up did not go straight to the second factor (status %d)", p.Status)
			}
			p = answerMFA(b, m.env, p, rfc6238(key, m.clock.Now(), 6))
			tr = m.tokenRequest(reports, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
				"redirect_uri": {reports.RedirectURI}, "code_verifier": {v}})
			resp, out := call(tr.AccessToken)
			if resp.StatusCode != http.StatusOK || out["acr"] != consent.ACRMFA {
				t.Fatalf("stepped-up token: %d %v", resp.StatusCode, out)
			}
		})
	}
}

// TestDemoAPIStepUp: the dev-mode demo app calls its protected API. After a
// password-only sign-in the API answers insufficient_user_authentication, the app signs
// in again with the acr_values it named, the person (who has no factor yet) is sent to
// enrol one, and after that the API answers.
func TestDemoAPIStepUp(t *testing.T) {
	e, seed := newDemoEnv(t)
	b := e.newBrowser()
	p := b.Login(b.Get(e.issuer+"/demo/login"), seed.Email, seed.Password)
	if p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	if p.URL.Path != "/demo/callback" || !strings.Contains(p.Body, `id="call-api"`) {
		t.Fatalf("demo sign-in: status %d at %s", p.Status, p.URL)
	}
	// The API wants a second factor: the app asks the provider for acr mfa, and the
	// provider sends the person to enrol one.
	p = b.Get(e.issuer + "/demo/api")
	if p.URL.Path != "/account/security" || p.URL.Query().Get("required") == "" {
		t.Fatalf("step-up from the demo API: status %d at %s", p.Status, p.URL)
	}
	enrolTOTP(t, e, b, p)
	cont := regexpFind(t, `<a class="button" id="continue" href="([^"]+)"`, b.Get(e.issuer+"/account/security").Body)
	if p = b.Get(e.issuer + cont); p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	if p.URL.Path != "/demo/callback" {
		t.Fatalf("continuing the demo sign-in: status %d at %s", p.Status, p.URL)
	}
	if p = b.Get(e.issuer + "/demo/api"); !strings.Contains(p.Body, `id="api-result"`) || !strings.Contains(p.Body, consent.ACRMFA) {
		t.Fatalf("demo API after the step-up: status %d\n%.800s", p.Status, p.Body)
	}
}
