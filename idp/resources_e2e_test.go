package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// Resource indicators (RFC 8707): the resources registered for these tests.
const (
	resAPI     = "https://api.example.com/"     // requires api:read
	resBilling = "https://billing.example.com/" // no required scope
	resOther   = "https://other.example.com/"   // registered for another client only
)

// resourceScopes is the scope of every code flow below.
const resourceScopes = "openid profile email offline_access api:read"

// resourceEnv is a provider with a signed-in person, three clients and three resources.
type resourceEnv struct {
	*env
	b                *browser
	app, opaque, svc testClient // JWT code-flow client, opaque code-flow client, client_credentials client
	stranger         testClient // allowed to nothing
}

func newResourceEnv(t *testing.T, e *env) *resourceEnv {
	t.Helper()
	e.createUser("alice@example.com", password)
	scopes := []string{"openid", "profile", "email", "offline_access", "api:read"}
	re := &resourceEnv{env: e, b: e.newBrowser(),
		app:    e.createClient(admin.NewClient{Name: "App", SkipConsent: true, Scopes: scopes}),
		opaque: e.createClient(admin.NewClient{Name: "Opaque", SkipConsent: true, Scopes: scopes, AccessTokenFormat: admin.AccessTokenOpaque}),
		svc: e.createClient(admin.NewClient{Name: "Batch", GrantTypes: []string{admin.GrantClientCredentials},
			Scopes: []string{"api:read"}}),
		stranger: e.createClient(admin.NewClient{Name: "Stranger", SkipConsent: true, Scopes: scopes}),
	}
	for _, r := range []admin.NewResource{
		{URI: resAPI, Name: "API", AllowedClients: []string{re.app.ID, re.opaque.ID, re.svc.ID}, RequiredScopes: []string{"api:read"}},
		{URI: resBilling, Name: "Billing", AllowedClients: []string{re.app.ID, re.opaque.ID, re.svc.ID}},
		{URI: resOther, Name: "Other", AllowedClients: []string{re.stranger.ID}},
	} {
		if _, err := e.admin.CreateResource(context.Background(), "test", r); err != nil {
			t.Fatal(err)
		}
	}
	return re
}

// authorize starts a code flow for c with the resources, signs in if asked, and returns
// the redirect's parameters and the PKCE verifier.
func (re *resourceEnv) authorize(t *testing.T, c testClient, resources ...string) (url.Values, string) {
	t.Helper()
	v, ch := pkce()
	q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}, "scope": {resourceScopes}}
	if len(resources) > 0 {
		q["resource"] = resources
	}
	p := re.b.Get(re.authURL(c, q))
	if p.IsLogin() {
		p = re.b.Login(p, "alice@example.com", password)
	}
	return p.RedirectParams(t), v
}

// codeTokens runs a code flow for c, with authResources at /authorize and
// tokenResources at /token.
func (re *resourceEnv) codeTokens(t *testing.T, c testClient, authResources, tokenResources []string) tokenResponse {
	t.Helper()
	q, verifier := re.authorize(t, c, authResources...)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}}
	if len(tokenResources) > 0 {
		form["resource"] = tokenResources
	}
	return re.tokenRequest(c, form)
}

// audience reads an aud claim, a string or a list of them.
func audience(t testing.TB, v any) []string {
	t.Helper()
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, s := range a {
			out = append(out, s.(string))
		}
		return out
	}
	t.Fatalf("aud = %#v, want a string or a list", v)
	return nil
}

// wantAccessAudience checks the aud of tr's access token — in the JWT when it is one,
// and in what introspection by c answers — and that its ID token is for c alone.
func (re *resourceEnv) wantAccessAudience(t *testing.T, c testClient, tr tokenResponse, jwt bool, want ...string) {
	t.Helper()
	if tr.AccessToken == "" {
		t.Fatalf("no access token: %+v", tr)
	}
	if jwt {
		if got := audience(t, verifyWithJWKS(t, re.env, tr.AccessToken, "")["aud"]); !slices.Equal(got, want) {
			t.Errorf("access token aud = %v, want %v", got, want)
		}
	}
	got := introspect(t, re.env, c, tr.AccessToken)
	if got["active"] != true {
		t.Fatalf("introspection = %v", got)
	}
	if aud := audience(t, got["aud"]); !slices.Equal(aud, want) {
		t.Errorf("introspection aud = %v, want %v", aud, want)
	}
	if tr.IDToken != "" {
		if aud := audience(t, verifyWithJWKS(t, re.env, tr.IDToken, c.ID)["aud"]); !slices.Equal(aud, []string{c.ID}) {
			t.Errorf("ID token aud = %v, want only the client %s", aud, c.ID)
		}
	}
}

