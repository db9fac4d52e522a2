package idp

import (
	"context"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The account page (/account/security) lets a signed-in person manage their second
// factors. It signs people in through the ordinary login steps, as the built-in
// first-party client AccountClientID, so it gets exactly the same password, second-factor
// and lockout rules as every application.

// AccountClientID is the built-in client of the account page.
const AccountClientID = "openidp-account"

// defaultFreshFor is how recent a sign-in must be for removing a factor or regenerating
// backup codes.
const defaultFreshFor = 10 * time.Minute

// ensureAccountClient registers the built-in account client on first start.
func (s *Server) ensureAccountClient(ctx context.Context) error {
	_, err := s.store.GetClient(ctx, AccountClientID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	err = s.store.CreateClient(ctx, &storage.Client{
		ID: AccountClientID, Name: web.N("Account security"), Public: true, SkipConsent: true,
		RedirectURIs: []string{s.cfg.Issuer + "/account/security"}, Scopes: []string{"openid"},
		CreatedAt: s.now(),
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil // another process won the race
	}
	return err
}

// accountLogin starts a sign-in for the account page; forceFresh demands the password
// and second factor again (for sensitive changes).
func (s *Server) accountLogin(w http.ResponseWriter, r *http.Request, forceFresh bool) {
	if r.Method == http.MethodGet && !forceFresh && s.currentSession(r) == nil {
		// An anonymous visit writes nothing: the sign-in form names the account page, and
		// its auth request is created only when a password is posted.
		http.Redirect(w, r, "/login?id="+accountLoginID, http.StatusSeeOther)
		return
	}
	if _, err := s.newAccountRequest(w, r, forceFresh); err != nil {
		s.signInStartError(w, r, err)
	}
}

// signInStartError answers a failure to store a new sign-in.
func (s *Server) signInStartError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errTooManySignIns) {
		s.renderError(w, r, http.StatusTooManyRequests, "Too many sign-ins",
			"Too many sign-ins were started from your network. Wait a minute and try again.")
		return
	}
	s.internalError(w, r, err)
}

// accountLoginID stands for "a sign-in to the account page, not stored yet" in the
// sign-in form.
const accountLoginID = "account"

// errTooManySignIns: the address started more sign-ins than AuthorizeLimits allow.
var errTooManySignIns = errors.New("too many sign-ins started from this address")

// newAccountRequest stores a sign-in for the account page and, when w is not nil,
// redirects the browser to it. Like /authorize, it counts against the address's limit
// of new sign-ins.
func (s *Server) newAccountRequest(w http.ResponseWriter, r *http.Request, forceFresh bool) (*storage.AuthRequest, error) {
	if !s.allowAuthorize(r.Context()) {
		return nil, errTooManySignIns
	}
	now := s.now()
	back := s.cfg.Issuer + "/account/security"
	if r.Method == http.MethodGet {
		// Keep the page's notices (forced enrolment, recovery) across the sign-in.
		q := url.Values{}
		for _, k := range []string{"required", "recovered"} {
			if v := r.URL.Query().Get(k); v != "" {
				q.Set(k, "1")
			}
		}
		if len(q) > 0 {
			back += "?" + q.Encode()
		}
	}
	ar := &storage.AuthRequest{
		ID: secret.NewID(), ClientID: AccountClientID, RedirectURI: back,
		Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestLifetime),
	}
	if forceFresh {
		zero := int64(0)
		ar.MaxAge = &zero
	}
	if err := s.store.CreateAuthRequest(r.Context(), ar); err != nil {
		return nil, err
	}
	if w != nil {
		http.Redirect(w, r, "/login?id="+url.QueryEscape(ar.ID), http.StatusSeeOther)
	}
	return ar, nil
}

// accountUser returns the signed-in person for the account page, or starts a sign-in
// and returns nil. The session must carry a second factor if the person has one.
func (s *Server) accountUser(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User) {
	sess := s.currentSession(r)
	if sess == nil {
		s.accountLogin(w, r, false)
		return nil, nil
	}
	u, err := s.store.GetUser(r.Context(), sess.UserID)
	if err != nil || u.Disabled {
		s.accountLogin(w, r, false)
		return nil, nil
	}
	if !slices.Contains(sess.AMR, mfa.AMRMFA) {
		if fs, err := s.secondFactors(r.Context(), u.ID); err != nil || len(fs) > 0 {
			s.accountLogin(w, r, false)
			return nil, nil
		}
	}
	s.touchSession(r.Context(), sess)
	return sess, u
}

