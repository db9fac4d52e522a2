package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
)

// Fuzz targets of the JSON APIs: the body decoder they share, the self-service API under
// /api/v1/me/mfa and the admin API under /api/v1/admin. Every answer is JSON; an error
// is an object with an "error" code (RFC 6750 for token errors, with WWW-Authenticate on
// 401); nothing the caller sends is a server error.

// fuzzBodyTypes are the request bodies of the JSON APIs, by the fuzzer's choice.
var fuzzBodyTypes = []func() any{
	func() any { return &apiRequest{} },
	func() any { return &adminNewUser{} },
	func() any { return &adminNewClient{} },
	func() any { return &admin.PolicyView{} },
	func() any { return &adminResetRequest{} },
	func() any {
		return &struct {
			Type string `json:"type"`
		}{}
	},
	func() any {
		return &struct {
			Groups []string `json:"groups"`
		}{}
	},
}

// fuzzAPIError fails unless rec is a JSON API error: status >= 400, a JSON object with a
// non-empty "error" string, WWW-Authenticate on 401.
func fuzzAPIError(t *testing.T, what string, rec *httptest.ResponseRecorder, logs string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		fuzzFail(t, what, rec, logs, "error answered as %q, not JSON", ct)
	}
	var body struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == nil || *body.Error == "" {
		fuzzFail(t, what, rec, logs, "error body without an \"error\" code (%v)", err)
	}
	if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		fuzzFail(t, what, rec, logs, "401 without a Bearer WWW-Authenticate challenge")
	}
}

// fuzzAPIAnswer checks any answer of a JSON API handler.
func fuzzAPIAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder, logs string) {
	t.Helper()
	fuzzNoServerError(t, what, rec, logs)
	switch {
	case rec.Code >= 400:
		fuzzAPIError(t, what, rec, logs)
	case rec.Code == http.StatusNoContent:
		if rec.Body.Len() != 0 {
			fuzzFail(t, what, rec, logs, "204 with a body")
		}
	default:
		if !json.Valid(rec.Body.Bytes()) {
			fuzzFail(t, what, rec, logs, "answer is not JSON")
		}
	}
}

// FuzzDecodeBody feeds request bodies to decodeBody, the JSON decoder of both APIs, for
// each of their body types. A refusal is a 400 invalid_request JSON error and nothing
// else; an accepted body decodes to a value whose JSON decodes back to the same JSON.
func FuzzDecodeBody(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"code":"123456"}`, `{"factor_id":"f","code":"1","verification":{"factor_id":"g","code":"2"}}`,
		`{"response":{"id":"x","rawId":"eA","type":"public-key","response":{"clientDataJSON":"e30"}}}`,
		`{"response":<>}`, `{"unknown":1}`, `{"code":1}`, `{"code":"1"} trailing`, `{"code":"1"}{"code":"2"}`,
		`{"email":"a@example.com","password":"correct horse","groups":["staff"]}`,
		`{"name":"App","redirect_uris":["https://app.example.com/cb"],"access_token_lifetime_seconds":9223372036854775807}`,
		`{"mfa":"required","factors":["totp"],"max_age_seconds":-1,"remember_device_seconds":1e30}`,
		`{"remove_factors":false,"recovery_link":true,"reason":"lost phone"}`,
		`{"name":"\ud800"}`, "{\"name\":\"\xff\"}", `{"name":"a","name":"b"}`, `{"NAME":"a"}`,
		`{` + strings.Repeat(`"code":"1",`, 8000) + `"code":"1"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		newValue := fuzzBodyTypes[int(kind)%len(fuzzBodyTypes)]
		v := newValue()
		r := httptest.NewRequest(http.MethodPost, "/api/v1/me/mfa/totp", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		ok := decodeBody(rec, r, v)
		what := "body " + string(body)
		if !ok {
			if rec.Code != http.StatusBadRequest {
				fuzzFail(t, what, rec, "", "refused with status %d, want 400", rec.Code)
			}
			fuzzAPIError(t, what, rec, "")
			var e apiError
			if _ = json.Unmarshal(rec.Body.Bytes(), &e); e.Error != "invalid_request" {
				fuzzFail(t, what, rec, "", "refused with error %q, want invalid_request", e.Error)
			}
			return
		}
		if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			fuzzFail(t, what, rec, "", "accepted, but something was written")
		}
		if len(body) > 64<<10 {
			fuzzFail(t, what, rec, "", "accepted a body beyond the 64 KiB limit")
		}
		// An accepted value re-marshals, and that decodes (strictly) to the same JSON.
		first, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: decoded value does not marshal: %v", what, err)
		}
		again := newValue()
		dec := json.NewDecoder(bytes.NewReader(first))
		dec.DisallowUnknownFields()
		if err := dec.Decode(again); err != nil {
			t.Fatalf("%s: re-marshalled %s does not decode: %v", what, first, err)
		}
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("%s: decoded value marshals to %s, which decodes and marshals to %s", what, first, second)
		}
	})
}

