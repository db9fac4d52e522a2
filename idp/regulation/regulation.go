// Package regulation is the one attempt-accounting component for every guessable
// secret (passwords, second-factor codes, backup codes, WebAuthn assertions, recovery
// links): it reserves an attempt atomically in the database under every limit that
// applies before the secret is checked, and settles it once the check is done.
package regulation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
)

// Store is what the regulator needs from storage.
type Store interface {
	ReserveAttempt(ctx context.Context, key string, rule storage.AttemptRule, now time.Time) (storage.AttemptResult, error)
	ReleaseAttempt(ctx context.Context, key string, rule storage.AttemptRule) error
	ResetAttempts(ctx context.Context, key string) error
	ResetAttemptsPrefix(ctx context.Context, prefix string) (int64, error)
}

// OnSuccess says what a successful check does to a limit's counter.
type OnSuccess int

const (
	// Reset clears the counter: it counts consecutive failures (of an account, of an
	// account from one address, of a known device).
	Reset OnSuccess = iota
	// Release gives back only this attempt: the counter counts failures of many
	// accounts (an address), which one success must not wipe out.
	Release
)

// Limit is one counter an attempt must pass.
type Limit struct {
	Key       string
	Rule      storage.AttemptRule
	OnSuccess OnSuccess
	// ClearOnly: the attempt is not counted here and never refused by it; a success
	// resets it (a known device's success ends the account's consecutive failures).
	ClearOnly bool
}

// LockedError says the attempt was not made: a limit is used up or backing off.
type LockedError struct {
	// Until is when the refusing limit accepts attempts again; zero with Permanent.
	Until time.Time
	// Permanent: only a success elsewhere (e.g. from a known device) or an
	// administrator's unlock clears the limit (NIST SP 800-63B's cap of consecutive
	// failures).
	Permanent bool
	// Key is the refusing counter (for logs and audit, never shown to people).
	Key string
}

func (e *LockedError) Error() string {
	if e.Permanent {
		return "locked after too many failures; an administrator must unlock it"
	}
	return fmt.Sprintf("locked until %s", e.Until.UTC().Format(time.RFC3339))
}

// Regulator reserves attempts. Its zero value is not usable: set Store.
type Regulator struct {
	Store Store
	Now   func() time.Time
}

func (r *Regulator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Attempt is a reserved attempt; settle it with Succeeded, Failed or Cancel.
type Attempt struct {
	r       *Regulator
	limits  []Limit
	results []storage.AttemptResult
	now     time.Time
}

// Reserve reserves one attempt under every limit, in order, before the secret is
// checked. When a limit refuses, the attempts already reserved under earlier limits are
// released and a *LockedError says until when; nothing is checked then.
func (r *Regulator) Reserve(ctx context.Context, limits ...Limit) (*Attempt, error) {
	a := &Attempt{r: r, now: r.now()}
	for _, l := range limits {
		if l.ClearOnly {
			a.limits = append(a.limits, l)
			a.results = append(a.results, storage.AttemptResult{})
			continue
		}
		res, err := r.Store.ReserveAttempt(ctx, l.Key, l.Rule, a.now)
		if err != nil {
			a.release(ctx)
			return nil, fmt.Errorf("reserve attempt: %w", err)
		}
		if !res.Reserved {
			a.release(ctx)
			return nil, &LockedError{Until: res.BlockedUntil, Permanent: res.BlockedUntil.IsZero(), Key: l.Key}
		}
		a.limits = append(a.limits, l)
		a.results = append(a.results, res)
	}
	return a, nil
}

// release gives back every attempt reserved so far. Errors are joined and returned.
func (a *Attempt) release(ctx context.Context) error {
	var errs []error
	for _, l := range a.limits {
		if l.ClearOnly {
			continue
		}
		if err := a.r.Store.ReleaseAttempt(context.WithoutCancel(ctx), l.Key, l.Rule); err != nil {
			errs = append(errs, err)
		}
	}
	a.limits, a.results = nil, nil
	return errors.Join(errs...)
}

// Succeeded settles a correct guess: consecutive-failure counters are reset and shared
// counters get the attempt back.
func (a *Attempt) Succeeded(ctx context.Context) error {
	var errs []error
	for _, l := range a.limits {
		var err error
		if l.OnSuccess == Reset || l.ClearOnly {
			err = a.r.Store.ResetAttempts(context.WithoutCancel(ctx), l.Key)
		} else {
			err = a.r.Store.ReleaseAttempt(context.WithoutCancel(ctx), l.Key, l.Rule)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	a.limits = nil
	return errors.Join(errs...)
}

// Failed settles a wrong guess: the reserved attempts stay counted. It returns the lock
// this failure leaves behind, if any (a limit now used up or backing off), so the person
// can be told at once.
func (a *Attempt) Failed() *LockedError {
	var worst *LockedError
	for i, l := range a.limits {
		if l.ClearOnly {
			continue
		}
		res := a.results[i]
		var lock *LockedError
		switch {
		case res.Count >= l.Rule.Limit && l.Rule.Window <= 0:
			lock = &LockedError{Permanent: true, Key: l.Key}
		case res.BlockedUntil.After(a.now):
			lock = &LockedError{Until: res.BlockedUntil, Key: l.Key}
		case res.Count >= l.Rule.Limit:
			lock = &LockedError{Until: res.WindowEnd, Key: l.Key}
		default:
			continue
		}
		if worst == nil || lock.Permanent || (!worst.Permanent && lock.Until.After(worst.Until)) {
			worst = lock
		}
	}
	a.limits = nil
	return worst
}

// Cancel settles an attempt whose secret was never judged (a server error, a
// malformed request): every reserved attempt is given back.
func (a *Attempt) Cancel(ctx context.Context) error { return a.release(ctx) }

// Unlock clears every counter whose key starts with prefix (an administrator's unlock).
func (r *Regulator) Unlock(ctx context.Context, prefix string) (int64, error) {
	return r.Store.ResetAttemptsPrefix(ctx, prefix)
}
