package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/metrics"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Guessing limits. Every guessable secret goes through s.regulator, which reserves the
// attempt in the database under each limit below before the secret is checked (so
// concurrent guesses, in one process or many, can never check more than a limit
// allows). The small limits are per account *and* source address, so that an attacker
// elsewhere cannot lock the owner out; an account-wide ceiling with exponential back-off
// bounds a distributed attack (NIST SP 800-63B 5.2.2: at most 100 consecutive
// failures); a browser that has completed a sign-in as the person before (a known
// device) has a counter of its own and is subject to nothing else. docs/security.md
// lists the defaults and why.

// MFALimits bounds guessing of second factors (TOTP, backup, e-mail and SMS codes,
// WebAuthn) and of enrolment confirmations. Zero fields take the defaults.
type MFALimits struct {
	// LockAfter consecutive failures of an account from one address (or one known
	// device) start a back-off of BaseDelay, doubling per further failure up to MaxDelay.
	// Defaults 5, 1m, 1h.
	LockAfter int
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// AccountBackoffAfter consecutive failures of an account from anywhere but a known
	// device start the same back-off account-wide (default 20), and MaxFailures of them
	// lock the account's second factors until an administrator resets them or the
	// person succeeds from a known device (default and maximum 100).
	AccountBackoffAfter int
	MaxFailures         int
	// PerIP failures per IPWindow from one address, any accounts (default 50 per 15m).
	PerIP    int
	IPWindow time.Duration
}

func (l *MFALimits) defaults() {
	if l.LockAfter <= 0 {
		l.LockAfter = 5
	}
	withDefault(&l.BaseDelay, time.Minute)
	withDefault(&l.MaxDelay, time.Hour)
	if l.AccountBackoffAfter <= 0 {
		l.AccountBackoffAfter = 20
	}
	if l.MaxFailures <= 0 || l.MaxFailures > 100 {
		l.MaxFailures = 100
	}
	if l.PerIP <= 0 {
		l.PerIP = 50
	}
	withDefault(&l.IPWindow, 15*time.Minute)
}

// LoginLimits bounds failed password attempts (the sign-in form and recovery links).
// Zero fields take the defaults.
type LoginLimits struct {
	// PerAccount consecutive failures of one account from one address (or one known
	// device) block that pair for Window, doubling per further failure (default 5, 15m).
	PerAccount int
	// PerIP failures per Window from one address, any accounts (default 50).
	PerIP  int
	Window time.Duration // default 15m
	// AccountBackoffAfter failures of an account within AccountWindow, from anywhere
	// but a known device, start a back-off of one minute, doubling up to an hour
	// (default 20); AccountMax of them refuse further tries until the window ends
	// (default 100 per 24h).
	AccountBackoffAfter int
	AccountMax          int
	AccountWindow       time.Duration
}

func (l *LoginLimits) defaults() {
	if l.PerAccount <= 0 {
		l.PerAccount = 5
	}
	if l.PerIP <= 0 {
		l.PerIP = 50
	}
	withDefault(&l.Window, 15*time.Minute)
	if l.AccountBackoffAfter <= 0 {
		l.AccountBackoffAfter = 20
	}
	if l.AccountMax <= 0 || l.AccountMax > 100 {
		l.AccountMax = 100
	}
	withDefault(&l.AccountWindow, 24*time.Hour)
}

// Device flow limits (RFC 8628 §5.1). A user code has 34.6 bits (20^8 ≈ 2.56·10^10
// codes, op_device.go) and lives DeviceCodeLifetime (10 minutes). One address may enter
// DeviceCodeGuessesPerAddress wrong codes per DeviceCodeWindow (a right one is given
// back): 10 per 15 minutes is 960 a day. With 10,000 device authorizations waiting at
// every moment, one guess hits one with probability 10,000 / 2.56·10^10 ≈ 3.9·10^-7: an
// address needs about 7 years for an even chance, a botnet of 10,000 addresses about
// 6.5 hours. And a hit never yields anyone's tokens: the guesser would sign in with their
// own account and approve someone else's device for it.
const (
	DeviceCodeGuessesPerAddress    = 10
	DeviceCodeWindow               = 15 * time.Minute
	DeviceAuthorizationsPerAddress = 60 // device authorizations started per address per DeviceCodeWindow
)

