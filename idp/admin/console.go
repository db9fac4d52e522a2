package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Operator actions the admin console (idp/console) needs besides those the CLI and the
// admin API already share: editing and deleting clients, replacing a client's secret,
// searching people, enabling an account, ending single sessions or a client's sessions,
// and reading keys, policies and the audit trail.

// Built-in clients the provider registers itself; the console neither edits nor deletes them.
const (
	AccountClientID = "openidp-account"
	ConsoleClientID = "openidp-console"
)

// IsBuiltinClient reports whether id names a client the provider registers itself.
func IsBuiltinClient(id string) bool { return id == AccountClientID || id == ConsoleClientID }

// ListClients returns every registered client.
func (a *Admin) ListClients(ctx context.Context) ([]storage.Client, error) {
	cs, err := a.Store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// ClientUpdate is what Admin.UpdateClient may change; zero lifetimes take the defaults,
// as at creation. The client's type, secret, key set and MFA policy stay as they are.
type ClientUpdate struct {
	Name                                 string
	RedirectURIs, PostLogoutRedirectURIs []string
	GrantTypes, Scopes                   []string
	SkipConsent                          bool
	AccessTokenLifetime, IDTokenLifetime time.Duration
	RefreshTokenLifetime                 time.Duration
	BackchannelLogoutURI                 string
}

// UpdateClient validates in as CreateClient would and replaces those settings of client
// id. On a validation error (an *InvalidInputError) nothing is written.
func (a *Admin) UpdateClient(ctx context.Context, actor, id string, in ClientUpdate) (*storage.Client, error) {
	if IsBuiltinClient(id) {
		return nil, invalidf("client %s is built in: it cannot be edited", id)
	}
	c, err := a.FindClient(ctx, id)
	if err != nil {
		return nil, err
	}
	nc, err := buildClient(NewClient{
		Name: in.Name, RedirectURIs: in.RedirectURIs, PostLogoutRedirectURIs: in.PostLogoutRedirectURIs,
		Public: c.Public, SkipConsent: in.SkipConsent, GrantTypes: in.GrantTypes, Scopes: in.Scopes,
		AccessTokenFormat: c.AccessTokenFormat, IDTokenSigningAlg: c.IDTokenSigningAlg,
		AccessTokenLifetime: in.AccessTokenLifetime, IDTokenLifetime: in.IDTokenLifetime,
		RefreshTokenLifetime: in.RefreshTokenLifetime, BackchannelLogoutURI: in.BackchannelLogoutURI,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKS: c.JWKS, JWKSURI: c.JWKSURI, RequirePAR: c.RequirePAR,
	}, false)
	if err != nil {
		return nil, &InvalidInputError{Message: err.Error()}
	}
	c.Name, c.RedirectURIs, c.PostLogoutRedirectURIs = nc.Name, nc.RedirectURIs, nc.PostLogoutRedirectURIs
	c.GrantTypes, c.Scopes, c.SkipConsent = nc.GrantTypes, nc.Scopes, nc.SkipConsent
	c.AccessTokenLifetime, c.IDTokenLifetime, c.RefreshTokenLifetime = nc.AccessTokenLifetime, nc.IDTokenLifetime, nc.RefreshTokenLifetime
	c.BackchannelLogoutURI = nc.BackchannelLogoutURI
	detail := fmt.Sprintf("name=%q redirect_uris=%s grants=%s scopes=%s backchannel_logout_uri=%q lifetimes=%s/%s/%s",
		c.Name, strings.Join(c.RedirectURIs, ","), strings.Join(c.GrantTypes, ","), strings.Join(c.Scopes, ","),
		c.BackchannelLogoutURI, c.AccessTokenLifetime, c.IDTokenLifetime, c.RefreshTokenLifetime)
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientUpdate, ClientID: c.ID, Result: audit.ResultSuccess}, detail); err != nil {
		return nil, fmt.Errorf("update client %s: %w", c.ID, err)
	}
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientUpdate, ClientID: c.ID, Result: audit.ResultFailure},
			detail+fmt.Sprintf(" err=%v", err))
		return nil, fmt.Errorf("update client %s: %w", c.ID, err)
	}
	return c, nil
}

// DeleteClient removes client id. Tokens it holds stop working, since they name a
// client that no longer exists. It only takes access away, so it goes ahead when its
// audit event cannot be written (recordProtective).
func (a *Admin) DeleteClient(ctx context.Context, actor, id string) error {
	if IsBuiltinClient(id) {
		return invalidf("client %s is built in: it cannot be deleted", id)
	}
	c, err := a.FindClient(ctx, id)
	if err != nil {
		return err
	}
	if err := a.Store.DeleteClient(ctx, c.ID); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientDelete, ClientID: c.ID, Result: audit.ResultFailure},
			fmt.Sprintf("name=%q err=%v", c.Name, err))
		return fmt.Errorf("delete client %s: %w", c.ID, err)
	}
	a.recordProtective(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientDelete, ClientID: c.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("name=%q", c.Name))
	return nil
}

