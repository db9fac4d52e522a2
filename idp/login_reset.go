package idp

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// Password reset by e-mail ("Forgot your password?" on the sign-in page).
//
//  1. GET /password/forgot?id=<auth request> asks for the e-mail address; POST answers
//     the same page, status and work whether or not the address belongs to an account:
//     it reserves the send limits (per address typed — which is per account — and per
//     source address) and hands the rest to a bounded background worker, which looks
//     the account up and, when it has verified addresses (confirmed e-mail factors),
//     stores a link (256 random bits, kept as a SHA-256 hash, valid ResetLinkLifetime)
//     and mails it to them.
//  2. GET /password/reset?token=… checks the link (through the regulator, per source
//     address) and shows the new-password form. Mail scanners that fetch the link use
//     nothing up.
//  3. POST /password/reset hashes the new password and holds the hash *pending* on the
//     link, server-side (a new random pending id each time). A person with a second
//     factor is then shown the sign-in's second-factor page (mfa.html, posting to
//     /password/reset/mfa), any factor their policy accepts — or any of theirs when it
//     accepts none, so that a reset never bypasses the factor. Until they pass it the
//     old password still works and the new one does not.
//  4. Completion (no factor, or the factor passed) is one storage transaction: the link
//     is consumed only if unconsumed, unexpired and still holding that pending id (so
//     exactly one of concurrent redemptions wins), the pending hash becomes the
//     password, and every other link of the person is consumed. Then every session ends
//     (with back-channel logout), remembered devices are forgotten, tokens revoked,
//     the password guessing counters of the account cleared, the change audited, and
//     the person told by e-mail.

// ResetLinkLifetime is how long a password-reset link stays valid.
const ResetLinkLifetime = 15 * time.Minute

const (
	resetTokenBytes = 32 // 256 bits
	// resetWorkers bounds the background work of reset requests running at once (each
	// holds at most one SMTP conversation per verified address); a request beyond it is
	// dropped and logged, and still gets the same answer.
	resetWorkers = 16
	// resetWorkTimeout bounds one background job.
	resetWorkTimeout = time.Minute
	// resetStartDelay is how long a background job waits for its request to end.
	resetStartDelay = time.Second
	// maxPasswordBytes is the longest new password accepted.
	maxPasswordBytes = 1024
)

const (
	msgResetInvalid  = "This password reset link is invalid, has expired or was already used. Ask for a new one from the sign-in page."
	msgResetMismatch = "The two passwords are not the same."
	msgResetLimited  = "Too many reset requests. Try again later."
	msgResetStale    = "A newer password was chosen with this link in another window. Start again from the link."
)

// resetWork runs the background part of reset requests, at most resetWorkers at once.
// Its zero value is ready to use.
type resetWork struct {
	once  sync.Once
	slots chan struct{}
	wg    sync.WaitGroup
}

func (rw *resetWork) sem() chan struct{} {
	rw.once.Do(func() { rw.slots = make(chan struct{}, resetWorkers) })
	return rw.slots
}

