package idp

import (
	"crypto/hmac"
	"net/http"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// handleLogoutPage asks the person to confirm signing out. op's end_session sends the
// browser here when the logout request did not prove who asked (no matching id_token_hint).
func (s *Server) handleLogoutPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("post_logout_redirect_uri")
	if redirect != "" && !hmac.Equal([]byte(q.Get("sig")), []byte(secret.MAC(s.csrfKey, "logout", redirect))) {
		redirect = ""
	}
	page := web.LogoutPage{CSRF: s.csrfToken(w, r), RedirectURI: redirect, ClientID: q.Get("client_id")}
	if sess := s.currentSession(r); sess != nil {
		if u, err := s.store.GetUser(r.Context(), sess.UserID); err == nil {
			page.UserEmail = u.Email
		}
	}
	if redirect != "" {
		page.Sig = secret.MAC(s.csrfKey, "logout", redirect)
	}
	s.render(w, r, http.StatusOK, web.PageLogout, page)
}

// handleLogoutPost ends the browser's SSO session.
func (s *Server) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return
	}
	if sess := s.currentSession(r); sess != nil {
		if err := s.endSession(r.Context(), sess, "logout"); err != nil {
			s.internalError(w, r, err)
			return
		}
		s.audit.Record(r.Context(), storage.AuditEvent{Type: audit.EventLogout, UserID: sess.UserID, ClientID: r.PostFormValue("client_id"),
			Result: audit.ResultSuccess, Reason: "confirmed on logout page"})
	}
	s.clearCookie(w, sessionCookie)
	target := s.cfg.Issuer + "/logged-out"
	if v := r.PostFormValue("post_logout_redirect_uri"); v != "" && hmac.Equal([]byte(r.PostFormValue("sig")), []byte(secret.MAC(s.csrfKey, "logout", v))) {
		target = v
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (s *Server) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, web.PageLoggedOut, nil)
}
