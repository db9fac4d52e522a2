package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Every accepted /authorize request is a stored row that anyone can create without
// signing in, so what one request may carry and how many one address may create are
// bounded here, before op parses the request. docs/limits.md lists the limits and why.

// AuthorizeLimits bounds the authorization requests one source address may create. IPv6
// addresses count per /64, the smallest network a subscriber is normally given.
type AuthorizeLimits struct {
	PerIP  int           // requests per Window, default 60
	Window time.Duration // default 1 minute
}

// Defaults of AuthorizeLimits.
const (
	DefaultAuthorizePerIP  = 60
	DefaultAuthorizeWindow = time.Minute
)

func (l AuthorizeLimits) withDefaults() AuthorizeLimits {
	if l.PerIP <= 0 {
		l.PerIP = DefaultAuthorizePerIP
	}
	if l.Window <= 0 {
		l.Window = DefaultAuthorizeWindow
	}
	return l
}

// Size limits of an authorization request: its query string and, for POST (OIDC Core
// 3.1.2.1 allows form posts), its body. Every parameter has its own limit below, so a
// request beyond these is never a legitimate one.
const (
	maxAuthorizeQuery = 16 << 10
	maxAuthorizeBody  = 16 << 10
)

// paramLimit bounds the byte length of every value of one authorization parameter.
type paramLimit struct {
	name     string
	min, max int
}

// authorizeParamLimits are the per-parameter limits. OAuth 2.0 and OIDC set no maximum
// for any of these; the values leave room for every client seen in practice:
//   - state 2 KiB: opaque to us and echoed in the redirect; relying-party frameworks
//     encrypt their own state into it (ASP.NET Core's reaches 1–2 KiB), Connect2id
//     defaults to 1 KiB, Entra ID refuses beyond about 1.8 KiB.
//   - nonce 512: copied into the ID token; libraries send 16–128 characters
//     (IdentityServer caps it at 300, Connect2id at 128).
//   - login_hint 256: an e-mail address is at most 254 octets (RFC 5321 4.5.3.1.3).
//   - redirect_uri 2 KiB: compared exactly with a registered URI.
//   - code_challenge 43–128: RFC 7636 4.1 and 4.2 (S256 gives exactly 43).
//   - claims 4 KiB: a JSON object naming claims (OIDC Core 5.5).
//   - resource 2 KiB: a URI compared exactly with a registered one (RFC 8707).
var authorizeParamLimits = []paramLimit{
	{name: "client_id", max: 256},
	{name: "redirect_uri", max: 2048},
	{name: "response_type", max: 64},
	{name: "response_mode", max: 32},
	{name: "scope", max: 1024},
	{name: "state", max: 2048},
	{name: "nonce", max: 512},
	{name: "prompt", max: 64},
	{name: "max_age", max: 10},
	{name: "display", max: 16},
	{name: "ui_locales", max: 256},
	{name: "login_hint", max: 256},
	{name: "id_token_hint", max: 8192},
	{name: "acr_values", max: 512},
	{name: "claims", max: 4096},
	{name: "resource", max: 2048},
	{name: "code_challenge", min: 43, max: 128},
	{name: "code_challenge_method", max: 16},
}

// values returns every value of parameter name in form, whatever the case of its name:
// op's decoder reads parameter names regardless of case ("STATE" is state), so the
// limits must too.
func values(form map[string][]string, name string) []string {
	var out []string
	for k, vs := range form {
		if strings.EqualFold(k, name) {
			out = append(out, vs...)
		}
	}
	return out
}

// paramViolation returns which limit of authorizeParamLimits form breaks, or "".
func paramViolation(form map[string][]string) string {
	for _, l := range authorizeParamLimits {
		for _, v := range values(form, l.name) {
			switch {
			case len(v) > l.max:
				return fmt.Sprintf("%s exceeds %d bytes", l.name, l.max)
			case v != "" && len(v) < l.min:
				return fmt.Sprintf("%s must be %d to %d characters (RFC 7636 4.2)", l.name, l.min, l.max)
			}
		}
	}
	return ""
}

// withinLimit reports whether every value of parameter name is within its limit.
func withinLimit(form map[string][]string, name string) bool {
	for _, l := range authorizeParamLimits {
		if l.name != name {
			continue
		}
		for _, v := range values(form, name) {
			if len(v) > l.max || (v != "" && len(v) < l.min) {
				return false
			}
		}
	}
	return true
}

