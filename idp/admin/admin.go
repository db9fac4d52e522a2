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
// makes is written to the audit trail with the acting operator in the event's Reason: a
// change that grants or widens access before it is made, and not at all when its event
// cannot be written (writeAhead); one that only takes access away after it is made,
// also when its event cannot be written (recordProtective).
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

// Audit events of operator actions. The project's rule is that an action whose audit
// event cannot be written does not happen; for operator changes that works in three ways:
//
//   - A change that grants or widens access or changes a security setting (creating or
//     editing a client, a person, a resource or a policy, replacing a secret or a
//     password, enabling a person, issuing a link, resetting MFA, rotating or
//     re-sealing keys) builds everything first, writes its success event with
//     writeAhead and is made only once that event is stored. When the event cannot be
//     written the method returns an error matching audit.ErrNotRecorded and nothing
//     changes.
//   - When such a change then fails, its failure event follows with record: the trail
//     holds the success event, then a failure event of the same type for the same
//     change. A crash between the two leaves an event for a change that was not made,
//     never a change without its event.
//   - A change that only takes access away is recorded with recordProtective, after it
//     is made, and goes ahead when its event cannot be written.

// event is e as written for actor: the time now, and a Reason of "actor=<actor>"
// followed by detail.
func (a *Admin) event(actor string, e storage.AuditEvent, detail string) storage.AuditEvent {
	if actor == "" {
		actor = "unknown"
	}
	e.Time = a.now()
	e.Reason = strings.TrimSpace("actor=" + actor + " " + detail)
	return e
}

// record writes an audit event naming actor as the one who acted, logging a failed write
// and carrying on (audit.Auditor.Record). It is for failure events, whose action has
// already failed, and for the changes recordProtective records. An Admin without an
// Auditor writes nothing.
func (a *Admin) record(ctx context.Context, actor string, e storage.AuditEvent, detail string) {
	if a.Audit == nil {
		return
	}
	a.Audit.Record(ctx, a.event(actor, e, detail))
}

// recordProtective records the success event of a change that only takes access away:
// ending a person's sessions, one session or a client's sessions, disabling a person,
// deleting a client or a resource. Such a change is made first and goes ahead even
// when its event cannot be written (the failed write is logged, see record). That is
// deliberate: refusing it while the audit trail is down would keep access an operator
// wants gone, which is worse than a gap in the trail. Every change that grants or
// widens access writes its event ahead instead (writeAhead).
func (a *Admin) recordProtective(ctx context.Context, actor string, e storage.AuditEvent, detail string) {
	a.record(ctx, actor, e, detail)
}

// writeAhead writes the success event e of a change that grants or widens access or
// changes a security setting, naming actor as the one who acted, before that change is
// made: the caller builds everything first (ids, hashes, the detail) and makes the
// change only when writeAhead returns nil. Otherwise it returns the error, which
// matches audit.ErrNotRecorded, and changes nothing. When the change then fails, the
// caller records a failure event of the same type (record), so that the trail says the
// change written ahead was not made.
//
// An Admin without an Auditor (a.Audit nil: some tests; the server and the CLI always
// set one) keeps no trail: writeAhead writes nothing and refuses nothing, as record
// writes nothing.
func (a *Admin) writeAhead(ctx context.Context, actor string, e storage.AuditEvent, detail string) error {
	if a.Audit == nil {
		return nil
	}
	if err := a.Audit.Write(ctx, a.event(actor, e, detail)); err != nil {
		return &notRecordedError{err: err}
	}
	return nil
}

// notRecordedError is the error of a change refused because its audit event could not
// be written (writeAhead). It matches audit.ErrNotRecorded and nothing else the store's
// error wraps: a failed audit append that wraps storage.ErrAlreadyExists (a unique
// violation on the audit chain) or storage.ErrNotFound must not read as the outcome of
// the change itself, which callers answer with 409 or 404 ("already exists", "not
// found"). It is a server failure: the admin API answers it with 500, the console with
// its error page, the CLI with exit status 1. Its message keeps the store's error.
type notRecordedError struct{ err error }

func (e *notRecordedError) Error() string { return e.err.Error() + "; nothing was changed" }
func (e *notRecordedError) Unwrap() error { return audit.ErrNotRecorded }
