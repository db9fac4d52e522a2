package idp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/console"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// The admin console (/admin, package idp/console) is signed in to like the account page:
// through the ordinary sign-in steps, as the built-in client admin.ConsoleClientID, whose
// MFA policy this server sets at start-up from ConsoleConfig. A session whose second
// factor is missing or older than the policy's re-check age goes through the same
// second-factor step again (step-up) before the console opens.

// ConsoleConfig configures the admin console.
type ConsoleConfig struct {
	// Disabled switches the console off: /admin answers 404.
	Disabled bool
	// PhishingResistant requires the console's second factor to be WebAuthn.
	PhishingResistant bool
	// MaxAge is how old the second-factor check of a console session may be, default
	// DefaultConsoleMaxAge; older sessions are asked for it again.
	MaxAge time.Duration
}

// DefaultConsoleMaxAge is the default re-check age of the console's second factor.
const DefaultConsoleMaxAge = time.Hour

// consolePolicy is the MFA policy of the console's built-in client.
func (s *Server) consolePolicy() storage.MFAPolicy {
	p := storage.MFAPolicy{MFA: consent.ModeRequired, MaxAge: s.cfg.Console.MaxAge}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultConsoleMaxAge
	}
	if s.cfg.Console.PhishingResistant {
		p.PhishingResistant = true
		p.Factors = []storage.FactorKind{storage.FactorWebAuthn}
	}
	return p
}

// ensureConsoleClient registers the console's built-in client, or brings its policy in
// line with the configuration. A phishing-resistant console needs WebAuthn: without it
// no administrator could get in.
func (s *Server) ensureConsoleClient(ctx context.Context) error {
	if !s.cfg.Console.Disabled && s.cfg.Console.PhishingResistant && !slices.Contains(s.factors.Kinds(), storage.FactorWebAuthn) {
		return errors.New("the admin console is set to require a phishing-resistant factor, but WebAuthn is not available (the issuer's host is an IP address, or IDP_WEBAUTHN_RP_ID is unset): configure WebAuthn, or drop --admin-console-phishing-resistant")
	}
	want := s.consolePolicy()
	c, err := s.store.GetClient(ctx, admin.ConsoleClientID)
	if err == nil {
		if c.Policy.MFA == want.MFA && c.Policy.PhishingResistant == want.PhishingResistant && c.Policy.MaxAge == want.MaxAge &&
			slices.Equal(c.Policy.Factors, want.Factors) {
			return nil
		}
		c.Policy = want
		return s.store.UpdateClient(ctx, c)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	err = s.store.CreateClient(ctx, &storage.Client{
		ID: admin.ConsoleClientID, Name: "Admin console", Public: true, SkipConsent: true,
		RedirectURIs: []string{s.cfg.Issuer + "/admin"}, Scopes: []string{"openid"}, Policy: want,
		CreatedAt: s.now(),
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return nil // another process won the race
	}
	return err
}

// consoleRoutes mounts the console under /admin unless it is switched off.
func (s *Server) consoleRoutes(mux *http.ServeMux) {
	if s.cfg.Console.Disabled {
		return
	}
	adm := s.newAdmin()
	h := console.New(console.Config{
		Admin: adm, Pages: s.pages, Logger: s.logger, Factors: s.factors.Kinds(),
		Session:   s.consoleSession,
		Verified:  s.consoleVerified,
		SignIn:    s.consoleSignIn,
		CSRFToken: s.csrfToken,
		CheckCSRF: s.checkCSRF,
		Error:     s.renderError,
	})
	mux.Handle("/admin", h)
	mux.Handle("/admin/", h)
}

// consoleSession returns the browser's live session and its enabled person.
func (s *Server) consoleSession(r *http.Request) (*storage.Session, *storage.User) {
	sess := s.currentSession(r)
	if sess == nil {
		return nil, nil
	}
	u, err := s.store.GetUser(r.Context(), sess.UserID)
	if err != nil || u.Disabled {
		return nil, nil
	}
	_ = s.store.TouchSession(r.Context(), sess.ID, s.now())
	return sess, u
}

// consoleVerified reports whether the session's second factor satisfies what a sign-in
// to the console requires now (the console policy with the person's account type).
// A backup code alone never does: it is the way back in, not a factor.
func (s *Server) consoleVerified(ctx context.Context, sess *storage.Session, u *storage.User) (bool, error) {
	c, err := s.store.GetClient(ctx, admin.ConsoleClientID)
	if err != nil {
		return false, err
	}
	req, err := s.requirement(ctx, c, u, nil)
	if errors.Is(err, consent.ErrUnsatisfiable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !sessionMeets(s.now(), sess, nil, req) {
		return false, nil
	}
	return slices.ContainsFunc(sess.Factors, func(k storage.FactorKind) bool {
		return k != storage.FactorBackup && req.Counts(k)
	}), nil
}

// consoleSignIn starts a sign-in to the console that returns to returnTo (a path under
// /admin). With a session, the sign-in asks only for what the session lacks.
func (s *Server) consoleSignIn(w http.ResponseWriter, r *http.Request, returnTo string) {
	if !strings.HasPrefix(returnTo, "/admin") {
		returnTo = "/admin"
	}
	if !s.allowAuthorize(r.Context()) {
		s.signInStartError(w, r, errTooManySignIns)
		return
	}
	now := s.now()
	ar := &storage.AuthRequest{
		ID: secret.NewID(), ClientID: admin.ConsoleClientID, RedirectURI: s.cfg.Issuer + returnTo,
		Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthRequestLifetime),
	}
	if err := s.store.CreateAuthRequest(r.Context(), ar); err != nil {
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?id="+ar.ID, http.StatusSeeOther)
}
