package idp

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The recovery page is where a one-time link from admin.Admin.ResetMFA leads
// (/recovery?id=<challenge>&token=<secret>). GET only shows a form, so that mail
// scanners that fetch links do not use it up; POST checks the link and the person's
// password, consumes the link and signs them in with a password-only session, then sends
// them to the account page to enrol a new second factor.

// recoveryMaxAttempts bounds the tries at one link (wrong password included).
const recoveryMaxAttempts = 3

const (
	msgRecoveryInvalid = "This recovery link is invalid, has expired or was already used. Ask your administrator for a new one."
	msgRecoveryDone    = "You are signed in with your recovery link. Add a new sign-in method now."
)

// recoveryRoutes registers the recovery-link pages.
func (s *Server) recoveryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /recovery", s.handleRecovery)
	mux.HandleFunc("POST /recovery", s.handleRecoveryPost)
}

func (s *Server) recoveryInvalid(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusBadRequest, "Recovery link not valid", msgRecoveryInvalid)
}

func (s *Server) showRecovery(w http.ResponseWriter, r *http.Request, id, token, msg string, status int) {
	s.render(w, r, status, web.PageRecovery, web.RecoveryPage{CSRF: s.csrfToken(w, r), ID: id, Token: token, Error: msg})
}

// handleRecovery shows the password form of a recovery link. It does not look the link
// up: checking it would count an attempt, and only the POST may do that.
func (s *Server) handleRecovery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, token := q.Get("id"), q.Get("token")
	if id == "" || token == "" {
		s.recoveryInvalid(w, r)
		return
	}
	s.showRecovery(w, r, id, token, "", http.StatusOK)
}

// handleRecoveryPost checks the link and the password and, when both are right, consumes
// the link and starts a password-only session.
func (s *Server) handleRecoveryPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return
	}
	ctx := r.Context()
	id, token, password := r.PostFormValue("id"), r.PostFormValue("token"), r.PostFormValue("password")
	now := s.now()
	fail := func(userID, reason string) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFARecovery, UserID: userID, Result: audit.ResultFailure, Reason: reason})
	}

	// Guesses at links are bounded per address, and every try counts against the link,
	// before anything is compared.
	linkAtt, err := s.regulator.Reserve(ctx, s.recoveryLinkLimits(requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		fail("", "rate limited ("+limitName(locked.Key)+")")
		s.showRecovery(w, r, id, token, s.loginLockedMessage(r, locked), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	c, err := s.store.AttemptChallenge(ctx, id, now, recoveryMaxAttempts)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			_ = linkAtt.Cancel(ctx)
			s.internalError(w, r, err)
			return
		}
		linkAtt.Failed()
		fail("", "unknown, expired, used or exhausted link")
		s.recoveryInvalid(w, r)
		return
	}
	if c.Kind != admin.ChallengeRecovery || subtle.ConstantTimeCompare([]byte(secret.Hash(token)), []byte(c.CodeHash)) != 1 {
		linkAtt.Failed()
		fail(c.UserID, "wrong link secret")
		s.recoveryInvalid(w, r)
		return
	}
	_ = linkAtt.Succeeded(ctx)
	u, err := s.store.GetUser(ctx, c.UserID)
	if err != nil || u.Disabled {
		fail(c.UserID, "account missing or disabled")
		s.recoveryInvalid(w, r)
		return
	}

	// The same limits as the password form, reserved before the password is checked.
	att, err := s.regulator.Reserve(ctx, s.passwordLimits(u.ID, u.Email, requestIP(ctx), s.knownDevice(ctx, u.ID))...)
	if errors.As(err, &locked) {
		fail(u.ID, "rate limited ("+limitName(locked.Key)+")")
		s.showRecovery(w, r, id, token, s.loginLockedMessage(r, locked), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	ok, _, err := s.verifyPassword(ctx, password, u.PasswordHash)
	if err != nil {
		_ = att.Cancel(ctx)
		if errors.Is(err, ErrHashBusy) {
			s.renderBusy(w, r)
			return
		}
		s.internalError(w, r, err)
		return
	}
	if !ok {
		att.Failed()
		fail(u.ID, "wrong password")
		msg := web.N("Incorrect password.")
		if c.Attempts >= recoveryMaxAttempts {
			msg += " This link is now used up: ask your administrator for a new one."
		}
		s.showRecovery(w, r, id, token, msg, http.StatusUnauthorized)
		return
	}

	// Single use: of two concurrent right answers only one consumes the link.
	if err := s.store.ConsumeChallenge(ctx, c.ID, now); err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
		fail(u.ID, "link already used")
		s.recoveryInvalid(w, r)
		return
	}
	if err := att.Succeeded(ctx); err != nil {
		s.logger.ErrorContext(ctx, "clear password failure counters", "err", err)
	}
	if _, err := s.startSession(w, r, u.ID, []string{"pwd"}, consent.ACRPassword); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFARecovery, UserID: u.ID, Result: audit.ResultSuccess, Reason: "link=" + c.ID})
	http.Redirect(w, r, "/account/security?msg="+noticeRecovered, http.StatusSeeOther)
}
