package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// MFAConfig configures the second factors. A nil sender leaves that factor kind off.
type MFAConfig struct {
	EmailSender mfa.EmailSender
	SMSSender   mfa.SMSSender
	Phones      mfa.PhonePolicy
	// WebAuthn relying party; the zero value means RP ID = issuer host, origin = issuer.
	WebAuthn mfa.WebAuthnConfig
	// Limits bound guessing of second factors; zero fields take the defaults.
	Limits MFALimits
	// SendLimits bound the e-mail and SMS codes sent per destination and per address.
	SendLimits SendLimits
	// FreshFor is how recent a sign-in must be to remove a factor or regenerate backup
	// codes on the account page; default 10m.
	FreshFor time.Duration
	// Grace lets a person whom policy requires to use a second factor, and who has none,
	// sign in without one for a while; zero fields mean no grace (enrol at once).
	Grace GracePeriod
}

// GracePeriod bounds the logins allowed before forced enrolment. When both limits are
// set, the grace ends when either runs out.
type GracePeriod struct {
	Logins int           // logins let through
	Period time.Duration // time since the first such login
}

// combineAMR merges AMR values, adds "mfa" when two or more kinds of factor were used
// (or keeps it when a set already has it: a passkey with user verification is
// multi-factor on its own), and returns them sorted.
func combineAMR(sets ...[]string) []string {
	var out []string
	multi := false
	for _, s := range sets {
		for _, v := range s {
			if v == mfa.AMRMFA {
				multi = true
			} else if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	// "user" qualifies another method; it is not a kind of its own.
	kinds := 0
	for _, v := range out {
		if v != mfa.AMRUser {
			kinds++
		}
	}
	if kinds >= 2 || multi {
		out = append(out, mfa.AMRMFA)
	}
	sort.Strings(out)
	return out
}

// acrFor maps AMR values to the level reached.
func acrFor(amr []string) string {
	switch {
	case slices.Contains(amr, mfa.AMRMFA) && (slices.Contains(amr, mfa.AMRHardware) || slices.Contains(amr, mfa.AMRSoftware)):
		return consent.ACRPhishingResistant
	case slices.Contains(amr, mfa.AMRMFA):
		return consent.ACRMFA
	default:
		return consent.ACRPassword
	}
}

// confirmedFactors returns the user's usable factors (confirmed, of a kind this server
// offers), most recently used first and backup codes last.
func (s *Server) confirmedFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	all, err := s.store.ListFactors(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	return s.offeredConfirmed(all), nil
}

// offeredConfirmed returns, in a new slice, the confirmed factors of all whose kind this
// server offers, backup codes last (confirmedFactors without the read).
func (s *Server) offeredConfirmed(all []storage.Factor) []storage.Factor {
	out := make([]storage.Factor, 0, len(all))
	for _, f := range all {
		if _, err := s.factors.Get(f.Kind); err == nil && f.Confirmed {
			out = append(out, f)
		}
	}
	// Backup codes are the way back in, never the method offered first.
	slices.SortStableFunc(out, func(a, b storage.Factor) int {
		return boolInt(a.Kind == storage.FactorBackup) - boolInt(b.Kind == storage.FactorBackup)
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ownedFactor loads factor id and checks it belongs to u.
func (s *Server) ownedFactor(ctx context.Context, u *storage.User, id string) (*storage.Factor, mfa.Factor, error) {
	f, err := s.store.GetFactor(ctx, id)
	if err != nil || f.UserID != u.ID {
		return nil, nil, fmt.Errorf("factor %q: %w", id, storage.ErrNotFound)
	}
	impl, err := s.factors.Get(f.Kind)
	if err != nil {
		return nil, nil, err
	}
	return f, impl, nil
}

func kindReason(kind storage.FactorKind, detail string) string {
	if detail == "" {
		return "kind=" + string(kind)
	}
	return "kind=" + string(kind) + " " + detail
}

// startEnroll begins enrolling a factor of kind for u.
func (s *Server) startEnroll(ctx context.Context, u *storage.User, kind storage.FactorKind, req mfa.EnrollRequest) (*mfa.Enrollment, error) {
	impl, err := s.factors.Get(kind)
	if err != nil {
		return nil, err
	}
	// An unfinished enrolment of the same kind is abandoned: remove it.
	existing, err := s.store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	for _, f := range existing {
		if f.Kind == kind && !f.Confirmed {
			if err := s.store.DeleteFactor(ctx, u.ID, f.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("remove abandoned enrolment: %w", err)
			}
		}
	}
	if kind == storage.FactorBackup {
		// New backup codes work at once: written ahead, a set whose event cannot be
		// written is not made (the old codes stay).
		ev := storage.AuditEvent{Type: audit.EventMFARegenerate, UserID: u.ID, Result: audit.ResultSuccess, Reason: kindReason(kind, "")}
		var enr *mfa.Enrollment
		if err := s.audited(ctx, ev, func() (err error) { enr, err = impl.Enroll(ctx, u, req); return err }); err != nil {
			return nil, err
		}
		s.announceFactorChange(ctx, u, enr.Factor, true)
		return enr, nil
	}
	// Any other factor is unusable until confirmEnroll, whose event is written before it
	// counts: starting grants nothing, and its event follows the outcome.
	enr, err := impl.Enroll(ctx, u, req)
	if err != nil {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrollStart, UserID: u.ID, Result: audit.ResultFailure, Reason: kindReason(kind, errReason(err))})
		return nil, err
	}
	s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnrollStart, UserID: u.ID, Result: audit.ResultSuccess, Reason: kindReason(kind, "")})
	return enr, nil
}

// confirmEnroll finishes enrolment of factor id with the person's response. Wrong codes
// count against the same lockout as sign-in checks.
func (s *Server) confirmEnroll(ctx context.Context, u *storage.User, id, challengeID, response string) error {
	f, impl, err := s.ownedFactor(ctx, u, id)
	if err != nil {
		return err
	}
	if f.Confirmed {
		return fmt.Errorf("factor already enrolled: %w", storage.ErrConflict)
	}
	att, err := s.reserveMFA(ctx, u, f.Kind)
	if err != nil {
		return err
	}
	written := false // set by confirmingFactor once the event is written ahead
	if err := impl.Confirm(context.WithValue(ctx, enrolWrittenKey{}, &written), u, f, challengeID, response); err != nil {
		s.logger.InfoContext(ctx, "mfa enrolment failed", "user", u.ID, "kind", f.Kind, "err", err)
		switch {
		case written: // passed its check, but was not stored as confirmed
			s.notDone(ctx, enrolEvent(f), err)
		case !errors.Is(err, audit.ErrNotRecorded):
			s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAEnroll, UserID: u.ID, Result: audit.ResultFailure, Reason: kindReason(f.Kind, errReason(err))})
		}
		return s.settleMFA(ctx, att, u, f.Kind, err)
	}
	_ = s.settleMFA(ctx, att, u, f.Kind, nil)
	s.announceFactorChange(ctx, u, f, true)
	return nil
}

