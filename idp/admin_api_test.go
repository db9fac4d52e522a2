package idp_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
)

// adminToken registers a client_credentials client allowed scopes and returns a token for
// scope, plus the client.
func adminToken(t *testing.T, e *env, name string, scopes []string, scope string) (string, testClient) {
	t.Helper()
	c := e.createClient(admin.NewClient{Name: name, GrantTypes: []string{admin.GrantClientCredentials}, Scopes: scopes})
	tr := e.tokenRequest(c, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
	if tr.AccessToken == "" {
		t.Fatalf("client_credentials for %s: %+v", name, tr)
	}
	return tr.AccessToken, c
}

// promptNone asks for a code with prompt=none in b and returns the redirect's parameters.
func promptNone(t *testing.T, e *env, b *browser, c testClient) url.Values {
	t.Helper()
	_, ch := pkce()
	return b.Get(e.authURL(c, url.Values{"prompt": {"none"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}})).RedirectParams(t)
}

// TestAdminAPI drives the admin API with a client_credentials token, on every backend.
func TestAdminAPI(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			runAdminAPI(t, newEnv(t, be.open(t)))
		})
	}
}

func runAdminAPI(t *testing.T, e *env) {
	ctx := context.Background()
	token, tool := adminToken(t, e, "Help desk", []string{"admin"}, "admin")
	actor := "actor=client:" + tool.ID

	t.Run("authorisation", func(t *testing.T) {
		other, _ := adminToken(t, e, "Batch", []string{"api:read"}, "api:read")
		e.createUser("person@example.com", password)
		rp := e.createClient(admin.NewClient{Name: "Person app", SkipConsent: true, Scopes: []string{"openid", "admin"}})
		b := e.newBrowser()
		v, ch := pkce()
		p := b.Login(b.Get(e.authURL(rp, url.Values{"scope": {"openid admin"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}})),
			"person@example.com", password)
		personal := e.tokenRequest(rp, url.Values{"grant_type": {"authorization_code"}, "code": {p.RedirectParams(t).Get("code")},
			"redirect_uri": {rp.RedirectURI}, "code_verifier": {v}}).AccessToken
		if personal == "" {
			t.Fatal("no access token for the person")
		}
		tests := []struct {
			name      string
			token     string
			wantCode  int
			wantError string
		}{
			{"no token", "", http.StatusUnauthorized, "invalid_token"},
			{"garbage token", "not-a-token", http.StatusUnauthorized, "invalid_token"},
			{"token without the admin scope", other, http.StatusForbidden, "insufficient_scope"},
			{"a person's token with the admin scope", personal, http.StatusForbidden, "insufficient_scope"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, out := apiCall(t, e, tt.token, "GET", "/api/v1/admin/users", nil)
				if st != tt.wantCode || out["error"] != tt.wantError {
					t.Fatalf("got %d %v, want %d %s", st, out, tt.wantCode, tt.wantError)
				}
			})
		}
		if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/users", nil); st != http.StatusOK || out["users"] == nil {
			t.Fatalf("admin token: %d %v", st, out)
		}
	})

	var userID string
	t.Run("users", func(t *testing.T) {
		st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", map[string]any{
			"email": "Staff@Example.com", "name": "Staff Member", "password": password, "type": "staff", "groups": []string{"ops", "oncall"}})
		if st != http.StatusCreated || out["email"] != "staff@example.com" || out["type"] != "staff" || len(out["groups"].([]any)) != 2 {
			t.Fatalf("create user: %d %v", st, out)
		}
		userID = out["id"].(string)
		u, err := e.store.GetUser(ctx, userID)
		if err != nil || u.Type != "staff" || strings.Join(u.Groups, ",") != "ops,oncall" {
			t.Fatalf("stored user = %+v, %v", u, err)
		}
		bad := []struct {
			name      string
			body      map[string]any
			wantCode  int
			wantError string
		}{
			{"taken e-mail", map[string]any{"email": "staff@example.com", "password": password}, http.StatusConflict, "conflict"},
			{"bad type", map[string]any{"email": "x@example.com", "password": password, "type": "Not A Type"}, http.StatusBadRequest, "invalid_request"},
			{"short password", map[string]any{"email": "x@example.com", "password": "short"}, http.StatusBadRequest, "invalid_request"},
			{"unknown field", map[string]any{"email": "x@example.com", "password": password, "role": "root"}, http.StatusBadRequest, "invalid_request"},
		}
		for _, tt := range bad {
			if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", tt.body); st != tt.wantCode || out["error"] != tt.wantError {
				t.Errorf("%s: %d %v", tt.name, st, out)
			}
		}
		if _, err := e.store.GetUserByEmail(ctx, "x@example.com"); err == nil {
			t.Error("a refused create left a user behind")
		}
		if st, out := apiCall(t, e, token, "PUT", "/api/v1/admin/users/staff@example.com/type", map[string]any{"type": "admin"}); st != http.StatusOK || out["type"] != "admin" {
			t.Fatalf("set type: %d %v", st, out)
		}
		if st, out := apiCall(t, e, token, "PUT", "/api/v1/admin/users/"+userID+"/groups", map[string]any{"groups": []string{"sec"}}); st != http.StatusOK || len(out["groups"].([]any)) != 1 {
			t.Fatalf("set groups: %d %v", st, out)
		}
		if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/users/nobody@example.com", nil); st != http.StatusNotFound || out["error"] != "not_found" {
			t.Fatalf("unknown user: %d %v", st, out)
		}
	})

	t.Run("passkey-only users", func(t *testing.T) {
		st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", map[string]any{
			"email": "cy@example.com", "no_password": true, "send_enrolment_link": true})
		link, _ := out["enrolment_link"].(string)
		if st != http.StatusCreated || out["has_password"] != false || !strings.HasPrefix(link, e.issuer+"/enrol?id=") || out["enrolment_link_mailed"] != false {
			t.Fatalf("create passkey-only user: %d %v", st, out)
		}
		if u, err := e.store.GetUserByEmail(ctx, "cy@example.com"); err != nil || u.PasswordHash != "" {
			t.Fatalf("stored passkey-only user %+v, %v", u, err)
		}
		if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/users/staff@example.com", nil); st != http.StatusOK || out["has_password"] != true {
			t.Fatalf("user with a password: %d %v", st, out)
		}
		st, out = apiCall(t, e, token, "POST", "/api/v1/admin/users/cy@example.com/enrolment-link", nil)
		if again, _ := out["enrolment_link"].(string); st != http.StatusOK || again == "" || again == link {
			t.Fatalf("new enrolment link: %d %v", st, out)
		}
		for _, tt := range []struct {
			name string
			body map[string]any
		}{
			{"password and no_password", map[string]any{"email": "dee@example.com", "password": password, "no_password": true}},
			{"enrolment link for a password account", map[string]any{"email": "dee@example.com", "password": password, "send_enrolment_link": true}},
			{"neither password nor no_password", map[string]any{"email": "dee@example.com"}},
		} {
			if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users", tt.body); st != http.StatusBadRequest || out["error"] != "invalid_request" {
				t.Errorf("%s: %d %v", tt.name, st, out)
			}
		}
		if _, err := e.store.GetUserByEmail(ctx, "dee@example.com"); err == nil {
			t.Error("a refused create left a user behind")
		}
	})

	t.Run("client and type policies", func(t *testing.T) {
		app := e.createClient(admin.NewClient{Name: "Payroll"})
		path := "/api/v1/admin/clients/" + app.ID + "/policy"
		st, out := apiCall(t, e, token, "PUT", path, map[string]any{"mfa": "Required", "factors": []string{"totp", "webauthn"}, "max_age_seconds": 43200})
		if st != http.StatusOK || out["mfa"] != "required" || out["max_age_seconds"].(float64) != 43200 {
			t.Fatalf("set client policy: %d %v", st, out)
		}
		c, err := e.store.GetClient(ctx, app.ID)
		if err != nil || c.Policy.MFA != "required" || c.Policy.MaxAge.Hours() != 12 || len(c.Policy.Factors) != 2 {
			t.Fatalf("stored policy = %+v, %v", c.Policy, err)
		}
		if st, out = apiCall(t, e, token, "GET", "/api/v1/admin/clients/"+app.ID, nil); st != http.StatusOK || out["policy"].(map[string]any)["mfa"] != "required" {
			t.Fatalf("get client: %d %v", st, out)
		}
		bad := []map[string]any{
			{"mfa": "sometimes"},
			{"factors": []string{"carrier-pigeon"}},
			{"max_age_seconds": -1},
			{"mfa": "off", "phishing_resistant": true},
		}
		for _, body := range bad {
			if st, out := apiCall(t, e, token, "PUT", path, body); st != http.StatusBadRequest || out["error"] != "invalid_request" {
				t.Errorf("policy %v: %d %v", body, st, out)
			}
		}
		if st, _ := apiCall(t, e, token, "PUT", "/api/v1/admin/clients/nope/policy", map[string]any{"mfa": "off"}); st != http.StatusNotFound {
			t.Errorf("unknown client: %d", st)
		}

		if st, out = apiCall(t, e, token, "GET", "/api/v1/admin/policies/types/staff", nil); st != http.StatusNotFound {
			t.Fatalf("type without policy: %d %v", st, out)
		}
		st, out = apiCall(t, e, token, "PUT", "/api/v1/admin/policies/types/staff", map[string]any{"mfa": "required", "remember_device_seconds": 86400})
		if st != http.StatusOK || out["type"] != "staff" {
			t.Fatalf("set type policy: %d %v", st, out)
		}
		if p, err := e.store.GetTypePolicy(ctx, "staff"); err != nil || p.MFA != "required" || p.RememberDevice.Hours() != 24 {
			t.Fatalf("stored type policy = %+v, %v", p, err)
		}
		if st, out = apiCall(t, e, token, "GET", "/api/v1/admin/policies/types", nil); st != http.StatusOK || len(out["policies"].([]any)) != 1 {
			t.Fatalf("list type policies: %d %v", st, out)
		}
		if n := e.auditCount(audit.EventAdminPolicySet, audit.ResultSuccess); n != 1 {
			t.Errorf("%d type-policy audit events, want 1", n)
		}
	})

	t.Run("create client", func(t *testing.T) {
		st, out := apiCall(t, e, token, "POST", "/api/v1/admin/clients", map[string]any{
			"name": "Portal", "redirect_uris": []string{"https://portal.example.com/cb"},
			"backchannel_logout_uri": "https://portal.example.com/logout"})
		if st != http.StatusCreated || out["client_secret"] == nil || out["backchannel_logout_uri"] != "https://portal.example.com/logout" {
			t.Fatalf("create client: %d %v", st, out)
		}
		if st, out = apiCall(t, e, token, "POST", "/api/v1/admin/clients", map[string]any{
			"name": "Bad", "redirect_uris": []string{"https://bad.example.com/cb"}, "backchannel_logout_uri": "http://bad.example.com/logout"}); st != http.StatusBadRequest {
			t.Fatalf("http back-channel URI accepted: %d %v", st, out)
		}
		// private_key_jwt (RFC 7523) with keys by value, and PAR required (RFC 9126).
		jwks := map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1",
			"x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}}}
		st, out = apiCall(t, e, token, "POST", "/api/v1/admin/clients", map[string]any{
			"name": "Signed", "redirect_uris": []string{"https://signed.example.com/cb"},
			"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "require_pushed_authorization_requests": true})
		if st != http.StatusCreated || out["client_secret"] != nil || out["token_endpoint_auth_method"] != "private_key_jwt" ||
			out["require_pushed_authorization_requests"] != true {
			t.Fatalf("create private_key_jwt client: %d %v", st, out)
		}
		if st, out = apiCall(t, e, token, "POST", "/api/v1/admin/clients", map[string]any{
			"name": "Keyless", "redirect_uris": []string{"https://k.example.com/cb"}, "token_endpoint_auth_method": "private_key_jwt"}); st != http.StatusBadRequest {
			t.Fatalf("private_key_jwt client without keys accepted: %d %v", st, out)
		}
		if st, out = apiCall(t, e, token, "GET", "/api/v1/admin/clients", nil); st != http.StatusOK {
			t.Fatalf("list clients: %d %v", st, out)
		}
		for _, c := range out["clients"].([]any) {
			if _, has := c.(map[string]any)["client_secret"]; has {
				t.Fatal("client list shows a secret")
			}
		}
	})

	t.Run("mfa reset", func(t *testing.T) {
		email := "lost@example.com"
		e.createUser(email, password)
		rp := e.createClient(admin.NewClient{Name: "Wiki", SkipConsent: true})
		b := e.newBrowser()
		_, ch := pkce()
		p := b.Login(b.Get(e.authURL(rp, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
		if p.RedirectParams(t).Get("code") == "" {
			t.Fatalf("sign-in: %s", p.Location)
		}
		if q := promptNone(t, e, b, rp); q.Get("code") == "" {
			t.Fatalf("prompt=none before the reset: %v", q)
		}
		enrolTOTP(t, e, b, accountPage(t, e, b, email, nil))
		path := "/api/v1/admin/users/" + email + "/mfa/reset"
		if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/users/"+email+"/sessions", nil); st != http.StatusOK || len(out["sessions"].([]any)) != 1 {
			t.Fatalf("sessions before the reset: %d %v", st, out)
		}

		if st, out := apiCall(t, e, token, "POST", path, map[string]any{"remove_factors": true}); st != http.StatusBadRequest || out["error"] != "invalid_request" ||
			!strings.Contains(out["error_description"].(string), "reason") {
			t.Fatalf("reset without a reason: %d %v", st, out)
		}
		if fs, _ := e.store.ListFactors(ctx, e.userID(email)); len(fs) == 0 {
			t.Fatal("a refused reset removed factors")
		}

		ended := e.auditCount(audit.EventSessionEnd, audit.ResultSuccess)
		st, out := apiCall(t, e, token, "POST", path, map[string]any{"reason": "lost phone, ticket 4711", "recovery_link": true})
		if st != http.StatusOK || out["factors_removed"].(float64) < 1 || out["sessions_ended"].(float64) != 1 || out["tokens_revoked"] != true {
			t.Fatalf("reset: %d %v", st, out)
		}
		link, _ := out["recovery_link"].(string)
		if !strings.HasPrefix(link, e.issuer+"/recovery?") || out["recovery_link_expires_at"] == nil {
			t.Fatalf("recovery link = %q", link)
		}
		if fs, _ := e.store.ListFactors(ctx, e.userID(email)); len(fs) != 0 {
			t.Fatalf("%d factors left after the reset", len(fs))
		}
		// Through the server's session ending (back-channel logout), not a bare delete.
		if e.auditCount(audit.EventSessionEnd, audit.ResultSuccess) != ended+1 {
			t.Error("the session was not ended through Server.EndUserSessions")
		}
		if q := promptNone(t, e, b, rp); q.Get("error") != "login_required" {
			t.Fatalf("prompt=none after the reset: %v", q)
		}

		st, out = apiCall(t, e, token, "GET", "/api/v1/admin/audit?type="+audit.EventAdminMFAReset+"&user="+url.QueryEscape(email), nil)
		events, _ := out["events"].([]any)
		if st != http.StatusOK || len(events) != 1 {
			t.Fatalf("audit query: %d %v", st, out)
		}
		ev := events[0].(map[string]any)
		reason := ev["reason"].(string)
		if ev["result"] != audit.ResultSuccess || ev["user_id"] != e.userID(email) || !strings.HasPrefix(reason, actor+" ") ||
			!strings.Contains(reason, `reason="lost phone, ticket 4711"`) {
			t.Fatalf("reset event = %v", ev)
		}
		if secret := mustQuery(t, link).Get("token"); strings.Contains(reason, secret) {
			t.Fatal("the recovery link's secret is in the audit trail")
		}
	})

	t.Run("sessions and disable", func(t *testing.T) {
		email := "leaver@example.com"
		e.createUser(email, password)
		e.newBrowserLoggedIn(t, email)
		e.newBrowserLoggedIn(t, email)
		path := "/api/v1/admin/users/" + email + "/sessions"
		if st, out := apiCall(t, e, token, "DELETE", path+"?reason=offboarding", nil); st != http.StatusOK || out["sessions_ended"].(float64) != 2 {
			t.Fatalf("end sessions: %d %v", st, out)
		}
		if st, out := apiCall(t, e, token, "GET", path, nil); st != http.StatusOK || len(out["sessions"].([]any)) != 0 {
			t.Fatalf("sessions after ending them: %d %v", st, out)
		}
		if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/users/"+email+"/disable", nil); st != http.StatusOK || out["disabled"] != true {
			t.Fatalf("disable: %d %v", st, out)
		}
	})

	t.Run("audit query", func(t *testing.T) {
		st, out := apiCall(t, e, token, "GET", "/api/v1/admin/audit?client="+tool.ID+"&limit=1000", nil)
		if st != http.StatusOK || len(out["events"].([]any)) == 0 {
			t.Fatalf("audit by client: %d %v", st, out)
		}
		// The tool's own token was issued with an event that names it; ?token= finds it.
		var tokenID string
		for _, ev := range out["events"].([]any) {
			if m := ev.(map[string]any); m["type"] == audit.EventTokenIssue && m["token_id"] != nil {
				tokenID = m["token_id"].(string)
			}
		}
		st, out = apiCall(t, e, token, "GET", "/api/v1/admin/audit?token="+url.QueryEscape(tokenID), nil)
		if evs, _ := out["events"].([]any); tokenID == "" || st != http.StatusOK || len(evs) != 1 || evs[0].(map[string]any)["token_id"] != tokenID {
			t.Fatalf("audit by token %q: %d %v", tokenID, st, out)
		}
		for _, q := range []string{"since=yesterday", "limit=0", "limit=5000"} {
			if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/audit?"+q, nil); st != http.StatusBadRequest || out["error"] != "invalid_request" {
				t.Errorf("%s: %d %v", q, st, out)
			}
		}
		if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/nothing-here", nil); st != http.StatusNotFound || out["error"] != "not_found" {
			t.Errorf("unknown endpoint: %d %v", st, out)
		}
	})
}