// fresh reports whether the session's last sign-in is recent enough for sensitive changes.
func (s *Server) fresh(sess *storage.Session) bool {
	return s.now().Sub(sess.AuthTime) <= s.cfg.MFA.FreshFor
}

func (s *Server) accountPage(r *http.Request, u *storage.User, msg, errMsg string) (web.AccountPage, error) {
	ctx := r.Context()
	page := web.AccountPage{Email: u.Email, Message: msg, Error: errMsg}
	if err := s.accountSessions(r, u.ID, &page); err != nil {
		return page, err
	}
	all, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return page, err
	}
	for i := range all {
		f := &all[i]
		if !f.Confirmed {
			continue
		}
		if f.Kind == storage.FactorBackup {
			page.HasBackup = true
			continue
		}
		v := web.FactorView{ID: f.ID, Label: s.factorLabel(r, f), Target: maskTarget(f.Target), Added: f.CreatedAt.UTC().Format("2006-01-02")}
		if !f.LastUsedAt.IsZero() {
			v.LastUsed = f.LastUsedAt.UTC().Format("2006-01-02 15:04 MST")
		}
		if wa := s.passkeys(); wa != nil && f.Kind == storage.FactorWebAuthn {
			if synced, err := wa.Synced(f); err == nil {
				v.Detail = map[bool]string{true: msgPasskeySynced, false: msgPasskeyDevice}[synced]
			}
		}
		page.Factors = append(page.Factors, v)
	}
	page.HasPassword = u.PasswordHash != ""
	if page.HasPassword {
		if err := s.passwordRemovable(ctx, u, all); err == nil {
			page.CanRemovePassword = true
		} else if errors.Is(err, errPasswordNeeded) {
			page.PasswordNote = passwordNeededMessage(err)
		} else {
			return page, err
		}
	}
	if page.HasBackup {
		page.BackupRemaining, err = s.store.CountBackupCodes(ctx, u.ID)
		if err != nil {
			return page, err
		}
		for i := range all {
			if all[i].Kind == storage.FactorBackup {
				page.BackupFactorID = all[i].ID
			}
		}
	}
	for _, k := range s.factors.Kinds() {
		if k != storage.FactorBackup {
			page.Kinds = append(page.Kinds, string(k))
		}
	}
	return page, nil
}

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, u *storage.User, status int, msg, errMsg string) {
	s.renderAccountWith(w, r, u, status, msg, errMsg, nil)
}

// renderAccountWith is renderAccount with a last change to the page (edit may be nil).
func (s *Server) renderAccountWith(w http.ResponseWriter, r *http.Request, u *storage.User, status int, msg, errMsg string, edit func(*web.AccountPage)) {
	// A sign-in waiting for an enrolment: its ui_locales choose the page's language too.
	ar, c := s.continueLogin(r)
	if ri := requestInfoFrom(r.Context()); ri != nil && ar != nil {
		ri.UILocales = ar.UILocales
	}
	page, err := s.accountPage(r, u, msg, errMsg)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if edit != nil {
		edit(&page)
	}
	page.CSRF = s.csrfToken(w, r)
	if ar != nil {
		page.ContinueURL, page.ContinueClient = "/login?id="+url.QueryEscape(ar.ID), c.Name
		// The name shown comes from the pending sign-in, never from the URL.
		if r.URL.Query().Get("required") != "" {
			page.RequiredBy = c.Name
		}
	}
	page.Recovered = r.URL.Query().Get("recovered") != ""
	s.render(w, r, status, web.PageAccount, page)
}

func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	_, u := s.accountUser(w, r)
	if u == nil {
		return
	}
	// The URL names a notice by code; the text is ours. Unknown codes show nothing, so
	// no one can put words of their choosing on this page.
	s.renderAccount(w, r, u, http.StatusOK, accountNotices[r.URL.Query().Get("msg")], "")
}

// accountForm reads an account-page POST: body bounds, CSRF, signed-in person.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return nil, nil, false
	}
	sess, u := s.accountUser(w, r)
	return sess, u, u != nil
}