// fuzzMeRoutes are the self-service routes; {x} is the fuzzed path segment.
var fuzzMeRoutes = []struct{ method, path string }{
	{http.MethodGet, "/api/v1/me/mfa"},
	{http.MethodPost, "/api/v1/me/mfa/backup-codes"},
	{http.MethodPost, "/api/v1/me/mfa/{x}"},
	{http.MethodPost, "/api/v1/me/mfa/{x}/verify"},
	{http.MethodPost, "/api/v1/me/mfa/{x}/challenge"},
	{http.MethodDelete, "/api/v1/me/mfa/{x}"},
	{http.MethodOptions, "/api/v1/me/mfa/{x}"},
}

// accessToken runs an authorization code flow for u through the browser and token
// endpoints and returns the access token, with scope.
func (e *fuzzEnv) accessToken(tb testing.TB, u *fuzzUser, scope string) string {
	tb.Helper()
	b := idptest.NewBrowser(tb, e.issuer)
	c := idptest.Client{ID: e.client.ID, Secret: e.clientSecret, RedirectURI: fuzzRedirectURI}
	p := b.Get(idptest.AuthURL(e.issuer, c, url.Values{"scope": {scope}}))
	p = b.Login(p, u.Email, fuzzPassword)
	if p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	code := p.RedirectParams(tb).Get("code")
	tr := idptest.PostToken(tb, e.issuer+"/oauth/token", c, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {fuzzRedirectURI},
	})
	if tr.AccessToken == "" {
		tb.Fatalf("token response %d: %s %s", tr.Status, tr.Error, tr.ErrorDesc)
	}
	return tr.AccessToken
}

