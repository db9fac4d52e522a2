package admin

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Operator actions for someone who lost their second factor or whose account is at
// risk: ending their sessions, and resetting their MFA with an optional recovery link.

// ChallengeRecovery is the storage.Challenge kind of a recovery link.
const ChallengeRecovery = "recovery"

// RecoveryLinkLifetime is how long a recovery link issued by ResetMFA stays valid.
const RecoveryLinkLifetime = 24 * time.Hour

// endSessions ends every session of userID through the EndSessions hook, or in Store.
func (a *Admin) endSessions(ctx context.Context, userID, reason string) (int, error) {
	if a.EndSessions != nil {
		return a.EndSessions(ctx, userID, reason)
	}
	n, err := a.Store.DeleteUserSessions(ctx, userID)
	return int(n), err
}

// EndUserSessions signs the user with that id or e-mail out of every browser. Tokens
// already issued stay valid until they expire or are revoked. It only takes access
// away, so it goes ahead when its audit event cannot be written (recordProtective).
func (a *Admin) EndUserSessions(ctx context.Context, actor, user, reason string) (int, error) {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return 0, err
	}
	reason = strings.TrimSpace(reason)
	n, err := a.endSessions(ctx, u.ID, "admin: "+reason)
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminSessionsEnd, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("reason=%q err=%v", reason, err))
		return 0, fmt.Errorf("end sessions of user %s: %w", u.ID, err)
	}
	a.recordProtective(ctx, actor, storage.AuditEvent{Type: audit.EventAdminSessionsEnd, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("reason=%q sessions_ended=%d", reason, n))
	return n, nil
}

// ResetOptions says what ResetMFA does besides ending sessions.
type ResetOptions struct {
	// RemoveFactors deletes every second factor and backup code of the person.
	RemoveFactors bool
	// RecoveryLink issues a one-time link, valid RecoveryLinkLifetime, that signs the
	// person in (with their password) to enrol a new factor.
	RecoveryLink bool
	// Issuer is the base URL of the link; Admin.Issuer when empty.
	Issuer string
}

// ResetResult is what ResetMFA did.
type ResetResult struct {
	UserID         string
	Email          string
	FactorsRemoved int64
	SessionsEnded  int
	DevicesRemoved int64
	// RecoveryLink is the one-time link (only when asked for): hand it to the person, it
	// is not stored and cannot be shown again.
	RecoveryLink      string
	RecoveryExpiresAt time.Time
}

// ResetMFA resets the second factors of the user with that id or e-mail, for someone who
// lost theirs: it ends every session, forgets every remembered device, revokes every
// token, clears the MFA lockout and, as opts asks, removes every factor and issues a
// recovery link. reason is mandatory and recorded in the audit trail (the link never is).
//
// A reset removes factors, lifts the lockout and issues a link: it widens access, so its
// audit event is written ahead, before any step, and nothing happens when it cannot be
// written (to cut a person's access while the trail is down, end their sessions or
// disable them). The event says what the reset does, not how many factors, sessions and
// devices it removed (known only afterwards; ResetResult has them); a step that fails
// is recorded as a failure event with the counts so far.
func (a *Admin) ResetMFA(ctx context.Context, actor, user, reason string, opts ResetOptions) (*ResetResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, invalidf("a reason is required to reset a user's MFA (it is recorded in the audit trail)")
	}
	base := strings.TrimRight(strings.TrimSpace(opts.Issuer), "/")
	if base == "" {
		base = strings.TrimRight(strings.TrimSpace(a.Issuer), "/")
	}
	if opts.RecoveryLink {
		if iss, err := url.Parse(base); base == "" || err != nil || !iss.IsAbs() || iss.Host == "" {
			return nil, invalidf("a recovery link needs the issuer URL (e.g. https://id.example.com), got %q", base)
		}
	}
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	res := &ResetResult{UserID: u.ID, Email: u.Email}
	now := a.now()
	// Every reset ends the sessions, forgets the devices, revokes the tokens and lifts the
	// lockout; the detail names what varies.
	detail := fmt.Sprintf("reason=%q remove_factors=%t", reason, opts.RemoveFactors)
	var (
		link string
		c    *storage.Challenge
	)
	if opts.RecoveryLink {
		// A person without a password cannot use a recovery link (it asks for the
		// password): they get an enrolment link, on which they register a new passkey.
		kind, path := ChallengeRecovery, "/recovery"
		if u.PasswordHash == "" {
			kind, path = ChallengeEnrolment, "/enrol"
		}
		link, c = newLink(base, path, kind, u.ID, now)
		detail += " recovery_link=" + c.ID
		if kind == ChallengeEnrolment {
			detail += " (enrolment link: the account has no password)"
		}
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminMFAReset, UserID: u.ID, Result: audit.ResultSuccess}, detail); err != nil {
		return nil, fmt.Errorf("reset MFA of user %s: %w", u.ID, err)
	}
	done := func() string {
		return fmt.Sprintf("reason=%q factors_removed=%d sessions_ended=%d devices_removed=%d",
			reason, res.FactorsRemoved, res.SessionsEnded, res.DevicesRemoved)
	}
	fail := func(step string, err error) (*ResetResult, error) {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminMFAReset, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("%s; failed to %s: err=%v", done(), step, err))
		return nil, fmt.Errorf("reset MFA of user %s: %s: %w", u.ID, step, err)
	}
	if opts.RemoveFactors {
		if res.FactorsRemoved, err = a.Store.DeleteUserFactors(ctx, u.ID); err != nil {
			return fail("remove factors", err)
		}
	}
	if res.SessionsEnded, err = a.endSessions(ctx, u.ID, "mfa reset"); err != nil {
		return fail("end sessions", err)
	}
	if res.DevicesRemoved, err = a.Store.DeleteUserDevices(ctx, u.ID); err != nil {
		return fail("remove trusted devices", err)
	}
	if err := a.Store.RevokeUserTokens(ctx, u.ID, now); err != nil {
		return fail("revoke tokens", err)
	}
	// A permanent lockout is lifted only by an administrator: this is that moment.
	if err := regulation.UnlockUser(ctx, a.Store, u.ID); err != nil {
		return fail("clear the MFA lockout", err)
	}
	if c != nil {
		if err := a.Store.CreateChallenge(ctx, c); err != nil {
			return fail("issue a recovery link", err)
		}
		res.RecoveryLink, res.RecoveryExpiresAt = link, c.ExpiresAt
	}
	return res, nil
}

// newLink returns a one-time link (base + path) for userID and its challenge of kind,
// for the caller to store (Store.CreateChallenge) once its audit event is written. Only
// the SHA-256 of the link's 256-bit secret is in the challenge.
func newLink(base, path, kind, userID string, now time.Time) (string, *storage.Challenge) {
	token := secret.Token(32)
	c := &storage.Challenge{
		ID: secret.NewID(), UserID: userID, Kind: kind, CodeHash: secret.Hash(token),
		CreatedAt: now, ExpiresAt: now.Add(RecoveryLinkLifetime),
	}
	q := url.Values{"id": {c.ID}, "token": {token}}
	return base + path + "?" + q.Encode(), c
}
