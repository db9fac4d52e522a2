package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/storage"
)

// fuzzClaimsSeeds are claims request parameters (OIDC Core 5.5) seen in practice, and broken ones.
var fuzzClaimsSeeds = []string{
	"",
	`{"id_token":{"acr":{"essential":true,"values":["urn:openidp:acr:mfa"]}}}`,
	`{"id_token":{"acr":{"essential":true,"value":"urn:openidp:acr:phr"}}}`,
	`{"id_token":{"acr":{"essential":false,"values":["urn:openidp:acr:mfa"]}}}`,
	`{"id_token":{"acr":{"essential":true,"values":["urn:example:gold","urn:openidp:acr:pwd"]},"auth_time":{"essential":true}}}`,
	`{"userinfo":{"email":{"essential":true},"email_verified":{"value":true}},"id_token":{"acr":null,"auth_time":null}}`,
	`{"id_token":{"email_verified":{"essential":true,"value":true},"acr":{"essential":true,"values":["urn:openidp:acr:mfa"]}}}`,
	`{"id_token":{"https://example.com/claims/level":{"values":[1,2,3]}}}`,
	`{"id_token":{"acr":{"essential":"yes"}}}`,
	`{"id_token":[]}`,
	`{"id_token":{"acr":{"values":"urn:openidp:acr:mfa"}}}`,
	`{"ID_TOKEN":{"acr":{"essential":true,"values":["x"]}}}`,
	`{"id_token":{"acr":{"essential":true,"values":["a"]}},"id_token":{}}`,
	`{"id_token":{"acr":{"essential":true,"values":["a\ud800"]}}}`,
	`null`, `[]`, `"x"`, `{`, `{"id_token":{"acr":{"essential":true,"values":["a"]}}} trailing`,
}

// fuzzClaimsUnsettled reports whether data, valid JSON, has an object with a repeated
// member name, or with two names that differ only in case: encoding/json merges the
// first and matches struct fields case-insensitively, so what such input means depends
// on the decoder. Nothing is asserted about it.
func fuzzClaimsUnsettled(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		key    bool // the next token of an object is a member name
		names  []string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if name, ok := tok.(string); ok && top != nil && top.object && top.key {
			for _, n := range top.names {
				if strings.EqualFold(n, name) {
					return true
				}
			}
			top.names = append(top.names, name)
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true // a value ended: a name comes next
		}
	}
}

// fuzzRefEssentialACR is what OIDC Core 5.5.1 says a claims parameter asks of "acr" in the ID
// token, for parameters whose meaning is clear: decided is false for input where refusing
// and accepting are both reasonable (a member that is not an object, "essential" that is
// not a boolean, acr values that are not strings, ...).
func fuzzRefEssentialACR(claims string) (values []string, wantErr, decided bool) {
	if claims == "" {
		return nil, false, true
	}
	if !json.Valid([]byte(claims)) {
		return nil, true, true
	}
	if fuzzClaimsUnsettled([]byte(claims)) {
		return nil, false, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(claims), &top) != nil || top == nil {
		return nil, false, false // not an object
	}
	raw, ok := top["id_token"]
	if !ok || string(raw) == "null" {
		return nil, false, true
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return nil, false, false
	}
	type request struct {
		Essential *bool     `json:"essential"`
		Value     *string   `json:"value"`
		Values    []*string `json:"values"`
	}
	var acr *request
	for name, m := range members {
		if string(m) == "null" {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(m, &fields) != nil {
			return nil, false, false // per 5.5.1 a member is null or an object
		}
		if e, ok := fields["essential"]; ok && string(e) != "true" && string(e) != "false" && string(e) != "null" {
			return nil, false, false
		}
		if name != "acr" {
			continue // "value" and "values" of other claims may be of any JSON type
		}
		acr = &request{}
		if json.Unmarshal(m, acr) != nil || slices.Contains(acr.Values, nil) {
			return nil, false, false
		}
	}
	if acr == nil || acr.Essential == nil || !*acr.Essential {
		return nil, false, true
	}
	for _, v := range acr.Values {
		values = append(values, *v)
	}
	if acr.Value != nil && *acr.Value != "" {
		values = append(values, *acr.Value)
	}
	return values, false, true
}

// FuzzEssentialACR checks the parser of the claims request parameter against the
// reference above, and that the acr values it returns survive a round trip through a
// claims parameter built from them.
func FuzzEssentialACR(f *testing.F) {
	for _, s := range fuzzClaimsSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, claims string) {
		got, err := essentialACR(claims)
		if err != nil && got != nil {
			t.Fatalf("essentialACR(%q) = %q and error %v", claims, got, err)
		}
		want, wantErr, decided := fuzzRefEssentialACR(claims)
		if decided {
			if wantErr != (err != nil) {
				t.Fatalf("essentialACR(%q): error %v, want error: %v", claims, err, wantErr)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("essentialACR(%q) = %q, want %q", claims, got, want)
			}
		}
		if err != nil || len(got) == 0 {
			return
		}
		again, err := json.Marshal(map[string]any{"id_token": map[string]any{"acr": map[string]any{"essential": true, "values": got}}})
		if err != nil {
			t.Fatal(err)
		}
		back, err := essentialACR(string(again))
		if err != nil || !slices.Equal(back, got) {
			t.Fatalf("essentialACR(%q) = %q; its claims parameter %s parses to %q, %v", claims, got, again, back, err)
		}
	})
}

