package idp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/metrics"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The sign-in pages. decide (login_flow.go) says which step a sign-in is at; the
// handlers here render that step or accept its form, and drive answers a visit.

const msgBadCredentials = "Incorrect email or password."

func (s *Server) errExpired(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusBadRequest, "Sign-in expired",
		"This sign-in link is no longer valid. Go back to the application and start again.")
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("id") == accountLoginID {
		// The account page's sign-in form, before anything is stored.
		c, err := s.store.GetClient(r.Context(), AccountClientID)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		s.showLogin(w, r, &flowFacts{ar: &storage.AuthRequest{ID: accountLoginID}, client: c}, "", "", http.StatusOK)
		return
	}
	f, err := s.gatherFlow(r, r.URL.Query().Get("id"))
	if err != nil {
		s.flowError(w, r, err)
		return
	}
	s.drive(w, r, f, decide(f))
}

// flowError answers a failure to gather a sign-in.
func (s *Server) flowError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errFlowGone) {
		s.errExpired(w, r)
		return
	}
	s.internalError(w, r, err)
}

// drive records what the sign-in has established and renders the step d names.
func (s *Server) drive(w http.ResponseWriter, r *http.Request, f *flowFacts, d decision) {
	ctx := r.Context()
	if d.graceNew {
		if !s.countGrace(w, r, f) {
			return
		}
	}
	// The events of what this step lets through are written before it is recorded: a
	// sign-in whose event cannot be written does not go on.
	attached := d.attached && d.step != stepFail && d.step != stepPassword
	if attached {
		if err := s.flowEvent(ctx, f, storage.AuditEvent{Type: audit.EventLoginSSO, UserID: f.sess.UserID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess, Reason: "existing session"}); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	if d.viaDevice {
		if err := s.flowEvent(ctx, f, storage.AuditEvent{Type: audit.EventLoginDevice, UserID: f.user.ID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess,
			Reason: "remembered device stood in for the second factor"}); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	// An issued request's login record is written once, by finish, together with Done.
	if f.sess != nil && d.step != stepPassword && d.step != stepFail && (d.step != stepIssue || finishRecordsFirst(f.ar)) {
		if err := s.recordLogin(r, f, d.login); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	if attached {
		s.touchSession(ctx, f.sess)
	}
	if d.viaDevice {
		if err := s.recordDeviceSignIn(r, f.sess); err != nil {
			s.internalError(w, r, err)
			return
		}
		s.touchDevice(r, f.device)
	}
	switch d.step {
	case stepPassword:
		s.showLogin(w, r, f, f.ar.LoginHint, "", http.StatusOK)
	case stepFail:
		if d.err.ErrorType == "unmet_authentication_requirements" {
			s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPolicy, UserID: f.user.ID, ClientID: f.ar.ClientID, Result: audit.ResultFailure, Reason: d.err.Description})
		}
		s.failRequest(w, r, f.ar, d.err)
	case stepUnavailable:
		s.renderError(w, r, http.StatusServiceUnavailable, "Sign-in method unavailable",
			"Your second sign-in method is not available on this server right now. Contact your administrator.")
	case stepSecondFactor:
		s.showSecondFactor(w, r, f, d.mfa)
	case stepEnrol:
		s.sendToEnrol(w, r, f, d.recovery)
	case stepConsent:
		s.showConsent(w, r, f)
	case stepIssue:
		s.finish(w, r, f, d.login)
	}
}

// flowEvent writes e, the event of a sign-in step that lets the person through, and
// returns its error: the step does not happen when it fails. For a sign-in answered
// within its /authorize request, whose request is not stored yet (f.unsaved,
// op_sso.go), it keeps e instead, to be written in the same transaction as the request,
// its code and the session's client (opStorage.SaveAuthCode,
// storage.FinishAuthRequest): the events then exist exactly when the code does, and
// cost no transaction of their own.
func (s *Server) flowEvent(ctx context.Context, f *flowFacts, e storage.AuditEvent) error {
	if st := reqStateFrom(ctx); f.unsaved && st != nil {
		st.finishEvents = append(st.finishEvents, s.audit.Prepare(ctx, e))
		return nil
	}
	return s.audit.Write(ctx, e)
}

// finishRecordsFirst reports whether finish needs the login record stored before it
// runs: device sign-ins and the account page's do not end in a code.
func finishRecordsFirst(ar *storage.AuthRequest) bool {
	return isDeviceRequest(ar) || ar.ClientID == AccountClientID
}

// finish marks the auth request done, with login as its login record, and hands the
// browser back to op, which issues the code: through a redirect to
// /authorize/callback, or in this very response when /authorize itself answers an SSO
// sign-in (f.respond, op_sso.go).
func (s *Server) finish(w http.ResponseWriter, r *http.Request, f *flowFacts, login storage.AuthLogin) {
	if finishRecordsFirst(f.ar) {
		if err := s.recordLogin(r, f, login); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	// The browser completed a sign-in as this person: its guesses count on their own.
	s.markKnownDevice(w, r, login.UserID)
	if isDeviceRequest(f.ar) {
		// A device sign-in approves its device authorization instead (login_device.go).
		s.finishDevice(w, r, f)
		return
	}
	if f.ar.ClientID == AccountClientID || f.ar.ClientID == admin.ConsoleClientID {
		// The account page and the admin console need the session, not a code.
		_ = s.store.DeleteAuthRequest(r.Context(), f.ar.ID)
		http.Redirect(w, r, f.ar.RedirectURI, http.StatusSeeOther)
		return
	}
	done := login
	done.Done = true
	if err := s.recordLogin(r, f, done); err != nil {
		s.internalError(w, r, err)
		return
	}
	if st := reqStateFrom(r.Context()); f.unsaved && st != nil {
		// Stored with the request (flowEvent).
		st.finishClient = f.ar.ClientID
	} else if err := s.store.AddSessionClient(r.Context(), f.ar.Login.SessionID, f.ar.ClientID); err != nil {
		s.logger.WarnContext(r.Context(), "record session client", "err", err)
	}
	s.clearCookie(w, continueCookie)
	if f.respond != nil {
		f.respond(w, r, f.ar)
		return
	}
	http.Redirect(w, r, s.cfg.Issuer+"/authorize/callback?id="+url.QueryEscape(f.ar.ID), http.StatusSeeOther)
}

// failRequest sends an OAuth error back to the relying party's redirect URI.
func (s *Server) failRequest(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest, e *oidc.Error) {
	if isDeviceRequest(ar) {
		s.failDevice(w, r, ar, e)
		return
	}
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	if ar.ClientID == admin.ConsoleClientID {
		// The console is no relying party to send an error to: going back there would
		// start the same sign-in again.
		s.renderError(w, r, http.StatusForbidden, "Cannot open the admin console", e.Description+".")
		return
	}
	op.AuthRequestError(w, r, authRequest{r: ar}, e, s.provider)
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.ErrorContext(r.Context(), "login flow", "err", err)
	s.renderError(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, f *flowFacts, email, msg string, status int) {
	page := web.LoginPage{
		AuthRequestID: f.ar.ID, CSRF: s.csrfToken(w, r), ClientName: f.client.Name, Email: email, Error: msg,
		ResetURL: s.resetURL(f.ar.ID),
	}
	s.passkeyPage(r, f, &page)
	s.render(w, r, status, web.PageLogin, page)
}

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, f *flowFacts) {
	scopes := make([]web.Scope, 0, len(f.ar.Scopes))
	for _, sc := range f.ar.Scopes {
		scopes = append(scopes, web.Scope{Name: sc, Description: consent.Describe(sc)})
	}
	s.render(w, r, http.StatusOK, web.PageConsent, web.ConsentPage{
		AuthRequestID: f.ar.ID, CSRF: s.csrfToken(w, r), ClientName: f.client.Name, UserEmail: f.user.Email, Scopes: scopes,
	})
}

func (s *Server) rejectCSRF(w http.ResponseWriter, r *http.Request) {
	s.logger.WarnContext(r.Context(), "csrf check failed", "path", r.URL.Path)
	s.renderError(w, r, http.StatusForbidden, "Form expired",
		"This form could not be verified (missing or invalid security token). Go back, reload the page and try again.")
}

// postedLogin reads a sign-in form: it bounds and parses the body, checks the CSRF token
// and gathers the sign-in the form names. When it returns false it has already answered
// the browser.
func (s *Server) postedLogin(w http.ResponseWriter, r *http.Request) (*flowFacts, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return nil, false
	}
	if !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return nil, false
	}
	f, err := s.gatherFlow(r, r.PostFormValue("id"))
	if err != nil {
		s.flowError(w, r, err)
		return nil, false
	}
	return f, true
}