// goReset runs fn in the background with a context that keeps ctx's values (the
// request's address and user agent, for the audit trail) but not its cancellation.
// fn starts once the request is over (its context ends when the handler returns, or
// after resetStartDelay), so that its work never slows the answer down. It returns
// false when every worker is busy and fn was dropped.
func (s *Server) goReset(ctx context.Context, fn func(ctx context.Context)) bool {
	select {
	case s.resets.sem() <- struct{}{}:
	default:
		return false
	}
	s.resets.wg.Add(1)
	requestDone := ctx.Done()
	go func() {
		defer s.resets.wg.Done()
		defer func() { <-s.resets.sem() }()
		timer := time.NewTimer(resetStartDelay)
		select {
		case <-requestDone:
		case <-timer.C:
		}
		timer.Stop()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resetWorkTimeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// WaitPasswordResets waits until the background work of every password-reset request
// made so far has finished (links stored and mailed, or refused); each is bounded by a
// minute. Call it at shutdown, after the HTTP server stopped and before the store closes.
func (s *Server) WaitPasswordResets() { s.resets.wg.Wait() }

// resetEnabled reports whether password reset is offered: it needs an e-mail sender.
func (s *Server) resetEnabled() bool { return s.cfg.MFA.EmailSender != nil }

// resetURL is the "Forgot your password?" link of the sign-in authRequestID, or "" when
// password reset is off.
func (s *Server) resetURL(authRequestID string) string {
	if !s.resetEnabled() {
		return ""
	}
	return "/password/forgot?" + url.Values{"id": {authRequestID}}.Encode()
}

// resetRoutes registers the password-reset pages.
func (s *Server) resetRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /password/forgot", s.handleForgot)
	mux.HandleFunc("POST /password/forgot", s.handleForgotPost)
	mux.HandleFunc("GET /password/reset", s.handleReset)
	mux.HandleFunc("POST /password/reset", s.handleResetPost)
	mux.HandleFunc("GET /password/reset/mfa", s.handleResetMFA)
	mux.HandleFunc("POST /password/reset/mfa", s.handleResetMFAVerify)
	mux.HandleFunc("POST /password/reset/mfa/send", s.handleResetMFASend)
}

// cleanAuthRequestID keeps an auth request id from a form or query only when it is
// plausible (it is looked up, never trusted, later).
func cleanAuthRequestID(id string) string {
	if len(id) > 128 || strings.ContainsAny(id, "/?#&\\ \t\r\n") {
		return ""
	}
	return id
}

// loginURL is the sign-in to go back to, or "".
func loginURL(authRequestID string) string {
	if authRequestID == "" {
		return ""
	}
	return "/login?" + url.Values{"id": {authRequestID}}.Encode()
}

func (s *Server) resetOff(w http.ResponseWriter, r *http.Request) bool {
	if s.resetEnabled() {
		return false
	}
	s.renderNotFound(w, r)
	return true
}

// handleForgot shows the form that asks for the address.
func (s *Server) handleForgot(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	s.render(w, r, http.StatusOK, web.PageResetRequest, web.ResetRequestPage{
		CSRF: s.csrfToken(w, r), AuthRequestID: cleanAuthRequestID(r.URL.Query().Get("id")),
	})
}

// handleForgotPost answers a reset request. What it does and answers depends only on
// the address typed and the source address, never on whether an account has it: the
// account is looked up in the background (goReset).
func (s *Server) handleForgotPost(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return
	}
	ctx := r.Context()
	arID := cleanAuthRequestID(r.PostFormValue("id"))
	typed := strings.TrimSpace(r.PostFormValue("email"))
	email := strings.ToLower(typed)
	page := web.ResetRequestPage{CSRF: s.csrfToken(w, r), AuthRequestID: arID, Email: typed}
	if email == "" || len(email) > 254 || !strings.Contains(email, "@") {
		page.Error = "Enter the e-mail address of your account."
		s.render(w, r, http.StatusBadRequest, web.PageResetRequest, page)
		return
	}
	// The send limits are reserved for every request, known account or not: per address
	// typed (an account's address is unique, so this is per account) and per source.
	_, err := s.regulator.Reserve(ctx, s.sendLimitsFor("reset", email, requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventPasswordResetRequest, Result: audit.ResultFailure,
			Reason: "send refused (" + sendLimitName(locked.Key) + ")"})
		page.Error = msgResetLimited
		if !locked.Until.IsZero() {
			page.Error = "Too many reset requests. Try again after " + locked.Until.UTC().Format("15:04 MST") + "."
		}
		s.render(w, r, http.StatusTooManyRequests, web.PageResetRequest, page)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !s.goReset(ctx, func(ctx context.Context) { s.sendResetLink(ctx, email, arID) }) {
		s.logger.WarnContext(ctx, "password reset request dropped: every reset worker is busy")
	}
	s.render(w, r, http.StatusOK, web.PageResetSent, web.ResetSentPage{LoginURL: loginURL(arID)})
}