// FuzzMeAPI calls the self-service API with fuzzed paths, bodies and Authorization
// headers, as a person with an authenticator app, e-mail and backup codes. Besides the
// JSON answers: a factor is removed, or backup codes regenerated, only with a right code
// of one of the person's factors as the verification.
func FuzzMeAPI(f *testing.F) {
	e := newFuzzEnv(f)
	u := e.newUser(f)
	token := e.accessToken(f, u, "openid account")
	e.addFactors(f, u)
	type seed struct {
		route                 uint8
		segment, body, header string
	}
	const bearer = "Bearer $TOKEN"
	seeds := []seed{
		{0, "", "", bearer},
		{0, "", "", ""},
		{0, "", "", "Bearer not-a-token"},
		{0, "", "", "bearer $TOKEN"},
		{0, "", "", "Basic Zm9vOmJhcg=="},
		{0, "", "", "Bearer eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0."},
		{1, "", `{"verification":{"factor_id":"$TOTP","code":"$CODE"}}`, bearer},
		{1, "", `{"verification":{"factor_id":"$BACKUP","code":"$BCODE"}}`, bearer},
		{1, "", `{}`, bearer},
		{2, "totp", `{"name":"Phone"}`, bearer},
		{2, "email", `{"email":"other@example.com"}`, bearer},
		{2, "sms", `{"phone":"+44 7400 123456"}`, bearer},
		{2, "webauthn", `{"name":"Key"}`, bearer},
		{2, "backup", ``, bearer},
		{2, "nope", `{"name":1}`, bearer},
		{3, "totp", `{"code":"123456"}`, bearer},
		{3, "email", `{"factor_id":"$MAIL","challenge_id":"x","code":"123456"}`, bearer},
		{3, "webauthn", `{"response":{"id":"x","type":"public-key","response":{}}}`, bearer},
		{4, "$MAIL", ``, bearer},
		{4, "$TOTP", ``, bearer},
		{4, "unknown", ``, bearer},
		{5, "$MAIL", `{"verification":{"factor_id":"$TOTP","code":"$CODE"}}`, bearer},
		{5, "$MAIL", `{"verification":{"factor_id":"$TOTP","code":"000000"}}`, bearer},
		{5, "$MAIL", `{"verification":{"factor_id":"$BACKUP","code":"$BCODE"}}`, bearer},
		{5, "$TOTP", `{"verification":{"factor_id":"$MAIL","challenge_id":"x","code":"1"}}`, bearer},
		{5, "$TOTP", ``, bearer},
		{6, "x", ``, ""},
		{2, "totp", `{"name":"a"} {"name":"b"}`, bearer},
		{2, "totp", `{"name":"a"`, bearer},
	}
	for _, s := range seeds {
		f.Add(s.route, s.segment, s.body, s.header)
	}
	next := 0 // the backup code "$BCODE" stands for: each is used once
	f.Fuzz(func(t *testing.T, route uint8, segment, body, header string) {
		next++
		vars := fuzzVars{
			"$TOKEN": token, "$TOTP": u.factors[storage.FactorTOTP], "$MAIL": u.factors[storage.FactorEmail], "$BACKUP": u.factors[storage.FactorBackup],
			"$CODE": fuzzTOTPCode(t, u.totpSecret, e.s.now()), "$BCODE": u.backup[next%len(u.backup)],
		}
		rt := fuzzMeRoutes[int(route)%len(fuzzMeRoutes)]
		segment, body, header = vars.expand(segment), vars.expand(body), vars.expand(header)
		switch segment {
		case "":
			segment = "x"
		case ".", "..":
			return // ServeMux redirects to the cleaned path before any handler runs
		}
		path := strings.ReplaceAll(rt.path, "{x}", url.PathEscape(segment))
		r := httptest.NewRequest(rt.method, path, strings.NewReader(body))
		if body == "" {
			r.Body, r.ContentLength = http.NoBody, 0
		}
		r.Header.Set("Content-Type", "application/json")
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		rec, logs := e.serve(r)
		what := rt.method + " " + path + " " + body + "\nAuthorization: " + header
		if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
			fuzzFail(t, what, rec, logs, "no CORS header")
		}
		if rt.method == http.MethodOptions {
			fuzzNoServerError(t, what, rec, logs)
			return
		}
		fuzzAPIAnswer(t, what, rec, logs)

		// Sensitive calls need a verification that really proves a factor.
		sensitive := (rt.method == http.MethodDelete && rec.Code == http.StatusNoContent) ||
			(strings.HasSuffix(rt.path, "/backup-codes") && rec.Code == http.StatusCreated)
		if !sensitive {
			return
		}
		var req apiRequest // read as decodeBody reads it: the first JSON value
		if err := json.NewDecoder(strings.NewReader(body)).Decode(&req); err != nil || req.Verification == nil {
			fuzzFail(t, what, rec, logs, "sensitive call succeeded without a verification (%v)", err)
		}
		v := req.Verification
		if kind := u.kindOf(v.FactorID); !e.validFactorCode(u, kind, v.Code) {
			fuzzFail(t, what, rec, logs, "sensitive call succeeded with a wrong %q code %q", kind, v.Code)
		}
		if rec.Code == http.StatusCreated { // new backup codes replace the old ones
			var out struct{ Codes []string }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Codes) == 0 {
				fuzzFail(t, what, rec, logs, "backup codes answer: %v", err)
			}
			u.backup, next = out.Codes, 0
		}
	})
}

// fuzzAdminRoutes are the admin API routes; {x} is the fuzzed path segment.
var fuzzAdminRoutes = []struct{ method, path string }{
	{http.MethodGet, "/api/v1/admin/users"},
	{http.MethodPost, "/api/v1/admin/users"},
	{http.MethodGet, "/api/v1/admin/users/{x}"},
	{http.MethodPost, "/api/v1/admin/users/{x}/disable"},
	{http.MethodPut, "/api/v1/admin/users/{x}/type"},
	{http.MethodPut, "/api/v1/admin/users/{x}/groups"},
	{http.MethodGet, "/api/v1/admin/users/{x}/sessions"},
	{http.MethodDelete, "/api/v1/admin/users/{x}/sessions"},
	{http.MethodPost, "/api/v1/admin/users/{x}/mfa/reset"},
	{http.MethodGet, "/api/v1/admin/clients"},
	{http.MethodPost, "/api/v1/admin/clients"},
	{http.MethodGet, "/api/v1/admin/clients/{x}"},
	{http.MethodPut, "/api/v1/admin/clients/{x}/policy"},
	{http.MethodGet, "/api/v1/admin/policies/types"},
	{http.MethodGet, "/api/v1/admin/policies/types/{x}"},
	{http.MethodPut, "/api/v1/admin/policies/types/{x}"},
	{http.MethodGet, "/api/v1/admin/audit"},
	{http.MethodPatch, "/api/v1/admin/{x}"},
}