// TestRFC8707_2_AudienceFollowsResource: the access token's aud is the resource(s)
// named at /authorize or /token; without resource it stays the client; ID tokens stay
// for the client.
func TestRFC8707_2_AudienceFollowsResource(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			re := newResourceEnv(t, newEnv(t, be.open(t)))
			t.Run("no resource: aud is the client", func(t *testing.T) {
				re.wantAccessAudience(t, re.app, re.codeTokens(t, re.app, nil, nil), true, re.app.ID)
			})
			t.Run("code flow: aud is every resource authorized", func(t *testing.T) {
				tr := re.codeTokens(t, re.app, []string{resAPI, resBilling}, nil)
				re.wantAccessAudience(t, re.app, tr, true, resAPI, resBilling)

				// §2.2: a refresh may narrow to one of the authorized resources...
				narrowed := re.tokenRequest(re.app, url.Values{"grant_type": {"refresh_token"},
					"refresh_token": {tr.RefreshToken}, "resource": {resBilling}})
				re.wantAccessAudience(t, re.app, narrowed, true, resBilling)
				// ...and without resource gets all of them again.
				all := re.tokenRequest(re.app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {narrowed.RefreshToken}})
				re.wantAccessAudience(t, re.app, all, true, resAPI, resBilling)
			})
			t.Run("code flow: token request narrows", func(t *testing.T) {
				tr := re.codeTokens(t, re.app, []string{resAPI, resBilling}, []string{resAPI})
				re.wantAccessAudience(t, re.app, tr, true, resAPI)
			})
			t.Run("code flow: resource only at the token request", func(t *testing.T) {
				tr := re.codeTokens(t, re.app, nil, []string{resBilling})
				re.wantAccessAudience(t, re.app, tr, true, resBilling)
			})
			t.Run("opaque access token: introspection reports the resource", func(t *testing.T) {
				tr := re.codeTokens(t, re.opaque, []string{resAPI}, nil)
				re.wantAccessAudience(t, re.opaque, tr, false, resAPI)
			})
			t.Run("client_credentials: resource selects the audience", func(t *testing.T) {
				tr := re.tokenRequest(re.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}, "resource": {resAPI}})
				re.wantAccessAudience(t, re.svc, tr, true, resAPI)
				plain := re.tokenRequest(re.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}})
				re.wantAccessAudience(t, re.svc, plain, true, re.svc.ID)
			})
		})
	}
}

// TestRFC8707_2_InvalidTarget: a malformed, unregistered or unauthorised resource is
// refused with invalid_target — redirected to the client at /authorize, a 400 at /token.
func TestRFC8707_2_InvalidTarget(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			re := newResourceEnv(t, newEnv(t, be.open(t)))
			authorizeTests := []struct {
				name      string
				resources []string
				scope     string
			}{
				{"unregistered", []string{"https://unknown.example.com/"}, ""},
				{"registered for another client", []string{resOther}, ""},
				{"one of several unregistered", []string{resBilling, "https://unknown.example.com/"}, ""},
				{"not an absolute URI", []string{"api.example.com"}, ""},
				{"with a fragment", []string{resAPI + "#x"}, ""},
				{"required scope not requested", []string{resAPI}, "openid"},
			}
			for _, tc := range authorizeTests {
				t.Run("authorize: "+tc.name, func(t *testing.T) {
					_, ch := pkce()
					q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}, "resource": tc.resources,
						"scope": {resourceScopes}, "state": {"st-1"}}
					if tc.scope != "" {
						q.Set("scope", tc.scope)
					}
					got := re.b.Get(re.authURL(re.app, q)).RedirectParams(t)
					if got.Get("error") != "invalid_target" || got.Get("state") != "st-1" || got.Get("code") != "" {
						t.Fatalf("redirect = %v, want error=invalid_target with the state", got)
					}
				})
			}

			tokenTests := []struct {
				name string
				get  func(t *testing.T) tokenResponse
			}{
				{"code: unregistered", func(t *testing.T) tokenResponse {
					return re.codeTokens(t, re.app, nil, []string{"https://unknown.example.com/"})
				}},
				{"code: registered for another client", func(t *testing.T) tokenResponse {
					return re.codeTokens(t, re.app, nil, []string{resOther})
				}},
				{"code: not authorized at /authorize", func(t *testing.T) tokenResponse {
					return re.codeTokens(t, re.app, []string{resAPI}, []string{resBilling})
				}},
				{"refresh: not authorized at /authorize", func(t *testing.T) tokenResponse {
					tr := re.codeTokens(t, re.app, []string{resAPI}, nil)
					return re.tokenRequest(re.app, url.Values{"grant_type": {"refresh_token"},
						"refresh_token": {tr.RefreshToken}, "resource": {resBilling}})
				}},
				{"client_credentials: unregistered", func(t *testing.T) tokenResponse {
					return re.tokenRequest(re.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"},
						"resource": {"https://unknown.example.com/"}})
				}},
				{"client_credentials: registered for another client", func(t *testing.T) tokenResponse {
					return re.tokenRequest(re.svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"},
						"resource": {resOther}})
				}},
				{"client_credentials: required scope missing", func(t *testing.T) tokenResponse {
					return re.tokenRequest(re.svc, url.Values{"grant_type": {"client_credentials"}, "resource": {resAPI}})
				}},
			}
			for _, tc := range tokenTests {
				t.Run("token: "+tc.name, func(t *testing.T) {
					tr := tc.get(t)
					if tr.Status != http.StatusBadRequest || tr.Error != "invalid_target" || tr.AccessToken != "" {
						t.Fatalf("token response = %+v, want 400 invalid_target", tr)
					}
				})
			}
		})
	}
}

