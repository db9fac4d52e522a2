package idp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// httpResult is a response as a relying party or API client sees it.
type httpResult struct {
	status int
	header http.Header
	body   string
}

func (h httpResult) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(h.body), &m); err != nil {
		t.Fatalf("body is not JSON (status %d, %s): %.300s", h.status, h.header.Get("Content-Type"), h.body)
	}
	return m
}

func doHTTP(t testing.TB, req *http.Request) httpResult {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// postAPI posts form to path; with basic set, the client authenticates with HTTP Basic.
func postAPI(t testing.TB, e *env, path string, form url.Values, basic *testClient) httpResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic.ID), url.QueryEscape(basic.Secret))
	}
	return doHTTP(t, req)
}

func userinfo(t testing.TB, e *env, token string) httpResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doHTTP(t, req)
}

// confEnv is a provider on SQLite with alice and a confidential client.
func confEnv(t *testing.T) (*env, testClient) {
	t.Helper()
	e := newEnv(t, openSQLite(t))
	e.createUser("alice@example.com", password)
	c := e.createClient(admin.NewClient{SkipConsent: true, GrantTypes: []string{"authorization_code", "refresh_token"}})
	return e, c
}

// discovery fetches the discovery document.
func discovery(t testing.TB, e *env) map[string]any {
	t.Helper()
	var doc map[string]any
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
	return doc
}