// enrolWrittenKey keys the flag confirmEnroll passes to confirmingFactor in ctx.
type enrolWrittenKey struct{}

// enrolEvent is the mfa.enroll success event of factor f.
func enrolEvent(f *storage.Factor) storage.AuditEvent {
	return storage.AuditEvent{Type: audit.EventMFAEnroll, UserID: f.UserID, Result: audit.ResultSuccess,
		FactorID: f.ID, Reason: kindReason(f.Kind, "factor="+f.ID)}
}

// confirmingFactor is mfa.Env.Confirming: it writes the mfa.enroll event of factor f,
// which has passed its enrolment check, before f is stored as confirmed. A factor whose
// event cannot be written stays unconfirmed (the error is Confirm's), and the person
// confirms it again with a new code.
func (s *Server) confirmingFactor(ctx context.Context, f *storage.Factor) error {
	if err := s.audit.Write(ctx, enrolEvent(f)); err != nil {
		return err
	}
	if w, ok := ctx.Value(enrolWrittenKey{}).(*bool); ok {
		*w = true
	}
	return nil
}

// challenge starts a sign-in check with factor id (sends a code, or returns WebAuthn options).
func (s *Server) challenge(ctx context.Context, u *storage.User, id string) (*storage.Factor, *mfa.Challenge, error) {
	f, impl, err := s.ownedFactor(ctx, u, id)
	if err != nil {
		return nil, nil, err
	}
	if !f.Confirmed {
		return nil, nil, fmt.Errorf("factor not enrolled: %w", storage.ErrNotFound)
	}
	c, err := impl.Challenge(ctx, u, f)
	if err != nil {
		return f, nil, err
	}
	return f, c, nil
}

// verify checks a response to factor id under the lockout guard and returns the AMR
// values earned.
func (s *Server) verify(ctx context.Context, u *storage.User, id, challengeID, response string) ([]string, *storage.Factor, error) {
	f, impl, err := s.ownedFactor(ctx, u, id)
	if err != nil {
		return nil, nil, err
	}
	if !f.Confirmed {
		return nil, nil, fmt.Errorf("factor not enrolled: %w", storage.ErrNotFound)
	}
	// The attempt is reserved before the response is looked at.
	att, err := s.reserveMFA(ctx, u, f.Kind)
	if err != nil {
		return nil, f, err
	}
	amr, err := impl.Verify(ctx, u, f, challengeID, response)
	if err != nil {
		// Full detail for operators (e.g. a WebAuthn origin mismatch); factor errors never
		// carry the code or secret.
		s.logger.InfoContext(ctx, "mfa verification failed", "user", u.ID, "kind", f.Kind, "err", err)
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAVerify, UserID: u.ID, Result: audit.ResultFailure,
			FactorID: f.ID, Reason: kindReason(f.Kind, errReason(err))})
		return nil, f, s.settleMFA(ctx, att, u, f.Kind, err)
	}
	_ = s.settleMFA(ctx, att, u, f.Kind, nil)
	// A check whose event cannot be written does not count: the caller fails.
	if err := s.audit.Write(ctx, storage.AuditEvent{Type: audit.EventMFAVerify, UserID: u.ID, Result: audit.ResultSuccess,
		FactorID: f.ID, Reason: kindReason(f.Kind, "")}); err != nil {
		return nil, f, err
	}
	return amr, f, nil
}