// deviceCodeLimits are the limits of one user code entered from ip.
func deviceCodeLimits(ip string) []regulation.Limit {
	return []regulation.Limit{{Key: "ip:" + regulation.KeyPart(ip) + ":usercode",
		Rule: storage.AttemptRule{Limit: DeviceCodeGuessesPerAddress, Window: DeviceCodeWindow}, OnSuccess: regulation.Release}}
}

// SendLimits bound the e-mail and SMS codes sent, on top of the per-account limit of the
// mfa package (3 per 15 minutes): per destination and per source address, per hour and
// per day. Zero fields take the defaults; docs/security.md works out what one attacker
// can cost you with them.
type SendLimits struct {
	PerDestinationHour int // default 5
	PerDestinationDay  int // default 10
	PerAddressHour     int // default 10
	PerAddressDay      int // default 30
}

func (l *SendLimits) defaults() {
	for _, f := range []struct {
		v *int
		d int
	}{{&l.PerDestinationHour, 5}, {&l.PerDestinationDay, 10}, {&l.PerAddressHour, 10}, {&l.PerAddressDay, 30}} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
}

// sendLimits are the limits of one code sent to target by a request from ip.
func (s *Server) sendLimits(target, ip string) []regulation.Limit {
	return s.sendLimitsFor("send", target, ip)
}

// sendLimitsFor are the send limits of one message of kind purpose ("send" for codes,
// "reset" for password-reset links) to target by a request from ip. Each purpose counts
// on its own, so that anonymous reset requests never use up a person's sign-in codes.
func (s *Server) sendLimitsFor(purpose, target, ip string) []regulation.Limit {
	l := s.cfg.MFA.SendLimits
	rule := func(n int, w time.Duration) storage.AttemptRule { return storage.AttemptRule{Limit: n, Window: w} }
	dest, addr := "dest:"+regulation.KeyPart(strings.ToLower(target))+":"+purpose+":", "ip:"+regulation.KeyPart(ip)+":"+purpose+":"
	return []regulation.Limit{
		{Key: dest + "h", Rule: rule(l.PerDestinationHour, time.Hour)},
		{Key: dest + "d", Rule: rule(l.PerDestinationDay, 24*time.Hour)},
		{Key: addr + "h", Rule: rule(l.PerAddressHour, time.Hour)},
		{Key: addr + "d", Rule: rule(l.PerAddressDay, 24*time.Hour)},
	}
}

// sendGate is the mfa package's SendGate: it reserves one message under sendLimits.
// A sent message stays counted (it was sent).
func (s *Server) sendGate(ctx context.Context, kind storage.FactorKind, userID, target string) error {
	_, err := s.regulator.Reserve(ctx, s.sendLimits(target, requestIP(ctx))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFACodeLimited, UserID: userID, Result: audit.ResultFailure,
			Reason: kindReason(kind, "send refused ("+sendLimitName(locked.Key)+")")})
	}
	return err
}

// sendLimitName says which send limit a counter key is, for audit reasons.
func sendLimitName(key string) string {
	what := "destination"
	if strings.HasPrefix(key, "ip:") {
		what = "address"
	}
	if strings.HasSuffix(key, ":d") {
		return what + " per day"
	}
	return what + " per hour"
}