// postedStep gathers a sign-in form and decides its step; the form counts only when the
// sign-in is at one of the steps in want, from the browser whose session is already
// attached to it. Otherwise it answers the visit as GET /login would and returns false.
func (s *Server) postedStep(w http.ResponseWriter, r *http.Request, want ...step) (*flowFacts, decision, bool) {
	f, ok := s.postedLogin(w, r)
	if !ok {
		return nil, decision{}, false
	}
	d := decide(f)
	if d.attached || !slices.Contains(want, d.step) {
		s.drive(w, r, f, d)
		return nil, decision{}, false
	}
	return f, d, true
}

// handleLoginPost checks the password.
func (s *Server) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if r.PostFormValue("id") == accountLoginID && s.checkCSRF(r) {
		// The account page's sign-in: its auth request is stored now, not on the visit.
		ar, err := s.newAccountRequest(nil, r, false)
		if err != nil {
			s.signInStartError(w, r, err)
			return
		}
		r.PostForm.Set("id", ar.ID)
	}
	f, ok := s.postedLogin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password := r.PostFormValue("password")
	now := s.now()

	u, err := s.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.internalError(w, r, err)
		return
	}
	var userID, hash string
	if u != nil {
		userID, hash = u.ID, u.PasswordHash
	}
	// The guess is reserved under every limit before the password is looked at.
	att, err := s.regulator.Reserve(ctx, s.passwordLimits(userID, email, requestIP(ctx), s.knownDevice(ctx, userID))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, ClientID: f.ar.ClientID, Result: audit.ResultFailure,
			Reason: "rate limited (" + limitName(locked.Key) + ")", UserID: userID})
		s.metrics.SignIn(metrics.ResultLocked, metrics.FactorPassword)
		s.metrics.Lockout(metrics.LockoutPassword)
		s.showLogin(w, r, f, email, s.loginLockedMessage(r, locked), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	ok, rehash, err := s.verifyPassword(ctx, password, hash)
	if err != nil {
		// Not checked (hashing at capacity): the guess does not count.
		if cerr := att.Cancel(ctx); cerr != nil {
			s.logger.ErrorContext(ctx, "release password attempt", "err", cerr)
		}
		if errors.Is(err, ErrHashBusy) {
			s.renderBusy(w, r)
			return
		}
		s.internalError(w, r, err)
		return
	}
	if !ok || u.Disabled {
		reason := "wrong password"
		switch {
		case u == nil:
			reason = "unknown account"
		case hash == "":
			// A passkey-only account: refused exactly as a wrong password is.
			reason = "no password (passkey-only account)"
		case ok && u.Disabled:
			reason = "account disabled"
		}
		if att.Failed() != nil {
			s.metrics.Lockout(metrics.LockoutPassword)
		}
		s.metrics.SignIn(metrics.ResultFailure, metrics.FactorPassword)
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, ClientID: f.ar.ClientID, Result: audit.ResultFailure, Reason: reason, UserID: userID})
		s.showLogin(w, r, f, email, msgBadCredentials, http.StatusUnauthorized)
		return
	}
	if err := att.Succeeded(ctx); err != nil {
		s.logger.ErrorContext(ctx, "clear password failure counters", "err", err)
	}
	if rehash {
		if h, err := s.hashPassword(ctx, password); err == nil {
			u.PasswordHash, u.UpdatedAt = h, now
			if err := s.store.UpdateUser(ctx, u); err != nil {
				s.logger.WarnContext(ctx, "password rehash not saved", "err", err)
			}
		}
	}
	amr := []string{"pwd"}
	sess, err := s.startSession(w, r, u.ID, amr, consent.ACRPassword)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	// A sign-in whose event cannot be written does not happen: its session ends.
	if err := s.audit.Write(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, UserID: u.ID, ClientID: f.ar.ClientID,
		Result: audit.ResultSuccess, SessionID: sess.ID}); err != nil {
		if derr := s.store.DeleteSession(ctx, sess.ID); derr != nil {
			s.logger.ErrorContext(ctx, "end the session of an unaudited sign-in", "err", derr)
		}
		s.internalError(w, r, err)
		return
	}
	// The session is attached to this sign-in now, by the password it was entered for.
	if err := s.recordLogin(r, f, sessionLogin(sess)); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.SignIn(metrics.ResultSuccess, metrics.FactorPassword)
	http.Redirect(w, r, "/login?id="+url.QueryEscape(f.ar.ID), http.StatusSeeOther)
}

