package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// Operator actions on account types, groups and MFA policies. Like the
// rest of Admin they are shared by the CLI and the admin API, and every change is
// audited with the actor and what changed.

// PolicyFactorKinds are the factor kinds an MFA policy may name.
var PolicyFactorKinds = []storage.FactorKind{
	storage.FactorTOTP, storage.FactorSMS, storage.FactorEmail, storage.FactorBackup, storage.FactorWebAuthn,
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

// NormalizeAccountType trims and lower-cases t; empty stays empty (the default type).
func NormalizeAccountType(t string) (string, error) {
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
		k = storage.FactorKind(strings.ToLower(strings.TrimSpace(string(k))))
		if k == "" || slices.Contains(out.Factors, k) {
			continue
		}
		if !slices.Contains(PolicyFactorKinds, k) {
			return out, invalidf("invalid factor kind %q: use %s", k, storage.JoinFactorKinds(PolicyFactorKinds, ", "))
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
		if len(out.Factors) > 0 && !slices.Contains(out.Factors, storage.FactorWebAuthn) {
			return out, invalidf("a phishing-resistant policy needs the factor kind webauthn (only WebAuthn resists phishing)")
		}
	}
	return out, nil
}

// describePolicy is the audit form of a policy.
func describePolicy(p storage.MFAPolicy) string {
	factors := "all"
	if len(p.Factors) > 0 {
		factors = storage.JoinFactorKinds(p.Factors, ",")
	}
	return fmt.Sprintf("mfa=%s factors=%s phishing_resistant=%t max_age=%s remember_device=%s",
		p.MFA, factors, p.PhishingResistant, p.MaxAge, p.RememberDevice)
}

// CreateUserOfType creates a user like CreateUser with an account type and groups,
// stored with the user. Type and groups are checked before anything is written.
func (a *Admin) CreateUserOfType(ctx context.Context, actor string, in NewUser, accountType string, groups []string) (*storage.User, error) {
	typ, err := NormalizeAccountType(accountType)
	if err != nil {
		return nil, err
	}
	gs, err := normalizeGroups(groups)
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 {
		gs = nil // as CreateUser stores them
	}
	return a.createUser(ctx, actor, in, typ, gs)
}

// SetUserType sets the account type of the user with that id or e-mail; an empty type
// means the default type.
func (a *Admin) SetUserType(ctx context.Context, actor, user, accountType string) (*storage.User, error) {
	typ, err := NormalizeAccountType(accountType)
	if err != nil {
		return nil, err
	}
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	old := u.Type
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("type=%q (was %q)", typ, old)); err != nil {
		return nil, fmt.Errorf("set type of user %s: %w", u.ID, err)
	}
	u.Type, u.UpdatedAt = typ, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("type=%q err=%v", typ, err))
		return nil, fmt.Errorf("set type of user %s: %w", u.ID, err)
	}
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
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("groups=%q (was %q)", strings.Join(gs, ","), old)); err != nil {
		return nil, fmt.Errorf("set groups of user %s: %w", u.ID, err)
	}
	u.Groups, u.UpdatedAt = gs, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserUpdate, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("groups=%q err=%v", strings.Join(gs, ","), err))
		return nil, fmt.Errorf("set groups of user %s: %w", u.ID, err)
	}
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
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientUpdate, ClientID: c.ID, Result: audit.ResultSuccess},
		"policy: "+describePolicy(np)); err != nil {
		return nil, fmt.Errorf("set policy of client %s: %w", c.ID, err)
	}
	c.Policy = np
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientUpdate, ClientID: c.ID, Result: audit.ResultFailure},
			fmt.Sprintf("policy: %s err=%v", describePolicy(np), err))
		return nil, fmt.Errorf("set policy of client %s: %w", c.ID, err)
	}
	return &np, nil
}

// SetTypePolicy validates p and makes it the MFA policy of accountType. It returns the
// policy as stored.
func (a *Admin) SetTypePolicy(ctx context.Context, actor, accountType string, p storage.MFAPolicy) (*storage.MFAPolicy, error) {
	typ, err := NormalizeAccountType(accountType)
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
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminPolicySet, Result: audit.ResultSuccess},
		fmt.Sprintf("account_type=%s %s", typ, describePolicy(np))); err != nil {
		return nil, fmt.Errorf("set policy of account type %s: %w", typ, err)
	}
	if err := a.Store.SetTypePolicy(ctx, typ, np); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminPolicySet, Result: audit.ResultFailure},
			fmt.Sprintf("account_type=%s %s err=%v", typ, describePolicy(np), err))
		return nil, fmt.Errorf("set policy of account type %s: %w", typ, err)
	}
	return &np, nil
}