// sendResetLink is the background part of a reset request: when email is an enabled
// account's with verified addresses, it stores a new link and mails it to them.
func (s *Server) sendResetLink(ctx context.Context, email, authRequestID string) {
	refuse := func(userID, reason string) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventPasswordResetRequest, UserID: userID, Result: audit.ResultFailure, Reason: reason})
	}
	u, err := s.store.GetUserByEmail(ctx, email)
	if errors.Is(err, storage.ErrNotFound) {
		refuse("", "no account has this address")
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "password reset: load account", "err", err)
		return
	}
	if u.Disabled {
		refuse(u.ID, "account disabled")
		return
	}
	to, err := s.verifiedAddresses(ctx, u)
	if err != nil {
		s.logger.ErrorContext(ctx, "password reset: load addresses", "user", u.ID, "err", err)
		return
	}
	if len(to) == 0 {
		refuse(u.ID, "no verified e-mail address")
		return
	}
	now := s.now()
	token := secret.Token(resetTokenBytes)
	link := &storage.PasswordReset{ID: secret.NewID(), UserID: u.ID, TokenHash: secret.Hash(token),
		AuthRequestID: authRequestID, CreatedAt: now, ExpiresAt: now.Add(ResetLinkLifetime)}
	// Written ahead: a link whose event cannot be written is neither stored nor sent.
	ev := storage.AuditEvent{Type: audit.EventPasswordResetRequest, UserID: u.ID, Result: audit.ResultSuccess,
		Reason: fmt.Sprintf("link=%s addresses=%d", link.ID, len(to))}
	if err := s.audited(ctx, ev, func() error { return s.store.CreatePasswordReset(ctx, link) }); err != nil {
		s.logger.ErrorContext(ctx, "password reset: link not stored", "user", u.ID, "err", err)
		return
	}
	name := s.displayName()
	subject := name + ": reset your password"
	body := fmt.Sprintf("Someone (we hope you) asked to reset the password of your %s account.\n\n"+
		"To choose a new password, open this link within %d minutes. It works once:\n%s/password/reset?token=%s\n\n"+
		"If your account has a second sign-in method, you will be asked for it before the new password takes effect.\n"+
		"If you did not ask for this, ignore this message: your password stays as it is.\n",
		name, int(ResetLinkLifetime/time.Minute), s.cfg.Issuer, token)
	for _, addr := range to {
		if err := s.cfg.MFA.EmailSender.Send(ctx, addr, subject, body); err != nil {
			s.logger.WarnContext(ctx, "password reset link not sent", "user", u.ID, "err", err)
		}
	}
}

// verifiedAddresses are the addresses the person proved with a code (confirmed e-mail
// factors), without duplicates.
func (s *Server) verifiedAddresses(ctx context.Context, u *storage.User) ([]string, error) {
	all, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	var to []string
	for _, f := range all {
		addr := strings.TrimSpace(f.Target)
		if f.Kind == storage.FactorEmail && f.Confirmed && addr != "" &&
			!slices.ContainsFunc(to, func(a string) bool { return strings.EqualFold(a, addr) }) {
			to = append(to, addr)
		}
	}
	return to, nil
}

// resetFail audits a refused use of a reset link.
func (s *Server) resetFail(ctx context.Context, userID, reason string) {
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventPasswordResetFailure, UserID: userID, Result: audit.ResultFailure, Reason: reason})
}

func (s *Server) resetInvalid(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusBadRequest, "Reset link not valid", msgResetInvalid)
}

