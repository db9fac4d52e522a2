package idp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// The self-service JSON API under /api/v1/me/mfa, for applications with their own UI.
// Callers present an access token of the person that carries the scope "account".
// Removing a factor or regenerating backup codes needs a current code from an existing
// factor in the request body ("verification").

// ScopeAccount is the scope that lets an access token manage its owner's factors.
const ScopeAccount = "account"

type apiError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// apiCORS lets browser applications on any origin call the JSON APIs: they authenticate
// with bearer tokens, never cookies, so no credentials are allowed.
func apiCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeAPIError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
	}
	writeJSON(w, status, apiError{Error: code, Description: desc})
}

// apiUser authenticates the bearer token (JWT or opaque) against its stored record and
// returns its user; it answers the request itself on failure.
func (s *Server) apiUser(w http.ResponseWriter, r *http.Request) *storage.User {
	u, _ := s.apiUserToken(w, r)
	return u
}

// apiUserToken is apiUser that also returns the access token's record.
func (s *Server) apiUserToken(w http.ResponseWriter, r *http.Request) (*storage.User, *storage.AccessToken) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		writeAPIError(w, http.StatusUnauthorized, "invalid_token", "a Bearer access token is required")
		return nil, nil
	}
	ctx := op.ContextWithIssuer(r.Context(), s.cfg.Issuer)
	var tokenID string
	if claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, raw, s.provider.AccessTokenVerifier(ctx)); err == nil {
		tokenID = claims.JWTID
	} else if plain, err := s.provider.Crypto().Decrypt(raw); err == nil {
		tokenID, _, _ = strings.Cut(plain, ":")
	}
	at, err := s.ops.validAccessToken(ctx, tokenID)
	if tokenID == "" || err != nil || at.UserID == "" {
		writeAPIError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return nil, nil
	}
	if !slices.Contains(at.Scopes, ScopeAccount) {
		writeAPIError(w, http.StatusForbidden, "insufficient_scope", "the access token lacks the scope \"account\"")
		return nil, nil
	}
	u, err := s.store.GetUser(ctx, at.UserID)
	if err != nil || u.Disabled {
		writeAPIError(w, http.StatusUnauthorized, "invalid_token", "the user is not active")
		return nil, nil
	}
	return u, at
}

// tokenSession returns the live SSO session an access token was issued from, or nil.
func (s *Server) tokenSession(ctx context.Context, at *storage.AccessToken) *storage.Session {
	if at == nil || at.SessionID == "" {
		return nil
	}
	sess, err := s.store.GetSession(ctx, at.SessionID)
	if err != nil || sess.UserID != at.UserID || !s.sessionLive(sess, s.now()) {
		return nil
	}
	return sess
}

// apiCall authenticates a self-service call and decodes its JSON body; when it returns
// false it has answered the request.
func (s *Server) apiCall(w http.ResponseWriter, r *http.Request) (*storage.User, *apiRequest, bool) {
	u := s.apiUser(w, r)
	if u == nil {
		return nil, nil, false
	}
	req := &apiRequest{}
	if !decodeBody(w, r, req) {
		return nil, nil, false
	}
	return u, req, true
}

// apiFactor is a factor as the API shows it.
type apiFactor struct {
	ID         string             `json:"id"`
	Kind       storage.FactorKind `json:"kind"`
	Name       string             `json:"name,omitempty"`
	Target     string             `json:"target,omitempty"` // masked
	Confirmed  bool               `json:"confirmed"`
	CreatedAt  time.Time          `json:"created_at"`
	LastUsedAt *time.Time         `json:"last_used_at,omitempty"`
}

type apiStatus struct {
	Factors              []apiFactor          `json:"factors"`
	BackupCodesRemaining int                  `json:"backup_codes_remaining"`
	AvailableKinds       []storage.FactorKind `json:"available_kinds"`
}

// verification is the proof of an existing factor that sensitive calls require.
type verification struct {
	FactorID    string          `json:"factor_id"`
	ChallengeID string          `json:"challenge_id,omitempty"`
	Code        string          `json:"code,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"` // WebAuthn assertion
}

type apiRequest struct {
	FactorID     string          `json:"factor_id,omitempty"`
	ChallengeID  string          `json:"challenge_id,omitempty"`
	Code         string          `json:"code,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"` // WebAuthn attestation
	Name         string          `json:"name,omitempty"`
	Phone        string          `json:"phone,omitempty"`
	Email        string          `json:"email,omitempty"`
	Verification *verification   `json:"verification,omitempty"`
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "the body is not valid JSON for this call: "+err.Error())
		return false
	}
	if dec.More() {
		writeAPIError(w, http.StatusBadRequest, "invalid_request", "the body holds more than one JSON value")
		return false
	}
	return true
}

