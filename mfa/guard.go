package mfa

import (
	"context"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
)

// LockedError says a person must wait before trying a factor again.
type LockedError struct {
	Until time.Time
	// Permanent: NIST SP 800-63B's cap of consecutive failures was reached; only an
	// administrator can unlock.
	Permanent bool
}

func (e *LockedError) Error() string {
	if e.Permanent {
		return "mfa: locked after too many failures; an administrator must unlock it"
	}
	return fmt.Sprintf("mfa: locked until %s", e.Until.UTC().Format(time.RFC3339))
}

// Guard limits guessing of every guessable secret (TOTP, backup, e-mail and SMS codes).
// Per account: consecutive failures lock the account's second factors with a delay that
// doubles from LockAfter on, and MaxFailures consecutive failures lock them until an
// administrator resets them (NIST SP 800-63B 5.2.2 allows no more than 100). Per IP: at
// most PerIP failures per IPWindow. All counters live in the database, shared by every
// process.
type Guard struct {
	Store       storage.Storage
	Now         func() time.Time
	LockAfter   int           // failures before the first lock, default 5
	BaseDelay   time.Duration // first lock, default 1m; doubles per further failure
	MaxDelay    time.Duration // longest temporary lock, default 1h
	MaxFailures int           // permanent lock, default 100
	PerIP       int           // failures per IP and window, default 50
	IPWindow    time.Duration // default 15m
}

func (g *Guard) defaults() {
	if g.LockAfter <= 0 {
		g.LockAfter = 5
	}
	if g.BaseDelay <= 0 {
		g.BaseDelay = time.Minute
	}
	if g.MaxDelay <= 0 {
		g.MaxDelay = time.Hour
	}
	if g.MaxFailures <= 0 || g.MaxFailures > 100 {
		g.MaxFailures = 100
	}
	if g.PerIP <= 0 {
		g.PerIP = 50
	}
	if g.IPWindow <= 0 {
		g.IPWindow = 15 * time.Minute
	}
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func accountKey(userID string) string { return "mfa:user:" + userID }
func ipKey(ip string) string          { return "mfa:ip:" + ip }

// Check returns a *LockedError when the account (or the IP) may not try now.
func (g *Guard) Check(ctx context.Context, userID, ip string) error {
	g.defaults()
	n, until, err := g.Store.GetFailures(ctx, accountKey(userID))
	if err != nil {
		return fmt.Errorf("read failures: %w", err)
	}
	now := g.now()
	if n >= g.MaxFailures {
		return &LockedError{Permanent: true}
	}
	if now.Before(until) {
		return &LockedError{Until: until}
	}
	if ip != "" {
		c, err := g.Store.RateLimitCount(ctx, ipKey(ip), g.IPWindow, now)
		if err != nil {
			return fmt.Errorf("read ip failures: %w", err)
		}
		if c >= g.PerIP {
			return &LockedError{Until: now.Add(g.IPWindow)}
		}
	}
	return nil
}

// Fail records a failed check and returns the lock it caused, if any.
func (g *Guard) Fail(ctx context.Context, userID, ip string) (*LockedError, error) {
	g.defaults()
	now := g.now()
	if ip != "" {
		if _, err := g.Store.HitRateLimit(ctx, ipKey(ip), g.IPWindow, now); err != nil {
			return nil, fmt.Errorf("count ip failure: %w", err)
		}
	}
	n, err := g.Store.IncrementFailures(ctx, accountKey(userID), now)
	if err != nil {
		return nil, fmt.Errorf("count failure: %w", err)
	}
	if n >= g.MaxFailures {
		return &LockedError{Permanent: true}, nil
	}
	if n < g.LockAfter {
		return nil, nil
	}
	delay := g.BaseDelay
	for i := g.LockAfter; i < n && delay < g.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, g.MaxDelay)
	until := now.Add(delay)
	if err := g.Store.SetLockedUntil(ctx, accountKey(userID), until); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return &LockedError{Until: until}, nil
}

// Succeed clears the account's consecutive-failure counter.
func (g *Guard) Succeed(ctx context.Context, userID string) error {
	return g.Store.ResetFailures(ctx, accountKey(userID))
}

// Reset clears the account's counter (administrator unlock).
func (g *Guard) Reset(ctx context.Context, userID string) error {
	return g.Store.ResetFailures(ctx, accountKey(userID))
}