// resetLink checks the link token through the regulator and returns it with its
// person when it can still be used. When it returns false it has answered the browser.
func (s *Server) resetLink(w http.ResponseWriter, r *http.Request, token string) (*storage.PasswordReset, *storage.User, bool) {
	ctx := r.Context()
	if token == "" || len(token) > 128 {
		s.resetInvalid(w, r)
		return nil, nil, false
	}
	att, err := s.regulator.Reserve(ctx, s.resetLinkLimits(requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.resetFail(ctx, "", "rate limited ("+limitName(locked.Key)+")")
		s.renderError(w, r, http.StatusTooManyRequests, "Too many attempts", s.loginLockedMessage(r, locked))
		return nil, nil, false
	}
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil, false
	}
	link, err := s.store.GetPasswordReset(ctx, secret.Hash(token))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			_ = att.Cancel(ctx)
			s.internalError(w, r, err)
			return nil, nil, false
		}
		att.Failed()
		s.resetFail(ctx, "", "unknown link")
		s.resetInvalid(w, r)
		return nil, nil, false
	}
	// A right token is not a guess, even when the link is no longer usable.
	_ = att.Succeeded(ctx)
	now := s.now()
	switch {
	case !link.ConsumedAt.IsZero():
		s.resetFail(ctx, link.UserID, "link already used link="+link.ID)
		s.resetInvalid(w, r)
		return nil, nil, false
	case !now.Before(link.ExpiresAt):
		s.resetFail(ctx, link.UserID, "link expired link="+link.ID)
		s.resetInvalid(w, r)
		return nil, nil, false
	}
	u, err := s.store.GetUser(ctx, link.UserID)
	if err != nil || u.Disabled {
		s.resetFail(ctx, link.UserID, "account missing or disabled link="+link.ID)
		s.resetInvalid(w, r)
		return nil, nil, false
	}
	return link, u, true
}

func (s *Server) showResetPassword(w http.ResponseWriter, r *http.Request, token, msg string, status int) {
	s.render(w, r, status, web.PageResetPassword, web.ResetPasswordPage{
		CSRF: s.csrfToken(w, r), Token: token, Error: msg, MinLength: pwhash.MinLength,
	})
}

// handleReset shows the new-password form of a link.
func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	token := r.URL.Query().Get("token")
	if _, _, ok := s.resetLink(w, r, token); !ok {
		return
	}
	s.showResetPassword(w, r, token, "", http.StatusOK)
}

// handleResetPost takes the new password: it is hashed and held pending on the link;
// then either the second factor is asked for, or (for a person without one) the reset
// completes.
func (s *Server) handleResetPost(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return
	}
	ctx := r.Context()
	token := r.PostFormValue("token")
	link, u, ok := s.resetLink(w, r, token)
	if !ok {
		return
	}
	password, again := r.PostFormValue("password"), r.PostFormValue("confirm")
	switch {
	case len(password) < pwhash.MinLength:
		s.showResetPassword(w, r, token, fmt.Sprintf("Use at least %d characters.", pwhash.MinLength), http.StatusBadRequest)
		return
	case len(password) > maxPasswordBytes:
		s.showResetPassword(w, r, token, fmt.Sprintf("Use at most %d characters.", maxPasswordBytes), http.StatusBadRequest)
		return
	case password != again:
		s.showResetPassword(w, r, token, msgResetMismatch, http.StatusBadRequest)
		return
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		if errors.Is(err, ErrHashBusy) {
			s.renderBusy(w, r)
			return
		}
		s.internalError(w, r, err)
		return
	}
	pendingID := secret.NewID()
	if err := s.store.SetPasswordResetPending(ctx, link.ID, pendingID, hash, s.now()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.resetFail(ctx, u.ID, "link used or expired meanwhile link="+link.ID)
			s.resetInvalid(w, r)
			return
		}
		s.internalError(w, r, err)
		return
	}
	factors, err := s.resetFactors(ctx, u, link)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if len(factors) == 0 {
		s.completeReset(w, r, link, u, pendingID, "no second factor")
		return
	}
	s.showResetMFA(w, r, u, token+"."+pendingID, factors, "", web.MFAPage{}, http.StatusOK)
}

