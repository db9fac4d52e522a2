package idp

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/storage"
)

// The admin JSON API under /api/v1/admin/, for provisioning and help-desk tools. Callers
// present an access token issued with the client_credentials grant to a client that may
// request the scope "admin"; the acting identity in the audit trail is
// "client:<client id>". It runs the same Admin actions as the CLI. The API, and the
// self-service API under /api/v1/me/mfa, are described by the OpenAPI document served at
// /api/v1/openapi.yaml.

// ScopeAdmin is the scope that lets a client_credentials token call the admin API.
const ScopeAdmin = "admin"

// Bounds of GET /api/v1/admin/audit.
const (
	adminAuditDefaultLimit = 100
	adminAuditMaxLimit     = 1000
)

// newAdmin returns the admin.Admin the admin API acts through: this server's store, audit
// trail, keys, clock and issuer; sessions end with back-channel logout.
func (s *Server) newAdmin() *admin.Admin {
	a := &admin.Admin{Store: s.store, Audit: s.audit, ChainKeys: audit.ChainKeysOf(s.cfg.Sealer), Keys: s.keys, Now: s.now, Issuer: s.cfg.Issuer, EndSessions: s.EndUserSessions, EndOneSession: s.endSession,
		Hash: s.hashPassword}
	if sender := s.cfg.MFA.EmailSender; sender != nil {
		a.Mail = sender.Send
	}
	return a
}

// adminAPI serves the admin endpoints.
type adminAPI struct {
	s     *Server
	admin *admin.Admin
}

// adminHandler serves one admin endpoint for the authenticated actor.
type adminHandler func(w http.ResponseWriter, r *http.Request, actor string)

// adminRoutes registers the admin API and the OpenAPI document.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	api := &adminAPI{s: s, admin: s.newAdmin()}
	routes := []struct {
		pattern string
		h       adminHandler
	}{
		{"GET /api/v1/admin/users", api.listUsers},
		{"POST /api/v1/admin/users", api.createUser},
		{"GET /api/v1/admin/users/{id}", api.getUser},
		{"POST /api/v1/admin/users/{id}/disable", api.disableUser},
		{"PUT /api/v1/admin/users/{id}/type", api.setUserType},
		{"PUT /api/v1/admin/users/{id}/groups", api.setUserGroups},
		{"GET /api/v1/admin/users/{id}/sessions", api.listSessions},
		{"DELETE /api/v1/admin/users/{id}/sessions", api.endSessions},
		{"POST /api/v1/admin/users/{id}/mfa/reset", api.resetMFA},
		{"POST /api/v1/admin/users/{id}/enrolment-link", api.enrolmentLink},
		{"GET /api/v1/admin/clients", api.listClients},
		{"POST /api/v1/admin/clients", api.createClient},
		{"GET /api/v1/admin/clients/{id}", api.getClient},
		{"PUT /api/v1/admin/clients/{id}/policy", api.setClientPolicy},
		{"GET /api/v1/admin/resources", api.listResources},
		{"POST /api/v1/admin/resources", api.createResource},
		{"DELETE /api/v1/admin/resources", api.deleteResource},
		{"GET /api/v1/admin/policies/types", api.listTypePolicies},
		{"GET /api/v1/admin/policies/types/{type}", api.getTypePolicy},
		{"PUT /api/v1/admin/policies/types/{type}", api.setTypePolicy},
		{"GET /api/v1/admin/audit", api.listAudit},
	}
	for _, rt := range routes {
		mux.HandleFunc(rt.pattern, api.authorized(rt.h))
	}
	mux.HandleFunc("/api/v1/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "not_found", "no admin API endpoint "+r.Method+" "+r.URL.Path+"; see /api/v1/openapi.yaml")
	})
	mux.HandleFunc("GET /api/v1/openapi.yaml", handleOpenAPI)
}

// accessToken returns the stored record of the request's bearer token (JWT or opaque)
// when it is valid, or nil.
func (s *Server) accessToken(r *http.Request) *storage.AccessToken {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return nil
	}
	ctx := op.ContextWithIssuer(r.Context(), s.cfg.Issuer)
	var tokenID string
	if claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, raw, s.provider.AccessTokenVerifier(ctx)); err == nil {
		tokenID = claims.JWTID
	} else if plain, err := s.provider.Crypto().Decrypt(raw); err == nil {
		tokenID, _, _ = strings.Cut(plain, ":")
	}
	if tokenID == "" {
		return nil
	}
	at, err := s.ops.validAccessToken(ctx, tokenID)
	if err != nil {
		return nil
	}
	return at
}

