package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openidp/idp/storage"
)

// Auditor records audit events. Record logs a failure to write and carries on: it is
// for events of requests whose outcome is already decided. An action whose event must
// not be lost writes it with Write and fails when it fails, or — for tokens — hands the
// Prepared event to the store to commit with the action (storage.TokenIssue).
type Auditor struct {
	Store  storage.AuditStore
	Logger *slog.Logger
	Now    func() time.Time
	// Request returns the client address and user agent of the HTTP request in ctx
	// ("" outside a request); the server sets it. Nil: events carry neither unless the
	// caller fills them.
	Request func(ctx context.Context) (ip, userAgent string)
	// Observe, when set, is told how long each write took and its error (nil on
	// success); the server feeds its metrics from it.
	Observe func(d time.Duration, err error)
}

// Prepare returns e ready to be stored: Time and the request's IP and user agent
// (through Request) filled when empty, every string capped (capAuditEvent). It writes
// nothing; the caller stores it with the action it records.
func (a *Auditor) Prepare(ctx context.Context, e storage.AuditEvent) *storage.AuditEvent {
	if e.Time.IsZero() {
		if a.Now != nil {
			e.Time = a.Now()
		} else {
			e.Time = time.Now()
		}
	}
	if a.Request != nil {
		ip, ua := a.Request(ctx)
		if e.IP == "" {
			e.IP = ip
		}
		if e.UserAgent == "" {
			e.UserAgent = ua
		}
	}
	capAuditEvent(&e)
	return &e
}

// Observed reports a write of prepared events that took d and ended with err to
// Observe, and logs a failure.
func (a *Auditor) Observed(ctx context.Context, d time.Duration, err error) {
	if a.Observe != nil {
		a.Observe(d, err)
	}
	if err != nil && a.Logger != nil {
		a.Logger.ErrorContext(ctx, "audit write failed", "err", err)
	}
}

// ErrNotRecorded wraps the error of Write: the event was not stored, so the action it
// records must not happen.
var ErrNotRecorded = errors.New("audit event not recorded")

// Write appends e (prepared as Prepare does) and returns the error (wrapping
// ErrNotRecorded): an action that must not happen unaudited fails with it.
func (a *Auditor) Write(ctx context.Context, e storage.AuditEvent) error {
	p := a.Prepare(ctx, e)
	start := time.Now()
	err := a.Store.AppendAudit(ctx, p)
	if a.Observe != nil {
		a.Observe(time.Since(start), err)
	}
	if err != nil {
		if a.Logger != nil {
			a.Logger.ErrorContext(ctx, "audit write failed", "type", p.Type, "err", err)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotRecorded, p.Type, err)
	}
	return nil
}

// Record appends e like Write, logging a failure instead of returning it.
func (a *Auditor) Record(ctx context.Context, e storage.AuditEvent) {
	_ = a.Write(ctx, e)
}

// Limits of the strings an audit event stores, in bytes. A refused request still writes
// its event, so what the request controls must not decide the event's size: a 60 KB
// User-Agent on every failed login was stored whole. Longer values are cut (CapString)
// and end with "…".
const (
	maxID        = 256  // user and client ids, IP address, type, result
	MaxUserAgent = 512  // real browsers send 100–300 bytes
	maxReason    = 1024 // reasons are our own text, sometimes quoting input
)

// capAuditEvent caps every string field of e that is stored.
func capAuditEvent(e *storage.AuditEvent) {
	for _, f := range []*string{&e.Type, &e.UserID, &e.ClientID, &e.IP, &e.Result} {
		*f = CapString(*f, maxID)
	}
	e.UserAgent = CapString(e.UserAgent, MaxUserAgent)
	e.Reason = CapString(e.Reason, maxReason)
}

// truncMark ends a string cut by CapString.
const truncMark = "…"

// CapString returns s as valid UTF-8 (invalid bytes become U+FFFD, which PostgreSQL
// would otherwise refuse) of at most n bytes: when longer, cut at a character boundary
// and ended with truncMark. Strings a request controls (user agent, reasons that quote
// input) go through it before they are stored.
func CapString(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	mark := truncMark
	if n < len(mark) {
		mark = ""
	}
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