// TestResourceDeletedStopsTokens: a deleted resource gets no new tokens, even for a
// grant that was authorized for it.
func TestResourceDeletedStopsTokens(t *testing.T) {
	re := newResourceEnv(t, newEnv(t, openSQLite(t)))
	tr := re.codeTokens(t, re.app, []string{resBilling}, nil)
	re.wantAccessAudience(t, re.app, tr, true, resBilling)
	if err := re.admin.DeleteResource(context.Background(), "test", resBilling); err != nil {
		t.Fatal(err)
	}
	if n := re.auditCount(audit.EventAdminResourceDelete, audit.ResultSuccess); n != 1 {
		t.Errorf("%s events = %d, want 1", audit.EventAdminResourceDelete, n)
	}
	got := re.tokenRequest(re.app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if got.Status != http.StatusBadRequest || got.Error != "invalid_target" {
		t.Fatalf("refresh after the resource was deleted = %+v, want 400 invalid_target", got)
	}
}

// TestAdminAPIResources registers, lists and removes a resource through the admin API.
func TestAdminAPIResources(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	token, tool := adminToken(t, e, "Provisioning", []string{"admin"}, "admin")
	app := e.createClient(admin.NewClient{Name: "App"})
	body := map[string]any{"uri": "https://api.example.com/", "name": "API", "allowed_clients": []string{app.ID},
		"required_scopes": []string{"api:read"}}
	if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/resources", body); st != http.StatusCreated ||
		out["uri"] != "https://api.example.com/" || len(out["allowed_clients"].([]any)) != 1 {
		t.Fatalf("create: %d %v", st, out)
	}
	if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/resources", body); st != http.StatusConflict {
		t.Fatalf("create again: %d %v", st, out)
	}
	bad := map[string]any{"uri": "https://api.example.com/#x", "allowed_clients": []string{app.ID}}
	if st, out := apiCall(t, e, token, "POST", "/api/v1/admin/resources", bad); st != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Fatalf("create with a fragment: %d %v", st, out)
	}
	if st, out := apiCall(t, e, token, "GET", "/api/v1/admin/resources", nil); st != http.StatusOK || len(out["resources"].([]any)) != 1 {
		t.Fatalf("list: %d %v", st, out)
	}
	del := "/api/v1/admin/resources?uri=" + url.QueryEscape("https://api.example.com/")
	if st, out := apiCall(t, e, token, "DELETE", del, nil); st != http.StatusOK {
		t.Fatalf("delete: %d %v", st, out)
	}
	if st, out := apiCall(t, e, token, "DELETE", del, nil); st != http.StatusNotFound {
		t.Fatalf("delete again: %d %v", st, out)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventAdminResourceCreate})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Result != audit.ResultSuccess || !strings.Contains(evs[0].Reason, "actor=client:"+tool.ID) {
		t.Errorf("%s events = %+v", audit.EventAdminResourceCreate, evs)
	}
}