// resetFactors are the second factors a reset of u must pass one of: those the policy
// of the sign-in the person came from (or of their account type) accepts, or, when it
// accepts none of theirs, any of theirs. Nil for a person without a second factor.
func (s *Server) resetFactors(ctx context.Context, u *storage.User, link *storage.PasswordReset) ([]storage.Factor, error) {
	confirmed, err := s.confirmedFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	all := consent.Requirement{}.UsableFactors(confirmed)
	if len(all) == 0 {
		return nil, nil
	}
	client := &storage.Client{ID: "password-reset"} // no client policy: the account type's alone
	var ar *storage.AuthRequest
	if link.AuthRequestID != "" {
		if got, err := s.store.GetAuthRequest(ctx, link.AuthRequestID); err == nil {
			if c, err := s.store.GetClient(ctx, got.ClientID); err == nil {
				client, ar = c, got
			}
		}
	}
	req, err := s.requirement(ctx, client, u, ar)
	if err != nil {
		// An unsatisfiable request still must not bypass the factor.
		return all, nil
	}
	if usable := req.UsableFactors(confirmed); len(usable) > 0 {
		return usable, nil
	}
	return all, nil
}

// showResetMFA renders the second-factor page of a reset: factorID's factor when it is
// among factors, else the first. ref is "<token>.<pending id>", posted back as "id".
func (s *Server) showResetMFA(w http.ResponseWriter, r *http.Request, u *storage.User, ref string, factors []storage.Factor, factorID string, page web.MFAPage, status int) {
	chosen := &factors[0]
	for i := range factors {
		if factors[i].ID == factorID {
			chosen = &factors[i]
		}
	}
	if chosen.Kind == storage.FactorWebAuthn && page.WebAuthnOptions == "" {
		if _, c, err := s.challenge(r.Context(), u, chosen.ID); err != nil {
			page.Error = mfaMessage(err)
		} else {
			page.ChallengeID, page.WebAuthnOptions = c.ID, template.JS(c.Options)
		}
	}
	page.Action = "/password/reset/mfa"
	page.AuthRequestID = ref
	page.CSRF = s.csrfToken(w, r)
	page.FactorID = chosen.ID
	page.Kind = string(chosen.Kind)
	page.Label = factorLabel(chosen)
	if page.SentTo == "" && (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) {
		page.SentTo = maskTarget(chosen.Target)
	}
	page.NeedSend = (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) && page.ChallengeID == ""
	for i := range factors {
		if factors[i].ID != chosen.ID {
			page.Others = append(page.Others, web.FactorChoice{
				Label: factorLabel(&factors[i]),
				URL:   "/password/reset/mfa?" + url.Values{"id": {ref}, "factor": {factors[i].ID}}.Encode(),
			})
		}
	}
	s.render(w, r, status, web.PageMFA, page)
}

// resetMFAState loads what every second-factor request of a reset needs: the link (with
// its pending password, which must be the one ref names), its person and their factors.
func (s *Server) resetMFAState(w http.ResponseWriter, r *http.Request, ref string) (*storage.PasswordReset, *storage.User, string, []storage.Factor, bool) {
	ctx := r.Context()
	token, pendingID, _ := strings.Cut(ref, ".")
	link, u, ok := s.resetLink(w, r, token)
	if !ok {
		return nil, nil, "", nil, false
	}
	if pendingID == "" || link.PendingID != pendingID {
		s.resetFail(ctx, u.ID, "stale or missing pending password link="+link.ID)
		s.renderError(w, r, http.StatusConflict, "Start again", msgResetStale)
		return nil, nil, "", nil, false
	}
	factors, err := s.resetFactors(ctx, u, link)
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil, "", nil, false
	}
	if len(factors) == 0 {
		// The person's factors went meanwhile: the password form is the way on.
		s.showResetPassword(w, r, token, "", http.StatusOK)
		return nil, nil, "", nil, false
	}
	return link, u, pendingID, factors, true
}

// postedResetFactor parses a second-factor form of a reset and returns its state and the
// chosen factor.
func (s *Server) postedResetFactor(w http.ResponseWriter, r *http.Request) (*storage.PasswordReset, *storage.User, string, []storage.Factor, *storage.Factor, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.rejectCSRF(w, r)
		return nil, nil, "", nil, nil, false
	}
	link, u, pendingID, factors, ok := s.resetMFAState(w, r, r.PostFormValue("id"))
	if !ok {
		return nil, nil, "", nil, nil, false
	}
	id := r.PostFormValue("factor")
	for i := range factors {
		if factors[i].ID == id {
			return link, u, pendingID, factors, &factors[i], true
		}
	}
	s.renderError(w, r, http.StatusBadRequest, "Bad request", "Choose one of your sign-in methods.")
	return nil, nil, "", nil, nil, false
}