// passwordLimits are the limits of a password guess for the account (userID, or the
// e-mail address typed when there is no such account) from ip, or from a known device.
func (s *Server) passwordLimits(userID, email, ip, device string) []regulation.Limit {
	l := s.cfg.LoginLimits
	acct := regulation.UserPrefix(userID)
	if userID == "" {
		acct = "e:" + regulation.KeyPart(email) + ":"
	}
	pair := storage.AttemptRule{Limit: 100, Window: 24 * time.Hour, BackoffAfter: l.PerAccount, BackoffBase: l.Window, BackoffMax: 16 * l.Window}
	if device != "" {
		return []regulation.Limit{
			{Key: acct + "pwd:dev:" + regulation.KeyPart(device), Rule: pair, OnSuccess: regulation.Reset},
			{Key: acct + "pwd", ClearOnly: true},
		}
	}
	return []regulation.Limit{
		{Key: acct + "pwd:ip:" + regulation.KeyPart(ip), Rule: pair, OnSuccess: regulation.Reset},
		{Key: "ip:" + regulation.KeyPart(ip) + ":pwd", Rule: storage.AttemptRule{Limit: l.PerIP, Window: l.Window}, OnSuccess: regulation.Release},
		{Key: acct + "pwd", Rule: storage.AttemptRule{Limit: l.AccountMax, Window: l.AccountWindow,
			BackoffAfter: l.AccountBackoffAfter, BackoffBase: time.Minute, BackoffMax: time.Hour}, OnSuccess: regulation.Reset},
	}
}

// mfaLimits are the limits of a second-factor guess by userID from ip, or from a known
// device.
func (s *Server) mfaLimits(userID, ip, device string) []regulation.Limit {
	l := s.cfg.MFA.Limits
	acct := regulation.UserPrefix(userID)
	pair := storage.AttemptRule{Limit: l.MaxFailures, Window: 24 * time.Hour, BackoffAfter: l.LockAfter, BackoffBase: l.BaseDelay, BackoffMax: l.MaxDelay}
	if device != "" {
		// The owner's success here also ends the account's consecutive failures.
		return []regulation.Limit{
			{Key: acct + "mfa:dev:" + regulation.KeyPart(device), Rule: pair, OnSuccess: regulation.Reset},
			{Key: acct + "mfa", ClearOnly: true},
		}
	}
	return []regulation.Limit{
		{Key: acct + "mfa:ip:" + regulation.KeyPart(ip), Rule: pair, OnSuccess: regulation.Reset},
		{Key: "ip:" + regulation.KeyPart(ip) + ":mfa", Rule: storage.AttemptRule{Limit: l.PerIP, Window: l.IPWindow}, OnSuccess: regulation.Release},
		{Key: acct + "mfa", Rule: storage.AttemptRule{Limit: l.MaxFailures,
			BackoffAfter: l.AccountBackoffAfter, BackoffBase: l.BaseDelay, BackoffMax: l.MaxDelay}, OnSuccess: regulation.Reset},
	}
}

// recoveryLinkLimits bound guesses at recovery links from one address (the link's own
// attempts are bounded by the link).
func (s *Server) recoveryLinkLimits(ip string) []regulation.Limit {
	l := s.cfg.LoginLimits
	return []regulation.Limit{{Key: "ip:" + regulation.KeyPart(ip) + ":recovery", Rule: storage.AttemptRule{Limit: l.PerIP, Window: l.Window}, OnSuccess: regulation.Release}}
}

// resetLinkLimits bound guesses at password-reset links from one address (a right link
// is given back).
func (s *Server) resetLinkLimits(ip string) []regulation.Limit {
	l := s.cfg.LoginLimits
	return []regulation.Limit{{Key: "ip:" + regulation.KeyPart(ip) + ":resetlink", Rule: storage.AttemptRule{Limit: l.PerIP, Window: l.Window}, OnSuccess: regulation.Release}}
}

// limitName says which kind of limit a counter key is, for audit reasons.
func limitName(key string) string {
	switch {
	case strings.Contains(key, ":dev:"):
		return "known device"
	case strings.Contains(key, "pwd:ip:"), strings.Contains(key, "mfa:ip:"):
		return "account from this address"
	case strings.HasPrefix(key, "ip:"):
		return "address"
	default:
		return "account"
	}
}