// authorized lets a request through to h only with a valid client token carrying the
// scope "admin", of a client that may still request it.
func (api *adminAPI) authorized(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		at := api.s.accessToken(r)
		if at == nil {
			writeAPIError(w, http.StatusUnauthorized, "invalid_token", "a valid Bearer access token is required")
			return
		}
		if !slices.Contains(at.Scopes, ScopeAdmin) {
			writeAPIError(w, http.StatusForbidden, "insufficient_scope", `the access token lacks the scope "admin"`)
			return
		}
		if at.UserID != "" {
			writeAPIError(w, http.StatusForbidden, "insufficient_scope",
				"the admin API accepts only client tokens (client_credentials grant), not a person's token")
			return
		}
		c, err := api.s.store.GetClient(r.Context(), at.ClientID)
		if err != nil || !slices.Contains(c.Scopes, ScopeAdmin) || !slices.Contains(c.GrantTypes, admin.GrantClientCredentials) {
			writeAPIError(w, http.StatusUnauthorized, "invalid_token", "the token's client may no longer use the admin API")
			return
		}
		h(w, r, "client:"+c.ID)
	}
}

// fail answers err from an Admin action.
func (api *adminAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var in *admin.InvalidInputError
	switch {
	case errors.As(err, &in):
		writeAPIError(w, http.StatusBadRequest, "invalid_request", in.Message)
	case errors.Is(err, storage.ErrNotFound):
		writeAPIError(w, http.StatusNotFound, "not_found", strings.TrimSuffix(err.Error(), ": "+storage.ErrNotFound.Error()))
	case errors.Is(err, storage.ErrAlreadyExists):
		writeAPIError(w, http.StatusConflict, "conflict", strings.TrimSuffix(err.Error(), ": "+storage.ErrAlreadyExists.Error()))
	case errors.Is(err, ErrHashBusy):
		w.Header().Set("Retry-After", strconv.Itoa(api.s.hashes.retryAfter()))
		writeAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "password hashing is at capacity; retry later")
	default:
		api.s.logger.ErrorContext(r.Context(), "admin API", "path", r.URL.Path, "err", err)
		writeAPIError(w, http.StatusInternalServerError, "server_error", "something went wrong")
	}
}

// maxDurationSeconds is the most whole seconds a time.Duration holds.
const maxDurationSeconds = int64(1<<63-1) / int64(time.Second)

// secondsField is a duration of a request body, in seconds, and its JSON name.
type secondsField struct {
	name  string
	value int64
}

// secondsFit answers 400 and returns false when a field holds more seconds than a
// time.Duration: converting it would overflow into another duration, stored silently.
// Negative values are left to the checks of each call.
func secondsFit(w http.ResponseWriter, fields []secondsField) bool {
	for _, f := range fields {
		if f.value > maxDurationSeconds {
			writeAPIError(w, http.StatusBadRequest, "invalid_request", f.name+" must be at most "+strconv.FormatInt(maxDurationSeconds, 10))
			return false
		}
	}
	return true
}

// policySecondsFields are the durations of v.
func policySecondsFields(v admin.PolicyView) []secondsField {
	return []secondsField{{"max_age_seconds", v.MaxAgeSeconds}, {"remember_device_seconds", v.RememberDeviceSeconds}}
}

// decodeRequired reads a JSON body into v; an empty body is refused.
func decodeRequired(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "a JSON body is required")
		return false
	}
	return decodeBody(w, r, v)
}

// --- users ---

