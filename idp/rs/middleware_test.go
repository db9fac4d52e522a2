package rs

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestProtect drives the middleware over HTTP and checks each answer's status and
// WWW-Authenticate header, byte for byte, against RFC 6750 §3 and RFC 9470 §3.
func TestProtect(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	p := newFakeProvider(t, es)
	clk := newClock()
	now := clk.now()
	user := p.accessClaims(now) // acr mfa, signed in 2 minutes ago, scope "openid orders:read"
	token := func(changes map[string]any) string { return es.sign(t, "at+jwt", with(user, changes)) }
	mfa := token(nil)
	pwd := token(map[string]any{"acr": ACRPassword, "amr": []string{"pwd"}})
	phr := token(map[string]any{"acr": ACRPhishingResistant, "amr": []string{"hwk", "mfa", "pwd", "user"}})
	service := token(map[string]any{"sub": "svc", "client_id": "svc", "auth_time": nil, "acr": nil, "amr": nil})

	const realm = `Bearer realm="https://api.example.com"`
	tests := []struct {
		name       string
		auth       []string // Authorization header values
		reqs       []Requirement
		cfg        func(*Config)
		wantStatus int
		wantChall  string // the exact WWW-Authenticate; "" means none
		wantError  string // the error member of the JSON body
	}{
		// RFC 6750 §3.1: a request without a token gets a challenge without an error.
		{name: "no token", wantStatus: 401, wantChall: realm},
		{name: "another scheme", auth: []string{"Basic dXNlcjpwYXNz"}, wantStatus: 401, wantChall: realm},
		{name: "empty bearer token", auth: []string{"Bearer "}, wantStatus: 400,
			wantChall: realm + `, error="invalid_request", error_description="Malformed bearer token"`, wantError: "invalid_request"},
		{name: "two Authorization headers", auth: []string{"Bearer " + mfa, "Bearer " + mfa}, wantStatus: 400,
			wantChall: realm + `, error="invalid_request", error_description="More than one Authorization header"`, wantError: "invalid_request"},
		{name: "ID token as access token", auth: []string{"Bearer " + es.sign(t, "JWT", user)}, wantStatus: 401,
			wantChall: realm + `, error="invalid_token", error_description="typ is not at+jwt: not an access token"`, wantError: "invalid_token"},
		{name: "expired token", auth: []string{"Bearer " + token(map[string]any{"exp": now.Add(-time.Minute).Unix()})}, wantStatus: 401,
			wantChall: realm + `, error="invalid_token", error_description="the token expired"`, wantError: "invalid_token"},
		{name: "valid token, no requirements", auth: []string{"Bearer " + mfa}, wantStatus: 200},
		{name: "scheme is case-insensitive", auth: []string{"bearer " + mfa}, wantStatus: 200},
		{name: "realm configured", cfg: func(c *Config) { c.Realm = "orders" }, wantStatus: 401, wantChall: `Bearer realm="orders"`},

		// RFC 6750 §3.1 insufficient_scope: 403, naming every scope the route requires.
		{name: "scope present", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireScope("orders:read")}, wantStatus: 200},
		{name: "scope missing", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireScope("orders:read", "orders:write")}, wantStatus: 403,
			wantChall: realm + `, error="insufficient_scope", error_description="The token lacks a scope this request needs", scope="orders:read orders:write"`,
			wantError: "insufficient_scope"},
		{name: "missing scope answered before authentication", auth: []string{"Bearer " + pwd},
			reqs: []Requirement{RequireACR(ACRMFA), RequireScope("orders:write")}, wantStatus: 403,
			wantChall: realm + `, error="insufficient_scope", error_description="The token lacks a scope this request needs", scope="orders:write"`,
			wantError: "insufficient_scope"},

		// RFC 9470 §3: 401 insufficient_user_authentication with acr_values and/or max_age.
		{name: "acr met exactly", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireACR(ACRMFA)}, wantStatus: 200},
		{name: "acr met by a stronger level", auth: []string{"Bearer " + phr}, reqs: []Requirement{RequireACR(ACRMFA)}, wantStatus: 200},
		{name: "acr too weak", auth: []string{"Bearer " + pwd}, reqs: []Requirement{RequireACR(ACRMFA)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:openidp:acr:mfa"`,
			wantError: "insufficient_user_authentication"},
		{name: "acr values in the route's order", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireACR(ACRPhishingResistant, "urn:example:gold")}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:openidp:acr:phr urn:example:gold"`,
			wantError: "insufficient_user_authentication"},
		{name: "exact acr matching refuses a stronger level", cfg: func(c *Config) { c.ACRRank = ExactACR },
			auth: []string{"Bearer " + phr}, reqs: []Requirement{RequireACR(ACRMFA)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:openidp:acr:mfa"`,
			wantError: "insufficient_user_authentication"},
		{name: "unranked acr matched exactly", cfg: func(c *Config) { c.ACRRank = OrderedACR("urn:x:bronze", "urn:x:silver") },
			auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireACR("urn:x:bronze", ACRMFA)}, wantStatus: 200},
		{name: "sign-in recent enough", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireMaxAge(5 * time.Minute)}, wantStatus: 200},
		{name: "sign-in too old", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireMaxAge(5 * time.Second)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="5"`,
			wantError: "insufficient_user_authentication"},
		{name: "no auth_time fails max_age", auth: []string{"Bearer " + service}, reqs: []Requirement{RequireMaxAge(time.Hour)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="3600"`,
			wantError: "insufficient_user_authentication"},
		{name: "both unmet: one challenge", auth: []string{"Bearer " + pwd}, reqs: []Requirement{RequireACR(ACRMFA), RequireMaxAge(time.Minute)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="A different authentication level and more recent authentication are required", acr_values="urn:openidp:acr:mfa", max_age="60"`,
			wantError: "insufficient_user_authentication"},
		{name: "only the unmet one is named", auth: []string{"Bearer " + pwd}, reqs: []Requirement{RequireACR(ACRMFA), RequireMaxAge(time.Hour)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:openidp:acr:mfa"`,
			wantError: "insufficient_user_authentication"},
		{name: "the strictest max_age is named", auth: []string{"Bearer " + mfa}, reqs: []Requirement{RequireMaxAge(time.Hour), RequireMaxAge(30 * time.Second)}, wantStatus: 401,
			wantChall: realm + `, error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="30"`,
			wantError: "insufficient_user_authentication"},
		{name: "everything met", auth: []string{"Bearer " + phr},
			reqs: []Requirement{RequireScope("orders:read"), RequireACR(ACRMFA), RequireMaxAge(10 * time.Minute)}, wantStatus: 200},

		// The provider unreachable with nothing cached is the API's problem: 503.
		{name: "provider unreachable", cfg: func(c *Config) { c.JWKSURL = p.issuer() + "/no-such-keys" },
			auth: []string{"Bearer " + mfa}, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.cfg != nil {
				mods = append(mods, tt.cfg)
			}
			v := p.verifier(t, clk, mods...)
			var seen *Claims
			h := v.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen, _ = FromContext(r.Context())
				fmt.Fprint(w, seen.Subject)
			}), tt.reqs...)
			req := httptest.NewRequest(http.MethodGet, "/orders", nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantChall {
				t.Errorf("WWW-Authenticate =\n  %s\nwant\n  %s", got, tt.wantChall)
			}
			if tt.wantStatus == http.StatusOK {
				if seen == nil || rec.Body.String() != seen.Subject || seen.Subject == "" {
					t.Errorf("handler saw claims %+v, body %q", seen, rec.Body)
				}
				return
			}
			if seen != nil {
				t.Fatal("the handler ran for a refused request")
			}
			if tt.wantError != "" {
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != tt.wantError {
					t.Errorf("body = %q, want error %q", rec.Body, tt.wantError)
				}
			}
		})
	}
}