// checkAuthorize reads an /authorize request within the size limits, checks each
// parameter and the per-address limit, and answers the request itself (returning false)
// when one is exceeded, so that nothing is stored. r must carry the request's reqState:
// the client it looks up is then not read again by op.
func (s *Server) checkAuthorize(w http.ResponseWriter, r *http.Request) bool {
	if len(r.URL.RawQuery) > maxAuthorizeQuery {
		s.renderInvalidAuthorize(w, r, fmt.Sprintf("the query string exceeds %d bytes", maxAuthorizeQuery))
		return false
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxAuthorizeBody)
	}
	if err := r.ParseForm(); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			s.renderInvalidAuthorize(w, r, fmt.Sprintf("the body exceeds %d bytes", maxAuthorizeBody))
		} else {
			s.renderInvalidAuthorize(w, r, "the request could not be parsed")
		}
		return false
	}
	target := s.authorizeRedirect(r)
	if msg := paramViolation(r.Form); msg != "" {
		if target == nil {
			s.renderInvalidAuthorize(w, r, msg)
			return false
		}
		s.logger.InfoContext(r.Context(), "authorization request refused", "reason", msg)
		op.AuthRequestError(w, r, target, oidc.ErrInvalidRequest().WithDescription("%s", msg), s.provider)
		return false
	}
	// RFC 6749 §4.1.2.1: only the code flow is offered; any other response type goes
	// back to a registered redirect URI as unsupported_response_type (op would judge
	// the redirect URI by the response type and refuse it on a page).
	if rt := r.Form.Get("response_type"); target != nil && rt != "" && rt != string(oidc.ResponseTypeCode) {
		s.logger.InfoContext(r.Context(), "authorization request refused", "reason", "unsupported response_type")
		op.AuthRequestError(w, r, target, &oidc.Error{ErrorType: "unsupported_response_type", Description: "only response_type=code is supported"}, s.provider)
		return false
	}
	// Only a request op may accept (known client, registered redirect URI) can create a
	// row; op refuses the others itself, so only these are counted.
	if target != nil && !s.allowAuthorize(r.Context()) {
		op.AuthRequestError(w, r, target, &oidc.Error{ErrorType: "temporarily_unavailable",
			Description: "too many authorization requests from this address; try again in a minute"}, s.provider)
		return false
	}
	return true
}

// renderInvalidAuthorize is the page for an authorization request that cannot be sent
// back to its client.
func (s *Server) renderInvalidAuthorize(w http.ResponseWriter, r *http.Request, reason string) {
	s.logger.InfoContext(r.Context(), "authorization request refused", "reason", reason)
	s.renderError(w, r, http.StatusBadRequest, "Invalid sign-in request",
		s.tr(r, "The application sent a sign-in request this server does not accept (%s). Go back to the application and try again.", reason))
}

// allowAuthorize counts one authorization request against the caller's address and
// reports whether it is within AuthorizeLimits. A counter that cannot be written lets
// the request through (storing it will most likely fail as well, and say why).
func (s *Server) allowAuthorize(ctx context.Context) bool {
	ri := requestInfoFrom(ctx)
	if ri == nil {
		return true
	}
	lim := s.cfg.AuthorizeLimits.withDefaults()
	n, err := s.store.HitRateLimit(ctx, "authorize:ip:"+addressKey(ri.IP), lim.Window, s.now())
	if err != nil {
		s.logger.ErrorContext(ctx, "authorize rate limit write failed", "err", err)
		return true
	}
	if n > lim.PerIP {
		s.logger.WarnContext(ctx, "authorization requests rate limited", "count", n, "limit", lim.PerIP, "window", lim.Window)
		return false
	}
	return true
}

// addressKey is the unit an address is limited as: an IPv4 address, or the /64 of an
// IPv6 address. Anything else is used as it is.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// authorizeTarget is where an error about an authorization request can be sent.
type authorizeTarget struct {
	redirectURI  string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	state        string
}

func (t *authorizeTarget) GetRedirectURI() string             { return t.redirectURI }
func (t *authorizeTarget) GetResponseType() oidc.ResponseType { return t.responseType }
func (t *authorizeTarget) GetResponseMode() oidc.ResponseMode { return t.responseMode }
func (t *authorizeTarget) GetState() string                   { return t.state }

// authorizeRedirect returns where errors about r may be redirected: the redirect_uri,
// when client_id names a client and redirect_uri is registered for it (the checks op
// makes itself), or nil. RFC 6749 4.1.2.1: never redirect to an unverified URI. A state
// beyond its limit is not echoed.
func (s *Server) authorizeRedirect(r *http.Request) *authorizeTarget {
	f := r.Form
	if !withinLimit(f, "client_id") || !withinLimit(f, "redirect_uri") || !withinLimit(f, "response_type") {
		return nil
	}
	id, uri := f.Get("client_id"), f.Get("redirect_uri")
	if id == "" || uri == "" {
		return nil
	}
	c, err := s.ops.GetClientByClientID(r.Context(), id)
	if err != nil {
		return nil
	}
	// The redirect URI is judged as for the code flow, the only one offered: an error
	// about another response type goes back to it in the query like any other.
	rt := oidc.ResponseTypeCode
	if op.ValidateAuthReqRedirectURI(c, uri, rt) != nil {
		return nil
	}
	t := &authorizeTarget{redirectURI: uri, responseType: rt}
	if withinLimit(f, "state") {
		t.state = f.Get("state")
	}
	switch rm := oidc.ResponseMode(f.Get("response_mode")); rm {
	case oidc.ResponseModeQuery, oidc.ResponseModeFragment:
		t.responseMode = rm
	}
	return t
}

// authRequestViolation checks what op parsed against the same limits, whatever the
// parameters came from, so that nothing over-long is stored even if another source of
// parameters (a request object) is enabled one day. It returns the broken limit or "".
func authRequestViolation(req *oidc.AuthRequest) string {
	return paramViolation(map[string][]string{
		"client_id": {req.ClientID}, "redirect_uri": {req.RedirectURI}, "state": {req.State},
		"nonce": {req.Nonce}, "login_hint": {req.LoginHint}, "id_token_hint": {req.IDTokenHint},
		"scope": {req.Scopes.String()}, "acr_values": {req.ACRValues.String()},
		"prompt": {req.Prompt.String()}, "ui_locales": {req.UILocales.String()},
		"code_challenge": {req.CodeChallenge}, "code_challenge_method": {string(req.CodeChallengeMethod)},
		"response_mode": {string(req.ResponseMode)},
	})
}
