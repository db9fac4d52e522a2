package idp

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The device page (RFC 8628 §3.3). The person types the user code their TV or CLI shows;
// a right code starts a sign-in through the same flow as a browser sign-in (password,
// second factor, enrolment, policy, consent: login_flow.go) for an auth request that
// names the device authorization instead of a redirect URI. Where a browser sign-in
// would issue a code, finishDevice approves the device authorization; where it would
// send an error to the relying party, failDevice denies it.

const msgBadUserCode = "That code is not valid. Check the code on your device and try again."

// isDeviceRequest reports whether ar is the sign-in of a device authorization (whose id
// is then ar.State).
func isDeviceRequest(ar *storage.AuthRequest) bool { return ar.ResponseType == deviceResponseType }

func (s *Server) showDevice(w http.ResponseWriter, r *http.Request, code, msg string, status int) {
	s.render(w, r, status, web.PageDevice, web.DevicePage{CSRF: s.csrfToken(w, r), UserCode: code, Error: msg})
}

// handleDevice shows the code form, filled in from verification_uri_complete: the person
// still confirms it, so that a link alone never starts anything.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	if len(code) > 32 {
		code = ""
	}
	s.showDevice(w, r, code, "", http.StatusOK)
}

// handleDevicePost checks a user code: each guess is reserved through the regulator
// under the address's limit before the code is looked up.
func (s *Server) handleDevicePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return
	}
	ctx := r.Context()
	code := strings.TrimSpace(r.PostFormValue("user_code"))
	if len(code) > 32 {
		code = code[:32]
	}
	att, err := s.regulator.Reserve(ctx, deviceCodeLimits(requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceCode, Result: audit.ResultFailure, Reason: "rate limited (address)"})
		s.showDevice(w, r, code, s.tr(r, "Too many codes entered. Try again after %s.", locked.Until.UTC().Format("15:04 MST")), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	now := s.now()
	da, err := s.store.GetDeviceAuthorizationByUserCode(ctx, userCodeMAC(s.ops.deviceKey, code))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		_ = att.Cancel(ctx)
		s.internalError(w, r, err)
		return
	}
	if da == nil || da.State != storage.DeviceAuthPending || !now.Before(da.ExpiresAt) {
		att.Failed()
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceCode, Result: audit.ResultFailure, Reason: "unknown, expired or used user code"})
		s.showDevice(w, r, code, msgBadUserCode, http.StatusBadRequest)
		return
	}
	if err := att.Succeeded(ctx); err != nil {
		s.logger.ErrorContext(ctx, "release user code attempt", "err", err)
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceCode, ClientID: da.ClientID, Result: audit.ResultSuccess, Reason: "device authorization " + da.ID})
	expires := now.Add(s.cfg.AuthRequestLifetime)
	if da.ExpiresAt.Before(expires) {
		expires = da.ExpiresAt
	}
	ar := &storage.AuthRequest{
		ID: secret.NewID(), ClientID: da.ClientID, Scopes: da.Scopes, ResponseType: deviceResponseType,
		State: da.ID, CreatedAt: now, ExpiresAt: expires,
	}
	if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?id="+url.QueryEscape(ar.ID), http.StatusSeeOther)
}

// finishDevice is finish for a device sign-in: the device authorization is approved
// with what the sign-in proved, and the person goes back to their device.
func (s *Server) finishDevice(w http.ResponseWriter, r *http.Request, f *flowFacts) {
	ctx := r.Context()
	l := f.ar.Login
	// Written ahead: an approval whose event cannot be written is not stored, and the
	// device's polls stay pending until the code expires.
	ev := storage.AuditEvent{Type: audit.EventDeviceApprove, UserID: l.UserID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess,
		SessionID: l.SessionID, Reason: "device authorization " + f.ar.State + ", scopes " + strings.Join(f.ar.Scopes, " ")}
	err := s.audited(ctx, ev, func() error {
		return s.store.ApproveDeviceAuthorization(ctx, f.ar.State, storage.AuthLogin{UserID: l.UserID, SessionID: l.SessionID,
			AuthTime: l.AuthTime, AMR: l.AMR, ACR: l.ACR, Done: true}, s.now())
	})
	if errors.Is(err, audit.ErrNotRecorded) { // nothing happened: the sign-in may be finished again
		s.internalError(w, r, err)
		return
	}
	_ = s.store.DeleteAuthRequest(ctx, f.ar.ID)
	s.clearCookie(w, continueCookie)
	if errors.Is(err, storage.ErrNotFound) {
		s.renderError(w, r, http.StatusBadRequest, "Code expired",
			"This device code has expired or was already used. Start again on your device.")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if err := s.store.AddSessionClient(ctx, l.SessionID, f.ar.ClientID); err != nil {
		s.logger.WarnContext(ctx, "record session client", "err", err)
	}
	s.render(w, r, http.StatusOK, web.PageDeviceDone, web.DeviceDonePage{ClientName: f.client.Name})
}

// failDevice is failRequest for a device sign-in: the device authorization is denied
// (the device's next poll gets access_denied) and the person is told.
func (s *Server) failDevice(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest, e *oidc.Error) {
	ctx := r.Context()
	_ = s.store.DeleteAuthRequest(ctx, ar.ID)
	if err := s.store.DenyDeviceAuthorization(ctx, ar.State, s.now()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.internalError(w, r, err)
		return
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventDeviceDeny, UserID: ar.Login.UserID, ClientID: ar.ClientID, Result: audit.ResultFailure,
		Reason: "device authorization " + ar.State + ": " + string(e.ErrorType) + " " + e.Description})
	title, msg := web.N("Device not signed in"), web.N("The sign-in on your device was not completed. You can close this page.")
	if e.ErrorType == oidc.AccessDenied {
		title, msg = web.N("Access denied"), web.N("Your device was not given access. You can close this page.")
	}
	s.renderError(w, r, http.StatusForbidden, title, msg)
}