// RotateClientSecret gives a confidential client (client_secret_basic or _post) a new
// secret and returns it: the only time it is available, since only its hash is stored.
// The old secret stops working at once.
func (a *Admin) RotateClientSecret(ctx context.Context, actor, id string) (string, error) {
	c, err := a.FindClient(ctx, id)
	if err != nil {
		return "", err
	}
	if c.Public || c.TokenEndpointAuthMethod != "" {
		return "", invalidf("client %s has no secret: it is public or authenticates with private_key_jwt", c.ID)
	}
	s, hash := secret.NewClientSecret()
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientSecret, ClientID: c.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("name=%q", c.Name)); err != nil {
		return "", fmt.Errorf("rotate secret of client %s: %w", c.ID, err)
	}
	c.SecretHash = hash
	if err := a.Store.UpdateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientSecret, ClientID: c.ID, Result: audit.ResultFailure},
			fmt.Sprintf("err=%v", err))
		return "", fmt.Errorf("rotate secret of client %s: %w", c.ID, err)
	}
	return s, nil
}

// SearchUsers returns up to limit users (limit > 0) whose e-mail or name contains
// query (ASCII case-insensitive), ordered by e-mail; an empty query matches everyone.
// more reports that further users matched.
func (a *Admin) SearchUsers(ctx context.Context, query string, limit int) (users []storage.User, more bool, err error) {
	if limit <= 0 {
		return nil, false, invalidf("search limit must be positive")
	}
	users, err = a.Store.SearchUsers(ctx, strings.TrimSpace(query), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("search users: %w", err)
	}
	if len(users) > limit {
		return users[:limit], true, nil
	}
	return users, false, nil
}

// EnableUser enables the user with that id or e-mail again.
func (a *Admin) EnableUser(ctx context.Context, actor, idOrEmail string) error {
	u, err := a.FindUser(ctx, idOrEmail)
	if err != nil {
		return err
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserEnable, UserID: u.ID, Result: audit.ResultSuccess}, "email="+u.Email); err != nil {
		return fmt.Errorf("enable user %s: %w", u.ID, err)
	}
	u.Disabled, u.UpdatedAt = false, a.now()
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminUserEnable, UserID: u.ID, Result: audit.ResultFailure},
			fmt.Sprintf("err=%v", err))
		return fmt.Errorf("enable user %s: %w", u.ID, err)
	}
	return nil
}

// UserFactors returns the second factors of the user with that id or e-mail.
func (a *Admin) UserFactors(ctx context.Context, user string) ([]storage.Factor, error) {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	fs, err := a.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list factors of user %s: %w", u.ID, err)
	}
	return fs, nil
}

// UserSessions returns the unexpired sessions of the user with that id or e-mail,
// newest first.
func (a *Admin) UserSessions(ctx context.Context, user string) ([]storage.Session, error) {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	ss, err := a.Store.ListUserSessions(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", u.ID, err)
	}
	return a.unexpired(ss), nil
}

// ClientSessions returns the unexpired sessions that signed in to client id, newest first.
func (a *Admin) ClientSessions(ctx context.Context, id string) ([]storage.Session, error) {
	ss, err := a.Store.ListClientSessions(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list sessions of client %s: %w", id, err)
	}
	return a.unexpired(ss), nil
}

func (a *Admin) unexpired(ss []storage.Session) []storage.Session {
	now := a.now()
	return slices.DeleteFunc(ss, func(s storage.Session) bool { return !s.ExpiresAt.After(now) })
}

// endOne ends one session through the EndOneSession hook, or deletes it from Store.
func (a *Admin) endOne(ctx context.Context, s *storage.Session, reason string) error {
	if a.EndOneSession != nil {
		return a.EndOneSession(ctx, s, reason)
	}
	return a.Store.DeleteSession(ctx, s.ID)
}

// EndSession ends the session with that id. Tokens already issued stay valid until
// they expire or are revoked. It only takes access away, so it goes ahead when its audit
// event cannot be written (recordProtective).
func (a *Admin) EndSession(ctx context.Context, actor, sessionID, reason string) error {
	reason = strings.TrimSpace(reason)
	s, err := a.Store.GetSession(ctx, sessionID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("session %q not found: %w", sessionID, err)
		}
		return fmt.Errorf("find session %q: %w", sessionID, err)
	}
	ev := storage.AuditEvent{Type: audit.EventAdminSessionEnd, UserID: s.UserID}
	detail := fmt.Sprintf("session=%s reason=%q", s.ID, reason)
	if err := a.endOne(ctx, s, "admin: "+reason); err != nil {
		ev.Result = audit.ResultFailure
		a.record(ctx, actor, ev, detail+fmt.Sprintf(" err=%v", err))
		return fmt.Errorf("end session %s: %w", s.ID, err)
	}
	ev.Result = audit.ResultSuccess
	a.recordProtective(ctx, actor, ev, detail)
	return nil
}

