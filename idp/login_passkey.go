package idp

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/metrics"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// Passkey sign-in. The password step of a sign-in also offers the person's passkeys:
// in the autofill of the e-mail field (WebAuthn conditional mediation) and behind a
// "Sign in with a passkey" button. The ceremony's challenge is bound to the sign-in (one
// per auth request, stored under passkeyChallengeID and overwritten by every page that
// shows the step, so an anonymous visitor costs no more rows than the sign-ins it may
// start), single use, and expires with the ceremony. The assertion is a guess like any
// other secret: it is reserved with the regulator first, under the limits of the account
// its user handle names and of the address.
//
// A passkey with user verification is something the person has and something they know
// or are: the session records amr hwk (device-bound) or swk (synced), user and mfa, and
// acr phr, so it satisfies policies that ask for MFA or phishing resistance; its second
// factor (the WebAuthn kind) is verified now, so step-up asks for nothing more until the
// policy's re-check age has passed. The session starts with a new cookie (startSession).

// msgPasskeyFailed is what a person is told when a passkey did not sign them in.
const msgPasskeyFailed = "That passkey could not be used. Try again, or sign in with your email and password."

// How the account page describes a key or passkey.
const (
	msgPasskeySynced = "Synced passkey: your provider keeps it on all your devices"
	msgPasskeyDevice = "Kept on this one device or key"
)

// passkeyChallengeID names the passkey ceremony of auth request arID.
func passkeyChallengeID(arID string) string { return "passkey:" + arID }

// passkeys returns the WebAuthn factor when this server offers it, else nil.
func (s *Server) passkeys() *mfa.WebAuthn {
	impl, err := s.factors.Get(storage.FactorWebAuthn)
	if err != nil {
		return nil
	}
	wa, _ := impl.(*mfa.WebAuthn)
	return wa
}

// passkeyPage adds the passkey ceremony of sign-in f to its password page. The account
// page's sign-in, not stored yet, offers a button that stores it first.
func (s *Server) passkeyPage(r *http.Request, f *flowFacts, page *web.LoginPage) {
	wa := s.passkeys()
	if wa == nil {
		return
	}
	if f.ar.ID == accountLoginID {
		page.PasskeyStart = true
		return
	}
	opts, err := wa.PasskeyOptions(r.Context(), passkeyChallengeID(f.ar.ID))
	if err != nil {
		// The password still works: log and show the page without passkeys.
		s.logger.ErrorContext(r.Context(), "passkey options", "err", err)
		return
	}
	page.PasskeyOptions = template.JS(opts)
	page.PasskeyAutostart = r.Method == http.MethodGet && r.URL.Query().Get("passkey") == "1"
}

// passkeyLimits are the limits of one passkey assertion that names userID ("" when its
// user handle names no account) from ip: the second-factor limits of that account, and
// always those of the address.
func (s *Server) passkeyLimits(userID, ip, device string) []regulation.Limit {
	if userID != "" {
		return s.mfaLimits(userID, ip, device)
	}
	l := s.cfg.MFA.Limits
	return []regulation.Limit{{Key: "ip:" + regulation.KeyPart(ip) + ":mfa", Rule: storage.AttemptRule{Limit: l.PerIP, Window: l.IPWindow}, OnSuccess: regulation.Release}}
}

