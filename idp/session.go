package idp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/openidp/idp/storage"
)

// Cookie names.
const (
	sessionCookie = "idp_session"
	csrfCookie    = "idp_csrf"
)

func (s *Server) setCookie(w http.ResponseWriter, name, value string, expires time.Time) {
	c := &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.secure,
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

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
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
	now := s.now()
	if now.After(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle {
		return nil
	}
	return sess
}

// startSession creates a new SSO session for user after a password check, replacing any
// session the browser had (no session fixation), and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, userID string, amr []string, acr string) (*storage.Session, error) {
	if old := s.currentSession(r); old != nil {
		_ = s.store.DeleteSession(r.Context(), old.ID)
	}
	now := s.now()
	value := randomToken(32)
	ri := requestInfoFrom(r.Context())
	sess := &storage.Session{
		ID: NewID(), TokenHash: tokenHash(value), UserID: userID, AuthTime: now, AMR: amr, ACR: acr,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionLifetime),
	}
	if ri != nil {
		sess.IP, sess.UserAgent = ri.IP, ri.UserAgent
		ri.SessionTokenHash = sess.TokenHash
	}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		return nil, err
	}
	s.setCookie(w, sessionCookie, value, sess.ExpiresAt)
	return sess, nil
}

// mac returns base64url(HMAC-SHA256(key, purpose|value)).
func mac(key [32]byte, purpose, value string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken returns the token to embed in a form, creating the browser's CSRF cookie if
// it has none. The token is an HMAC of the cookie, so a page on another site can neither
// read it nor forge it, and a cookie planted by a sibling domain is useless without the key.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	var value string
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 22 {
		value = c.Value
	} else {
		value = randomToken(32)
		s.setCookie(w, csrfCookie, value, time.Time{})
		// Later forms in the same response cycle see the new cookie.
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: value})
	}
	return mac(s.csrfKey, "csrf", value)
}

// checkCSRF verifies the form's csrf field against the cookie in constant time.
func (s *Server) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	want := mac(s.csrfKey, "csrf", c.Value)
	return hmac.Equal([]byte(want), []byte(r.PostFormValue("csrf")))
}

// logoutQuery builds the query of the logout confirmation page; the redirect target is
// signed so the page cannot be turned into an open redirect.
func logoutQuery(key [32]byte, redirect, clientID string) string {
	return url.Values{
		"post_logout_redirect_uri": {redirect},
		"client_id":                {clientID},
		"sig":                      {mac(key, "logout", redirect)},
	}.Encode()
}