type adminUserView struct {
	ID              string     `json:"id"`
	Email           string     `json:"email"`
	Name            string     `json:"name"`
	Type            string     `json:"type"`
	Groups          []string   `json:"groups"`
	Disabled        bool       `json:"disabled"`
	HasPassword     bool       `json:"has_password"`
	MFAGraceStarted *time.Time `json:"mfa_grace_started,omitempty"`
	MFAGraceLogins  int        `json:"mfa_grace_logins,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func toAdminUser(u *storage.User) adminUserView {
	v := adminUserView{
		ID: u.ID, Email: u.Email, Name: u.Name, Type: u.Type, Groups: nonNilStrings(u.Groups), Disabled: u.Disabled,
		HasPassword: u.PasswordHash != "", MFAGraceLogins: u.MFAGraceLogins, CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC(),
	}
	if !u.MFAGraceStarted.IsZero() {
		t := u.MFAGraceStarted.UTC()
		v.MFAGraceStarted = &t
	}
	return v
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (api *adminAPI) listUsers(w http.ResponseWriter, r *http.Request, _ string) {
	users, err := api.s.store.ListUsers(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]adminUserView, 0, len(users))
	for i := range users {
		out = append(out, toAdminUser(&users[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

type adminNewUser struct {
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Password string   `json:"password"`
	Type     string   `json:"type"`
	Groups   []string `json:"groups"`
	// NoPassword creates a passkey-only account; SendEnrolmentLink then issues (and
	// e-mails, when the server sends e-mail) its enrolment link.
	NoPassword        bool `json:"no_password"`
	SendEnrolmentLink bool `json:"send_enrolment_link"`
}

// adminNewUserResponse is a created user, with its enrolment link when one was asked for.
type adminNewUserResponse struct {
	adminUserView
	*adminEnrolmentLink
}

// adminEnrolmentLink is an enrolment link as the admin API returns it.
type adminEnrolmentLink struct {
	EnrolmentLink          string    `json:"enrolment_link"`
	EnrolmentLinkExpiresAt time.Time `json:"enrolment_link_expires_at"`
	EnrolmentLinkMailed    bool      `json:"enrolment_link_mailed"`
}

func toEnrolmentLink(res *admin.EnrolmentResult) *adminEnrolmentLink {
	return &adminEnrolmentLink{EnrolmentLink: res.Link, EnrolmentLinkExpiresAt: res.ExpiresAt.UTC(), EnrolmentLinkMailed: res.Mailed}
}

func (api *adminAPI) enrolmentLink(w http.ResponseWriter, r *http.Request, actor string) {
	res, err := api.admin.EnrolmentLink(r.Context(), actor, r.PathValue("id"), "")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEnrolmentLink(res))
}

func (api *adminAPI) createUser(w http.ResponseWriter, r *http.Request, actor string) {
	var req adminNewUser
	if !decodeRequired(w, r, &req) {
		return
	}
	// Input errors first, so that nothing is written and the caller gets a 400.
	if _, err := admin.NormalizeEmail(req.Email); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	switch {
	case req.NoPassword && req.Password != "":
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "give either a password or no_password, not both")
		return
	case req.SendEnrolmentLink && !req.NoPassword:
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "send_enrolment_link needs no_password")
		return
	case !req.NoPassword && len(req.Password) < pwhash.MinLength:
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "password must be at least "+strconv.Itoa(pwhash.MinLength)+" characters")
		return
	}
	u, err := api.admin.CreateUserOfType(r.Context(), actor, admin.NewUser{Email: req.Email, Name: req.Name, Password: req.Password, NoPassword: req.NoPassword}, req.Type, req.Groups)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := adminNewUserResponse{adminUserView: toAdminUser(u)}
	if req.SendEnrolmentLink {
		res, err := api.admin.EnrolmentLink(r.Context(), actor, u.ID, "")
		if err != nil {
			api.fail(w, r, err)
			return
		}
		out.adminEnrolmentLink = toEnrolmentLink(res)
	}
	writeJSON(w, http.StatusCreated, out)
}

func (api *adminAPI) getUser(w http.ResponseWriter, r *http.Request, _ string) {
	u, err := api.admin.FindUser(r.Context(), r.PathValue("id"))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminUser(u))
}

func (api *adminAPI) disableUser(w http.ResponseWriter, r *http.Request, actor string) {
	ctx := r.Context()
	if err := api.admin.DisableUser(ctx, actor, r.PathValue("id")); err != nil {
		api.fail(w, r, err)
		return
	}
	api.getUser(w, r, actor)
}

func (api *adminAPI) setUserType(w http.ResponseWriter, r *http.Request, actor string) {
	var req struct {
		Type string `json:"type"`
	}
	if !decodeRequired(w, r, &req) {
		return
	}
	u, err := api.admin.SetUserType(r.Context(), actor, r.PathValue("id"), req.Type)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminUser(u))
}

func (api *adminAPI) setUserGroups(w http.ResponseWriter, r *http.Request, actor string) {
	var req struct {
		Groups []string `json:"groups"`
	}
	if !decodeRequired(w, r, &req) {
		return
	}
	u, err := api.admin.SetUserGroups(r.Context(), actor, r.PathValue("id"), req.Groups)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminUser(u))
}

type adminSessionView struct {
	ID         string     `json:"id"`
	AuthTime   time.Time  `json:"auth_time"`
	MFAAt      *time.Time `json:"mfa_at,omitempty"`
	AMR        []string   `json:"amr"`
	ACR        string     `json:"acr"`
	IP         string     `json:"ip,omitempty"`
	UserAgent  string     `json:"user_agent,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
}