// handleAccountEnroll starts enrolling a factor and shows what the person needs next.
func (s *Server) handleAccountEnroll(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	if !s.mayAddOnPage(w, r, u, sess) {
		return
	}
	kind := storage.FactorKind(r.PostFormValue("kind"))
	if kind == storage.FactorBackup {
		s.renderAccount(w, r, u, http.StatusBadRequest, "", "Use “Generate new backup codes”.")
		return
	}
	enr, err := s.startEnroll(r.Context(), u, kind, mfa.EnrollRequest{
		Name: r.PostFormValue("name"), Phone: r.PostFormValue("phone"), Email: r.PostFormValue("email"),
		Device: deviceName(r.UserAgent()),
	})
	if errors.Is(err, audit.ErrNotRecorded) {
		s.internalError(w, r, err)
		return
	}
	if err != nil {
		// The error is shown in the form of the kind being added, beside its field, with
		// what was typed.
		s.renderAccountWith(w, r, u, http.StatusBadRequest, "", s.mfaMessageFor(r, err), func(p *web.AccountPage) {
			if slices.Contains(p.Kinds, string(kind)) {
				p.ErrorKind = string(kind)
			}
			p.EnteredPhone, p.EnteredEmail = r.PostFormValue("phone"), r.PostFormValue("email")
		})
		return
	}
	s.renderEnroll(w, r, enr.Factor, enr, "", http.StatusOK)
}

func (s *Server) renderEnroll(w http.ResponseWriter, r *http.Request, f *storage.Factor, enr *mfa.Enrollment, errMsg string, status int) {
	page := web.EnrollPage{CSRF: s.csrfToken(w, r), FactorID: f.ID, Kind: string(f.Kind), Label: s.factorLabel(r, f), Error: errMsg}
	if enr != nil {
		// Both URLs are built here from our own values, never from input: safe to mark trusted.
		page.Secret, page.URI, page.ChallengeID, page.SentTo = enr.Secret, template.URL(enr.URI), enr.ChallengeID, enr.SentTo
		page.WebAuthnOptions = template.JS(enr.Options)
		if len(enr.QRPNG) > 0 {
			page.QRDataURI = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(enr.QRPNG))
		}
	}
	s.render(w, r, status, web.PageEnroll, page)
}

// handleAccountConfirm finishes enrolment with the code or WebAuthn response.
func (s *Server) handleAccountConfirm(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	if !s.mayAddOnPage(w, r, u, sess) {
		return
	}
	id := r.PostFormValue("factor")
	response := r.PostFormValue("code")
	if r.PostFormValue("response") != "" {
		response = r.PostFormValue("response")
	}
	err := s.confirmEnroll(r.Context(), u, id, r.PostFormValue("challenge"), response)
	if err == nil {
		// Enrolling proved possession of the factor: the session now has two kinds.
		if f, ferr := s.store.GetFactor(r.Context(), id); ferr == nil {
			now := s.now()
			auth := storage.SessionAuth{AuthTime: now, PasswordAt: passwordTime(sess), MFAAt: now,
				Factors: appendUnique(sess.Factors, f.Kind), AMR: combineAMR(sess.AMR, enrolAMR(f.Kind)),
				SignIn: sess.SignIn} // enrolling is not signing in: "Signed in with" stays
			auth.ACR = acrFor(auth.AMR)
			if uerr := s.upgradeSession(w, r, sess, auth); uerr != nil {
				s.logger.WarnContext(r.Context(), "session not upgraded after enrolment", "err", uerr)
			}
		}
		http.Redirect(w, r, "/account/security?msg="+noticeAdded, http.StatusSeeOther)
		return
	}
	if errors.Is(err, audit.ErrNotRecorded) {
		s.internalError(w, r, err)
		return
	}
	f, ferr := s.store.GetFactor(r.Context(), id)
	if ferr != nil || f.UserID != u.ID || f.Confirmed || f.Kind == storage.FactorWebAuthn {
		s.renderAccount(w, r, u, http.StatusBadRequest, "", s.mfaMessageFor(r, err))
		return
	}
	// Let them retype the code. An authenticator-app factor still being added shows its
	// key and QR code again, rebuilt from the sealed seed, so a mis-scanned key can be
	// scanned once more.
	enr := &mfa.Enrollment{ChallengeID: r.PostFormValue("challenge")}
	if f.Kind == storage.FactorTOTP {
		pending, perr := (&mfa.TOTP{Env: s.mfaEnv}).Pending(u, f)
		if perr != nil {
			s.logger.WarnContext(r.Context(), "totp enrolment not shown again", "err", perr)
		} else {
			enr = pending
		}
	}
	s.renderEnroll(w, r, f, enr, s.mfaMessageFor(r, err), http.StatusUnauthorized)
}