// apiMFAError maps an MFA error to an HTTP answer.
func apiMFAError(w http.ResponseWriter, err error) {
	var locked *regulation.LockedError
	var in *mfa.InputError
	switch {
	case errors.Is(err, audit.ErrNotRecorded):
		// The change did not happen: its audit event could not be written.
		writeAPIError(w, http.StatusInternalServerError, "server_error", "something went wrong")
	case errors.Is(err, mfa.ErrSendLimit):
		if errors.As(err, &locked) && !locked.Until.IsZero() {
			w.Header().Set("Retry-After", locked.Until.UTC().Format(http.TimeFormat))
		}
		writeAPIError(w, http.StatusTooManyRequests, "send_limit", mfaMessage(err))
	case errors.As(err, &locked):
		if !locked.Permanent {
			w.Header().Set("Retry-After", locked.Until.UTC().Format(http.TimeFormat))
		}
		writeAPIError(w, http.StatusTooManyRequests, "locked", mfaMessage(err))
	case errors.As(err, &in):
		writeAPIError(w, http.StatusBadRequest, "invalid_input", in.Message)
	case errors.Is(err, mfa.ErrNotConfigured):
		writeAPIError(w, http.StatusNotFound, "not_available", mfaMessage(err))
	case errors.Is(err, errLastRequiredFactor):
		writeAPIError(w, http.StatusConflict, "last_required_factor", mfaMessage(err))
	case errors.Is(err, storage.ErrNotFound):
		writeAPIError(w, http.StatusNotFound, "not_found", "no such factor")
	case errors.Is(err, storage.ErrConflict):
		writeAPIError(w, http.StatusConflict, "conflict", "the factor is already enrolled")
	case guessFailure(err) || errors.Is(err, mfa.ErrSignCount):
		writeAPIError(w, http.StatusBadRequest, "invalid_code", mfaMessage(err))
	default:
		writeAPIError(w, http.StatusInternalServerError, "server_error", "something went wrong")
	}
}

func (s *Server) handleAPIStatus(w http.ResponseWriter, r *http.Request) {
	u := s.apiUser(w, r)
	if u == nil {
		return
	}
	all, err := s.store.ListFactors(r.Context(), u.ID)
	if err != nil {
		apiMFAError(w, err)
		return
	}
	out := apiStatus{Factors: []apiFactor{}}
	for _, f := range all {
		v := apiFactor{ID: f.ID, Kind: f.Kind, Name: f.Name, Target: maskTarget(f.Target), Confirmed: f.Confirmed, CreatedAt: f.CreatedAt.UTC()}
		if !f.LastUsedAt.IsZero() {
			t := f.LastUsedAt.UTC()
			v.LastUsedAt = &t
		}
		out.Factors = append(out.Factors, v)
	}
	if out.BackupCodesRemaining, err = s.store.CountBackupCodes(r.Context(), u.ID); err != nil {
		apiMFAError(w, err)
		return
	}
	out.AvailableKinds = append(out.AvailableKinds, s.factors.Kinds()...)
	writeJSON(w, http.StatusOK, out)
}

// handleAPIEnroll: POST /api/v1/me/mfa/{kind} starts enrolling a factor of that kind.
// When the account already has a confirmed factor, the call needs "verification" with
// one of them, unless the token comes from a session whose second factor was verified
// within the last ten minutes.
func (s *Server) handleAPIEnroll(w http.ResponseWriter, r *http.Request) {
	u, at := s.apiUserToken(w, r)
	if u == nil {
		return
	}
	req := &apiRequest{}
	if !decodeBody(w, r, req) {
		return
	}
	kind := storage.FactorKind(r.PathValue("kind"))
	if kind == storage.FactorBackup {
		writeAPIError(w, http.StatusNotFound, "not_found", "use POST /api/v1/me/mfa/backup-codes")
		return
	}
	if _, err := s.factors.Get(kind); err != nil {
		apiMFAError(w, err)
		return
	}
	proved := false
	if req.Verification != nil && req.Verification.FactorID != "" {
		if !s.verified(w, r, u, req.Verification) {
			return
		}
		proved = true
	}
	if err := s.mayAddFactor(r.Context(), u, s.tokenSession(r.Context(), at), proved); err != nil {
		if errors.Is(err, errProofRequired) {
			writeAPIError(w, http.StatusBadRequest, "verification_required",
				`this account already has a sign-in method: add "verification": {"factor_id", "code" (and "challenge_id" for e-mail/SMS)} from it`)
			return
		}
		apiMFAError(w, err)
		return
	}
	enr, err := s.startEnroll(r.Context(), u, kind, mfa.EnrollRequest{Name: req.Name, Phone: req.Phone, Email: req.Email, Device: deviceName(r.UserAgent())})
	if err != nil {
		apiMFAError(w, err)
		return
	}
	out := map[string]any{"factor_id": enr.Factor.ID, "kind": enr.Factor.Kind}
	if enr.Secret != "" {
		out["secret"], out["otpauth_uri"] = enr.Secret, enr.URI
		out["qr_png"] = "data:image/png;base64," + base64.StdEncoding.EncodeToString(enr.QRPNG)
	}
	if enr.ChallengeID != "" {
		out["challenge_id"] = enr.ChallengeID
	}
	if enr.SentTo != "" {
		out["sent_to"] = enr.SentTo
	}
	if len(enr.Options) > 0 {
		out["options"] = enr.Options
	}
	writeJSON(w, http.StatusCreated, out)
}