// FuzzAdminAPI calls the admin API with fuzzed paths, queries, bodies and Authorization
// headers, with a client_credentials token of an admin client. Besides the JSON answers:
// what a policy or client was given is what comes back (seconds in, the same seconds
// out), and only a token with the scope admin gets anything but 401/403.
func FuzzAdminAPI(f *testing.F) {
	e := newFuzzEnv(f)
	ctx := context.Background()
	adminClient, secret, err := e.admin.CreateClient(ctx, "fuzz", admin.NewClient{
		Name: "Provisioning", GrantTypes: []string{admin.GrantClientCredentials}, Scopes: []string{ScopeAdmin},
		AccessTokenLifetime: 24 * time.Hour,
	})
	if err != nil {
		f.Fatal(err)
	}
	tr := idptest.PostToken(f, e.issuer+"/oauth/token", idptest.Client{ID: adminClient.ID, Secret: secret},
		url.Values{"grant_type": {"client_credentials"}, "scope": {ScopeAdmin}})
	if tr.AccessToken == "" {
		f.Fatalf("admin token: %d %s %s", tr.Status, tr.Error, tr.ErrorDesc)
	}
	u := e.newUser(f)
	type seed struct {
		route                        uint8
		segment, query, body, header string
	}
	const bearer = "Bearer $TOKEN"
	seeds := []seed{
		{0, "", "", "", bearer},
		{0, "", "", "", ""},
		{0, "", "", "", "Bearer nope"},
		{1, "", "", `{"email":"new@example.com","name":"New","password":"short"}`, bearer},
		{1, "", "", `{"email":"not an address","password":"long enough password"}`, bearer},
		{1, "", "", `{"email":"$EMAIL","password":"long enough password","type":"staff","groups":["a"]}`, bearer},
		{1, "", "", ``, bearer},
		{2, "$USER", "", "", bearer},
		{2, "$EMAIL", "", "", bearer},
		{2, "nobody", "", "", bearer},
		{3, "$USER", "", "", bearer},
		{4, "$USER", "", `{"type":"staff"}`, bearer},
		{4, "$USER", "", `{"type":"Bad Type!"}`, bearer},
		{5, "$USER", "", `{"groups":["a","a",""]}`, bearer},
		{6, "$USER", "", "", bearer},
		{7, "$USER", "reason=left", "", bearer},
		{8, "$USER", "", `{"reason":"lost phone","remove_factors":true,"recovery_link":true}`, bearer},
		{8, "$USER", "", `{"reason":""}`, bearer},
		{9, "", "", "", bearer},
		{10, "", "", `{"name":"App","redirect_uris":["https://app.example.com/cb"]}`, bearer},
		{10, "", "", `{"name":"App","redirect_uris":["http://evil.example/cb"]}`, bearer},
		{10, "", "", `{"name":"App","redirect_uris":["https://app.example.com/cb"],"access_token_lifetime_seconds":10000000000}`, bearer},
		{10, "", "", `{"name":"M2M","grant_types":["client_credentials"],"scopes":["admin"],"public":true}`, bearer},
		{11, "$CLIENT", "", "", bearer},
		{12, "$CLIENT", "", `{"mfa":"required","factors":["totp","webauthn"],"max_age_seconds":43200}`, bearer},
		{12, "$CLIENT", "", `{"mfa":"sometimes"}`, bearer},
		{12, "$CLIENT", "", `{"max_age_seconds":9300000000,"remember_device_seconds":9300000000}`, bearer},
		// Seconds beyond a time.Duration overflowed into another duration, stored silently.
		{12, "$CLIENT", "", `{"max_age_seconds":18446744074}`, bearer},
		{15, "staff", "", `{"remember_device_seconds":18446744075}`, bearer},
		{10, "", "", `{"name":"App","redirect_uris":["https://app.example.com/cb"],"id_token_lifetime_seconds":18446744074}`, bearer},
		{13, "", "", "", bearer},
		{14, "staff", "", "", bearer},
		{15, "staff", "", `{"mfa":"required","phishing_resistant":true}`, bearer},
		{15, "Bad Type!", "", `{"mfa":"off"}`, bearer},
		{16, "", "limit=5&type=login.password&since=2025-01-31T12:00:00Z", "", bearer},
		{16, "", "limit=0", "", bearer},
		{16, "", "since=yesterday&user=$EMAIL", "", bearer},
		{17, "anything", "", "", bearer},
		// A blank id or e-mail was a 500 (FindUser and FindClient refused it with a plain error).
		{3, " ", "", "", bearer},
		{11, " ", "", "", bearer},
	}
	for _, s := range seeds {
		f.Add(s.route, s.segment, s.query, s.body, s.header)
	}
	f.Fuzz(func(t *testing.T, route uint8, segment, query, body, header string) {
		vars := fuzzVars{"$TOKEN": tr.AccessToken, "$USER": u.ID, "$EMAIL": u.Email, "$CLIENT": e.client.ID}
		rt := fuzzAdminRoutes[int(route)%len(fuzzAdminRoutes)]
		segment, query, body, header = vars.expand(segment), vars.expand(query), vars.expand(body), vars.expand(header)
		switch segment {
		case "":
			segment = "x"
		case ".", "..":
			return // ServeMux redirects to the cleaned path before any handler runs
		}
		path := strings.ReplaceAll(rt.path, "{x}", url.PathEscape(segment))
		r := httptest.NewRequest(rt.method, path, strings.NewReader(body))
		if body == "" {
			r.Body, r.ContentLength = http.NoBody, 0
		}
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/json")
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		rec, logs := e.serve(r)
		what := rt.method + " " + path + "?" + query + " " + body + "\nAuthorization: " + header
		fuzzAPIAnswer(t, what, rec, logs)
		if rec.Code < 400 && header != "Bearer "+tr.AccessToken {
			fuzzFail(t, what, rec, logs, "answered without the admin token")
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusCreated {
			return
		}
		switch {
		case strings.HasSuffix(rt.path, "/policy") || (rt.method == http.MethodPut && strings.Contains(rt.path, "/policies/types/")):
			var in admin.PolicyView
			_ = json.NewDecoder(strings.NewReader(body)).Decode(&in) // as decodeBody reads it
			var out struct {
				admin.PolicyView
				Policy *admin.PolicyView `json:"policy"` // PUT /policies/types wraps it
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				fuzzFail(t, what, rec, logs, "policy answer: %v", err)
			}
			got := out.PolicyView
			if out.Policy != nil {
				got = *out.Policy
			}
			if got.MaxAgeSeconds != in.MaxAgeSeconds || got.RememberDeviceSeconds != in.RememberDeviceSeconds {
				fuzzFail(t, what, rec, logs, "policy stored with max age %ds and remember-device %ds, asked for %ds and %ds",
					got.MaxAgeSeconds, got.RememberDeviceSeconds, in.MaxAgeSeconds, in.RememberDeviceSeconds)
			}
		case rt.method == http.MethodPost && rt.path == "/api/v1/admin/clients":
			var in adminNewClient
			_ = json.NewDecoder(strings.NewReader(body)).Decode(&in) // as decodeBody reads it
			var out admin.ClientView
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				fuzzFail(t, what, rec, logs, "client answer: %v", err)
			}
			for _, l := range []struct {
				name    string
				in, out int64
			}{
				{"access token", in.AccessTokenLifetimeSeconds, out.AccessTokenLifetimeSeconds},
				{"ID token", in.IDTokenLifetimeSeconds, out.IDTokenLifetimeSeconds},
				{"refresh token", in.RefreshTokenLifetimeSeconds, out.RefreshTokenLifetimeSeconds},
			} {
				if l.in != 0 && l.in != l.out {
					fuzzFail(t, what, rec, logs, "%s lifetime stored as %ds, asked for %ds", l.name, l.out, l.in)
				}
			}
		}
	})
}
