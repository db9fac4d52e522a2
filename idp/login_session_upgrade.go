package idp

import (
	"net/http"

	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// upgradeSession records a change of authentication level (a second factor verified, a
// factor enrolled) in sess and rotates its cookie: the browser gets a new value and the
// old one stops working, so a cookie value planted or read before the change never
// carries the new level (session fixation).
func (s *Server) upgradeSession(w http.ResponseWriter, r *http.Request, sess *storage.Session, auth storage.SessionAuth) error {
	value := secret.Token(32)
	auth.TokenHash = secret.Hash(value)
	if err := s.store.UpdateSessionAuth(r.Context(), sess.ID, auth); err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, value, sess.ExpiresAt)
	if ri := requestInfoFrom(r.Context()); ri != nil {
		// Later reads in this request (e.g. the callback binding) see the new cookie.
		ri.SessionTokenHash = auth.TokenHash
	}
	sess.TokenHash, sess.AuthTime, sess.PasswordAt, sess.MFAAt = auth.TokenHash, auth.AuthTime, auth.PasswordAt, auth.MFAAt
	sess.Factors, sess.AMR, sess.ACR, sess.SignIn = auth.Factors, auth.AMR, auth.ACR, auth.SignIn
	return nil
}
