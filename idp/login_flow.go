package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/storage"
)

// The sign-in flow as data. Every visit to a step (GET /login, and each form posted
// from it) gathers what the auth request, the browser's session, the person and the
// policies say (gatherFlow: the only part that reads storage), and one pure function,
// decide, returns the next step:
//
//	password → second factor | enrol → consent → issue
//
// with a protocol error (fail) where the request cannot go on. Handlers render or accept
// only the step decide returns; nothing trusts the browser's idea of where it is.

// step is what a sign-in needs next.
type step int

const (
	stepPassword     step = iota // the password form
	stepSecondFactor             // a second factor from the person's usable ones
	stepEnrol                    // the person must enrol a factor first (account page)
	stepConsent                  // the consent page
	stepIssue                    // every step is satisfied: issue the code
	stepFail                     // the request ends with an OAuth error to the client
	stepUnavailable              // the person's factors are switched off on this server
)

var stepNames = [...]string{"password", "second factor", "enrol", "consent", "issue", "fail", "unavailable"}

func (s step) String() string { return stepNames[s] }

// flowFacts is everything decide looks at.
type flowFacts struct {
	now    time.Time
	ar     *storage.AuthRequest
	client *storage.Client
	sess   *storage.Session // the browser's live session, nil without one (or a disabled user)
	user   *storage.User    // the session's user

	// The second-factor situation, gathered only with a session whose password step is
	// satisfied.
	req       consent.Requirement
	reqErr    error            // consent.ErrUnsatisfiable or errFactorUnavailable
	confirmed []storage.Factor // confirmed factors of a kind this server offers
	usable    []storage.Factor // those that count for req (most recently used first)
	device    *storage.Device  // a remembered device of the user in this browser, if any
	// policyOnly: the requirement comes from policies alone, not from the request; only
	// then may a grace period let the sign-in go on without a required factor.
	policyOnly bool
	grace      GracePeriod

	grant     *storage.Consent // the person's earlier consent to this client, if any
	grantRead bool             // grant was read (it is not when it cannot matter: gatherFlowFor)

	// respond, when set, answers a finished sign-in in the current response instead of
	// redirecting the browser to /authorize/callback (op_sso.go).
	respond func(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest)
	// unsaved: ar is not stored yet (op_sso.go); recordLogin changes it in memory only,
	// and it is stored, login record included, with its code.
	unsaved bool
}

// decision is what decide returns.
type decision struct {
	step step
	err  *oidc.Error // with stepFail
	// login is what the auth request's login record must say (written once, by
	// recordLogin, when it differs from the stored one).
	login    storage.AuthLogin
	attached bool // the session stands in for the password in this request for the first time
	// The second-factor situation, for the pages.
	mfa       *mfaState
	viaDevice bool // a remembered device stood in for the second factor
	graceNew  bool // this sign-in uses a grace login not counted yet
	recovery  bool // with stepEnrol: signed in with a backup code, a new factor is due
}

// decide returns the next step of the sign-in described by f. It does no I/O.
func decide(f *flowFacts) decision {
	ar := f.ar
	none := slices.Contains(ar.Prompt, oidc.PromptNone)
	fail := func(e *oidc.Error) decision { return decision{step: stepFail, err: e, login: ar.Login} }

	// Password, or an SSO session that may stand in for it.
	if !passwordSatisfied(f) {
		if none {
			return fail(oidc.ErrLoginRequired().WithDescription("no session satisfies this request"))
		}
		return decision{step: stepPassword, login: ar.Login}
	}
	sess := f.sess
	d := decision{attached: ar.Login.SessionID != sess.ID, login: ar.Login}
	if d.attached {
		// The session stands in for the password: the request takes what it proved.
		d.login = sessionLogin(sess)
	}

	// Second factor, when the policy or request needs one the session lacks.
	switch {
	case errors.Is(f.reqErr, consent.ErrUnsatisfiable):
		d.step, d.err = stepFail, &oidc.Error{ErrorType: "unmet_authentication_requirements", Description: f.reqErr.Error()}
		return d
	case errors.Is(f.reqErr, errFactorUnavailable):
		d.step = stepUnavailable
		return d
	}
	ms := &mfaState{req: f.req, factors: f.usable}
	d.mfa = ms
	switch {
	case f.req.Mode == consent.ModeOff && len(f.req.Kinds) == 0, !f.req.NeedsSecondFactor(f.usable):
		ms.met = true
	case sessionMeets(f.now, sess, ar, f.req):
		ms.met = true
		if recoveredOnly(sess, f.confirmed) {
			// A backup code is the way back in after losing a factor: enrol a new one
			// (and remove the lost one) before going on.
			ms.met, ms.enrol, ms.recovery = false, true, true
		}
	case f.req.DeviceCanSkip && f.device != nil && f.now.Sub(f.device.CreatedAt) <= f.req.RememberDevice:
		ms.met, ms.viaDevice, d.viaDevice = true, true, true
	case len(f.usable) == 0:
		ms.enrol = true
	}
	if !ms.met {
		if none {
			d.step, d.err = stepFail, oidc.ErrInteractionRequired().WithDescription("a second factor is required")
			return d
		}
		if !ms.enrol {
			d.step = stepSecondFactor
			return d
		}
		// Within the grace period (requirements from policy only, never one the request
		// itself asked for) the sign-in goes on, as one grace login; after it, enrol.
		if ms.recovery || !f.policyOnly || !inGrace(f.grace, f.user, f.now, d.login.Grace) {
			d.step, d.recovery = stepEnrol, ms.recovery
			return d
		}
		d.graceNew = !d.login.Grace
		d.login.Grace = true
	}
	// Past the second factor, the session is the record of what was proven (a factor may
	// have been added on the account page meanwhile): the request reports exactly that.
	d.login.AuthTime, d.login.AMR, d.login.ACR = sess.AuthTime, sess.AMR, sess.ACR

	// Consent.
	if consent.Required(consent.Request{Scopes: ar.Scopes, Prompt: ar.Prompt, SkipConsent: f.client.SkipConsent, Grant: f.grant}) {
		if none {
			d.step, d.err = stepFail, &oidc.Error{ErrorType: "consent_required", Description: "consent has not been given"}
			return d
		}
		d.step = stepConsent
		return d
	}
	d.step = stepIssue
	return d
}

