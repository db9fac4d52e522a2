package idp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The login flow is a sequence of steps evaluated afresh on every visit to
// GET /login?id=<auth request>: each step either is satisfied or takes over the page.
// The steps are: password (or an SSO session that satisfies the request), a second
// factor when the person has one, then consent; no step trusts the browser's idea of
// where it is, only what the auth request and the session record say.

// loginState is what a step looks at.
type loginState struct {
	ar     *storage.AuthRequest
	client *storage.Client
	sess   *storage.Session // valid SSO session of this browser, or nil
	user   *storage.User    // the session's user, when sess != nil
}

const msgBadCredentials = "Incorrect email or password."

func (s *Server) errExpired(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusBadRequest, "Sign-in expired",
		"This sign-in link is no longer valid. Go back to the application and start again.")
}

// loadLogin loads the auth request named by the form or query and the browser's session.
func (s *Server) loadLogin(r *http.Request, id string) (*loginState, error) {
	ar, err := s.store.GetAuthRequest(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if s.now().After(ar.ExpiresAt) || ar.Login.Done {
		return nil, errors.New("auth request expired or finished")
	}
	c, err := s.store.GetClient(r.Context(), ar.ClientID)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	st := &loginState{ar: ar, client: c}
	if sess := s.currentSession(r); sess != nil {
		if u, err := s.store.GetUser(r.Context(), sess.UserID); err == nil && !u.Disabled {
			st.sess, st.user = sess, u
		}
	}
	return st, nil
}

// passwordSatisfied reports whether the browser's session may stand in for the password
// step of this request (OIDC Core 3.1.2.1: prompt=login and max_age force a new login,
// an id_token_hint for another user does too).
func (s *Server) passwordSatisfied(st *loginState) bool {
	if st.sess == nil {
		return false
	}
	ar := st.ar
	// Entered during this very request: satisfies prompt=login and any max_age.
	if ar.Login.SessionID == st.sess.ID && !ar.Login.AuthTime.Before(ar.CreatedAt.Truncate(time.Second)) {
		return true
	}
	if slices.Contains(ar.Prompt, oidc.PromptLogin) {
		return false
	}
	if ar.MaxAge != nil && s.now().Sub(passwordTime(st.sess)) > time.Duration(*ar.MaxAge)*time.Second {
		return false
	}
	if ar.HintUserID != "" && ar.HintUserID != st.sess.UserID {
		return false
	}
	return true
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("id") == accountLoginID {
		// The account page's sign-in form, before anything is stored.
		c, err := s.store.GetClient(r.Context(), AccountClientID)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		s.showLogin(w, r, &loginState{ar: &storage.AuthRequest{ID: accountLoginID}, client: c}, "", "", http.StatusOK)
		return
	}
	st, err := s.loadLogin(r, r.URL.Query().Get("id"))
	if err != nil {
		s.errExpired(w, r)
		return
	}
	s.advance(w, r, st)
}

// advance runs the steps in order and lets the first unsatisfied one render.
func (s *Server) advance(w http.ResponseWriter, r *http.Request, st *loginState) {
	ctx := r.Context()
	prompt := st.ar.Prompt
	none := slices.Contains(prompt, oidc.PromptNone)

	// Step 1: password, or an SSO session that may stand in for it.
	if !s.passwordSatisfied(st) {
		if none {
			s.failRequest(w, r, st.ar, oidc.ErrLoginRequired().WithDescription("no session satisfies this request"))
			return
		}
		s.showLogin(w, r, st, st.ar.LoginHint, "", http.StatusOK)
		return
	}
	if st.ar.Login.SessionID != st.sess.ID {
		st.ar.Login = storage.AuthLogin{UserID: st.sess.UserID, SessionID: st.sess.ID, AuthTime: st.sess.AuthTime, AMR: st.sess.AMR, ACR: st.sess.ACR}
		if err := s.store.SetAuthRequestLogin(ctx, st.ar.ID, st.ar.Login); err != nil {
			s.internalError(w, r, err)
			return
		}
		_ = s.store.TouchSession(ctx, st.sess.ID, s.now())
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginSSO, UserID: st.sess.UserID, ClientID: st.ar.ClientID, Result: audit.ResultSuccess, Reason: "existing session"})
	}

	// Step 2: a second factor, when the policy or request needs one the session lacks.
	if s.mfaStep(w, r, st) {
		return
	}
	// The session is the record of what was proven (a factor may have been added on the
	// account page meanwhile): the login reports exactly that.
	if !slices.Equal(st.ar.Login.AMR, st.sess.AMR) || st.ar.Login.ACR != st.sess.ACR || !st.ar.Login.AuthTime.Equal(st.sess.AuthTime) {
		st.ar.Login.AMR, st.ar.Login.ACR, st.ar.Login.AuthTime = st.sess.AMR, st.sess.ACR, st.sess.AuthTime
		if err := s.store.SetAuthRequestLogin(ctx, st.ar.ID, st.ar.Login); err != nil {
			s.internalError(w, r, err)
			return
		}
	}

	// Step 2: consent.
	grant, err := s.store.GetConsent(ctx, st.sess.UserID, st.ar.ClientID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.internalError(w, r, err)
		return
	}
	if consent.Required(consent.Request{Scopes: st.ar.Scopes, Prompt: prompt, SkipConsent: st.client.SkipConsent, Grant: grant}) {
		if none {
			s.failRequest(w, r, st.ar, &oidc.Error{ErrorType: "consent_required", Description: "consent has not been given"})
			return
		}
		s.showConsent(w, r, st)
		return
	}
	s.finish(w, r, st)
}

