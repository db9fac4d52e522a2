package idp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// Rules for changing a person's second factors (docs/security.md):
//
//   - The first factor may be added after a password-only sign-in: that is forced
//     enrolment.
//   - When the account already has a confirmed factor, adding another needs proof of an
//     existing one: a current answer from it ("verification" in the self-service API), or
//     a session whose second factor was verified within addFactorFreshness. A password
//     alone never adds a factor to an account that has one, so a stolen password cannot
//     be turned into a second factor of the attacker's choosing.
//   - Removing a factor never leaves a person whose account-type policy requires MFA
//     without a factor that counts for it.
//   - Every factor added or removed is audited and, where an e-mail sender is
//     configured, announced to the person's addresses.

// addFactorFreshness is how recently a session's second factor must have been verified
// for the session alone to add a factor to an account that has one.
const addFactorFreshness = 10 * time.Minute

// errProofRequired: adding a factor to this account needs proof of an existing factor.
var errProofRequired = errors.New("adding a sign-in method needs a check with one you already have")

// errLastRequiredFactor: removing the factor would leave a person whom policy requires
// to use MFA with none.
var errLastRequiredFactor = errors.New("the last sign-in method your account must have")

// hasConfirmedFactor reports whether the account has a confirmed factor that makes a
// second step necessary at sign-in (backup codes alone do not: a person with only those
// is enrolling, like a person with none).
func (s *Server) hasConfirmedFactor(ctx context.Context, userID string) (bool, error) {
	fs, err := s.secondFactors(ctx, userID)
	if err != nil {
		return false, err
	}
	return len(fs) > 0, nil
}

// recentSecondFactor reports whether sess verified a second factor within
// addFactorFreshness.
func (s *Server) recentSecondFactor(sess *storage.Session) bool {
	return sess != nil && !sess.MFAAt.IsZero() && s.now().Sub(sess.MFAAt) <= addFactorFreshness
}

// mayAddFactor reports whether u may add a factor with what the request proved: sess is
// the session behind the request (nil when there is none), proved says a verification
// with an existing factor succeeded in this request.
func (s *Server) mayAddFactor(ctx context.Context, u *storage.User, sess *storage.Session, proved bool) error {
	if proved || s.recentSecondFactor(sess) {
		return nil
	}
	has, err := s.hasConfirmedFactor(ctx, u.ID)
	if err != nil {
		return err
	}
	if has {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrollStart, UserID: u.ID, Result: audit.ResultFailure,
			Reason: "refused: the account has a factor and no recent proof of one was given"})
		return errProofRequired
	}
	return nil
}

// checkRemoval refuses to remove factor id of u when that would leave u, whose
// account-type policy requires MFA, without a factor that counts for that policy.
func (s *Server) checkRemoval(ctx context.Context, u *storage.User, id string) error {
	if u.PasswordHash == "" {
		// Without a password, the passkeys are the way in: the last one stays.
		all, err := s.store.ListFactors(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("list factors: %w", err)
		}
		isPasskey := func(f storage.Factor) bool { return f.Confirmed && f.Kind == storage.FactorWebAuthn }
		removing := slices.ContainsFunc(all, func(f storage.Factor) bool { return f.ID == id && isPasskey(f) })
		if removing && !slices.ContainsFunc(all, func(f storage.Factor) bool { return f.ID != id && isPasskey(f) }) {
			s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFARemove, UserID: u.ID, Result: audit.ResultFailure,
				Reason: "refused: the account has no password and this is its last passkey (factor=" + id + ")"})
			return errLastRequiredFactor
		}
	}
	tp, err := s.store.GetTypePolicy(ctx, u.Type)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account type policy: %w", err)
	}
	if !strings.EqualFold(tp.MFA, "required") {
		return nil
	}
	all, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("list factors: %w", err)
	}
	counts := func(f storage.Factor) bool {
		if !f.Confirmed || f.ID == id || f.Kind == storage.FactorBackup {
			return false
		}
		if tp.PhishingResistant && f.Kind != storage.FactorWebAuthn {
			return false
		}
		return len(tp.Factors) == 0 || slices.Contains(tp.Factors, f.Kind)
	}
	removing := slices.ContainsFunc(all, func(f storage.Factor) bool { return f.ID == id && f.Confirmed && f.Kind != storage.FactorBackup })
	if removing && !slices.ContainsFunc(all, counts) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFARemove, UserID: u.ID, Result: audit.ResultFailure,
			Reason: "refused: the account type requires a second factor and this is the last one that counts (factor=" + id + ")"})
		return errLastRequiredFactor
	}
	return nil
}