// passwordSatisfied reports whether the browser's session may stand in for the password
// step of this request (OIDC Core 3.1.2.1: prompt=login and max_age force a new login,
// an id_token_hint for another user does too).
func passwordSatisfied(f *flowFacts) bool {
	if f.sess == nil {
		return false
	}
	ar := f.ar
	// Entered during this very request: satisfies prompt=login and any max_age.
	if ar.Login.SessionID == f.sess.ID && !ar.Login.AuthTime.Before(ar.CreatedAt.Truncate(time.Second)) {
		return true
	}
	if slices.Contains(ar.Prompt, oidc.PromptLogin) {
		return false
	}
	if ar.MaxAge != nil && f.now.Sub(passwordTime(f.sess)) > time.Duration(*ar.MaxAge)*time.Second {
		return false
	}
	if ar.HintUserID != "" && ar.HintUserID != f.sess.UserID {
		return false
	}
	return true
}

// sessionMeets reports whether the session's second-factor check satisfies req.
func sessionMeets(now time.Time, sess *storage.Session, ar *storage.AuthRequest, req consent.Requirement) bool {
	if sess.MFAAt.IsZero() || !slices.ContainsFunc(sess.Factors, req.Counts) {
		return false
	}
	if req.MFAMaxAge > 0 && now.Sub(sess.MFAAt) > req.MFAMaxAge {
		return false
	}
	if req.Fresh && ar != nil && sess.MFAAt.Before(ar.CreatedAt.Truncate(time.Second)) {
		return false
	}
	return true
}

// inGrace reports whether u may still sign in without a required factor. counted says
// this sign-in already used its grace login (so it is not counted twice, e.g. when the
// consent page is answered after it).
func inGrace(g GracePeriod, u *storage.User, now time.Time, counted bool) bool {
	if (g.Logins <= 0 && g.Period <= 0) || (counted && u.MFAGraceStarted.IsZero()) {
		return false
	}
	logins := g.Logins <= 0 || u.MFAGraceLogins < g.Logins || (counted && u.MFAGraceLogins == g.Logins)
	return logins && (g.Period <= 0 || u.MFAGraceStarted.IsZero() || now.Sub(u.MFAGraceStarted) < g.Period)
}

// gatherFlow reads what decide needs for the auth request id in this browser. It fails
// with errFlowGone when the request is unknown, expired or finished.
func (s *Server) gatherFlow(r *http.Request, id string) (*flowFacts, error) {
	ar, err := s.store.GetAuthRequest(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errFlowGone, err)
	}
	return s.gatherFlowFor(r, ar)
}

