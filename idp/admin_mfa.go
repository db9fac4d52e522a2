package idp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
)

// Operator actions on account types, groups, MFA policies and second factors. Like the
// rest of Admin they are shared by the CLI and the admin API, and every change is
// audited with the actor and what changed.

// Audit event types of these actions.
const (
	EventAdminPolicySet   = "admin.policy.set"
	EventAdminSessionsEnd = "admin.user.sessions.end"
	EventAdminMFAReset    = "admin.mfa.reset"
)

// ChallengeRecovery is the storage.Challenge kind of a recovery link.
const ChallengeRecovery = "recovery"

// RecoveryLinkLifetime is how long a recovery link issued by ResetMFA stays valid.
const RecoveryLinkLifetime = 24 * time.Hour

// PolicyFactorKinds are the factor kinds an MFA policy may name.
var PolicyFactorKinds = []string{
	string(mfa.KindTOTP), string(mfa.KindSMS), string(mfa.KindEmail), string(mfa.KindBackup), string(mfa.KindWebAuthn),
}

// InvalidInputError is an operator input that an Admin method refused; nothing was
// changed. The admin API answers it with 400.
type InvalidInputError struct{ Message string }

func (e *InvalidInputError) Error() string { return e.Message }

func invalidf(format string, args ...any) error {
	return &InvalidInputError{Message: fmt.Sprintf(format, args...)}
}

// accountTypePattern is what an account type or group name may look like.
var accountTypePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// groupPattern is what a group name may look like: no spaces or commas, so that lists of
// groups can be written comma-separated.
var groupPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

// normalizeAccountType trims and lower-cases t; empty stays empty (the default type).
func normalizeAccountType(t string) (string, error) {
	t = strings.ToLower(strings.TrimSpace(t))
	if t != "" && !accountTypePattern.MatchString(t) {
		return "", invalidf("invalid account type %q: use 1-63 characters a-z, 0-9, '.', '_' and '-', starting with a letter or digit", t)
	}
	return t, nil
}

// normalizeGroups trims the group names, drops empty ones and duplicates, and checks each.
func normalizeGroups(in []string) ([]string, error) {
	out := []string{}
	for _, g := range in {
		g = strings.TrimSpace(g)
		if g == "" || slices.Contains(out, g) {
			continue
		}
		if !groupPattern.MatchString(g) {
			return nil, invalidf("invalid group %q: use up to 128 characters A-Z, a-z, 0-9, '.', '_', ':', '/' and '-', starting with a letter or digit", g)
		}
		out = append(out, g)
	}
	return out, nil
}

// normalizeMFAPolicy validates p and returns it in canonical form: MFA lower-cased
// ("optional" when empty), factor kinds lower-cased without duplicates.
func normalizeMFAPolicy(p storage.MFAPolicy) (storage.MFAPolicy, error) {
	out := storage.MFAPolicy{PhishingResistant: p.PhishingResistant, MaxAge: p.MaxAge, RememberDevice: p.RememberDevice}
	switch m := strings.ToLower(strings.TrimSpace(p.MFA)); m {
	case "":
		out.MFA = consent.ModeOptional
	case consent.ModeOff, consent.ModeOptional, consent.ModeRequired:
		out.MFA = m
	default:
		return out, invalidf("invalid MFA setting %q: use %s, %s or %s", p.MFA, consent.ModeOff, consent.ModeOptional, consent.ModeRequired)
	}
	for _, k := range p.Factors {
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || slices.Contains(out.Factors, k) {
			continue
		}
		if !slices.Contains(PolicyFactorKinds, k) {
			return out, invalidf("invalid factor kind %q: use %s", k, strings.Join(PolicyFactorKinds, ", "))
		}
		out.Factors = append(out.Factors, k)
	}
	if out.MaxAge < 0 {
		return out, invalidf("max age must not be negative, got %s", out.MaxAge)
	}
	if out.RememberDevice < 0 {
		return out, invalidf("remember-device duration must not be negative, got %s", out.RememberDevice)
	}
	if out.PhishingResistant {
		if out.MFA == consent.ModeOff {
			return out, invalidf("a phishing-resistant policy cannot have MFA off")
		}
		if len(out.Factors) > 0 && !slices.Contains(out.Factors, string(mfa.KindWebAuthn)) {
			return out, invalidf("a phishing-resistant policy needs the factor kind webauthn (only WebAuthn resists phishing)")
		}
	}
	return out, nil
}