// announceFactorChange tells the person by e-mail that a sign-in method was added or
// removed, when an e-mail sender is configured. It writes to the addresses proven with a
// code (confirmed e-mail factors) or, without one, to the account's address. A failure is
// logged: the change itself is done and audited.
func (s *Server) announceFactorChange(ctx context.Context, u *storage.User, f *storage.Factor, added bool) {
	sender := s.cfg.MFA.EmailSender
	if sender == nil || f == nil {
		return
	}
	var to []string
	if all, err := s.store.ListFactors(ctx, u.ID); err == nil {
		for _, g := range all {
			if g.Kind == storage.FactorEmail && g.Confirmed && g.Target != "" && !slices.Contains(to, g.Target) {
				to = append(to, g.Target)
			}
		}
	}
	if f.Kind == storage.FactorEmail && !added && f.Target != "" && !slices.Contains(to, f.Target) {
		to = append(to, f.Target) // the removed address hears of its removal too
	}
	if len(to) == 0 && u.Email != "" {
		to = []string{u.Email}
	}
	what, verb := factorLabel(f), "added to"
	if !added {
		verb = "removed from"
	}
	name := s.displayName()
	subject := fmt.Sprintf("%s: a sign-in method was %s your account", name, strings.Fields(verb)[0])
	body := fmt.Sprintf("A sign-in method (%s) was %s your %s account at %s.\n\n"+
		"If this was you, there is nothing to do. If it was not, sign in and review your sign-in methods at\n%s/account/security\n"+
		"and contact your administrator.\n", what, verb, name, s.now().UTC().Format("2006-01-02 15:04 MST"), s.cfg.Issuer)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, addr := range to {
		if err := sender.Send(ctx, addr, subject, body); err != nil {
			s.logger.WarnContext(ctx, "factor change notice not sent", "user", u.ID, "err", err)
		}
	}
}

// displayName names the service in messages to people.
func (s *Server) displayName() string { return s.cfg.DisplayName }

// Removing the password. A person with a passkey may remove their password where no
// policy needs one (consent.PasswordRequired): the account becomes passkey-only, and the
// password form refuses it like a wrong password. The last passkey of an account without
// a password cannot be removed (checkRemoval).

// Why a password stays, as the account page says it.
const (
	msgPasswordNone        = "Your account has no password."
	msgPasswordNeedPasskey = "Add a passkey first: without a password, you sign in with it."
	msgPasswordPolicy      = "Your organisation's policy for your account needs a password: it cannot be removed."
	msgPasswordStays       = "Your password cannot be removed."
)

// errPasswordNeeded: the password cannot be removed (no passkey, or a policy needs it).
var errPasswordNeeded = errors.New("the password cannot be removed")

// passwordNeededError says why the password stays.
type passwordNeededError struct{ why string }

func (e passwordNeededError) Error() string { return e.why }
func (e passwordNeededError) Unwrap() error { return errPasswordNeeded }

// passwordNeededMessage is what the account page says about a password that stays.
func passwordNeededMessage(err error) string {
	var p passwordNeededError
	if errors.As(err, &p) {
		return p.why
	}
	return msgPasswordStays
}

// passwordRemovable reports (nil) whether u may remove their password: they have one, a
// confirmed passkey among factors (their factors, confirmed or not), and their account
// type's policy does not need a password.
func (s *Server) passwordRemovable(ctx context.Context, u *storage.User, factors []storage.Factor) error {
	if u.PasswordHash == "" {
		return passwordNeededError{msgPasswordNone}
	}
	if !slices.ContainsFunc(factors, func(f storage.Factor) bool { return f.Confirmed && f.Kind == storage.FactorWebAuthn }) {
		return passwordNeededError{msgPasswordNeedPasskey}
	}
	tp, err := s.store.GetTypePolicy(ctx, u.Type)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account type policy: %w", err)
	}
	if consent.PasswordRequired(*tp) {
		return passwordNeededError{msgPasswordPolicy}
	}
	return nil
}

// removePassword removes u's password, when passwordRemovable allows it; audited.
func (s *Server) removePassword(ctx context.Context, u *storage.User) error {
	factors, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("list factors: %w", err)
	}
	if err := s.passwordRemovable(ctx, u, factors); err != nil {
		if errors.Is(err, errPasswordNeeded) {
			s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventPasswordRemove, UserID: u.ID, Result: audit.ResultFailure, Reason: "refused: " + err.Error()})
		}
		return err
	}
	// Written ahead: a removal whose event cannot be written does not happen.
	ev := storage.AuditEvent{Type: audit.EventPasswordRemove, UserID: u.ID, Result: audit.ResultSuccess}
	if err := s.audited(ctx, ev, func() error {
		u.PasswordHash, u.UpdatedAt = "", s.now()
		return s.store.UpdateUser(ctx, u)
	}); err != nil {
		return fmt.Errorf("remove password: %w", err)
	}
	return nil
}