// TestProtectNested: a route protected with requirements inside a verifying Middleware
// checks only its requirements, on the claims the outer one put in the context.
func TestProtectNested(t *testing.T) {
	es := newSigner(t, "es-1", jose.ES256)
	p := newFakeProvider(t, es)
	clk := newClock()
	v := p.verifier(t, clk)
	pwd := es.sign(t, "at+jwt", with(p.accessClaims(clk.now()), map[string]any{"acr": ACRPassword}))

	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux := http.NewServeMux()
	mux.Handle("/orders", ok)
	mux.Handle("/payments", v.Require(RequireACR(ACRMFA))(ok))
	h := v.Middleware(mux)

	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/orders", http.StatusNoContent},
		{"/payments", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set("Authorization", "Bearer "+pwd)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
		})
	}

	t.Run("claims already in the context", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/payments", nil)
		req = req.WithContext(NewContext(req.Context(), &Claims{Subject: "u", ACR: ACRPhishingResistant}))
		rec := httptest.NewRecorder()
		v.Protect(ok, RequireACR(ACRMFA)).ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d, want 204", rec.Code)
		}
	})
}

func TestAuthParamCannotBreakOut(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"plain", "orders:read", `x="orders:read"`},
		{"quote and backslash dropped", `a"b\c`, `x="abc"`},
		{"controls and non-ASCII dropped", "a\r\nb\tcé", `x="abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authParam("x", tt.value); got != tt.want {
				t.Errorf("authParam = %s, want %s", got, tt.want)
			}
		})
	}
}
