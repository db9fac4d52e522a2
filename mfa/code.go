package mfa

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
)

// Rules shared by the factors that send a code by message (e-mail and SMS).
const (
	codeDigits      = 6                // length of a sent code
	codeTTL         = 10 * time.Minute // how long a sent code is valid
	codeMaxAttempts = 3                // guesses allowed per sent code
	codeSendLimit   = 3                // codes sent per account and window
	codeSendWindow  = 15 * time.Minute // the window of codeSendLimit
)

// codeHashPurpose separates the keyed hashes of sent codes from other uses of HashKey.
const codeHashPurpose = "code"

// codeDelivery carries one code to a destination. It calls failed once for every
// failed delivery attempt (a provider that retries may fail several times before it
// succeeds or gives up) and returns the final error, if any. Implementations must not
// put the code into errors, logs or audit events.
type codeDelivery func(ctx context.Context, to, code string, enrolling bool, failed func(error)) error

// codeFactor is the logic shared by the e-mail and SMS factors: it sends codes, stores
// their keyed hashes as challenges and checks the answers.
type codeFactor struct {
	env     *Env
	kind    storage.FactorKind
	amr     string
	mask    func(target string) string // destination as shown to people and in audit
	deliver codeDelivery
}

func (c *codeFactor) logger() *slog.Logger {
	if c.env.Logger != nil {
		return c.env.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// checkFactor refuses f unless it is a factor of c's kind belonging to u and, when
// confirmed is set, one whose enrolment was finished. Like the other factors, it
// refuses with the generic ErrInvalidCode.
func (c *codeFactor) checkFactor(u *storage.User, f *storage.Factor, confirmed bool) error {
	if u == nil || f == nil || f.UserID != u.ID || f.Kind != c.kind || f.Target == "" {
		return fmt.Errorf("%w: not a %s factor of this user", ErrInvalidCode, c.kind)
	}
	if confirmed && !f.Confirmed {
		return fmt.Errorf("%w: %s factor %s is not confirmed", ErrInvalidCode, c.kind, f.ID)
	}
	return nil
}

// create stores a new unconfirmed factor for u, sends it a first code and returns the
// enrolment. When the code cannot be sent the factor is removed again.
func (c *codeFactor) create(ctx context.Context, u *storage.User, target, name string) (*Enrollment, error) {
	f := &storage.Factor{
		ID:        newID(),
		UserID:    u.ID,
		Kind:      c.kind,
		Name:      name,
		Target:    target,
		CreatedAt: c.env.now(),
	}
	if err := c.env.Store.CreateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("create %s factor: %w", c.kind, err)
	}
	ch, err := c.send(ctx, u, f, true)
	if err != nil {
		if derr := c.env.Store.DeleteFactor(context.WithoutCancel(ctx), u.ID, f.ID); derr != nil {
			c.logger().WarnContext(ctx, "mfa: remove factor after failed send", "kind", c.kind, "user_id", u.ID, "error", derr)
		}
		return nil, err
	}
	return &Enrollment{Factor: f, ChallengeID: ch.ID, SentTo: ch.SentTo}, nil
}

// confirm checks the first code sent to f and marks f confirmed: the destination is
// proven to reach the person, and only now may f serve as a second factor.
func (c *codeFactor) confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, code string) error {
	if err := c.checkFactor(u, f, false); err != nil {
		return err
	}
	if err := c.check(ctx, u, f, challengeID, code); err != nil {
		return err
	}
	if err := c.env.confirming(ctx, f); err != nil {
		return err
	}
	f.Confirmed = true
	if err := c.env.Store.UpdateFactor(ctx, f); err != nil {
		return fmt.Errorf("confirm %s factor: %w", c.kind, err)
	}
	return nil
}

// challenge sends a fresh code to the confirmed factor f.
func (c *codeFactor) challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	if err := c.checkFactor(u, f, true); err != nil {
		return nil, err
	}
	return c.send(ctx, u, f, false)
}

// verify checks a code sent to the confirmed factor f, records the use and returns the
// AMR values earned.
func (c *codeFactor) verify(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, code string) ([]string, error) {
	if err := c.checkFactor(u, f, true); err != nil {
		return nil, err
	}
	if err := c.check(ctx, u, f, challengeID, code); err != nil {
		return nil, err
	}
	f.LastUsedAt = c.env.now()
	if err := c.env.Store.UpdateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("record use of %s factor: %w", c.kind, err)
	}
	return []string{c.amr}, nil
}