// handleAPIConfirm: POST /api/v1/me/mfa/{kind}/verify finishes enrolment.
func (s *Server) handleAPIConfirm(w http.ResponseWriter, r *http.Request) {
	u, req, ok := s.apiCall(w, r)
	if !ok {
		return
	}
	kind := storage.FactorKind(r.PathValue("kind"))
	if req.FactorID == "" {
		// Default: the newest unconfirmed factor of this kind.
		all, err := s.store.ListFactors(r.Context(), u.ID)
		if err != nil {
			apiMFAError(w, err)
			return
		}
		var newest time.Time
		for _, f := range all {
			if f.Kind == kind && !f.Confirmed && f.CreatedAt.After(newest) {
				req.FactorID, newest = f.ID, f.CreatedAt
			}
		}
	}
	if f, err := s.store.GetFactor(r.Context(), req.FactorID); err != nil || f.Kind != kind || f.UserID != u.ID {
		apiMFAError(w, storage.ErrNotFound)
		return
	}
	response := req.Code
	if len(req.Response) > 0 {
		response = string(req.Response)
	}
	if err := s.confirmEnroll(r.Context(), u, req.FactorID, req.ChallengeID, response); err != nil {
		apiMFAError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"factor_id": req.FactorID, "confirmed": true})
}

// handleAPIChallenge: POST /api/v1/me/mfa/{id}/challenge sends a code (e-mail/SMS) or
// returns WebAuthn assertion options, for use as a verification.
func (s *Server) handleAPIChallenge(w http.ResponseWriter, r *http.Request) {
	u := s.apiUser(w, r)
	if u == nil {
		return
	}
	_, c, err := s.challenge(r.Context(), u, r.PathValue("id"))
	if err != nil {
		apiMFAError(w, err)
		return
	}
	out := map[string]any{"challenge_id": c.ID}
	if c.SentTo != "" {
		out["sent_to"] = c.SentTo
	}
	if len(c.Options) > 0 {
		out["options"] = c.Options
	}
	writeJSON(w, http.StatusOK, out)
}

// verified checks the verification in a sensitive request.
func (s *Server) verified(w http.ResponseWriter, r *http.Request, u *storage.User, v *verification) bool {
	if v == nil || v.FactorID == "" {
		writeAPIError(w, http.StatusBadRequest, "verification_required",
			`this call needs "verification": {"factor_id", "code" (and "challenge_id" for e-mail/SMS)} from an existing factor`)
		return false
	}
	response := v.Code
	if len(v.Response) > 0 {
		response = string(v.Response)
	}
	if _, _, err := s.verify(r.Context(), u, v.FactorID, v.ChallengeID, response); err != nil {
		apiMFAError(w, err)
		return false
	}
	return true
}

// handleAPIRemove: DELETE /api/v1/me/mfa/{id}.
func (s *Server) handleAPIRemove(w http.ResponseWriter, r *http.Request) {
	u, req, ok := s.apiCall(w, r)
	if !ok {
		return
	}
	if !s.verified(w, r, u, req.Verification) {
		return
	}
	if err := s.removeFactor(r.Context(), u, r.PathValue("id")); err != nil {
		apiMFAError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleAPIBackupCodes: POST /api/v1/me/mfa/backup-codes regenerates backup codes. The
// first set needs no verification when the person has no other factor.
func (s *Server) handleAPIBackupCodes(w http.ResponseWriter, r *http.Request) {
	u, req, ok := s.apiCall(w, r)
	if !ok {
		return
	}
	existing, err := s.confirmedFactors(r.Context(), u.ID)
	if err != nil {
		apiMFAError(w, err)
		return
	}
	if len(existing) > 0 && !s.verified(w, r, u, req.Verification) {
		return
	}
	enr, err := s.startEnroll(r.Context(), u, storage.FactorBackup, mfa.EnrollRequest{})
	if err != nil {
		apiMFAError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"codes": enr.Codes, "remaining": len(enr.Codes)})
}
