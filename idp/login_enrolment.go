package idp

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The enrolment page is where a one-time link from admin.Admin.EnrolmentLink leads
// (/enrol?id=<challenge>&token=<secret>): a person whose account has no password (or
// whose passkeys an administrator reset) registers a passkey on it. Like the recovery
// page, GET only shows a button, so that mail scanners that fetch links do not use
// them; each POST checks the link (guesses at links are bounded per address and each
// link allows enrolLinkMaxAttempts tries), and the link is consumed only once a passkey
// is registered. It signs no one in: the person then signs in with the new passkey.

// enrolLinkMaxAttempts bounds the posts made with one link (start, confirm, retries).
const enrolLinkMaxAttempts = 6

const msgEnrolLinkInvalid = "This link is invalid, has expired or was already used. Ask your administrator for a new one."

// enrolmentRoutes registers the enrolment-link pages.
func (s *Server) enrolmentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /enrol", s.handleEnrolLink)
	mux.HandleFunc("POST /enrol", s.handleEnrolLinkStart)
	mux.HandleFunc("POST /enrol/confirm", s.handleEnrolLinkConfirm)
}

func (s *Server) enrolLinkInvalid(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusBadRequest, "Link not valid", msgEnrolLinkInvalid)
}

// handleEnrolLink shows the start button of an enrolment link, without looking it up.
func (s *Server) handleEnrolLink(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, token := q.Get("id"), q.Get("token")
	if id == "" || token == "" {
		s.enrolLinkInvalid(w, r)
		return
	}
	s.render(w, r, http.StatusOK, web.PageEnrolLink, web.EnrolLinkPage{CSRF: s.csrfToken(w, r), ID: id, Token: token})
}

// enrolLink checks the enrolment link posted with a form and returns it and its person;
// when it returns nil it has answered the browser.
func (s *Server) enrolLink(w http.ResponseWriter, r *http.Request) (*storage.Challenge, *storage.User) {
	r.Body = http.MaxBytesReader(w, r.Body, 128<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return nil, nil
	}
	ctx := r.Context()
	id, token := r.PostFormValue("id"), r.PostFormValue("token")
	fail := func(userID, reason string) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolLink, UserID: userID, Result: audit.ResultFailure, Reason: reason})
	}
	att, err := s.regulator.Reserve(ctx, s.recoveryLinkLimits(requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		fail("", "rate limited ("+limitName(locked.Key)+")")
		s.renderError(w, r, http.StatusTooManyRequests, "Too many attempts", s.loginLockedMessage(r, locked))
		return nil, nil
	}
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil
	}
	c, err := s.store.AttemptChallenge(ctx, id, s.now(), enrolLinkMaxAttempts)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			_ = att.Cancel(ctx)
			s.internalError(w, r, err)
			return nil, nil
		}
		att.Failed()
		fail("", "unknown, expired, used or exhausted link")
		s.enrolLinkInvalid(w, r)
		return nil, nil
	}
	if c.Kind != admin.ChallengeEnrolment || subtle.ConstantTimeCompare([]byte(secret.Hash(token)), []byte(c.CodeHash)) != 1 {
		att.Failed()
		fail(c.UserID, "wrong link secret")
		s.enrolLinkInvalid(w, r)
		return nil, nil
	}
	_ = att.Succeeded(ctx)
	u, err := s.store.GetUser(ctx, c.UserID)
	if err != nil || u.Disabled {
		fail(c.UserID, "account missing or disabled")
		s.enrolLinkInvalid(w, r)
		return nil, nil
	}
	return c, u
}

// handleEnrolLinkStart starts registering a passkey for the link's person.
func (s *Server) handleEnrolLinkStart(w http.ResponseWriter, r *http.Request) {
	c, u := s.enrolLink(w, r)
	if u == nil {
		return
	}
	s.startLinkEnrolment(w, r, c, u, "", http.StatusOK)
}

// startLinkEnrolment shows the passkey registration of an enrolment link.
func (s *Server) startLinkEnrolment(w http.ResponseWriter, r *http.Request, c *storage.Challenge, u *storage.User, msg string, status int) {
	page := web.EnrolLinkPage{CSRF: s.csrfToken(w, r), ID: c.ID, Token: r.PostFormValue("token"), Email: u.Email, Error: msg}
	if s.passkeys() == nil {
		s.renderError(w, r, http.StatusServiceUnavailable, "Passkeys unavailable", "Passkeys are not available on this server. Contact your administrator.")
		return
	}
	enr, err := s.startEnroll(r.Context(), u, storage.FactorWebAuthn, mfa.EnrollRequest{Device: deviceName(r.UserAgent()), Passkey: true})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	page.FactorID, page.ChallengeID, page.WebAuthnOptions = enr.Factor.ID, enr.ChallengeID, template.JS(enr.Options)
	s.render(w, r, status, web.PageEnrolLink, page)
}

// handleEnrolLinkConfirm finishes the registration and, when it holds, uses the link up.
func (s *Server) handleEnrolLinkConfirm(w http.ResponseWriter, r *http.Request) {
	c, u := s.enrolLink(w, r)
	if u == nil {
		return
	}
	ctx := r.Context()
	factorID := r.PostFormValue("factor")
	if err := s.confirmEnroll(ctx, u, factorID, r.PostFormValue("challenge"), r.PostFormValue("response")); err != nil {
		if errors.Is(err, audit.ErrNotRecorded) {
			s.internalError(w, r, err)
			return
		}
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolLink, UserID: u.ID, Result: audit.ResultFailure, Reason: "registration failed: " + errReason(err)})
		msg := mfaMessage(err)
		if c.Attempts >= enrolLinkMaxAttempts {
			s.renderError(w, r, http.StatusUnauthorized, "Link used up", "That did not work, and this link is now used up. Ask your administrator for a new one.")
			return
		}
		s.startLinkEnrolment(w, r, c, u, msg, http.StatusUnauthorized)
		return
	}
	// Single use: of two concurrent registrations only one keeps its passkey.
	if err := s.store.ConsumeChallenge(ctx, c.ID, s.now()); err != nil {
		if derr := s.store.DeleteFactor(ctx, u.ID, factorID); derr != nil {
			s.logger.ErrorContext(ctx, "remove passkey registered with a used link", "err", derr)
		}
		if !errors.Is(err, storage.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolLink, UserID: u.ID, Result: audit.ResultFailure, Reason: "link already used"})
		s.enrolLinkInvalid(w, r)
		return
	}
	// A use of the link whose event cannot be written does not keep its passkey; the link
	// is spent, and the person asks for a new one.
	if err := s.audit.Write(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolLink, UserID: u.ID, Result: audit.ResultSuccess,
		FactorID: factorID, Reason: "link=" + c.ID + " factor=" + factorID}); err != nil {
		if derr := s.store.DeleteFactor(ctx, u.ID, factorID); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
			s.logger.ErrorContext(ctx, "remove passkey of an unaudited enrolment link", "err", derr)
		}
		s.internalError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.PageEnrolLink, web.EnrolLinkPage{Done: true, Email: u.Email})
}