// fuzzAuthorizeErrors are the error codes of an authorization error response: RFC 6749
// 4.1.2.1, OpenID Connect Core 3.1.2.6 and RFC 9470 (unmet_authentication_requirements).
// server_error is left out on purpose: for a request that only differs in its parameters
// it means the input was not handled.
var fuzzAuthorizeErrors = []string{
	"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
	"temporarily_unavailable", "interaction_required", "login_required", "account_selection_required",
	"consent_required", "invalid_request_uri", "invalid_request_object", "request_not_supported",
	"request_uri_not_supported", "registration_not_supported", "unmet_authentication_requirements",
}

// fuzzJSONStrings is what a list of strings is after a JSON round trip (invalid UTF-8
// replaced), as storage keeps it.
func fuzzJSONStrings(l []string) []string {
	b, _ := json.Marshal(l)
	var out []string
	_ = json.Unmarshal(b, &out)
	return out
}

// FuzzAuthorize sends authorization requests with fuzzed claims, acr_values, max_age and
// prompt parameters (and any more query parameters) of a registered client. The answer
// is never a server error; an error goes back to the client with an RFC error code and
// the state; an accepted request is stored with what it asked for: its acr_values as
// voluntary values, the acr values of its essential acr claim as essential ones, and a
// max_age that can be used as a time.Duration.
func FuzzAuthorize(f *testing.F) {
	e := newFuzzEnv(f)
	type seed struct {
		claims, acr, maxAge, prompt, extra string
		post                               bool
	}
	seeds := []seed{
		{},
		{acr: consent.ACRMFA},
		{acr: "urn:example:gold " + consent.ACRPhishingResistant, maxAge: "300", prompt: "login"},
		{claims: fuzzClaimsSeeds[1], acr: consent.ACRPassword, post: true},
		{claims: fuzzClaimsSeeds[4], prompt: "consent"},
		{claims: `{"id_token":{"email_verified":{"value":true}}}`},
		{claims: "{", acr: "  "},
		{maxAge: "0", prompt: "none"},
		{maxAge: "9999999999"},
		{maxAge: "-1", prompt: "none login"},
		{acr: "essential:" + consent.ACRMFA},
		{extra: "acr_values=" + url.QueryEscape(consent.ACRMFA) + "&claims=%7B%7D"},
		{extra: "code_challenge=abc&code_challenge_method=plain"},
		{extra: "scope=openid%20admin"},
		{extra: "response_type=token"},
		{extra: "%zz"},
		{extra: "request=eyJhbGciOiJub25lIn0.e30."},
		{extra: "ui_locales=de%20xx-%21"},
		{extra: "id_token_hint=a.b.c"},
		{extra: "state=" + strings.Repeat("s", 3000)},
		{extra: "ACR_VALUES=" + url.QueryEscape(consent.ACRMFA)},
		{extra: "Claims=%7B%7D&STATE=" + strings.Repeat("s", 3000)},
	}
	for _, s := range seeds {
		f.Add(s.claims, s.acr, s.maxAge, s.prompt, s.extra, s.post)
	}
	f.Fuzz(func(t *testing.T, claims, acr, maxAge, prompt, extra string, post bool) {
		q := url.Values{
			"client_id": {e.client.ID}, "redirect_uri": {fuzzRedirectURI}, "response_type": {"code"},
			"scope": {"openid profile"}, "state": {"fuzz-state"}, "nonce": {"fuzz-nonce"},
		}
		for k, v := range map[string]string{"claims": claims, "acr_values": acr, "max_age": maxAge, "prompt": prompt} {
			if v != "" {
				q.Set(k, v)
			}
		}
		raw := q.Encode()
		if extra != "" {
			raw += "&" + extra
		}
		var r *http.Request
		if post {
			r = httptest.NewRequest(http.MethodPost, "/authorize", strings.NewReader(raw))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(http.MethodGet, "/authorize", nil)
			r.URL.RawQuery = raw
		}
		rec, logs := e.serve(r)
		fuzzNoServerError(t, "GET /authorize?"+raw, rec, logs)
		loc := rec.Header().Get("Location")
		if loc == "" {
			return
		}
		target, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("redirect to %q: %v", loc, err)
		}
		form, _ := url.ParseQuery(raw) // what the server read, unless the query was malformed
		switch {
		case strings.HasPrefix(loc, fuzzRedirectURI):
			code := target.Query().Get("error")
			if !slices.Contains(fuzzAuthorizeErrors, code) {
				t.Fatalf("error redirect %s: error %q is not an authorization error code\nlog:\n%s", loc, code, logs)
			}
			// Only for the plain spelling: op reads "STATE" as state too, which the size
			// limits of op_authorize_limits.go (exact names) do not see.
			if fuzzSpellings(form, "state") == 1 && len(form["state"]) == 1 && len(form["state"][0]) <= 2048 &&
				target.Query().Get("state") != form.Get("state") {
				t.Fatalf("error redirect %s does not carry the state %q", loc, form.Get("state"))
			}
		case target.Path == "/login":
			ar, err := e.store.GetAuthRequest(context.Background(), target.Query().Get("id"))
			if err != nil {
				t.Fatalf("redirect to %s: %v", loc, err)
			}
			fuzzCheckStoredAuthRequest(t, raw, form, ar)
		}
	})
}