// finish marks the auth request done and hands the browser back to op, which issues the code.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, st *loginState) {
	if st.ar.ClientID == AccountClientID {
		s.markKnownDevice(w, r, st.ar.Login.UserID)
		// The account page needs the session, not a code.
		_ = s.store.DeleteAuthRequest(r.Context(), st.ar.ID)
		http.Redirect(w, r, st.ar.RedirectURI, http.StatusSeeOther)
		return
	}
	st.ar.Login.Done = true
	if err := s.store.SetAuthRequestLogin(r.Context(), st.ar.ID, st.ar.Login); err != nil {
		s.internalError(w, r, err)
		return
	}
	// The browser completed a sign-in as this person: its guesses count on their own.
	s.markKnownDevice(w, r, st.ar.Login.UserID)
	if err := s.store.AddSessionClient(r.Context(), st.ar.Login.SessionID, st.ar.ClientID); err != nil {
		s.logger.WarnContext(r.Context(), "record session client", "err", err)
	}
	s.clearCookie(w, continueCookie)
	http.Redirect(w, r, s.cfg.Issuer+"/authorize/callback?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
}

// failRequest sends an OAuth error back to the relying party's redirect URI.
func (s *Server) failRequest(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest, e *oidc.Error) {
	_ = s.store.DeleteAuthRequest(r.Context(), ar.ID)
	op.AuthRequestError(w, r, authRequest{ar}, e, s.provider)
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.ErrorContext(r.Context(), "login flow", "err", err)
	s.renderError(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, st *loginState, email, msg string, status int) {
	s.render(w, r, status, web.PageLogin, web.LoginPage{
		AuthRequestID: st.ar.ID, CSRF: s.csrfToken(w, r), ClientName: st.client.Name, Email: email, Error: msg,
	})
}

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, st *loginState) {
	scopes := make([]web.Scope, 0, len(st.ar.Scopes))
	for _, sc := range st.ar.Scopes {
		scopes = append(scopes, web.Scope{Name: sc, Description: consent.Describe(sc)})
	}
	s.render(w, r, http.StatusOK, web.PageConsent, web.ConsentPage{
		AuthRequestID: st.ar.ID, CSRF: s.csrfToken(w, r), ClientName: st.client.Name, UserEmail: st.user.Email, Scopes: scopes,
	})
}

func (s *Server) rejectCSRF(w http.ResponseWriter, r *http.Request) {
	s.logger.WarnContext(r.Context(), "csrf check failed", "path", r.URL.Path)
	s.renderError(w, r, http.StatusForbidden, "Form expired",
		"This form could not be verified (missing or invalid security token). Go back, reload the page and try again.")
}