func strs(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestRFCConformance runs the real server over HTTP, one row per clause.
func TestRFCConformance(t *testing.T) {
	rows := []struct {
		clause string
		run    func(t *testing.T)
	}{
		{"RFC6749_4.1.2.1_unsupported_response_type", func(t *testing.T) {
			e, c := confEnv(t)
			for _, rt := range []string{"token id_token", "id_token", "token", "bogus", "code id_token"} {
				p := e.newBrowser().Get(e.authURL(c, url.Values{"response_type": {rt}, "state": {"s1"}}))
				q := p.RedirectParams(t)
				if q.Get("error") != "unsupported_response_type" || q.Get("state") != "s1" || q.Get("iss") != e.issuer {
					t.Errorf("response_type %q: redirect %s", rt, p.Location)
				}
				if !strings.HasPrefix(p.Location, c.RedirectURI+"?") {
					t.Errorf("response_type %q: not sent to the redirect URI in the query: %s", rt, p.Location)
				}
			}
			// Not to an unregistered redirect URI.
			bad := c
			bad.RedirectURI = "https://evil.example.com/cb"
			if p := e.newBrowser().Get(e.authURL(bad, url.Values{"response_type": {"bogus"}})); p.Location != "" {
				t.Errorf("redirected to an unregistered URI: %s", p.Location)
			}
		}},
		{"RFC6749_5.2_invalid_client_basic_401_www_authenticate", func(t *testing.T) {
			e, c := confEnv(t)
			wrong := c
			wrong.Secret = "not-the-secret"
			for _, cl := range []testClient{wrong, {ID: "no-such-client", Secret: "x"}} {
				r := postAPI(t, e, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, &cl)
				if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") ||
					r.json(t)["error"] != "invalid_client" {
					t.Errorf("client %s: status %d, WWW-Authenticate %q, body %s", cl.ID, r.status, r.header.Get("WWW-Authenticate"), r.body)
				}
			}
		}},
		{"RFC6750_3.1_invalid_token_at_userinfo", func(t *testing.T) {
			e, c := confEnv(t)
			tr := loginCode(t, e, e.newBrowser(), c, nil)
			if r := userinfo(t, e, tr.AccessToken); r.status != http.StatusOK {
				t.Fatalf("valid token: %d %s", r.status, r.body)
			}
			if r := postAPI(t, e, "/revoke", url.Values{"token": {tr.AccessToken}}, &c); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			for name, tok := range map[string]string{"revoked": tr.AccessToken, "garbage": "not-a-token"} {
				r := userinfo(t, e, tok)
				if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
					t.Errorf("%s token: status %d, WWW-Authenticate %q", name, r.status, r.header.Get("WWW-Authenticate"))
				}
			}
			if r := userinfo(t, e, ""); r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("no token: status %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
			}
		}},
		{"RFC7662_2.3_introspection_errors_json_and_client_secret_post", func(t *testing.T) {
			e, c := confEnv(t)
			tr := loginCode(t, e, e.newBrowser(), c, nil)
			r := postAPI(t, e, "/oauth/introspect", url.Values{"token": {tr.AccessToken}, "client_id": {c.ID}, "client_secret": {c.Secret}}, nil)
			if r.status != http.StatusOK || r.json(t)["active"] != true {
				t.Fatalf("client_secret_post: %d %s", r.status, r.body)
			}
			r = postAPI(t, e, "/oauth/introspect", url.Values{"token": {tr.AccessToken}, "client_id": {c.ID}, "client_secret": {"wrong"}}, nil)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || r.json(t)["error"] != "invalid_client" {
				t.Fatalf("wrong secret: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			if strings.Contains(r.body, "ErrorType") || strings.Contains(r.body, "Parent") {
				t.Fatalf("internal error text: %s", r.body)
			}
		}},
		{"RFC7009_2.2.1_revocation_errors_json_and_client_secret_post", func(t *testing.T) {
			e, c := confEnv(t)
			tr := loginCode(t, e, e.newBrowser(), c, nil)
			r := postAPI(t, e, "/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {c.ID}, "client_secret": {"wrong"}}, nil)
			if r.status != http.StatusUnauthorized || r.json(t)["error"] != "invalid_client" {
				t.Fatalf("wrong secret: %d %s", r.status, r.body)
			}
			r = postAPI(t, e, "/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {c.ID}, "client_secret": {c.Secret}}, nil)
			if r.status != http.StatusOK {
				t.Fatalf("client_secret_post: %d %s", r.status, r.body)
			}
			if rt := e.tokenRequest(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); rt.Error != "invalid_grant" {
				t.Fatalf("revoked refresh token still works: %+v", rt)
			}
		}},
		{"RFC9207_2_iss_in_every_authorization_response", func(t *testing.T) {
			e, c := confEnv(t)
			b := e.newBrowser()
			p := b.Get(e.authURL(c, nil))
			p = b.Login(p, "alice@example.com", password)
			if q := p.RedirectParams(t); q.Get("code") == "" || q.Get("iss") != e.issuer {
				t.Errorf("success: %s", p.Location)
			}
			_, challenge := pkce()
			p = b.Get(e.authURL(c, url.Values{"response_mode": {"fragment"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
			u, _ := url.Parse(p.Location)
			if f, _ := url.ParseQuery(u.Fragment); f.Get("code") == "" || f.Get("iss") != e.issuer {
				t.Errorf("fragment success: %s", p.Location)
			}
			_, challenge = pkce()
			p = b.Get(e.authURL(c, url.Values{"response_mode": {"form_post"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
			if !strings.Contains(p.Body, `name="code"`) || !strings.Contains(p.Body, `<input type="hidden" name="iss" value="`+e.issuer+`"/>`) {
				t.Errorf("form_post success without iss:\n%.600s", p.Body)
			}
			p = e.newBrowser().Get(e.authURL(c, url.Values{"prompt": {"none"}}))
			if q := p.RedirectParams(t); q.Get("error") != "login_required" || q.Get("iss") != e.issuer {
				t.Errorf("error from the sign-in flow: %s", p.Location)
			}
			p = e.newBrowser().Get(e.authURL(c, url.Values{"scope": {"openid"}, "prompt": {"none login"}}))
			if q := p.RedirectParams(t); q.Get("error") == "" || q.Get("iss") != e.issuer {
				t.Errorf("error from op: %s", p.Location)
			}
			if discovery(t, e)["authorization_response_iss_parameter_supported"] != true {
				t.Error("discovery does not say authorization_response_iss_parameter_supported")
			}
		}},
	}
	for _, b := range backends {
		rows = append(rows, struct {
			clause string
			run    func(t *testing.T)
		}{"RFC6749_5.2_database_outage_is_not_invalid_client/" + b.name, func(t *testing.T) { testDatabaseOutage(t, b.open(t)) }})
	}
	for _, row := range rows {
		t.Run(row.clause, row.run)
	}
}

// testDatabaseOutage closes the store under a running provider: token, introspection,
// revocation and userinfo answer 503 temporarily_unavailable (or 500 server_error),
// never invalid_client, and say nothing of the database.
func testDatabaseOutage(t *testing.T, st storage.Storage) {
	e := newEnv(t, st)
	e.createUser("alice@example.com", password)
	c := e.createClient(admin.NewClient{SkipConsent: true, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tr := loginCode(t, e, e.newBrowser(), c, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() httpResult{
		"token basic": func() httpResult {
			return postAPI(t, e, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, &c)
		},
		"token post": func() httpResult {
			return postAPI(t, e, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {c.ID}, "client_secret": {c.Secret}}, nil)
		},
		"introspection": func() httpResult {
			return postAPI(t, e, "/oauth/introspect", url.Values{"token": {tr.AccessToken}}, &c)
		},
		"revocation": func() httpResult { return postAPI(t, e, "/revoke", url.Values{"token": {tr.RefreshToken}}, &c) },
		"userinfo":   func() httpResult { return userinfo(t, e, tr.AccessToken) },
	}
	for name, call := range calls {
		r := call()
		body := r.json(t)
		ok := (r.status == http.StatusServiceUnavailable && body["error"] == "temporarily_unavailable") ||
			(r.status == http.StatusInternalServerError && body["error"] == "server_error")
		if !ok {
			t.Errorf("%s: status %d body %s", name, r.status, r.body)
		}
		for _, frag := range []string{"user=", "database", "host=", "port", "5432", "127.0.0.1", "sql", "closed", "/tmp", ".db"} {
			if strings.Contains(strings.ToLower(r.body), frag) {
				t.Errorf("%s: body carries %q: %s", name, frag, r.body)
			}
		}
	}
}

// TestDiscoveryAdvertisesOnlyWhatWorks makes, for every capability the discovery
// document advertises, a request that uses it and checks it is not refused as
// unsupported; and checks that what does not work is not advertised.
func TestDiscoveryAdvertisesOnlyWhatWorks(t *testing.T) {
	e, c := confEnv(t)
	doc := discovery(t, e)

	if got := strs(doc["response_types_supported"]); !slices.Equal(got, []string{"code"}) {
		t.Errorf("response_types_supported = %v", got)
	}
	wantGrants := []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"}
	if got := strs(doc["grant_types_supported"]); !slices.Equal(got, wantGrants) {
		t.Errorf("grant_types_supported = %v", got)
	}
	for _, k := range []string{"check_session_iframe"} {
		if _, ok := doc[k]; ok {
			t.Errorf("discovery advertises %s: %v", k, doc[k])
		}
	}
	// Every advertised client-assertion algorithm is one the provider verifies.
	for _, k := range []string{"token_endpoint_auth_signing_alg_values_supported",
		"introspection_endpoint_auth_signing_alg_values_supported", "revocation_endpoint_auth_signing_alg_values_supported"} {
		for _, alg := range strs(doc[k]) {
			if !slices.ContainsFunc(idp.ClientAssertionSigningAlgs, func(a jose.SignatureAlgorithm) bool { return string(a) == alg }) {
				t.Errorf("%s lists %s", k, alg)
			}
		}
	}
	// A client authenticating with private_key_jwt (RFC 7523), for the auth-method rows.
	pkKey := newECClientKey(t, "conformance-key")
	pk := e.createClient(admin.NewClient{RedirectURIs: []string{"https://pk.example.com/cb"}, SkipConsent: true,
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email", "offline_access"},
		TokenEndpointAuthMethod: "private_key_jwt", JWKS: pkKey.jwks})

	public := e.createClient(admin.NewClient{Public: true, SkipConsent: true, GrantTypes: []string{"authorization_code", "refresh_token"}})
	cc := e.createClient(admin.NewClient{GrantTypes: []string{"client_credentials"}})
	b := e.newBrowser()
	var first tokenResponse

	// Every response type and grant.
	for _, rt := range strs(doc["response_types_supported"]) {
		t.Run("response_type="+rt, func(t *testing.T) {
			g := authorizeCode(t, e, b, c, url.Values{"response_type": {rt}})
			first = exchangeCode(t, e, c, g)
			if first.Error != "" || first.AccessToken == "" || first.IDToken == "" {
				t.Fatalf("%+v", first)
			}
		})
	}
	for _, grant := range strs(doc["grant_types_supported"]) {
		t.Run("grant_type="+grant, func(t *testing.T) {
			var tr tokenResponse
			switch grant {
			case "authorization_code":
				tr = loginCode(t, e, b, c, nil)
			case "refresh_token":
				tr = e.tokenRequest(c, url.Values{"grant_type": {grant}, "refresh_token": {loginCode(t, e, b, c, nil).RefreshToken}})
			case "client_credentials":
				tr = e.tokenRequest(cc, url.Values{"grant_type": {grant}})
			case "urn:ietf:params:oauth:grant-type:device_code":
				// Supported: the device is told to wait for the person, not refused.
				dc := deviceClient(e, true)
				tr = poll(t, e, dc, deviceAuthorize(t, e, dc, "openid").DeviceCode)
				if tr.Error != "authorization_pending" {
					t.Fatalf("device_code grant: %+v", tr)
				}
				return
			default:
				t.Fatalf("advertised grant %q has no request in this test", grant)
			}
			if tr.Error != "" || tr.AccessToken == "" {
				t.Fatalf("%+v", tr)
			}
		})
	}
	// Every client authentication method, at every endpoint.
	authn := func(method string, cl testClient, form url.Values) *testClient {
		switch method {
		case "client_secret_basic":
			return &cl
		case "client_secret_post":
			form.Set("client_id", cl.ID)
			form.Set("client_secret", cl.Secret)
		case "none":
			form.Set("client_id", cl.ID)
		case "private_key_jwt":
			form.Set("client_id", cl.ID)
			form.Set("client_assertion_type", oidc.ClientAssertionTypeJWTAssertion)
			form.Set("client_assertion", pkKey.assertion(t, cl.ID, e.issuer))
		default:
			t.Fatalf("advertised auth method %q has no request in this test", method)
		}
		return nil
	}
	for _, m := range strs(doc["token_endpoint_auth_methods_supported"]) {
		t.Run("token_endpoint_auth_method="+m, func(t *testing.T) {
			cl := c
			switch m {
			case "none":
				cl = public
			case "private_key_jwt":
				cl = pk
			}
			g := authorizeCode(t, e, b, cl, nil)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {g.code}, "redirect_uri": {cl.RedirectURI}, "code_verifier": {g.verifier}}
			r := postAPI(t, e, "/oauth/token", form, authn(m, cl, form))
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// pkTokens signs pk in and redeems the code with a client assertion.
	pkTokens := func(t *testing.T) tokenResponse {
		t.Helper()
		g := authorizeCode(t, e, b, pk, nil)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {g.code}, "redirect_uri": {pk.RedirectURI}, "code_verifier": {g.verifier}}
		authn("private_key_jwt", pk, form)
		var tr tokenResponse
		if r := postAPI(t, e, "/oauth/token", form, nil); r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &tr) != nil {
			t.Fatalf("private_key_jwt code exchange: %d %s", r.status, r.body)
		}
		return tr
	}
	for _, m := range strs(doc["introspection_endpoint_auth_methods_supported"]) {
		t.Run("introspection_endpoint_auth_method="+m, func(t *testing.T) {
			tok, cl := first.AccessToken, c
			if m == "private_key_jwt" {
				tok, cl = pkTokens(t).AccessToken, pk
			}
			form := url.Values{"token": {tok}}
			r := postAPI(t, e, "/oauth/introspect", form, authn(m, cl, form))
			if r.status != http.StatusOK || r.json(t)["active"] != true {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	for _, m := range strs(doc["revocation_endpoint_auth_methods_supported"]) {
		t.Run("revocation_endpoint_auth_method="+m, func(t *testing.T) {
			cl := c
			var tr tokenResponse
			switch m {
			case "none":
				cl = public
				tr = loginCode(t, e, b, cl, nil)
			case "private_key_jwt":
				cl = pk
				tr = pkTokens(t)
			default:
				tr = loginCode(t, e, b, cl, nil)
			}
			form := url.Values{"token": {tr.RefreshToken}}
			if r := postAPI(t, e, "/revoke", form, authn(m, cl, form)); r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// Every response mode, code challenge method and scope.
	for _, rm := range strs(doc["response_modes_supported"]) {
		t.Run("response_mode="+rm, func(t *testing.T) {
			_, challenge := pkce()
			p := b.Get(e.authURL(c, url.Values{"response_mode": {rm}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
			u, err := url.Parse(p.Location)
			if err != nil || p.Location == "" {
				t.Fatalf("no redirect: %d %.300s", p.Status, p.Body)
			}
			params := u.Query()
			if rm == "fragment" {
				params, _ = url.ParseQuery(u.Fragment)
			}
			if params.Get("code") == "" {
				t.Fatalf("no code in the %s: %s", rm, p.Location)
			}
		})
	}
	for _, m := range strs(doc["code_challenge_methods_supported"]) {
		t.Run("code_challenge_method="+m, func(t *testing.T) {
			if m != "S256" {
				t.Fatalf("advertised %q has no request in this test", m)
			}
			if tr := loginCode(t, e, b, c, nil); tr.Error != "" { // authorizeCode uses S256
				t.Fatalf("%+v", tr)
			}
		})
	}
	claims := map[string]bool{}
	for _, sc := range strs(doc["scopes_supported"]) {
		t.Run("scope="+sc, func(t *testing.T) {
			scope := "openid " + sc
			tr := loginCode(t, e, b, c, url.Values{"scope": {scope}})
			if tr.Error != "" || tr.AccessToken == "" {
				t.Fatalf("%+v", tr)
			}
			switch sc {
			case "offline_access":
				if tr.RefreshToken == "" {
					t.Fatal("offline_access gave no refresh token")
				}
			case "profile", "email":
				r := userinfo(t, e, tr.AccessToken)
				if r.status != http.StatusOK {
					t.Fatalf("userinfo %d %s", r.status, r.body)
				}
				ui := r.json(t)
				want := map[string]string{"profile": "name", "email": "email"}[sc]
				if _, ok := ui[want]; !ok {
					t.Fatalf("scope %s gave no %s claim: %v", sc, want, ui)
				}
				for k := range ui {
					claims[k] = true
				}
			}
			for k := range verifyWithJWKS(t, e, tr.IDToken, c.ID) {
				claims[k] = true
			}
		})
	}
	// Every advertised claim is issued somewhere (ID token or userinfo).
	t.Run("claims_supported", func(t *testing.T) {
		for _, cl := range strs(doc["claims_supported"]) {
			if !claims[cl] {
				t.Errorf("claim %q is advertised but never issued (issued: %v)", cl, claims)
			}
		}
	})
	// Flags.
	t.Run("request_parameter_supported", func(t *testing.T) {
		if doc["request_parameter_supported"] == true {
			t.Fatal("request objects are advertised but not enabled")
		}
	})
	t.Run("acr_values_supported", func(t *testing.T) {
		for _, acr := range strs(doc["acr_values_supported"]) {
			if !slices.Contains(idp.ACRValuesSupported, acr) {
				t.Errorf("acr %q advertised", acr)
			}
		}
	})
	t.Run("endpoints", func(t *testing.T) {
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
			"introspection_endpoint", "revocation_endpoint", "end_session_endpoint"} {
			u, _ := doc[k].(string)
			if !strings.HasPrefix(u, e.issuer+"/") {
				t.Errorf("%s = %q", k, u)
				continue
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d", k, u, resp.StatusCode)
			}
		}
	})
}

// email_verified is true once the account's address was proved with a code: a confirmed
// e-mail factor for the same address, in any case.
func TestEmailVerifiedClaim(t *testing.T) {
	e, c := confEnv(t)
	// Adding a confirmed e-mail factor makes it a second factor; a refresh carries on
	// without signing in again, through the same claim hooks.
	rt := loginCode(t, e, e.newBrowser(), c, nil).RefreshToken
	check := func(want bool) {
		t.Helper()
		tr := e.tokenRequest(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if tr.Error != "" {
			t.Fatalf("refresh: %+v", tr)
		}
		rt = tr.RefreshToken
		r := userinfo(t, e, tr.AccessToken)
		if got := r.json(t)["email_verified"]; got != want {
			t.Errorf("userinfo email_verified = %v, want %v", got, want)
		}
		// op keeps profile and email claims out of an ID token issued with an access
		// token unless the client asks for them there.
		if got, ok := verifyWithJWKS(t, e, tr.IDToken, c.ID)["email_verified"]; ok && got != want {
			t.Errorf("ID token email_verified = %v, want %v", got, want)
		}
	}
	check(false)
	ctx := context.Background()
	uid := e.userID("alice@example.com")
	add := func(target string, confirmed bool) {
		t.Helper()
		if err := e.store.CreateFactor(ctx, &storage.Factor{ID: randString()[:20], UserID: uid, Kind: storage.FactorEmail,
			Name: "mail", Target: target, Confirmed: confirmed, CreatedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	add("alice@example.com", false) // code sent, never typed back
	check(false)
	add("someone-else@example.com", true) // another address proved
	check(false)
	add("Alice@Example.COM", true)
	check(true)
}

// The display name (default: the issuer's host) titles the pages people see.
func TestDisplayNameInPageTitles(t *testing.T) {
	for name, tc := range map[string]struct{ display, want string }{
		"configured": {"Example ID", "Example ID"},
		"default":    {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, openSQLite(t), func(c *idp.Config) { c.DisplayName = tc.display })
			c := e.createClient(admin.NewClient{SkipConsent: true})
			want := tc.want
			if want == "" {
				want = strings.TrimPrefix(e.issuer, "http://")
			}
			p := e.newBrowser().Get(e.authURL(c, nil))
			if !p.IsLogin() || !strings.Contains(p.Body, "<title>Sign in – "+want+"</title>") {
				t.Fatalf("login page title does not carry %q:\n%.400s", want, p.Body)
			}
		})
	}
}