// loginLockedMessage tells a person refused by a password limit until when, in the
// language of r's pages.
func (s *Server) loginLockedMessage(r *http.Request, l *regulation.LockedError) string {
	if l.Permanent || l.Until.IsZero() {
		return s.tr(r, "Too many failed sign-in attempts. Contact your administrator.")
	}
	return s.tr(r, "Too many failed sign-in attempts. Try again after %s.", l.Until.UTC().Format("15:04 MST"))
}

// handleConsentPost records the person's answer on the consent page. The answer counts
// only at the consent step (or later), from the browser whose session the sign-in is
// attached to.
func (s *Server) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	f, d, ok := s.postedStep(w, r, stepConsent, stepIssue)
	if !ok {
		return
	}
	ctx := r.Context()
	switch r.PostFormValue("action") {
	case "allow":
		if !f.grantRead {
			// The grant widens by this answer: start from the stored one.
			if err := s.loadGrant(ctx, f); err != nil {
				s.internalError(w, r, err)
				return
			}
		}
		c := &storage.Consent{UserID: f.sess.UserID, ClientID: f.ar.ClientID, Scopes: consent.Merge(f.grant, f.ar.Scopes), GrantedAt: s.now()}
		// Written ahead: a grant whose event cannot be written is not stored.
		ev := storage.AuditEvent{Type: audit.EventConsentGrant, UserID: c.UserID, ClientID: c.ClientID, Result: audit.ResultSuccess,
			Reason: "scopes " + strings.Join(f.ar.Scopes, " ")}
		if err := s.audited(ctx, ev, func() error { return s.store.SaveConsent(ctx, c) }); err != nil {
			s.internalError(w, r, err)
			return
		}
		f.grant = c
		d.step = stepIssue
		s.drive(w, r, f, d)
	case "deny":
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventConsentDeny, UserID: f.sess.UserID, ClientID: f.ar.ClientID, Result: audit.ResultFailure,
			Reason: "person denied consent"})
		s.failRequest(w, r, f.ar, oidc.ErrAccessDenied().WithDescription("the person denied the request"))
	default:
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "Choose Allow or Deny.")
	}
}

// passwordTime is when the session's password was last checked.
func passwordTime(sess *storage.Session) time.Time {
	if !sess.PasswordAt.IsZero() {
		return sess.PasswordAt
	}
	return sess.AuthTime
}