// requestIP is the client address of the request in ctx ("" outside a request).
func requestIP(ctx context.Context) string {
	if ri := requestInfoFrom(ctx); ri != nil {
		return ri.IP
	}
	return ""
}

// Known devices. A browser that completed a sign-in as a person carries a cookie that
// names it (a random id with an HMAC binding it to that person); its guesses for that
// person are counted on their own, so that failures elsewhere never lock the owner out
// of the browser they use. The cookie grants nothing else.

const knownDeviceCookie = "idp_known"

// knownDeviceLifetime is how long a browser stays known after its last sign-in.
const knownDeviceLifetime = 400 * 24 * time.Hour

type knownDeviceKey struct{}

// withKnownDevice puts the browser's known-device cookie (unverified) in the context.
func (s *Server) withKnownDevice(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(s.cookieName(knownDeviceCookie)); err == nil && len(c.Value) < 256 {
			r = r.WithContext(context.WithValue(r.Context(), knownDeviceKey{}, c.Value))
		}
		next.ServeHTTP(w, r)
	})
}

// knownDevice returns the id of the browser in ctx when it is a known device of userID,
// else "".
func (s *Server) knownDevice(ctx context.Context, userID string) string {
	v, _ := ctx.Value(knownDeviceKey{}).(string)
	id, sig, ok := strings.Cut(v, ".")
	if !ok || id == "" || userID == "" {
		return ""
	}
	if !secret.EqualMAC(secret.MAC(s.csrfKey, "known-device", id+"|"+userID), sig) {
		return ""
	}
	return id
}

// markKnownDevice makes the browser a known device of userID (after a complete sign-in).
func (s *Server) markKnownDevice(w http.ResponseWriter, r *http.Request, userID string) {
	id := s.knownDevice(r.Context(), userID)
	if id == "" {
		id = secret.Token(16)
	}
	s.setCookie(w, knownDeviceCookie, id+"."+secret.MAC(s.csrfKey, "known-device", id+"|"+userID), s.now().Add(knownDeviceLifetime))
}

// reserveMFA reserves a second-factor guess by u; a refusal is audited and returned as a
// *regulation.LockedError.
func (s *Server) reserveMFA(ctx context.Context, u *storage.User, kind storage.FactorKind) (*regulation.Attempt, error) {
	att, err := s.regulator.Reserve(ctx, s.mfaLimits(u.ID, requestIP(ctx), s.knownDevice(ctx, u.ID))...)
	var locked *regulation.LockedError
	if errors.As(err, &locked) {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFAVerify, UserID: u.ID, Result: audit.ResultFailure,
			Reason: kindReason(kind, "locked ("+limitName(locked.Key)+")")})
		s.metrics.Lockout(metrics.LockoutMFA)
	}
	return att, err
}

// settleMFA settles a reserved second-factor guess with the check's outcome and returns
// the error to report: a wrong guess stays counted (and a lock it caused is audited and
// joined), anything else gives the attempt back.
func (s *Server) settleMFA(ctx context.Context, att *regulation.Attempt, u *storage.User, kind storage.FactorKind, cause error) error {
	if cause == nil {
		if err := att.Succeeded(ctx); err != nil {
			s.logger.ErrorContext(ctx, "clear mfa failure counters", "err", err)
		}
		return nil
	}
	if !guessFailure(cause) {
		if err := att.Cancel(ctx); err != nil {
			s.logger.ErrorContext(ctx, "release mfa attempt", "err", err)
		}
		return cause
	}
	if locked := att.Failed(); locked != nil {
		s.audit.Record(ctx, storage.AuditEvent{Type: audit.EventMFALockout, UserID: u.ID, Result: audit.ResultFailure,
			Reason: kindReason(kind, locked.Error()+" ("+limitName(locked.Key)+")")})
		s.metrics.Lockout(metrics.LockoutMFA)
		return errors.Join(cause, locked)
	}
	return cause
}
