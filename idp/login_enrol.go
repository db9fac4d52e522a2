package idp

import (
	"fmt"
	"net/http"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// continueCookie remembers, during forced enrolment on the account page, which sign-in
// to go back to.
const continueCookie = "idp_continue"

// sendToEnrol answers the enrol step: the person must add a factor on the account page
// (after a backup-code sign-in, or when policy requires one they do not have and no
// grace is left), and the sign-in resumes from there.
func (s *Server) sendToEnrol(w http.ResponseWriter, r *http.Request, f *flowFacts, recovery bool) {
	reason, target := "sent to enrol a second factor before signing in", "/account/security?required=1"
	if recovery {
		reason, target = "signed in with a backup code: sent to enrol a new factor", "/account/security?recovered=1"
	}
	s.audit.Record(r.Context(), storage.AuditEvent{Type: audit.EventMFAEnrolRequired, UserID: f.user.ID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess, Reason: reason})
	s.setCookie(w, continueCookie, f.ar.ID, f.ar.ExpiresAt)
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// countGrace counts the grace login decide granted this sign-in (once per sign-in) and
// audits it. It reports whether the sign-in may go on; when not, it has answered.
func (s *Server) countGrace(w http.ResponseWriter, r *http.Request, f *flowFacts) bool {
	u, now := f.user, s.now()
	if u.MFAGraceStarted.IsZero() {
		u.MFAGraceStarted = now
	}
	u.MFAGraceLogins++
	u.UpdatedAt = now
	// Written ahead: a grace sign-in whose event cannot be written does not go on.
	ev := storage.AuditEvent{Type: audit.EventMFAGrace, UserID: u.ID, ClientID: f.ar.ClientID, Result: audit.ResultSuccess,
		Reason: fmt.Sprintf("second factor required but not enrolled; grace login %d (started %s)", u.MFAGraceLogins, u.MFAGraceStarted.UTC().Format(time.RFC3339))}
	if err := s.audited(r.Context(), ev, func() error { return s.store.UpdateUser(r.Context(), u) }); err != nil {
		s.internalError(w, r, err)
		return false
	}
	return true
}

// continueLogin returns the sign-in waiting on forced enrolment in this browser, if any.
func (s *Server) continueLogin(r *http.Request) (*storage.AuthRequest, *storage.Client) {
	c, err := s.cookie(r, continueCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ar, err := s.store.GetAuthRequest(r.Context(), c.Value)
	if err != nil || ar.Login.Done || s.now().After(ar.ExpiresAt) {
		return nil, nil
	}
	sess := s.currentSession(r)
	if sess == nil || ar.Login.SessionID != sess.ID {
		return nil, nil
	}
	client, err := s.store.GetClient(r.Context(), ar.ClientID)
	if err != nil {
		return nil, nil
	}
	return ar, client
}

// recoveredOnly reports whether the session's only verified second factor is a backup
// code and no factor has been enrolled since.
func recoveredOnly(sess *storage.Session, confirmed []storage.Factor) bool {
	for _, k := range sess.Factors {
		if k != storage.FactorBackup {
			return false
		}
	}
	if len(sess.Factors) == 0 {
		return false
	}
	for _, f := range confirmed {
		if f.Kind != storage.FactorBackup && !f.CreatedAt.Before(sess.MFAAt) {
			return false
		}
	}
	return true
}