// send counts the send against the account's limit, stores a challenge holding the
// keyed hash of a fresh code and delivers the code to f.Target.
func (c *codeFactor) send(ctx context.Context, u *storage.User, f *storage.Factor, enrolling bool) (*Challenge, error) {
	now := c.env.now()
	n, err := c.env.Store.HitRateLimit(ctx, "mfa:send:"+u.ID, codeSendWindow, now)
	if err != nil {
		return nil, fmt.Errorf("count %s code sends: %w", c.kind, err)
	}
	if n > codeSendLimit {
		return nil, ErrSendLimit
	}
	if c.env.SendGate != nil {
		if err := c.env.SendGate(ctx, c.kind, u.ID, f.Target); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSendLimit, err)
		}
	}
	code, err := randomDigits(codeDigits)
	if err != nil {
		return nil, fmt.Errorf("generate %s code: %w", c.kind, err)
	}
	ch := &storage.Challenge{
		ID:        newID(),
		UserID:    u.ID,
		FactorID:  f.ID,
		Kind:      string(c.kind),
		CodeHash:  c.env.Hash(codeHashPurpose, code),
		CreatedAt: now,
		ExpiresAt: now.Add(codeTTL),
	}
	if err := c.env.Store.CreateChallenge(ctx, ch); err != nil {
		return nil, fmt.Errorf("store %s challenge: %w", c.kind, err)
	}

	sentTo := c.mask(f.Target)
	failures := 0
	failed := func(err error) {
		failures++
		c.providerFailure(ctx, u.ID, code, err)
	}
	if err := c.deliver(ctx, f.Target, code, enrolling, failed); err != nil {
		if failures == 0 {
			c.providerFailure(ctx, u.ID, code, err)
		}
		return nil, fmt.Errorf("send %s code: %w", c.kind, &redactedError{err: err, secret: code})
	}
	c.env.audit(ctx, storage.AuditEvent{
		Type:   "mfa.code.sent",
		UserID: u.ID,
		Result: "success",
		Reason: fmt.Sprintf("%s code sent to %s", c.kind, sentTo),
	})
	return &Challenge{ID: ch.ID, SentTo: sentTo}, nil
}

// providerFailure logs and audits one failed delivery attempt, without the code.
func (c *codeFactor) providerFailure(ctx context.Context, userID, code string, err error) {
	msg := redact(err.Error(), code)
	c.logger().WarnContext(ctx, "mfa: code delivery failed", "kind", c.kind, "user_id", userID, "error", msg)
	c.env.audit(ctx, storage.AuditEvent{
		Type:   "mfa.provider.failure",
		UserID: userID,
		Result: "failure",
		Reason: fmt.Sprintf("%s provider: %s", c.kind, msg),
	})
}

// check counts one attempt at challenge challengeID and accepts code if it is the one
// sent for it, consuming the challenge. The challenge must be unexpired, unconsumed,
// within its attempts and belong to u and f; otherwise ErrExpired. A wrong code is
// ErrInvalidCode.
func (c *codeFactor) check(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, code string) error {
	if challengeID == "" {
		return ErrExpired
	}
	now := c.env.now()
	ch, err := c.env.Store.AttemptChallenge(ctx, challengeID, now, codeMaxAttempts)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrExpired
	}
	if err != nil {
		return fmt.Errorf("attempt %s challenge: %w", c.kind, err)
	}
	if ch.UserID != u.ID || ch.FactorID != f.ID || ch.Kind != string(c.kind) || ch.CodeHash == "" {
		return ErrExpired
	}
	got := c.env.Hash(codeHashPurpose, normalizeCode(code))
	if subtle.ConstantTimeCompare([]byte(got), []byte(ch.CodeHash)) != 1 {
		return ErrInvalidCode
	}
	if err := c.env.Store.ConsumeChallenge(ctx, ch.ID, now); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrExpired // a concurrent check won
		}
		return fmt.Errorf("consume %s challenge: %w", c.kind, err)
	}
	return nil
}

// normalizeCode drops the spaces and dashes people type or paste around a code.
func normalizeCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '\u00a0':
			return -1
		}
		return r
	}, s)
}

// issuerName is how messages name the service.
func issuerName(e *Env) string {
	if e.DisplayName != "" {
		return e.DisplayName
	}
	if e.Issuer != "" {
		if u, err := url.Parse(e.Issuer); err == nil && u.Host != "" {
			return u.Host
		}
		return e.Issuer
	}
	return "your account"
}

// redact replaces every occurrence of secret in s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// redactedError wraps a provider error so that its text never shows the code, should a
// provider echo the message back.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string { return redact(e.err.Error(), e.secret) }
func (e *redactedError) Unwrap() error { return e.err }