// handleResetMFA shows another of the person's factors (the "Other ways to verify" links).
func (s *Server) handleResetMFA(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	ref := r.URL.Query().Get("id")
	_, u, _, factors, ok := s.resetMFAState(w, r, ref)
	if !ok {
		return
	}
	s.showResetMFA(w, r, u, ref, factors, r.URL.Query().Get("factor"), web.MFAPage{}, http.StatusOK)
}

// handleResetMFASend sends an e-mail or SMS code for the chosen factor.
func (s *Server) handleResetMFASend(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	_, u, _, factors, chosen, ok := s.postedResetFactor(w, r)
	if !ok {
		return
	}
	ref := r.PostFormValue("id")
	_, c, err := s.challenge(r.Context(), u, chosen.ID)
	if err != nil {
		s.showResetMFA(w, r, u, ref, factors, chosen.ID, web.MFAPage{Error: mfaMessage(err)}, http.StatusTooManyRequests)
		return
	}
	s.showResetMFA(w, r, u, ref, factors, chosen.ID, web.MFAPage{ChallengeID: c.ID, SentTo: c.SentTo}, http.StatusOK)
}

// handleResetMFAVerify checks the second factor (through the regulator, as at sign-in)
// and, when it is right, completes the reset.
func (s *Server) handleResetMFAVerify(w http.ResponseWriter, r *http.Request) {
	if s.resetOff(w, r) {
		return
	}
	link, u, pendingID, factors, chosen, ok := s.postedResetFactor(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	ref := r.PostFormValue("id")
	challengeID := r.PostFormValue("challenge")
	response := r.PostFormValue("code")
	if chosen.Kind == storage.FactorWebAuthn {
		response = r.PostFormValue("response")
	}
	_, _, err := s.verify(ctx, u, chosen.ID, challengeID, response)
	if errors.Is(err, audit.ErrNotRecorded) {
		s.internalError(w, r, err) // a check that cannot be audited does not count
		return
	}
	if err != nil {
		s.resetFail(ctx, u.ID, kindReason(chosen.Kind, "second factor: "+errReason(err))+" link="+link.ID)
		page := web.MFAPage{Error: mfaMessage(err)}
		if (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) && !errors.Is(err, mfa.ErrExpired) {
			page.ChallengeID = challengeID
		}
		status := http.StatusUnauthorized
		var locked *regulation.LockedError
		if errors.As(err, &locked) && !guessFailure(err) {
			status = http.StatusTooManyRequests // refused before the answer was looked at
		}
		s.showResetMFA(w, r, u, ref, factors, chosen.ID, page, status)
		return
	}
	s.completeReset(w, r, link, u, pendingID, kindReason(chosen.Kind, "second factor passed"))
}

// completeReset makes the pending password the person's (once, whatever the
// concurrency), then ends their sessions, forgets their devices, revokes their tokens,
// audits and tells them.
func (s *Server) completeReset(w http.ResponseWriter, r *http.Request, link *storage.PasswordReset, u *storage.User, pendingID, how string) {
	ctx := r.Context()
	now := s.now()
	// The password before the reset, put back if the reset cannot be audited.
	before, err := s.store.GetUser(ctx, u.ID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if _, err := s.store.CompletePasswordReset(ctx, link.ID, pendingID, now); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.resetFail(ctx, u.ID, "link used, expired or replaced meanwhile link="+link.ID)
			s.resetInvalid(w, r)
			return
		}
		s.resetFail(ctx, u.ID, "storage error link="+link.ID)
		s.internalError(w, r, err)
		return
	}
	// The password has changed: whoever knew the old one may hold a session, a
	// remembered browser or tokens.
	var problems []string
	sessions, err := s.EndUserSessions(ctx, u.ID, "password reset")
	if err != nil {
		problems = append(problems, "end sessions: "+err.Error())
	}
	devices, err := s.RevokeDevices(ctx, u.ID, "password reset")
	if err != nil {
		problems = append(problems, "forget devices: "+err.Error())
	}
	if err := s.store.RevokeUserTokens(ctx, u.ID, now); err != nil {
		problems = append(problems, "revoke tokens: "+err.Error())
	}
	// Failures with the old password no longer say anything about the new one.
	if _, err := s.store.ResetAttemptsPrefix(ctx, regulation.UserPrefix(u.ID)+"pwd"); err != nil {
		problems = append(problems, "clear password counters: "+err.Error())
	}
	reason := fmt.Sprintf("link=%s %s; sessions_ended=%d devices_forgotten=%d tokens_revoked=%t",
		link.ID, how, sessions, devices, len(problems) == 0)
	if len(problems) > 0 {
		reason += "; errors: " + strings.Join(problems, "; ")
		s.logger.ErrorContext(ctx, "password reset: clean-up incomplete", "user", u.ID, "errors", problems)
	}
	// A reset whose event cannot be written does not happen: the old password is put back
	// (the sessions, devices and tokens stay ended: that only protects the person), and
	// they ask for a new link.
	if err := s.audit.Write(ctx, storage.AuditEvent{Type: audit.EventPasswordResetComplete, UserID: u.ID, Result: audit.ResultSuccess, Reason: reason}); err != nil {
		if cur, gerr := s.store.GetUser(ctx, u.ID); gerr == nil {
			cur.PasswordHash, cur.UpdatedAt = before.PasswordHash, s.now()
			if uerr := s.store.UpdateUser(ctx, cur); uerr != nil {
				s.logger.ErrorContext(ctx, "password reset not audited: old password not restored", "user", u.ID, "err", uerr)
			}
		} else {
			s.logger.ErrorContext(ctx, "password reset not audited: old password not restored", "user", u.ID, "err", gerr)
		}
		s.clearCookie(w, sessionCookie)
		s.internalError(w, r, err)
		return
	}
	s.announcePasswordReset(ctx, u)
	// This browser's session ended with the others.
	s.clearCookie(w, sessionCookie)
	s.render(w, r, http.StatusOK, web.PageResetDone, web.ResetDonePage{ContinueURL: s.resetContinueURL(ctx, link.AuthRequestID)})
}