// freshAccountForm is accountForm for sensitive changes: a sign-in older than FreshFor
// is sent to sign in afresh first.
func (s *Server) freshAccountForm(w http.ResponseWriter, r *http.Request) (*storage.User, bool) {
	sess, u, ok := s.accountForm(w, r)
	if !ok {
		return nil, false
	}
	if !s.fresh(sess) {
		s.accountLogin(w, r, true)
		return nil, false
	}
	return u, true
}

// handleAccountRemove removes a factor; it needs a fresh sign-in.
func (s *Server) handleAccountRemove(w http.ResponseWriter, r *http.Request) {
	u, ok := s.freshAccountForm(w, r)
	if !ok {
		return
	}
	if err := s.removeFactor(r.Context(), u, r.PostFormValue("factor")); err != nil {
		if errors.Is(err, audit.ErrNotRecorded) {
			s.internalError(w, r, err)
			return
		}
		msg := web.N("That sign-in method was not found.")
		if errors.Is(err, errLastRequiredFactor) {
			msg = s.mfaMessageFor(r, err)
		}
		s.renderAccount(w, r, u, http.StatusConflict, "", msg)
		return
	}
	http.Redirect(w, r, "/account/security?msg="+noticeRemoved, http.StatusSeeOther)
}

// handleAccountPasswordRemove removes the person's password (passkey-only from then
// on); it needs a fresh sign-in.
func (s *Server) handleAccountPasswordRemove(w http.ResponseWriter, r *http.Request) {
	u, ok := s.freshAccountForm(w, r)
	if !ok {
		return
	}
	if err := s.removePassword(r.Context(), u); err != nil {
		if errors.Is(err, errPasswordNeeded) {
			s.renderAccount(w, r, u, http.StatusConflict, "", passwordNeededMessage(err))
			return
		}
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/account/security?msg="+noticePasswordRemoved, http.StatusSeeOther)
}

// handleAccountBackup generates new backup codes (invalidating the old ones) and shows
// them once; it needs a fresh sign-in.
func (s *Server) handleAccountBackup(w http.ResponseWriter, r *http.Request) {
	u, ok := s.freshAccountForm(w, r)
	if !ok {
		return
	}
	enr, err := s.startEnroll(r.Context(), u, storage.FactorBackup, mfa.EnrollRequest{})
	if errors.Is(err, audit.ErrNotRecorded) {
		s.internalError(w, r, err)
		return
	}
	if err != nil {
		s.renderAccount(w, r, u, http.StatusInternalServerError, "", s.mfaMessageFor(r, err))
		return
	}
	s.render(w, r, http.StatusOK, web.PageBackupCodes, web.BackupCodesPage{Codes: enr.Codes})
}

// Notices of the account page, by the code that names them in ?msg=.
const (
	noticeAdded           = "added"
	noticeRemoved         = "removed"
	noticeSessionEnded    = "session-ended"
	noticeDeviceForgotten = "device-forgotten"
	noticeRecovered       = "recovered"
	noticePasswordRemoved = "password-removed"
)

var accountNotices = map[string]string{
	noticeAdded:           "Sign-in method added.",
	noticeRemoved:         "Sign-in method removed.",
	noticeSessionEnded:    "Session ended.",
	noticeDeviceForgotten: "Device forgotten.",
	noticeRecovered:       msgRecoveryDone,
	noticePasswordRemoved: "Password removed. You sign in with your passkey.",
}

// mayAddOnPage applies the add-a-factor rule on the account page: an account that has a
// factor adds another only from a session that verified a second factor in the last ten
// minutes; otherwise the person signs in afresh (password and second factor) first.
// It reports whether the request may go on; when not, it has answered.
func (s *Server) mayAddOnPage(w http.ResponseWriter, r *http.Request, u *storage.User, sess *storage.Session) bool {
	err := s.mayAddFactor(r.Context(), u, sess, false)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errProofRequired):
		s.accountLogin(w, r, true)
	default:
		s.internalError(w, r, err)
	}
	return false
}

// enrolAMR is what confirming enrolment of a factor kind proved.
func enrolAMR(kind storage.FactorKind) []string {
	switch kind {
	case storage.FactorSMS:
		return []string{mfa.AMRSMS}
	case storage.FactorWebAuthn:
		return []string{mfa.AMRHardware}
	default:
		return []string{mfa.AMROTP}
	}
}
