package idp

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The account page's "Active sessions" and "Remembered devices" sections: a person sees
// where they are signed in and which browsers skip the second factor, and ends or forgets
// any of them.

// sessionRoutes registers the session and device actions of the account page.
func (s *Server) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /account/security/sessions/end", s.handleAccountSessionEnd)
	mux.HandleFunc("POST /account/security/devices/forget", s.handleAccountDeviceForget)
}

const accountTimeFormat = "2006-01-02 15:04 MST"

func accountTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(accountTimeFormat)
}

// amrLabels names, for people, the sign-in methods an amr list says were used.
var amrLabels = map[string]string{
	mfa.AMRPassword: "Password",
	mfa.AMROTP:      "One-time code",
	mfa.AMRSMS:      "Text message",
	mfa.AMRHardware: "Security key",
	mfa.AMRSoftware: "Passkey",
	mfa.AMRUser:     "PIN or biometrics",
}

// factorKindLabels names the factor kinds a session records.
var factorKindLabels = map[storage.FactorKind]string{
	storage.FactorTOTP: "Authenticator app", storage.FactorBackup: "Backup code",
	storage.FactorEmail: "Email code", storage.FactorSMS: "Text message",
	storage.FactorWebAuthn: "Security key or passkey",
}

// signInLabels names, for people, what a sign-in used (storage.Session.SignIn).
var signInLabels = map[string]string{
	storage.SignInPassword:         "Password",
	storage.SignInPasskey:          "Passkey",
	storage.SignInRememberedDevice: "Remembered device",
	string(storage.FactorTOTP):     "Authenticator app",
	string(storage.FactorBackup):   "Backup code",
	string(storage.FactorEmail):    "Email code",
	string(storage.FactorSMS):      "Text message",
	string(storage.FactorWebAuthn): "Security key or passkey",
}

// describeSignIn says, in English message ids, what the session's sign-in used: the
// password (or passkey), the second factors verified and a remembered device standing
// in, from Session.SignIn; factors enrolled afterwards are not listed. For a session
// from before SignIn was recorded it falls back to the amr.
func describeSignIn(sess *storage.Session) []string {
	var out []string
	add := func(l string) {
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	if len(sess.SignIn) > 0 {
		for _, m := range sess.SignIn {
			add(signInLabels[m])
		}
		return out
	}
	for _, v := range sess.AMR {
		add(amrLabels[v])
	}
	return out
}

// joinLabels translates labels for r's page and joins them into a list.
func (s *Server) joinLabels(r *http.Request, labels []string) string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = s.tr(r, l)
	}
	return strings.Join(out, s.tr(r, ", "))
}

// accountSessions adds the person's live sessions and unexpired remembered devices to the
// account page. The session of the browser asking is marked as this one.
func (s *Server) accountSessions(r *http.Request, userID string, page *web.AccountPage) error {
	ctx := r.Context()
	sessions, err := s.store.ListUserSessions(ctx, userID)
	if err != nil {
		return err
	}
	current := ""
	if ri := requestInfoFrom(ctx); ri != nil {
		current = ri.SessionTokenHash
	}
	now := s.now()
	for i := range sessions {
		sess := &sessions[i]
		if !s.sessionLive(sess, now) {
			continue
		}
		page.Sessions = append(page.Sessions, web.SessionView{
			ID: sess.ID, Device: deviceName(sess.UserAgent), UserAgent: sess.UserAgent, IP: sess.IP,
			Created: accountTime(sess.CreatedAt), LastUsed: accountTime(sess.LastSeenAt),
			Factors: s.joinLabels(r, describeSignIn(sess)), Current: current != "" && sess.TokenHash == current,
		})
	}
	devices, err := s.store.ListUserDevices(ctx, userID)
	if err != nil {
		return err
	}
	for _, d := range devices {
		if !now.Before(d.ExpiresAt) {
			continue
		}
		page.Devices = append(page.Devices, web.DeviceView{
			ID: d.ID, Name: d.Name, IP: d.IP, Created: accountTime(d.CreatedAt),
			LastUsed: accountTime(d.LastUsedAt), Expires: accountTime(d.ExpiresAt),
		})
	}
	return nil
}

// handleAccountSessionEnd ends one of the person's sessions. Ending the browser's own
// session signs it out.
func (s *Server) handleAccountSessionEnd(w http.ResponseWriter, r *http.Request) {
	cur, u, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	target, err := s.store.GetSession(ctx, r.PostFormValue("session"))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.internalError(w, r, err)
		return
	}
	if err != nil || target.UserID != u.ID {
		s.renderAccount(w, r, u, http.StatusNotFound, "", "That session was not found. It may have ended already.")
		return
	}
	if err := s.endSession(ctx, target, "ended on account page"); err != nil {
		s.internalError(w, r, err)
		return
	}
	if target.ID == cur.ID {
		s.clearCookie(w, sessionCookie)
		http.Redirect(w, r, "/logged-out", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account/security?msg="+noticeSessionEnded, http.StatusSeeOther)
}

// handleAccountDeviceForget forgets one of the person's remembered devices: that browser
// is asked for the second factor again.
func (s *Server) handleAccountDeviceForget(w http.ResponseWriter, r *http.Request) {
	_, u, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	err := s.forgetDevice(r.Context(), u.ID, r.PostFormValue("device"), "forgotten on account page")
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.renderAccount(w, r, u, http.StatusNotFound, "", "That device was not found.")
		return
	case err != nil:
		s.internalError(w, r, err)
		return
	}
	if _, cerr := s.cookie(r, deviceCookie); cerr == nil && s.deviceFromCookie(r) == nil {
		// It was this browser: drop the cookie of the record that is gone.
		s.clearCookie(w, deviceCookie)
	}
	http.Redirect(w, r, "/account/security?msg="+noticeDeviceForgotten, http.StatusSeeOther)
}