func (api *adminAPI) listSessions(w http.ResponseWriter, r *http.Request, _ string) {
	ctx := r.Context()
	u, err := api.admin.FindUser(ctx, r.PathValue("id"))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	sessions, err := api.s.store.ListUserSessions(ctx, u.ID)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]adminSessionView, 0, len(sessions))
	for _, s := range sessions {
		v := adminSessionView{
			ID: s.ID, AuthTime: s.AuthTime.UTC(), AMR: nonNilStrings(s.AMR), ACR: s.ACR, IP: s.IP, UserAgent: s.UserAgent,
			CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		}
		if !s.MFAAt.IsZero() {
			t := s.MFAAt.UTC()
			v.MFAAt = &t
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (api *adminAPI) endSessions(w http.ResponseWriter, r *http.Request, actor string) {
	n, err := api.admin.EndUserSessions(r.Context(), actor, r.PathValue("id"), r.URL.Query().Get("reason"))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions_ended": n})
}

type adminResetRequest struct {
	Reason        string `json:"reason"`
	RemoveFactors *bool  `json:"remove_factors"` // default true
	RecoveryLink  bool   `json:"recovery_link"`
}

type adminResetResponse struct {
	UserID                string     `json:"user_id"`
	FactorsRemoved        int64      `json:"factors_removed"`
	SessionsEnded         int        `json:"sessions_ended"`
	DevicesRemoved        int64      `json:"devices_removed"`
	TokensRevoked         bool       `json:"tokens_revoked"`
	RecoveryLink          string     `json:"recovery_link,omitempty"`
	RecoveryLinkExpiresAt *time.Time `json:"recovery_link_expires_at,omitempty"`
}

func (api *adminAPI) resetMFA(w http.ResponseWriter, r *http.Request, actor string) {
	var req adminResetRequest
	if !decodeRequired(w, r, &req) {
		return
	}
	opts := admin.ResetOptions{RemoveFactors: req.RemoveFactors == nil || *req.RemoveFactors, RecoveryLink: req.RecoveryLink}
	res, err := api.admin.ResetMFA(r.Context(), actor, r.PathValue("id"), req.Reason, opts)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := adminResetResponse{
		UserID: res.UserID, FactorsRemoved: res.FactorsRemoved, SessionsEnded: res.SessionsEnded,
		DevicesRemoved: res.DevicesRemoved, TokensRevoked: true, RecoveryLink: res.RecoveryLink,
	}
	if res.RecoveryLink != "" {
		t := res.RecoveryExpiresAt.UTC()
		out.RecoveryLinkExpiresAt = &t
	}
	writeJSON(w, http.StatusOK, out)
}

// --- clients and policies ---

func (api *adminAPI) listClients(w http.ResponseWriter, r *http.Request, _ string) {
	clients, err := api.s.store.ListClients(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]admin.ClientView, 0, len(clients))
	for i := range clients {
		out = append(out, admin.ToClientView(&clients[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
}

type adminNewClient struct {
	Name                        string           `json:"name"`
	RedirectURIs                []string         `json:"redirect_uris"`
	PostLogoutRedirectURIs      []string         `json:"post_logout_redirect_uris"`
	Public                      bool             `json:"public"`
	SkipConsent                 bool             `json:"skip_consent"`
	GrantTypes                  []string         `json:"grant_types"`
	Scopes                      []string         `json:"scopes"`
	AccessTokenFormat           string           `json:"access_token_format"`
	IDTokenSigningAlg           string           `json:"id_token_signing_alg"`
	AccessTokenLifetimeSeconds  int64            `json:"access_token_lifetime_seconds"`
	IDTokenLifetimeSeconds      int64            `json:"id_token_lifetime_seconds"`
	RefreshTokenLifetimeSeconds int64            `json:"refresh_token_lifetime_seconds"`
	BackchannelLogoutURI        string           `json:"backchannel_logout_uri"`
	TokenEndpointAuthMethod     string           `json:"token_endpoint_auth_method"`
	JWKS                        *json.RawMessage `json:"jwks"`
	JWKSURI                     string           `json:"jwks_uri"`
	RequirePAR                  bool             `json:"require_pushed_authorization_requests"`
}

func (api *adminAPI) createClient(w http.ResponseWriter, r *http.Request, actor string) {
	var req adminNewClient
	if !decodeRequired(w, r, &req) || !secondsFit(w, []secondsField{
		{"access_token_lifetime_seconds", req.AccessTokenLifetimeSeconds},
		{"id_token_lifetime_seconds", req.IDTokenLifetimeSeconds},
		{"refresh_token_lifetime_seconds", req.RefreshTokenLifetimeSeconds},
	}) {
		return
	}
	in := admin.NewClient{
		Name: req.Name, RedirectURIs: req.RedirectURIs, PostLogoutRedirectURIs: req.PostLogoutRedirectURIs,
		Public: req.Public, SkipConsent: req.SkipConsent, GrantTypes: req.GrantTypes, Scopes: req.Scopes,
		AccessTokenFormat: req.AccessTokenFormat, IDTokenSigningAlg: req.IDTokenSigningAlg,
		AccessTokenLifetime:     time.Duration(req.AccessTokenLifetimeSeconds) * time.Second,
		IDTokenLifetime:         time.Duration(req.IDTokenLifetimeSeconds) * time.Second,
		RefreshTokenLifetime:    time.Duration(req.RefreshTokenLifetimeSeconds) * time.Second,
		BackchannelLogoutURI:    req.BackchannelLogoutURI,
		TokenEndpointAuthMethod: req.TokenEndpointAuthMethod, JWKSURI: req.JWKSURI, RequirePAR: req.RequirePAR,
	}
	if req.JWKS != nil {
		in.JWKS = string(*req.JWKS)
	}
	// Input errors first, so that the caller gets a 400 and nothing is written.
	if err := admin.CheckClient(in); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	c, secret, err := api.admin.CreateClient(r.Context(), actor, in)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		admin.ClientView
		ClientSecret string `json:"client_secret,omitempty"`
	}{admin.ToClientView(c), secret})
}

func (api *adminAPI) getClient(w http.ResponseWriter, r *http.Request, _ string) {
	c, err := api.admin.FindClient(r.Context(), r.PathValue("id"))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, admin.ToClientView(c))
}

func (api *adminAPI) setClientPolicy(w http.ResponseWriter, r *http.Request, actor string) {
	var req admin.PolicyView
	if !decodeRequired(w, r, &req) || !secondsFit(w, policySecondsFields(req)) {
		return
	}
	p, err := api.admin.SetClientPolicy(r.Context(), actor, r.PathValue("id"), req.Policy())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, admin.ToPolicyView(*p))
}

func (api *adminAPI) listResources(w http.ResponseWriter, r *http.Request, _ string) {
	rs, err := api.admin.ListResources(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]admin.ResourceView, 0, len(rs))
	for i := range rs {
		out = append(out, admin.ToResourceView(&rs[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": out})
}

type adminNewResource struct {
	URI            string   `json:"uri"`
	Name           string   `json:"name"`
	AllowedClients []string `json:"allowed_clients"`
	RequiredScopes []string `json:"required_scopes"`
}

func (api *adminAPI) createResource(w http.ResponseWriter, r *http.Request, actor string) {
	var req adminNewResource
	if !decodeRequired(w, r, &req) {
		return
	}
	res, err := api.admin.CreateResource(r.Context(), actor, admin.NewResource{
		URI: req.URI, Name: req.Name, AllowedClients: req.AllowedClients, RequiredScopes: req.RequiredScopes,
	})
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, admin.ToResourceView(res))
}

// deleteResource takes the URI as the query parameter uri: a URI does not fit in a path
// segment.
func (api *adminAPI) deleteResource(w http.ResponseWriter, r *http.Request, actor string) {
	uri := r.URL.Query().Get("uri")
	if uri == "" {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "the query parameter uri is required")
		return
	}
	if err := api.admin.DeleteResource(r.Context(), actor, uri); err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": uri})
}

type adminTypePolicyView struct {
	Type   string           `json:"type"`
	Policy admin.PolicyView `json:"policy"`
}

func (api *adminAPI) listTypePolicies(w http.ResponseWriter, r *http.Request, _ string) {
	all, err := api.s.store.ListTypePolicies(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]adminTypePolicyView, 0, len(all))
	for t, p := range all {
		out = append(out, adminTypePolicyView{Type: t, Policy: admin.ToPolicyView(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	writeJSON(w, http.StatusOK, map[string]any{"policies": out})
}

func (api *adminAPI) getTypePolicy(w http.ResponseWriter, r *http.Request, _ string) {
	typ, err := admin.NormalizeAccountType(r.PathValue("type"))
	var p *storage.MFAPolicy
	if err == nil {
		p, err = api.s.store.GetTypePolicy(r.Context(), typ)
	}
	var in *admin.InvalidInputError
	if errors.Is(err, storage.ErrNotFound) || errors.As(err, &in) {
		writeAPIError(w, http.StatusNotFound, "not_found", "no policy for account type "+strconv.Quote(r.PathValue("type")))
		return
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminTypePolicyView{Type: typ, Policy: admin.ToPolicyView(*p)})
}

func (api *adminAPI) setTypePolicy(w http.ResponseWriter, r *http.Request, actor string) {
	var req admin.PolicyView
	if !decodeRequired(w, r, &req) || !secondsFit(w, policySecondsFields(req)) {
		return
	}
	typ, err := admin.NormalizeAccountType(r.PathValue("type"))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	p, err := api.admin.SetTypePolicy(r.Context(), actor, typ, req.Policy())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminTypePolicyView{Type: typ, Policy: admin.ToPolicyView(*p)})
}

// --- audit ---

type adminAuditEvent struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Result    string    `json:"result"`
	UserID    string    `json:"user_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	TokenID   string    `json:"token_id,omitempty"`
	FamilyID  string    `json:"family_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	FactorID  string    `json:"factor_id,omitempty"`
	Hash      string    `json:"hash"`
}

func (api *adminAPI) listAudit(w http.ResponseWriter, r *http.Request, _ string) {
	ctx := r.Context()
	q := r.URL.Query()
	f := storage.AuditFilter{ClientID: q.Get("client"), Type: q.Get("type"), TokenID: q.Get("token"), Limit: adminAuditDefaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > adminAuditMaxLimit {
			writeAPIError(w, http.StatusBadRequest, "invalid_request", "limit must be a whole number from 1 to "+strconv.Itoa(adminAuditMaxLimit))
			return
		}
		f.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "invalid_request", "since must be an RFC 3339 time such as 2025-01-31T12:00:00Z")
			return
		}
		f.Since = t
	}
	if v := q.Get("user"); v != "" {
		f.UserID = v
		if strings.Contains(v, "@") {
			u, err := api.admin.FindUser(ctx, v)
			if err != nil {
				api.fail(w, r, err)
				return
			}
			f.UserID = u.ID
		}
	}
	events, err := api.s.store.ListAudit(ctx, f)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	out := make([]adminAuditEvent, 0, len(events))
	for _, e := range events {
		out = append(out, adminAuditEvent{
			ID: e.ID, Time: e.Time.UTC(), Type: e.Type, Result: e.Result, UserID: e.UserID, ClientID: e.ClientID,
			IP: e.IP, UserAgent: e.UserAgent, Reason: e.Reason, Hash: e.Hash,
			TokenID: e.TokenID, FamilyID: e.FamilyID, SessionID: e.SessionID, FactorID: e.FactorID,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}