// postedLogin reads a login-flow form: it bounds and parses the body, checks the CSRF
// token and loads the auth request the form names. When it returns false it has already
// answered the browser.
func (s *Server) postedLogin(w http.ResponseWriter, r *http.Request) (*loginState, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return nil, false
	}
	if !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return nil, false
	}
	st, err := s.loadLogin(r, r.PostFormValue("id"))
	if err != nil {
		s.errExpired(w, r)
		return nil, false
	}
	return st, true
}

// handleLoginPost checks the password.
func (s *Server) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err == nil && r.PostFormValue("id") == accountLoginID && s.checkCSRF(r) {
		// The account page's sign-in: its auth request is stored now, not on the visit.
		ar, err := s.newAccountRequest(nil, r, false)
		if err != nil {
			s.signInStartError(w, r, err)
			return
		}
		r.PostForm.Set("id", ar.ID)
	}
	st, ok := s.postedLogin(w, r)
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
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, ClientID: st.ar.ClientID, Result: audit.ResultFailure,
			Reason: "rate limited (" + limitName(locked.Key) + ")", UserID: userID})
		s.showLogin(w, r, st, email, loginLockedMessage(locked), http.StatusTooManyRequests)
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
		case ok && u.Disabled:
			reason = "account disabled"
		}
		att.Failed()
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, ClientID: st.ar.ClientID, Result: audit.ResultFailure, Reason: reason, UserID: userID})
		s.showLogin(w, r, st, email, msgBadCredentials, http.StatusUnauthorized)
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
	sess, err := s.startSession(w, r, u.ID, amr, ACRPassword)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	st.ar.Login = storage.AuthLogin{UserID: u.ID, SessionID: sess.ID, AuthTime: sess.AuthTime, AMR: amr, ACR: ACRPassword}
	if err := s.store.SetAuthRequestLogin(ctx, st.ar.ID, st.ar.Login); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventLoginPassword, UserID: u.ID, ClientID: st.ar.ClientID, Result: audit.ResultSuccess})
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
}

// loginLockedMessage tells a person refused by a password limit until when.
func loginLockedMessage(l *regulation.LockedError) string {
	if l.Permanent || l.Until.IsZero() {
		return "Too many failed sign-in attempts. Contact your administrator."
	}
	return "Too many failed sign-in attempts. Try again after " + l.Until.UTC().Format("15:04 MST") + "."
}

// handleConsentPost records the person's answer on the consent page.
func (s *Server) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	st, ok := s.postedLogin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	// The answer counts only from the browser whose session is attached to the request,
	// and only once every earlier step is satisfied.
	if st.sess == nil || st.ar.Login.SessionID != st.sess.ID || !s.passwordSatisfied(st) {
		s.advance(w, r, st)
		return
	}
	if ms, err := s.mfaCheck(r, st); err != nil || (!ms.met && !(ms.enrol && !ms.recovery && s.inGrace(st.user, s.now(), true))) {
		s.advance(w, r, st)
		return
	}
	switch r.PostFormValue("action") {
	case "allow":
		grant, err := s.store.GetConsent(ctx, st.sess.UserID, st.ar.ClientID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
		c := &storage.Consent{UserID: st.sess.UserID, ClientID: st.ar.ClientID, Scopes: consent.Merge(grant, st.ar.Scopes), GrantedAt: s.now()}
		if err := s.store.SaveConsent(ctx, c); err != nil {
			s.internalError(w, r, err)
			return
		}
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventConsentGrant, UserID: c.UserID, ClientID: c.ClientID, Result: audit.ResultSuccess,
			Reason: "scopes " + strings.Join(st.ar.Scopes, " ")})
		s.finish(w, r, st)
	case "deny":
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventConsentDeny, UserID: st.sess.UserID, ClientID: st.ar.ClientID, Result: audit.ResultFailure,
			Reason: "person denied consent"})
		s.failRequest(w, r, st.ar, oidc.ErrAccessDenied().WithDescription("the person denied the request"))
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
