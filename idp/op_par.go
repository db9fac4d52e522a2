package idp

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Pushed authorization requests (RFC 9126). op v3 does not implement them: the client
// pushes its authorization parameters to /par (authenticated as at the token endpoint)
// and gets a request_uri; /authorize with client_id and that request_uri then runs on
// the pushed parameters (opInterceptor → resolvePushedRequest), after consuming the
// request_uri atomically: it is used once, by its client, within PARLifetime.

const (
	// parPath is the pushed authorization request endpoint.
	parPath = "/par"
	// requestURIPrefix starts every request_uri this provider issues (RFC 9126 §2.2).
	requestURIPrefix = "urn:ietf:params:oauth:request_uri:"
	// PARLifetime is how long a request_uri can be used.
	PARLifetime = 60 * time.Second
)

// parAuthParams are the client authentication parameters of a push, not part of the
// authorization request.
var parAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// parResponse is the answer to a push (RFC 9126 §2.2).
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int    `json:"expires_in"`
}

// handlePAR stores a pushed authorization request.
func (s *Server) handlePAR(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, maxAuthorizeBody+maxAssertionSize)
	if err := r.ParseForm(); err != nil {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("the request could not be parsed"), s.logger)
		return
	}
	if r.URL.RawQuery != "" {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("parameters go in the body"), s.logger)
		return
	}
	c, err := s.authenticatePARClient(r)
	if err != nil {
		op.RequestError(w, r, err, s.logger)
		return
	}
	params := url.Values{}
	for k, v := range r.PostForm {
		if !slices.Contains(parAuthParams, k) {
			params[k] = v
		}
	}
	if id := params.Get("client_id"); id != "" && id != c.ID {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("client_id does not match the client's authentication"), s.logger)
		return
	}
	params.Set("client_id", c.ID)
	switch {
	case params.Has("request_uri"):
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("request_uri cannot be pushed"), s.logger)
		return
	case params.Has("request"):
		op.RequestError(w, r, oidc.ErrRequestNotSupported(), s.logger)
		return
	}
	// The same limits as /authorize (op_authorize_limits.go), and what op would refuse
	// first: the redirect URI and the response type.
	if msg := paramViolation(params); msg != "" {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("%s", msg), s.logger)
		return
	}
	if len(params.Encode()) > maxAuthorizeQuery {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("the request exceeds %d bytes", maxAuthorizeQuery), s.logger)
		return
	}
	oc, err := s.ops.GetClientByClientID(r.Context(), c.ID)
	if err != nil {
		op.RequestError(w, r, oidc.ErrInvalidClient(), s.logger)
		return
	}
	if err := op.ValidateAuthReqRedirectURI(oc, params.Get("redirect_uri"), oidc.ResponseType(params.Get("response_type"))); err != nil {
		op.RequestError(w, r, err, s.logger)
		return
	}
	if params.Get("response_type") != string(oidc.ResponseTypeCode) {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("response_type must be code"), s.logger)
		return
	}
	if !s.allowAuthorize(r.Context()) {
		op.RequestError(w, r, &oidc.Error{ErrorType: "temporarily_unavailable",
			Description: "too many authorization requests from this address; try again in a minute"}, s.logger)
		return
	}
	p := &storage.PushedRequest{ID: secret.Token(24), ClientID: c.ID, Params: params.Encode(), ExpiresAt: s.now().Add(PARLifetime)}
	if err := s.store.CreatePushedRequest(r.Context(), p); err != nil {
		s.logger.ErrorContext(r.Context(), "store pushed request", "err", err)
		op.RequestError(w, r, oidc.ErrServerError(), s.logger)
		return
	}
	writeJSON(w, http.StatusCreated, parResponse{RequestURI: requestURIPrefix + p.ID, ExpiresIn: int(PARLifetime / time.Second)})
}

// authenticatePARClient authenticates the client of a push as the token endpoint does:
// private_key_jwt, client_secret_basic or client_secret_post; a public client names
// itself with client_id.
func (s *Server) authenticatePARClient(r *http.Request) (*storage.Client, error) {
	invalid := oidc.ErrInvalidClient().WithDescription("client authentication failed")
	if a, t := r.PostForm.Get("client_assertion"), r.PostForm.Get("client_assertion_type"); a != "" || t != "" {
		if _, _, basic := r.BasicAuth(); basic || r.PostForm.Get("client_secret") != "" {
			return nil, oidc.ErrInvalidRequest().WithDescription("use one client authentication method")
		}
		id, err := s.verifyClientAssertion(r, a, t)
		if err != nil {
			s.audit.Record(r.Context(), storage.AuditEvent{Type: audit.EventClientAuth, ClientID: id, Result: audit.ResultFailure,
				Reason: "client assertion: " + err.Error()})
			return nil, invalid
		}
		return s.store.GetClient(r.Context(), id)
	}
	id, sec, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err := errors.Join(err1, err2); err != nil {
			return nil, invalid
		}
	} else {
		id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, err := s.store.GetClient(r.Context(), id)
	if err != nil || id == "" {
		return nil, invalid
	}
	if c.Public && sec == "" && !basic {
		return c, nil
	}
	if err := s.ops.AuthorizeClientIDSecret(r.Context(), id, sec); err != nil {
		return nil, invalid
	}
	return c, nil
}

// resolvePushedRequest, at /authorize: a request_uri of this provider is consumed and
// its pushed parameters become the request (any other parameter but client_id is
// ignored, RFC 9126 §4); a client that requires pushed requests is refused without one.
// It answers the request itself and returns false when it refuses it.
func (s *Server) resolvePushedRequest(w http.ResponseWriter, r *http.Request) bool {
	clientID := r.Form.Get("client_id")
	reqURI := r.Form.Get("request_uri")
	if !strings.HasPrefix(reqURI, requestURIPrefix) {
		if reqURI == "" && clientID != "" {
			// The per-request read (opStorage.getClient): op reads the same client next.
			if c, err := s.ops.getClient(r.Context(), clientID); err == nil && c.RequirePAR {
				s.renderInvalidAuthorize(w, r, "this application must push its authorization requests (request_uri)")
				return false
			}
		}
		return true // op answers request_uri values it does not know
	}
	if clientID == "" {
		s.renderInvalidAuthorize(w, r, "client_id is required with request_uri")
		return false
	}
	p, err := s.store.ConsumePushedRequest(r.Context(), strings.TrimPrefix(reqURI, requestURIPrefix), clientID, s.now())
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.logger.ErrorContext(r.Context(), "consume pushed request", "err", err)
		}
		s.renderInvalidAuthorize(w, r, "the request_uri is unknown, expired or already used")
		return false
	}
	params, err := url.ParseQuery(p.Params)
	if err != nil || params.Get("client_id") != clientID {
		s.renderInvalidAuthorize(w, r, "the pushed request could not be read")
		return false
	}
	r.URL.RawQuery = p.Params
	r.Form = params
	r.PostForm = url.Values{}
	return true
}
