package idp

import (
	"context"
	"log/slog"
	"time"

	"github.com/openidp/idp/storage"
)

// Audit event types. Each names what happened; Result says whether it succeeded.
const (
	EventLoginPassword     = "login.password"
	EventLoginSSO          = "login.sso"
	EventLogout            = "logout"
	EventConsentGrant      = "consent.grant"
	EventConsentDeny       = "consent.deny"
	EventTokenIssue        = "token.issue"
	EventTokenRefresh      = "token.refresh"
	EventRefreshReuse      = "token.refresh.reuse"
	EventTokenRevoke       = "token.revoke"
	EventCodeReuse         = "token.code.invalid"
	EventCodeReplay        = "token.code.reuse" // a redeemed code presented again: its tokens revoked
	EventClientAuth        = "client.auth"
	EventAdminUserCreate   = "admin.user.create"
	EventAdminUserUpdate   = "admin.user.update"
	EventAdminUserDisable  = "admin.user.disable"
	EventAdminClientCreate = "admin.client.create"
	EventAdminClientUpdate = "admin.client.update"
	EventAdminClientDelete = "admin.client.delete"
	EventAdminKeyRotate    = "admin.keys.rotate"
)

// Audit results.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Auditor records audit events. A failure to write one is logged, never fatal to the
// request that caused it (the request's own outcome is already decided).
type Auditor struct {
	Store  storage.AuditStore
	Logger *slog.Logger
	Now    func() time.Time
}

// Record appends e, filling Time and the request's IP and user agent from ctx when empty,
// with every string capped (capAuditEvent).
func (a *Auditor) Record(ctx context.Context, e storage.AuditEvent) {
	if e.Time.IsZero() {
		if a.Now != nil {
			e.Time = a.Now()
		} else {
			e.Time = time.Now()
		}
	}
	if ri := requestInfoFrom(ctx); ri != nil {
		if e.IP == "" {
			e.IP = ri.IP
		}
		if e.UserAgent == "" {
			e.UserAgent = ri.UserAgent
		}
	}
	capAuditEvent(&e)
	if err := a.Store.AppendAudit(ctx, &e); err != nil && a.Logger != nil {
		a.Logger.ErrorContext(ctx, "audit write failed", "type", e.Type, "err", err)
	}
}

// Limits of the strings an audit event stores, in bytes. A refused request still writes
// its event, so what the request controls must not decide the event's size: a 60 KB
// User-Agent on every failed login was stored whole. Longer values are cut (capString)
// and end with "…".
const (
	auditMaxID        = 256  // user and client ids, IP address, type, result
	auditMaxUserAgent = 512  // real browsers send 100–300 bytes
	auditMaxReason    = 1024 // reasons are our own text, sometimes quoting input
)

// capAuditEvent caps every string field of e that is stored.
func capAuditEvent(e *storage.AuditEvent) {
	for _, f := range []*string{&e.Type, &e.UserID, &e.ClientID, &e.IP, &e.Result} {
		*f = capString(*f, auditMaxID)
	}
	e.UserAgent = capString(e.UserAgent, auditMaxUserAgent)
	e.Reason = capString(e.Reason, auditMaxReason)
}

// requestInfo is what middleware learns about the HTTP request, carried in the context.
type requestInfo struct {
	ID               string
	IP               string
	UserAgent        string
	SessionTokenHash string // hash of the SSO session cookie, if the request carried one
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, ri *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}
