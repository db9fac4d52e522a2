package idp

import (
	"context"
	"crypto/hmac"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/openidp/idp/idp/backchannel"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// Cookie names, before the prefix of cookieName.
const (
	sessionCookie = "idp_session"
	csrfCookie    = "idp_csrf"
)

// hostCookiePrefix is the prefix of cookie names on https issuers. Browsers accept a
// __Host- cookie only if it is Secure, has Path=/ and no Domain (RFC 6265bis Section
// 4.1.3.2), so no other host, a sibling subdomain included, and no http page can set or
// shadow it.
const hostCookiePrefix = "__Host-"

// cookieName returns the name under which the provider sets, reads and clears the cookie
// called base: with the __Host- prefix on https issuers, unchanged on http (development
// and loopback) issuers, whose cookies cannot be Secure.
func (s *Server) cookieName(base string) string {
	if s.secure {
		return hostCookiePrefix + base
	}
	return base
}

// cookie returns the request's cookie called base (see cookieName).
func (s *Server) cookie(r *http.Request, base string) (*http.Cookie, error) {
	return r.Cookie(s.cookieName(base))
}

// setCookie sets the cookie called base (see cookieName) for the whole host.
func (s *Server) setCookie(w http.ResponseWriter, base, value string, expires time.Time) {
	c := &http.Cookie{
		Name: s.cookieName(base), Value: value, Path: "/", HttpOnly: true, Secure: s.secure,
		// Lax: the cookie must reach /authorize on the top-level navigation from the
		// relying party, and never ride along on cross-site POSTs.
		SameSite: http.SameSiteLaxMode,
	}
	if !expires.IsZero() {
		c.Expires = expires
		c.MaxAge = int(time.Until(expires).Seconds())
		if c.MaxAge <= 0 {
			c.MaxAge = -1
		}
	}
	http.SetCookie(w, c)
}

// clearCookie deletes the cookie called base (see cookieName).
func (s *Server) clearCookie(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(base), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// currentSession returns the valid SSO session of the browser, or nil. A session is
// valid until its absolute expiry and while it was used within the idle timeout.
func (s *Server) currentSession(r *http.Request) *storage.Session {
	ri := requestInfoFrom(r.Context())
	if ri == nil || ri.SessionTokenHash == "" {
		return nil
	}
	sess, err := s.store.GetSessionByTokenHash(r.Context(), ri.SessionTokenHash)
	if err != nil {
		return nil
	}
	if !s.sessionLive(sess, s.now()) {
		return nil
	}
	return sess
}

// sessionTouchEvery bounds how often a session's LastSeenAt is written: a use of the
// session within this long of the stored LastSeenAt writes nothing (one write per
// session per interval instead of one per sign-in). The idle timeout is measured from
// the stored LastSeenAt, so a session can end as idle up to this long (or a tenth of the
// idle timeout, if that is less) before SessionIdle of true inactivity: never later.
const sessionTouchEvery = time.Minute

// touchInterval is how stale a session's LastSeenAt may get before touchSession writes it.
func (s *Server) touchInterval() time.Duration {
	return min(sessionTouchEvery, s.cfg.SessionIdle/10)
}

// touchSession records a use of sess now, unless LastSeenAt was written within
// touchInterval (see sessionTouchEvery). A failed write is logged: the use happened.
func (s *Server) touchSession(ctx context.Context, sess *storage.Session) {
	now := s.now()
	if now.Sub(sess.LastSeenAt) < s.touchInterval() {
		return
	}
	if err := s.store.TouchSession(ctx, sess.ID, now); err != nil {
		s.logger.WarnContext(ctx, "touch session", "err", err)
		return
	}
	sess.LastSeenAt = now
}

// defaultMaxSessions is how many SSO sessions a person may have at once when
// Config.MaxSessions is not set.
const defaultMaxSessions = 5

// sessionLive reports whether sess is still usable at now: before its absolute expiry and
// used within the idle timeout.
func (s *Server) sessionLive(sess *storage.Session, now time.Time) bool {
	return !now.After(sess.ExpiresAt) && now.Sub(sess.LastSeenAt) <= s.cfg.SessionIdle
}

// startSession creates a new SSO session for user after a password check, replacing any
// session the browser had (no session fixation: the cookie value is always new), and
// sets its cookie. When the same person signs in again in this browser (prompt=login,
// max_age, a fresh sign-in for the account page) the session keeps its id, the sid that
// apps hold, so that a later logout still reaches them; a different person's session
// ends. If the person then has more sessions than allowed, the oldest end.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, userID string, amr []string, acr string) (*storage.Session, error) {
	now := s.now()
	return s.startSessionAuth(w, r, userID, storage.SessionAuth{AuthTime: now, PasswordAt: now, AMR: amr, ACR: acr})
}

// startSessionAuth is startSession for a sign-in that proved auth (a passkey proves
// both factors at once).
func (s *Server) startSessionAuth(w http.ResponseWriter, r *http.Request, userID string, auth storage.SessionAuth) (*storage.Session, error) {
	ctx := r.Context()
	id := secret.NewID()
	var clients []string
	if old := s.currentSession(r); old != nil {
		if old.UserID == userID {
			var err error
			if clients, err = s.store.ListSessionClients(ctx, old.ID); err != nil {
				return nil, fmt.Errorf("session clients: %w", err)
			}
			if err := s.store.DeleteSession(ctx, old.ID); err != nil {
				return nil, fmt.Errorf("replace session: %w", err)
			}
			id = old.ID
		} else if err := s.endSession(ctx, old, "another account signed in"); err != nil {
			return nil, err
		}
	}
	now := s.now()
	value := secret.Token(32)
	ri := requestInfoFrom(ctx)
	sess := &storage.Session{
		ID: id, TokenHash: secret.Hash(value), UserID: userID, AuthTime: auth.AuthTime, PasswordAt: auth.PasswordAt, MFAAt: auth.MFAAt,
		Factors: auth.Factors, AMR: auth.AMR, ACR: auth.ACR, SignIn: firstStep(auth.AMR),
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionLifetime),
	}
	if ri != nil {
		sess.IP, sess.UserAgent = ri.IP, ri.UserAgent
		ri.SessionTokenHash = sess.TokenHash
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	for _, c := range clients {
		if err := s.store.AddSessionClient(ctx, sess.ID, c); err != nil {
			s.logger.WarnContext(ctx, "session client not kept after sign-in", "client_id", c, "err", err)
		}
	}
	s.setCookie(w, sessionCookie, value, sess.ExpiresAt)
	s.enforceSessionLimit(ctx, sess)
	return sess, nil
}

// firstStep is what a new session's sign-in used, from its amr: the password, or a
// passkey on its own.
func firstStep(amr []string) []string {
	if slices.Contains(amr, mfa.AMRPassword) || !slices.ContainsFunc(amr, func(v string) bool { return v == mfa.AMRHardware || v == mfa.AMRSoftware }) {
		return []string{storage.SignInPassword}
	}
	return []string{storage.SignInPasskey}
}

// signedInWith is sess's record of what its sign-in used (Session.SignIn) with method
// added: a second factor verified at sign-in (string(FactorKind)) or
// SignInRememberedDevice. Factors enrolled on the account page are not added: they were
// not part of signing in.
func signedInWith(sess *storage.Session, method string) []string {
	return appendUnique(sess.SignIn, method)
}

// recordDeviceSignIn notes in the session that a remembered device stood in for the
// second factor. The authentication level does not change (the device proves what the
// session already had), so the cookie is not rotated.
func (s *Server) recordDeviceSignIn(r *http.Request, sess *storage.Session) error {
	if slices.Contains(sess.SignIn, storage.SignInRememberedDevice) {
		return nil
	}
	auth := storage.SessionAuth{AuthTime: sess.AuthTime, PasswordAt: sess.PasswordAt, MFAAt: sess.MFAAt,
		Factors: sess.Factors, AMR: sess.AMR, ACR: sess.ACR, SignIn: signedInWith(sess, storage.SignInRememberedDevice)}
	if err := s.store.UpdateSessionAuth(r.Context(), sess.ID, auth); err != nil {
		return err
	}
	sess.SignIn = auth.SignIn
	return nil
}

// enforceSessionLimit ends the person's oldest live sessions beyond Config.MaxSessions,
// never the one just started. Failures are logged: the sign-in itself succeeded.
func (s *Server) enforceSessionLimit(ctx context.Context, current *storage.Session) {
	limit := s.cfg.MaxSessions
	if limit <= 0 {
		limit = defaultMaxSessions
	}
	all, err := s.store.ListUserSessions(ctx, current.UserID)
	if err != nil {
		s.logger.ErrorContext(ctx, "session limit: list sessions", "err", err)
		return
	}
	now := s.now()
	var live []storage.Session
	for _, sess := range all {
		if sess.ID != current.ID && s.sessionLive(&sess, now) {
			live = append(live, sess)
		}
	}
	if len(live) < limit {
		return
	}
	// Keep the newest limit-1 beside the new session; end the rest.
	slices.SortStableFunc(live, func(a, b storage.Session) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for i := limit - 1; i < len(live); i++ {
		if err := s.endSession(ctx, &live[i], "session limit"); err != nil {
			s.logger.ErrorContext(ctx, "session limit: end session", "err", err)
		}
	}
}

// csrfToken returns the token to embed in a form, creating the browser's CSRF cookie if
// it has none. The token is an HMAC of the cookie, so a page on another site can neither
// read it nor forge it, and a cookie planted by a sibling domain is useless without the key.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	var value string
	if c, err := s.cookie(r, csrfCookie); err == nil && len(c.Value) >= 22 {
		value = c.Value
	} else {
		value = secret.Token(32)
		s.setCookie(w, csrfCookie, value, time.Time{})
		// Later forms in the same response cycle see the new cookie.
		r.AddCookie(&http.Cookie{Name: s.cookieName(csrfCookie), Value: value})
	}
	return secret.MAC(s.csrfKey, "csrf", value)
}

// checkCSRF verifies the form's csrf field against the cookie in constant time.
func (s *Server) checkCSRF(r *http.Request) bool {
	c, err := s.cookie(r, csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	want := secret.MAC(s.csrfKey, "csrf", c.Value)
	return hmac.Equal([]byte(want), []byte(r.PostFormValue("csrf")))
}

// logoutQuery builds the query of the logout confirmation page; the redirect target is
// signed so the page cannot be turned into an open redirect.
func logoutQuery(key [32]byte, redirect, clientID string) string {
	return url.Values{
		"post_logout_redirect_uri": {redirect},
		"client_id":                {clientID},
		"sig":                      {secret.MAC(key, "logout", redirect)},
	}.Encode()
}

// Backchannel returns the back-channel logout sender (tests wait on it).
func (s *Server) Backchannel() *backchannel.Notifier { return s.backchannel }

// setupSessions prepares back-channel logout; New calls it. (RP-initiated logout through
// op reaches endSession through opStorage.endSession, set when s.ops is built.)
func (s *Server) setupSessions() {
	s.backchannel = &backchannel.Notifier{
		Store: s.store, Keys: s.keys, Issuer: s.cfg.Issuer, Logger: s.logger, Audit: s.audit, Now: s.now,
	}
}

// endSession ends an SSO session: it deletes it, records why, and tells the relying
// parties it signed in to (back-channel logout, in the background). Every way a session
// ends goes through here, except expiry.
func (s *Server) endSession(ctx context.Context, sess *storage.Session, reason string) error {
	return s.backchannel.EndSession(ctx, sess, reason)
}

// EndUserSessions ends every SSO session of a user (disabling the account, a password
// change, "sign out everywhere"), with back-channel logout, and returns how many ended.
func (s *Server) EndUserSessions(ctx context.Context, userID, reason string) (int, error) {
	return s.backchannel.EndUserSessions(ctx, userID, reason)
}