func mustQuery(t *testing.T, link string) url.Values {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestOpenAPIDocument checks that the served document is OpenAPI 3.1 and names every
// endpoint of the admin and self-service APIs.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	resp, err := http.Get(e.issuer + "/api/v1/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	doc := string(raw)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /api/v1/openapi.yaml: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(doc, "openapi: 3.1") {
		t.Fatalf("document starts %.40q", doc)
	}
	tests := []struct {
		path    string
		methods []string
	}{
		{"/api/v1/openapi.yaml", []string{"get"}},
		{"/api/v1/admin/users", []string{"get", "post"}},
		{"/api/v1/admin/users/{id}", []string{"get"}},
		{"/api/v1/admin/users/{id}/disable", []string{"post"}},
		{"/api/v1/admin/users/{id}/type", []string{"put"}},
		{"/api/v1/admin/users/{id}/groups", []string{"put"}},
		{"/api/v1/admin/users/{id}/sessions", []string{"get", "delete"}},
		{"/api/v1/admin/users/{id}/mfa/reset", []string{"post"}},
		{"/api/v1/admin/users/{id}/enrolment-link", []string{"post"}},
		{"/api/v1/admin/clients", []string{"get", "post"}},
		{"/api/v1/admin/clients/{id}", []string{"get"}},
		{"/api/v1/admin/clients/{id}/policy", []string{"put"}},
		{"/api/v1/admin/resources", []string{"get", "post", "delete"}},
		{"/api/v1/admin/policies/types", []string{"get"}},
		{"/api/v1/admin/policies/types/{type}", []string{"get", "put"}},
		{"/api/v1/admin/audit", []string{"get"}},
		{"/api/v1/me/mfa", []string{"get"}},
		{"/api/v1/me/mfa/backup-codes", []string{"post"}},
		{"/api/v1/me/mfa/{kindOrFactorId}", []string{"post", "delete"}},
		{"/api/v1/me/mfa/{kind}/verify", []string{"post"}},
		{"/api/v1/me/mfa/{id}/challenge", []string{"post"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			item := pathItem(doc, tt.path)
			if item == "" {
				t.Fatalf("path %s missing", tt.path)
			}
			for _, m := range tt.methods {
				if !strings.Contains("\n"+item, "\n    "+m+":") {
					t.Errorf("path %s lacks %s", tt.path, m)
				}
			}
		})
	}
	for _, s := range []string{"securitySchemes:", "scheme: bearer", "adminToken:", "accountToken:"} {
		if !strings.Contains(doc, s) {
			t.Errorf("document lacks %q", s)
		}
	}
}

// pathItem returns the text of the path item `  <path>:` up to the next path item.
func pathItem(doc, path string) string {
	_, rest, ok := strings.Cut(doc, "\n  "+path+":\n")
	if !ok {
		return ""
	}
	for i, line := range strings.Split(rest, "\n") {
		if i > 0 && (strings.HasPrefix(line, "  /") || (line != "" && line[0] != ' ')) {
			return strings.Join(strings.Split(rest, "\n")[:i], "\n")
		}
	}
	return rest
}