// describePolicy is the audit form of a policy.
func describePolicy(p storage.MFAPolicy) string {
	factors := "all"
	if len(p.Factors) > 0 {
		factors = strings.Join(p.Factors, ",")
	}
	return fmt.Sprintf("mfa=%s factors=%s phishing_resistant=%t max_age=%s remember_device=%s",
		p.MFA, factors, p.PhishingResistant, p.MaxAge, p.RememberDevice)
}

// CreateUserOfType creates a user like CreateUser and gives them an account type and
// groups. Type and groups are checked before anything is written.
func (a *Admin) CreateUserOfType(ctx context.Context, actor string, in NewUser, accountType string, groups []string) (*storage.User, error) {
	typ, err := normalizeAccountType(accountType)
	if err != nil {
		return nil, err
	}
	gs, err := normalizeGroups(groups)
	if err != nil {
		return nil, err
	}
	u, err := a.CreateUser(ctx, actor, in)
	if err != nil || (typ == "" && len(gs) == 0) {
		return u, err
	}
	u.Type, u.Groups, u.UpdatedAt = typ, gs, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("created without type and groups: err=%v", err))
		return nil, fmt.Errorf("set type and groups of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultSuccess},
		fmt.Sprintf("type=%q groups=%q", typ, strings.Join(gs, ",")))
	return u, nil
}

// SetUserType sets the account type of the user with that id or e-mail; an empty type
// means the default type.
func (a *Admin) SetUserType(ctx context.Context, actor, user, accountType string) (*storage.User, error) {
	typ, err := normalizeAccountType(accountType)
	if err != nil {
		return nil, err
	}
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	old := u.Type
	u.Type, u.UpdatedAt = typ, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("type=%q err=%v", typ, err))
		return nil, fmt.Errorf("set type of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultSuccess},
		fmt.Sprintf("type=%q (was %q)", typ, old))
	return u, nil
}

// SetUserGroups replaces the groups of the user with that id or e-mail.
func (a *Admin) SetUserGroups(ctx context.Context, actor, user string, groups []string) (*storage.User, error) {
	gs, err := normalizeGroups(groups)
	if err != nil {
		return nil, err
	}
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	old := strings.Join(u.Groups, ",")
	u.Groups, u.UpdatedAt = gs, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("groups=%q err=%v", strings.Join(gs, ","), err))
		return nil, fmt.Errorf("set groups of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserUpdate, UserID: u.ID, Result: ResultSuccess},
		fmt.Sprintf("groups=%q (was %q)", strings.Join(gs, ","), old))
	return u, nil
}

// FindClient returns the client with that id; a missing client wraps storage.ErrNotFound.
func (a *Admin) FindClient(ctx context.Context, id string) (*storage.Client, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, invalidf("client id is required")
	}
	c, err := a.Store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("client %q not found: %w", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("find client %q: %w", id, err)
	}
	return c, nil
}

// SetClientPolicy validates p and makes it the MFA policy of client clientID. It returns
// the policy as stored.
func (a *Admin) SetClientPolicy(ctx context.Context, actor, clientID string, p storage.MFAPolicy) (*storage.MFAPolicy, error) {
	np, err := normalizeMFAPolicy(p)
	if err != nil {
		return nil, err
	}
	c, err := a.FindClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c.Policy = np
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminClientUpdate, ClientID: c.ID, Result: ResultFailure},
			fmt.Sprintf("policy: %s err=%v", describePolicy(np), err))
		return nil, fmt.Errorf("set policy of client %s: %w", c.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminClientUpdate, ClientID: c.ID, Result: ResultSuccess},
		"policy: "+describePolicy(np))
	return &np, nil
}