// resetContinueURL is where the person signs in after a reset: the sign-in they came
// from while it lasts, else the account page.
func (s *Server) resetContinueURL(ctx context.Context, authRequestID string) string {
	if authRequestID != "" {
		if ar, err := s.store.GetAuthRequest(ctx, authRequestID); err == nil && s.now().Before(ar.ExpiresAt) && !ar.Login.Done {
			return loginURL(ar.ID)
		}
	}
	return "/account/security"
}

// announcePasswordReset tells the person by e-mail that their password was reset. A
// failure is logged: the change is done and audited.
func (s *Server) announcePasswordReset(ctx context.Context, u *storage.User) {
	to, err := s.verifiedAddresses(ctx, u)
	if err != nil || len(to) == 0 {
		if u.Email == "" {
			return
		}
		to = []string{u.Email}
	}
	name := s.displayName()
	subject := name + ": your password was changed"
	body := fmt.Sprintf("The password of your %s account was reset with an e-mail link at %s.\n"+
		"You were signed out everywhere and remembered devices were forgotten.\n\n"+
		"If this was you, there is nothing to do. If it was not, contact your administrator now.\n",
		name, s.now().UTC().Format("2006-01-02 15:04 MST"))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, addr := range to {
		if err := s.cfg.MFA.EmailSender.Send(ctx, addr, subject, body); err != nil {
			s.logger.WarnContext(ctx, "password reset notice not sent", "user", u.ID, "err", err)
		}
	}
}
