package admin

import (
	"context"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/storage"
)

// Store is the storage operator actions change: people, clients, resources, policies and secrets,
// and what a reset or re-encryption touches (factors, sessions, tokens, devices, attempt
// counters, signing keys). The audit trail is written through Audit, never here.
type Store interface {
	storage.UserStore
	storage.ClientStore
	storage.PolicyStore
	storage.MFAStore
	storage.SessionStore
	storage.TokenStore
	storage.DeviceStore
	storage.AttemptStore
	storage.KeyStore
	storage.SecretStore
	storage.ResourceStore
}

// Admin holds the operator actions shared by the CLI and the admin API. Every change it
// makes is written to the audit trail with the acting operator in the event's Reason.
type Admin struct {
	Store Store
	Audit *audit.Auditor
	Keys  *keys.Manager    // needed only by RotateKeys
	Now   func() time.Time // time.Now when nil
	// Issuer is the provider's public base URL, from which ResetMFA builds recovery links
	// (ResetOptions.Issuer overrides it).
	Issuer string
	// EndSessions ends every SSO session of a user and returns how many ended. A server
	// that sends back-channel logout sets it; when nil the sessions are deleted from Store.
	EndSessions func(ctx context.Context, userID, reason string) (int, error)
	// EndOneSession ends one SSO session. A server that sends back-channel logout sets it;
	// when nil the session is deleted from Store.
	EndOneSession func(ctx context.Context, s *storage.Session, reason string) error
	// Hash hashes a new password; pwhash.Hash when nil. The server passes its gated
	// hashPassword, so that API calls share the memory budget of logins.
	Hash func(ctx context.Context, password string) (string, error)
	// Mail, when set, e-mails enrolment links to the person (EnrolmentLink); without it
	// the link is only returned, for the operator to hand over.
	Mail func(ctx context.Context, to, subject, body string) error
	// ChainKeys are the audit chain keys VerifyAudit checks the keyed chain with
	// (audit.ChainKeysOf of the server's encryption keys).
	ChainKeys audit.ChainKeys
}

// hashPassword hashes password with a.Hash, or pwhash.Hash.
func (a *Admin) hashPassword(ctx context.Context, password string) (string, error) {
	if a.Hash != nil {
		return a.Hash(ctx, password)
	}
	return pwhash.Hash(password)
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// record writes an audit event naming actor as the one who acted.
func (a *Admin) record(ctx context.Context, actor string, e storage.AuditEvent, detail string) {
	if a.Audit == nil {
		return
	}
	if actor == "" {
		actor = "unknown"
	}
	e.Time = a.now()
	e.Reason = strings.TrimSpace("actor=" + actor + " " + detail)
	a.Audit.Record(ctx, e)
}
