package rs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type claimsKey struct{}

// NewContext returns ctx carrying c. Protect does it for every request it lets through;
// tests of handlers can do it themselves.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims of the request's verified token.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware is Protect with no requirements: any valid token passes.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return v.Protect(next)
}

// Require returns Protect with reqs as a middleware, for routers that chain them.
func (v *Verifier) Require(reqs ...Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return v.Protect(next, reqs...) }
}

// Protect lets a request through to next when it carries a valid bearer token
// (Authorization: Bearer, RFC 6750 §2.1) that meets reqs, with the token's claims in its
// context (FromContext). Otherwise it answers with a WWW-Authenticate challenge:
//
//   - no token: 401, Bearer realm="..." without an error (RFC 6750 §3.1);
//   - a malformed Authorization header: 400 invalid_request;
//   - an invalid token: 401 invalid_token with an error_description;
//   - a missing scope: 403 insufficient_scope with the scopes the route requires;
//   - a level or sign-in age short of RequireACR or RequireMaxAge: 401
//     insufficient_user_authentication with acr_values and/or max_age (RFC 9470 §3);
//   - the provider unreachable and nothing cached: 503, without a challenge.
//
// A request that already carries claims (an outer Middleware verified it) is not
// verified again; only reqs are checked.
func (v *Verifier) Protect(next http.Handler, reqs ...Requirement) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := FromContext(r.Context())
		if !ok {
			token, ch := bearerToken(r)
			if ch != nil {
				v.writeChallenge(w, ch)
				return
			}
			c, err := v.Verify(r.Context(), token)
			var te *TokenError
			switch {
			case errors.As(err, &te):
				v.writeChallenge(w, &challenge{status: http.StatusUnauthorized, code: errInvalidToken, description: te.Description})
				return
			case err != nil:
				v.log.ErrorContext(r.Context(), "rs: cannot verify an access token", "err", err)
				http.Error(w, "The access token cannot be checked now", http.StatusServiceUnavailable)
				return
			}
			claims = c
			r = r.WithContext(NewContext(r.Context(), c))
		}
		if ch := v.decide(claims, v.now(), reqs); ch != nil {
			v.writeChallenge(w, ch)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the request's bearer token, or the challenge for a request without
// one (no error code) or with a malformed one.
func bearerToken(r *http.Request) (string, *challenge) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return "", &challenge{status: http.StatusBadRequest, code: errInvalidRequest,
			description: "More than one Authorization header"}
	}
	if len(values) == 0 {
		return "", &challenge{status: http.StatusUnauthorized}
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, DPoP) carries no bearer token: ask for one.
		return "", &challenge{status: http.StatusUnauthorized}
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", &challenge{status: http.StatusBadRequest, code: errInvalidRequest,
			description: "Malformed bearer token"}
	}
	return token, nil
}

// writeChallenge answers with ch: the WWW-Authenticate header, and for an error a JSON
// body repeating it.
func (v *Verifier) writeChallenge(w http.ResponseWriter, ch *challenge) {
	w.Header().Set("WWW-Authenticate", ch.header(v.realm))
	if ch.code == "" {
		w.WriteHeader(ch.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ch.status)
	body := map[string]string{"error": ch.code}
	if ch.description != "" {
		body["error_description"] = ch.description
	}
	_ = json.NewEncoder(w).Encode(body)
}

// header formats ch as a Bearer challenge: realm first, then error, error_description,
// scope, acr_values and max_age, each a quoted string as RFC 6750 §3 and RFC 9470 §3
// show them, e.g.
//
//	Bearer realm="https://api.example.com", error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="5"
func (ch *challenge) header(realm string) string {
	params := []string{authParam("realm", realm)}
	if ch.code != "" {
		params = append(params, authParam("error", ch.code))
		if ch.description != "" {
			params = append(params, authParam("error_description", ch.description))
		}
	}
	if len(ch.scope) > 0 {
		params = append(params, authParam("scope", strings.Join(ch.scope, " ")))
	}
	if len(ch.acrValues) > 0 {
		params = append(params, authParam("acr_values", strings.Join(ch.acrValues, " ")))
	}
	if ch.hasMaxAge {
		params = append(params, authParam("max_age", strconv.FormatInt(int64(ch.maxAge/time.Second), 10)))
	}
	return "Bearer " + strings.Join(params, ", ")
}

// authParam formats name="value", dropping the characters RFC 6750 §3 does not allow in
// its attribute values (anything but %x20-21 / %x23-5B / %x5D-7E: quotes, backslashes,
// controls, non-ASCII), so no value can break out of its quotes.
func authParam(name, value string) string {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, value)
	return name + `="` + clean + `"`
}