// SetTypePolicy validates p and makes it the MFA policy of accountType. It returns the
// policy as stored.
func (a *Admin) SetTypePolicy(ctx context.Context, actor, accountType string, p storage.MFAPolicy) (*storage.MFAPolicy, error) {
	typ, err := normalizeAccountType(accountType)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, invalidf("account type is required")
	}
	np, err := normalizeMFAPolicy(p)
	if err != nil {
		return nil, err
	}
	if err := a.Store.SetTypePolicy(ctx, typ, np); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminPolicySet, Result: ResultFailure},
			fmt.Sprintf("account_type=%s %s err=%v", typ, describePolicy(np), err))
		return nil, fmt.Errorf("set policy of account type %s: %w", typ, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminPolicySet, Result: ResultSuccess},
		fmt.Sprintf("account_type=%s %s", typ, describePolicy(np)))
	return &np, nil
}

// endSessions ends every session of userID through the EndSessions hook, or in Store.
func (a *Admin) endSessions(ctx context.Context, userID, reason string) (int, error) {
	if a.EndSessions != nil {
		return a.EndSessions(ctx, userID, reason)
	}
	n, err := a.Store.DeleteUserSessions(ctx, userID)
	return int(n), err
}

// EndUserSessions signs the user with that id or e-mail out of every browser. Tokens
// already issued stay valid until they expire or are revoked.
func (a *Admin) EndUserSessions(ctx context.Context, actor, user, reason string) (int, error) {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return 0, err
	}
	reason = strings.TrimSpace(reason)
	n, err := a.endSessions(ctx, u.ID, "admin: "+reason)
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminSessionsEnd, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("reason=%q err=%v", reason, err))
		return 0, fmt.Errorf("end sessions of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminSessionsEnd, UserID: u.ID, Result: ResultSuccess},
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
	done := func() string {
		return fmt.Sprintf("reason=%q factors_removed=%d sessions_ended=%d devices_removed=%d",
			reason, res.FactorsRemoved, res.SessionsEnded, res.DevicesRemoved)
	}
	fail := func(step string, err error) (*ResetResult, error) {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminMFAReset, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("%s; failed to %s: err=%v", done(), step, err))
		return nil, fmt.Errorf("reset MFA of user %s: %s: %w", u.ID, step, err)
	}
	now := a.now()
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
	if err := UnlockUser(ctx, a.Store, u.ID); err != nil {
		return fail("clear the MFA lockout", err)
	}
	detail := done() + " tokens_revoked=true"
	if opts.RecoveryLink {
		link, c, err := a.newRecoveryLink(ctx, base, u.ID, now)
		if err != nil {
			return fail("issue a recovery link", err)
		}
		res.RecoveryLink, res.RecoveryExpiresAt = link, c.ExpiresAt
		detail += " recovery_link=" + c.ID
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminMFAReset, UserID: u.ID, Result: ResultSuccess}, detail)
	return res, nil
}

// newRecoveryLink stores a recovery challenge for userID and returns its link. Only the
// SHA-256 of the link's 256-bit secret is stored.
func (a *Admin) newRecoveryLink(ctx context.Context, base, userID string, now time.Time) (string, *storage.Challenge, error) {
	token := randomToken(32)
	c := &storage.Challenge{
		ID: NewID(), UserID: userID, Kind: ChallengeRecovery, CodeHash: tokenHash(token),
		CreatedAt: now, ExpiresAt: now.Add(RecoveryLinkLifetime),
	}
	if err := a.Store.CreateChallenge(ctx, c); err != nil {
		return "", nil, err
	}
	q := url.Values{"id": {c.ID}, "token": {token}}
	return base + "/recovery?" + q.Encode(), c, nil
}