// handlePasskeyLogin checks a passkey assertion posted from the password step and, when
// it holds, signs the person in with it.
func (s *Server) handlePasskeyLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 128<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if r.PostFormValue("id") == accountLoginID && s.checkCSRF(r) {
		// The account page's sign-in: store it now, and run the ceremony on its page.
		ar, err := s.newAccountRequest(nil, r, false)
		if err != nil {
			s.signInStartError(w, r, err)
			return
		}
		http.Redirect(w, r, "/login?"+url.Values{"id": {ar.ID}, "passkey": {"1"}}.Encode(), http.StatusSeeOther)
		return
	}
	f, _, ok := s.postedStep(w, r, stepPassword)
	if !ok {
		return
	}
	wa := s.passkeys()
	if wa == nil {
		s.renderError(w, r, http.StatusNotFound, "Sign-in method unavailable", "Passkeys are not available on this server.")
		return
	}
	ctx := r.Context()
	response := r.PostFormValue("response")
	if response == "" {
		s.showLogin(w, r, f, "", msgPasskeyFailed, http.StatusBadRequest)
		return
	}
	// The account the assertion names, unverified, for its guessing limits.
	var userID string
	if claimed, err := mfa.PasskeyUserID(response); err == nil && claimed != "" {
		if u, err := s.store.GetUser(ctx, claimed); err == nil {
			userID = u.ID
		} else if !errors.Is(err, storage.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
	}
	att, err := s.regulator.Reserve(ctx, s.passkeyLimits(userID, requestIP(ctx), s.knownDevice(ctx, userID))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPasskey, UserID: userID, ClientID: f.ar.ClientID, Result: audit.ResultFailure,
			Reason: "rate limited (" + limitName(locked.Key) + ")"})
		s.metrics.SignIn(metrics.ResultLocked, string(storage.FactorWebAuthn))
		s.metrics.Lockout(metrics.LockoutMFA)
		s.showLogin(w, r, f, "", s.loginLockedMessage(r, locked), http.StatusTooManyRequests)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	u, amr, err := wa.VerifyPasskey(ctx, passkeyChallengeID(f.ar.ID), response, s.store.GetUser)
	if err == nil && u.Disabled {
		err = fmt.Errorf("%w: account disabled", mfa.ErrInvalidCode)
	}
	if err != nil {
		s.logger.InfoContext(ctx, "passkey sign-in failed", "user", userID, "err", err)
		reason := errReason(err)
		if u != nil && u.Disabled {
			reason = "account disabled"
		}
		if guessFailure(err) || errors.Is(err, mfa.ErrSignCount) {
			if att.Failed() != nil {
				s.metrics.Lockout(metrics.LockoutMFA)
			}
		} else if cerr := att.Cancel(ctx); cerr != nil {
			s.logger.ErrorContext(ctx, "release passkey attempt", "err", cerr)
		}
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPasskey, UserID: userID, ClientID: f.ar.ClientID, Result: audit.ResultFailure, Reason: reason})
		s.countMFASignIn(storage.FactorWebAuthn, err)
		if !guessFailure(err) && !errors.Is(err, mfa.ErrSignCount) {
			s.internalError(w, r, err)
			return
		}
		s.showLogin(w, r, f, "", msgPasskeyFailed, http.StatusUnauthorized)
		return
	}
	if err := att.Succeeded(ctx); err != nil {
		s.logger.ErrorContext(ctx, "clear passkey failure counters", "err", err)
	}
	slices.Sort(amr)
	amr = slices.Compact(amr)
	now := s.now()
	// The passkey is the first factor and the second at once: PasswordAt records when
	// the sign-in's first factor was checked (max_age), MFAAt its second.
	sess, err := s.startSessionAuth(w, r, u.ID, storage.SessionAuth{
		AuthTime: now, PasswordAt: now, MFAAt: now, Factors: []storage.FactorKind{storage.FactorWebAuthn}, AMR: amr, ACR: acrFor(amr),
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	// A sign-in whose event cannot be written does not happen: its session ends.
	if err := s.audit.Write(ctx, storage.AuditEvent{Type: audit.EventLoginPasskey, UserID: u.ID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess,
		Reason: "amr " + fmt.Sprint(amr), SessionID: sess.ID}); err != nil {
		if derr := s.store.DeleteSession(ctx, sess.ID); derr != nil {
			s.logger.ErrorContext(ctx, "end the session of an unaudited sign-in", "err", derr)
		}
		s.internalError(w, r, err)
		return
	}
	if err := s.recordLogin(r, f, sessionLogin(sess)); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.metrics.SignIn(metrics.ResultSuccess, string(storage.FactorWebAuthn))
	http.Redirect(w, r, "/login?id="+url.QueryEscape(f.ar.ID), http.StatusSeeOther)
}