// fuzzMaxAgeSeconds is the largest max_age whose time.Duration does not overflow.
const fuzzMaxAgeSeconds = int64(1<<63-1) / int64(time.Second)

// fuzzNonEmpty drops empty strings: an empty acr value asks for nothing.
func fuzzNonEmpty(l []string) []string {
	return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return s == "" })
}

// fuzzSpellings counts the parameters of form named name in any case.
func fuzzSpellings(form url.Values, name string) int {
	n := 0
	for k := range form {
		if strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}

// fuzzCheckStoredAuthRequest compares a stored auth request with the parameters it came from
// (form, when each parameter compared appears at most once in it).
func fuzzCheckStoredAuthRequest(t *testing.T, raw string, form url.Values, ar *storage.AuthRequest) {
	t.Helper()
	if ar.MaxAge != nil && (*ar.MaxAge < 0 || *ar.MaxAge > fuzzMaxAgeSeconds) {
		t.Fatalf("/authorize?%s: stored max_age %d is not a usable number of seconds", raw, *ar.MaxAge)
	}
	p := authParams(ar)
	// op's decoder matches parameter names without regard to case ("ACR_VALUES" is
	// acr_values): compare only when one spelling with one value, or none, was sent.
	var acrValues []string
	for k, v := range form {
		if strings.EqualFold(k, "acr_values") {
			acrValues = v
		}
	}
	if n := fuzzSpellings(form, "acr_values"); n == 0 || n == 1 && len(acrValues) == 1 {
		var want oidc.SpaceDelimitedArray // how op reads acr_values
		if len(acrValues) == 1 && acrValues[0] != "" {
			_ = want.UnmarshalText([]byte(acrValues[0]))
		}
		if got, want := fuzzNonEmpty(p.ACRValues), fuzzNonEmpty(fuzzJSONStrings(want)); !slices.Equal(got, want) {
			t.Fatalf("/authorize?%s: stored voluntary acr values %q, want %q (stored %q)", raw, got, want, ar.ACRValues)
		}
	}
	if len(form["claims"]) <= 1 {
		want, err := essentialACR(form.Get("claims"))
		if err != nil {
			t.Fatalf("/authorize?%s: accepted a claims parameter its parser refuses: %v", raw, err)
		}
		if got, want := fuzzNonEmpty(p.EssentialACR), fuzzNonEmpty(fuzzJSONStrings(want)); !slices.Equal(got, want) {
			t.Fatalf("/authorize?%s: stored essential acr values %q, want %q (stored %q)", raw, got, want, ar.ACRValues)
		}
	}
}