// gatherFlowFor is gatherFlow for an auth request already read (or just created, when
// /authorize answers an SSO sign-in itself: op_sso.go).
func (s *Server) gatherFlowFor(r *http.Request, ar *storage.AuthRequest) (*flowFacts, error) {
	ctx := r.Context()
	if ri := requestInfoFrom(ctx); ri != nil {
		ri.UILocales = ar.UILocales // the sign-in's pages speak the language it asked for
	}
	now := s.now()
	if now.After(ar.ExpiresAt) || ar.Login.Done {
		return nil, errFlowGone
	}
	// Within op's routes (op_sso.go) the client op has already read in this request.
	c, err := s.ops.getClient(ctx, ar.ClientID)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	f := &flowFacts{now: now, ar: ar, client: c, grace: s.cfg.MFA.Grace}
	if sess := s.currentSession(r); sess != nil {
		if u, err := s.store.GetUser(ctx, sess.UserID); err == nil && !u.Disabled {
			f.sess, f.user = sess, u
		}
	}
	if !passwordSatisfied(f) {
		return f, nil
	}
	if err := s.gatherSecondFactor(r, f); err != nil {
		return nil, err
	}
	if f.client.SkipConsent && !slices.Contains(ar.Prompt, oidc.PromptConsent) {
		// A first-party client's sign-in never shows the consent page: the grant cannot
		// change what happens (loadGrant reads it if the page is answered anyway).
		return f, nil
	}
	if err := s.loadGrant(ctx, f); err != nil {
		return nil, err
	}
	return f, nil
}

// loadGrant reads the person's earlier consent to the client into f.grant (nil without
// one) and marks it read.
func (s *Server) loadGrant(ctx context.Context, f *flowFacts) error {
	g, err := s.store.GetConsent(ctx, f.sess.UserID, f.ar.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		g = nil
	case err != nil:
		return err
	}
	f.grant, f.grantRead = g, true
	return nil
}

// errFlowGone: the auth request is unknown, expired or finished.
var errFlowGone = errors.New("auth request expired or finished")

// gatherSecondFactor fills the second-factor facts of f.
func (s *Server) gatherSecondFactor(r *http.Request, f *flowFacts) error {
	ctx := r.Context()
	tp, err := s.typePolicy(ctx, f.client, f.user)
	if err != nil {
		return err
	}
	req, err := s.requirementWith(f.client, f.user, f.ar, tp)
	if errors.Is(err, consent.ErrUnsatisfiable) {
		f.reqErr = err
		return nil
	}
	if err != nil {
		return err
	}
	f.req = req
	if req.Mode == consent.ModeOff && len(req.Kinds) == 0 {
		return nil
	}
	raw, err := s.store.ListFactors(ctx, f.user.ID)
	if err != nil {
		return fmt.Errorf("list factors: %w", err)
	}
	f.confirmed = s.offeredConfirmed(raw)
	f.usable = req.UsableFactors(f.confirmed)
	if len(f.usable) == 0 && req.Mode != consent.ModeOff {
		// Fail closed when the person's factors exist but their kinds are switched off.
		if slices.ContainsFunc(raw, func(g storage.Factor) bool {
			return g.Confirmed && g.Kind != storage.FactorBackup && !slices.ContainsFunc(f.confirmed, func(c storage.Factor) bool { return c.ID == g.ID })
		}) && len(consent.Requirement{}.UsableFactors(f.confirmed)) == 0 {
			f.reqErr = errFactorUnavailable
			return nil
		}
	}
	if req.DeviceCanSkip {
		f.device = s.rememberedDevice(r, f.user.ID)
	}
	policyOnly, err := s.requirementWith(f.client, f.user, nil, tp)
	params := authParams(f.ar)
	requestAsks := len(params.EssentialACR) > 0 || slices.ContainsFunc(params.ACRValues, func(v string) bool { return v == consent.ACRMFA || v == consent.ACRPhishingResistant })
	f.policyOnly = err == nil && !requestAsks && policyOnly.Mode == req.Mode && policyOnly.PhishingResistant == req.PhishingResistant
	return nil
}

// sessionLogin is the login record of a sign-in that sess stands in for.
func sessionLogin(sess *storage.Session) storage.AuthLogin {
	return storage.AuthLogin{UserID: sess.UserID, SessionID: sess.ID, AuthTime: sess.AuthTime, AMR: sess.AMR, ACR: sess.ACR}
}

// recordLogin writes d.login to the auth request when it differs from what is stored:
// the one place where a sign-in's login record changes.
func (s *Server) recordLogin(r *http.Request, f *flowFacts, l storage.AuthLogin) error {
	cur := f.ar.Login
	if cur.UserID == l.UserID && cur.SessionID == l.SessionID && cur.AuthTime.Equal(l.AuthTime) && slices.Equal(cur.AMR, l.AMR) &&
		cur.ACR == l.ACR && cur.Done == l.Done && cur.Grace == l.Grace {
		return nil
	}
	if f.unsaved {
		f.ar.Login = l
		return nil
	}
	if err := s.store.SetAuthRequestLogin(r.Context(), f.ar.ID, l); err != nil {
		return err
	}
	f.ar.Login = l
	return nil
}