// EndClientSessions ends every session that signed in to client id and returns how many
// ended. It only takes access away, so it goes ahead when its audit event cannot be
// written (recordProtective).
func (a *Admin) EndClientSessions(ctx context.Context, actor, id, reason string) (int, error) {
	reason = strings.TrimSpace(reason)
	c, err := a.FindClient(ctx, id)
	if err != nil {
		return 0, err
	}
	ss, err := a.Store.ListClientSessions(ctx, c.ID)
	n := 0
	for i := 0; err == nil && i < len(ss); i++ {
		if err = a.endOne(ctx, &ss[i], "admin: "+reason); errors.Is(err, storage.ErrNotFound) {
			err = nil // ended meanwhile
			continue
		}
		if err == nil {
			n++
		}
	}
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientSessionsEnd, ClientID: c.ID, Result: audit.ResultFailure},
			fmt.Sprintf("reason=%q sessions_ended=%d err=%v", reason, n, err))
		return n, fmt.Errorf("end sessions of client %s: %w", c.ID, err)
	}
	a.recordProtective(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientSessionsEnd, ClientID: c.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("reason=%q sessions_ended=%d", reason, n))
	return n, nil
}

// ListKeys returns every signing key with its state now, newest first.
func (a *Admin) ListKeys(ctx context.Context) ([]keys.Key, error) {
	if a.Keys == nil {
		return nil, errors.New("list keys: no key manager configured")
	}
	return a.Keys.List(ctx)
}

// ListTypePolicies returns the MFA policy of every account type that has one.
func (a *Admin) ListTypePolicies(ctx context.Context) (map[string]storage.MFAPolicy, error) {
	ps, err := a.Store.ListTypePolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("list account type policies: %w", err)
	}
	return ps, nil
}

// ListAudit returns the audit events f matches (oldest first; the newest f.Limit when
// set). An unknown event type is an *InvalidInputError.
func (a *Admin) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	if a.Audit == nil {
		return nil, errors.New("list audit: no audit trail configured")
	}
	if f.Type != "" {
		t, ok := audit.KnownType(f.Type)
		if !ok {
			return nil, invalidf("unknown event type %q", f.Type)
		}
		f.Type = t
	}
	es, err := a.Audit.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return es, nil
}

// VerifyAudit recomputes the audit trail's hash chain (audit.VerifyChain).
func (a *Admin) VerifyAudit(ctx context.Context) (audit.VerifyResult, error) {
	if a.Audit == nil {
		return audit.VerifyResult{}, errors.New("verify audit: no audit trail configured")
	}
	return audit.VerifyChain(ctx, a.Audit.Store, a.ChainKeys)
}

// AuditLine is one line of an audit export (`idp audit export`, the console's download):
// every field, always present, so that a SIEM can index the events and, with the audit
// chain key, recompute their hashes.
type AuditLine struct {
	ID        int64  `json:"id"`
	Time      string `json:"time"` // RFC 3339 with nanoseconds, UTC
	Type      string `json:"type"`
	UserID    string `json:"user_id"`
	ClientID  string `json:"client_id"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Result    string `json:"result"`
	Reason    string `json:"reason"`
	TokenID   string `json:"token_id"`
	FamilyID  string `json:"family_id"`
	SessionID string `json:"session_id"`
	FactorID  string `json:"factor_id"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
	ChainKey  string `json:"chain_key"` // "" for events written before the chain was keyed
}

// NewAuditLine is e as a line of an audit export.
func NewAuditLine(e storage.AuditEvent) AuditLine {
	return AuditLine{
		ID: e.ID, Time: e.Time.UTC().Format(time.RFC3339Nano), Type: e.Type, UserID: e.UserID, ClientID: e.ClientID,
		IP: e.IP, UserAgent: e.UserAgent, Result: e.Result, Reason: e.Reason,
		TokenID: e.TokenID, FamilyID: e.FamilyID, SessionID: e.SessionID, FactorID: e.FactorID,
		PrevHash: e.PrevHash, Hash: e.Hash, ChainKey: e.ChainKey,
	}
}

// WriteAuditJSONL writes events to w as JSON Lines, one AuditLine each.
func WriteAuditJSONL(w io.Writer, events []storage.AuditEvent) error {
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(NewAuditLine(e)); err != nil {
			return err
		}
	}
	return nil
}
