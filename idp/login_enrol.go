package idp

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// continueCookie remembers, during forced enrolment on the account page, which sign-in
// to go back to.
const continueCookie = "idp_continue"

// enrolStep handles a login whose policy requires a second factor the person does not
// have. Within the grace period (policy-driven requirements only, never one the request
// itself asked for) the login goes on and the grace is counted; after it, the person is
// sent to the account page to enrol, and the login resumes from there.
func (s *Server) enrolStep(w http.ResponseWriter, r *http.Request, st *loginState, ms *mfaState) bool {
	ctx := r.Context()
	u := st.user
	g := s.cfg.MFA.Grace
	if ms.recovery {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolRequired, UserID: u.ID, ClientID: st.ar.ClientID, Result: audit.ResultSuccess,
			Reason: "signed in with a backup code: sent to enrol a new factor"})
		s.setCookie(w, continueCookie, st.ar.ID, st.ar.ExpiresAt)
		http.Redirect(w, r, "/account/security?recovered=1", http.StatusSeeOther)
		return true
	}
	policyOnly, err := s.requirement(ctx, st.client, u, nil)
	params := authParams(st.ar)
	requestAsks := len(params.EssentialACR) > 0 || slices.ContainsFunc(params.ACRValues, func(v string) bool { return v == ACRMFA || v == ACRPhishingResistant })
	if err == nil && !requestAsks && policyOnly.Mode == ms.req.Mode && policyOnly.PhishingResistant == ms.req.PhishingResistant && (g.Logins > 0 || g.Period > 0) {
		now := s.now()
		if u.MFAGraceStarted.IsZero() {
			u.MFAGraceStarted = now
		}
		if s.inGrace(u, now, false) {
			u.MFAGraceLogins++
			u.UpdatedAt = now
			if err := s.store.UpdateUser(ctx, u); err != nil {
				s.internalError(w, r, err)
				return true
			}
			s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAGrace, UserID: u.ID, ClientID: st.ar.ClientID, Result: audit.ResultSuccess,
				Reason: fmt.Sprintf("second factor required but not enrolled; grace login %d (started %s)", u.MFAGraceLogins, u.MFAGraceStarted.UTC().Format(time.RFC3339))})
			return false
		}
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrolRequired, UserID: u.ID, ClientID: st.ar.ClientID, Result: audit.ResultSuccess,
		Reason: "sent to enrol a second factor before signing in"})
	s.setCookie(w, continueCookie, st.ar.ID, st.ar.ExpiresAt)
	http.Redirect(w, r, "/account/security?required=1", http.StatusSeeOther)
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
		if k != string(mfa.KindBackup) {
			return false
		}
	}
	if len(sess.Factors) == 0 {
		return false
	}
	for _, f := range confirmed {
		if f.Kind != string(mfa.KindBackup) && !f.CreatedAt.Before(sess.MFAAt) {
			return false
		}
	}
	return true
}

// inGrace reports whether u may still sign in without a required factor. granted asks
// whether the current login already used a grace login (so it is not counted twice,
// e.g. when the consent page is answered after a grace login).
func (s *Server) inGrace(u *storage.User, now time.Time, granted bool) bool {
	g := s.cfg.MFA.Grace
	if (g.Logins <= 0 && g.Period <= 0) || (granted && u.MFAGraceStarted.IsZero()) {
		return false
	}
	logins := g.Logins <= 0 || u.MFAGraceLogins < g.Logins || (granted && u.MFAGraceLogins == g.Logins)
	return logins && (g.Period <= 0 || u.MFAGraceStarted.IsZero() || now.Sub(u.MFAGraceStarted) < g.Period)
}