// guessFailure reports whether err is a wrong guess (it counts towards the lockout).
func guessFailure(err error) bool {
	return errors.Is(err, mfa.ErrInvalidCode) || errors.Is(err, mfa.ErrReplay) || errors.Is(err, mfa.ErrExpired)
}

// errReason is the audit reason of an MFA error: its sentinel, never user input.
func errReason(err error) string {
	var in *mfa.InputError
	var locked *regulation.LockedError
	switch {
	case errors.Is(err, mfa.ErrSendLimit):
		return "send limit reached"
	case errors.As(err, &locked):
		return "locked"
	case errors.Is(err, mfa.ErrReplay):
		return "replayed code"
	case errors.Is(err, mfa.ErrInvalidCode):
		return "invalid code"
	case errors.Is(err, mfa.ErrExpired):
		return "challenge expired or used up"
	case errors.Is(err, mfa.ErrSignCount):
		return "sign count regression"
	case errors.Is(err, mfa.ErrNotConfigured):
		return "not configured"
	case errors.As(err, &in):
		return "refused input: " + in.Message
	default:
		return "error"
	}
}

// removeFactor deletes factor id of u.
func (s *Server) removeFactor(ctx context.Context, u *storage.User, id string) error {
	f, err := s.store.GetFactor(ctx, id)
	if err != nil || f.UserID != u.ID {
		return fmt.Errorf("factor %q: %w", id, storage.ErrNotFound)
	}
	if err := s.checkRemoval(ctx, u, id); err != nil {
		return err
	}
	// Written ahead: a removal whose event cannot be written does not happen.
	ev := storage.AuditEvent{Type: audit.EventMFARemove, UserID: u.ID, Result: audit.ResultSuccess, FactorID: id, Reason: kindReason(f.Kind, "factor="+id)}
	if err := s.audited(ctx, ev, func() error { return s.store.DeleteFactor(ctx, u.ID, id) }); err != nil {
		return fmt.Errorf("delete factor: %w", err)
	}
	if f.Confirmed {
		s.announceFactorChange(ctx, u, f, false)
	}
	return nil
}

// mfaMessage is what a person is told about an MFA error, in English (the JSON API).
func mfaMessage(err error) string {
	id, args := mfaText(err)
	if len(args) == 0 {
		return id
	}
	return fmt.Sprintf(id, args...)
}

// mfaMessageFor is mfaMessage in the language of r's pages.
func (s *Server) mfaMessageFor(r *http.Request, err error) string {
	id, args := mfaText(err)
	return s.tr(r, id, args...)
}

// mfaText is the message id (and its arguments) of an MFA error.
func mfaText(err error) (string, []any) {
	var locked *regulation.LockedError
	var in *mfa.InputError
	switch {
	case errors.Is(err, mfa.ErrSendLimit):
		var locked *regulation.LockedError
		if errors.As(err, &locked) && !locked.Until.IsZero() {
			return web.N("Too many codes were sent. Try again after %s."), []any{locked.Until.UTC().Format("15:04 MST")}
		}
		return web.N("Too many codes were sent. Wait 15 minutes and try again."), nil
	case errors.As(err, &locked):
		if locked.Permanent {
			return web.N("Too many failed attempts: your second factors are locked. Contact your administrator."), nil
		}
		return web.N("Too many failed attempts. Try again after %s."), []any{locked.Until.UTC().Format("15:04:05 MST")}
	case errors.As(err, &in):
		return in.Message, nil
	case errors.Is(err, mfa.ErrExpired):
		return web.N("That code has expired or was used up. Request a new one."), nil
	case errors.Is(err, mfa.ErrNotConfigured):
		return web.N("That method is not available on this server."), nil
	case errors.Is(err, errLastRequiredFactor):
		return web.N("You cannot remove this sign-in method: your account must keep one. Add another method first, then remove this one."), nil
	case errors.Is(err, errProofRequired):
		return web.N("To add a sign-in method, first confirm it is you with one you already have."), nil
	case errors.Is(err, mfa.ErrInvalidCode), errors.Is(err, mfa.ErrReplay), errors.Is(err, mfa.ErrSignCount):
		return web.N("That did not work. Check the code (or your security key) and try again."), nil
	default:
		return web.N("Something went wrong. Please try again."), nil
	}
}
