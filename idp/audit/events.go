package audit

import (
	"slices"
	"strings"
)

// Every audit event type the provider records, in one place. Each names what happened;
// the event's Result (ResultSuccess or ResultFailure) says whether it succeeded.
// docs/security.md lists them for operators.

// Results.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Sign-in, consent and tokens.
const (
	EventLoginPassword = "login.password"
	EventLoginSSO      = "login.sso"
	EventLogout        = "logout"
	EventConsentGrant  = "consent.grant"
	EventConsentDeny   = "consent.deny"
	EventTokenIssue    = "token.issue"
	EventTokenRefresh  = "token.refresh"
	EventRefreshReuse  = "token.refresh.reuse"
	EventTokenRevoke   = "token.revoke"
	EventCodeReuse     = "token.code.invalid"
	EventCodeReplay    = "token.code.reuse" // a redeemed code presented again: its tokens revoked
	EventClientAuth    = "client.auth"
	// EventLoginPolicy: a login refused because its requirements cannot be met.
	EventLoginPolicy = "login.policy"
	// EventLoginDevice: a remembered device stood in for the second factor.
	EventLoginDevice = "login.device"
)

// Second factors. Reasons carry "kind=<factor kind>" and never a code or secret.
const (
	EventMFAEnrollStart = "mfa.enroll.start"
	EventMFAEnroll      = "mfa.enroll"
	EventMFAVerify      = "mfa.verify"
	EventMFALockout     = "mfa.lockout"
	EventMFARemove      = "mfa.remove"
	EventMFARegenerate  = "mfa.backup.regenerate"
	// EventMFAGrace: a login let through without a required factor, within the grace period.
	EventMFAGrace = "mfa.grace"
	// EventMFAEnrolRequired: a login sent to enrol a factor its policy requires.
	EventMFAEnrolRequired = "mfa.enrol.required"
	// EventMFACodeLimited: an e-mail or SMS code was not sent, a send limit refused it.
	EventMFACodeLimited = "mfa.code.limited"
	// EventMFARecovery: a recovery link (from an MFA reset) was used.
	EventMFARecovery = "mfa.recovery"
)

// Second-factor events recorded by package mfa itself, which sits below this package and
// so spells them as literals; listed here so that this file names every event.
const (
	EventMFACodeSent        = "mfa.code.sent"
	EventMFAProviderFailure = "mfa.provider.failure"
	EventMFAWebAuthnCount   = "mfa.webauthn.signcount"
	EventMFATOTPReplay      = "mfa.totp.replay"
)

// Password reset by e-mail ("Forgot your password?"). Reasons never carry the link or
// the address typed.
const (
	// EventPasswordResetRequest: a reset link was asked for. Success: a link was sent
	// (the reason names it and how many addresses got it); failure: none was (unknown or
	// disabled account, no verified address, a send limit refused it).
	EventPasswordResetRequest = "password.reset.request"
	// EventPasswordResetComplete: a new password took effect through a reset link; the
	// reason says how many sessions ended and devices were forgotten.
	EventPasswordResetComplete = "password.reset.complete"
	// EventPasswordResetFailure: a reset link was refused (unknown, expired or used link,
	// the address's guessing limit, a wrong second factor, a lost race).
	EventPasswordResetFailure = "password.reset.failure"
)

// Sessions, back-channel logout and trusted devices.
const (
	// EventSessionEnd: an SSO session was ended (logout, session limit, account page,
	// administrator); the reason says why.
	EventSessionEnd = "session.end"
	// EventBackchannelLogout: one delivery of a logout token to a client's
	// backchannel_logout_uri; the reason gives the HTTP status or the error.
	EventBackchannelLogout = "logout.backchannel"
	// EventDeviceRemember: a browser was remembered after a sign-in.
	EventDeviceRemember = "device.remember"
	// EventDeviceRevoke: remembered devices were forgotten (by the person, an
	// administrator or a password change); the reason says which and how many.
	EventDeviceRevoke = "device.revoke"
)

// The device authorization grant (RFC 8628).
const (
	// EventDeviceCode: a user code entered on the device page (failure: unknown,
	// expired or used code, or the address's guessing limit refused it).
	EventDeviceCode = "device_code.verify"
	// EventDeviceApprove: a device authorization approved by a completed sign-in.
	EventDeviceApprove = "device_code.approve"
	// EventDeviceDeny: a device authorization denied (consent denied, or the sign-in
	// failed its requirements).
	EventDeviceDeny = "device_code.deny"
)

// Operator actions (package admin). The Reason names the acting operator.
const (
	EventAdminUserCreate   = "admin.user.create"
	EventAdminUserUpdate   = "admin.user.update"
	EventAdminUserDisable  = "admin.user.disable"
	EventAdminClientCreate = "admin.client.create"
	EventAdminClientUpdate = "admin.client.update"
	EventAdminClientDelete = "admin.client.delete"
	// EventAdminResourceCreate and EventAdminResourceDelete: a resource (RFC 8707) is
	// registered or removed; the reason gives its URI.
	EventAdminResourceCreate = "admin.resource.create"
	EventAdminResourceDelete = "admin.resource.delete"
	EventAdminKeyRotate      = "admin.keys.rotate"
	EventAdminPolicySet      = "admin.policy.set"
	EventAdminSessionsEnd    = "admin.user.sessions.end"
	EventAdminMFAReset       = "admin.mfa.reset"
	// EventAdminPassword: a password set by an operator.
	EventAdminPassword = "admin.user.password"
	// EventAdminReencrypt: an encryption-key rotation (every secret at rest re-sealed).
	EventAdminReencrypt = "admin.keys.rotate_encryption"
	// EventAdminUserEnable: a disabled account enabled again.
	EventAdminUserEnable = "admin.user.enable"
	// EventAdminClientSecret: a client's secret replaced (the old one stops working).
	EventAdminClientSecret = "admin.client.secret.rotate"
	// EventAdminSessionEnd: one session ended by an operator (the reason names it).
	EventAdminSessionEnd = "admin.session.end"
	// EventAdminClientSessionsEnd: every session that signed in to a client ended.
	EventAdminClientSessionsEnd = "admin.client.sessions.end"
)

// EventLoginPasskey: a sign-in with a passkey alone. success: a session began (the
// reason gives its amr); failure: why (invalid assertion, challenge expired or used
// up, sign count regression, account disabled, rate limited (<limit>)).
const EventLoginPasskey = "login.passkey"

// Passkey-only accounts.
const (
	// EventAdminEnrolLink: an administrator issued an enrolment link (a person with no
	// password, or whose only factors were reset, registers a passkey with it).
	EventAdminEnrolLink = "admin.user.enrolment_link"
	// EventMFAEnrolLink: an enrolment link was used to register a passkey (or refused).
	EventMFAEnrolLink = "mfa.enrolment_link"
	// EventPasswordRemove: a person with a passkey removed their password.
	EventPasswordRemove = "account.password.remove"
)

// EventRetention is the audit event `idp audit prune` records after removing old
// events. Its Reason holds RetentionAnchorKey=<hash of the newest removed event>, which
// documents where the retained chain starts.
const EventRetention = "audit.retention"

// EventChainKeyed is the marker appended when the audit chain becomes keyed on a trail
// that holds unkeyed events (the first start after the upgrade to the keyed chain): the
// only event `idp audit verify` accepts as the first keyed one after unkeyed events.
const EventChainKeyed = "audit.chain_keyed"

// EventTypes lists every event type above, for validating a type asked for (`idp audit
// list --type`); a test keeps it complete.
var EventTypes = []string{
	EventLoginPassword, EventLoginPasskey, EventAdminEnrolLink, EventMFAEnrolLink, EventPasswordRemove, EventLoginSSO, EventLogout, EventConsentGrant, EventConsentDeny,
	EventTokenIssue, EventTokenRefresh, EventRefreshReuse, EventTokenRevoke, EventCodeReuse,
	EventCodeReplay, EventClientAuth, EventLoginPolicy, EventLoginDevice,
	EventMFAEnrollStart, EventMFAEnroll, EventMFAVerify, EventMFALockout, EventMFARemove,
	EventMFARegenerate, EventMFAGrace, EventMFAEnrolRequired, EventMFACodeLimited,
	EventMFARecovery,
	EventMFACodeSent, EventMFAProviderFailure, EventMFAWebAuthnCount, EventMFATOTPReplay,
	EventPasswordResetRequest, EventPasswordResetComplete, EventPasswordResetFailure,
	EventSessionEnd, EventBackchannelLogout, EventDeviceRemember, EventDeviceRevoke,
	EventDeviceCode, EventDeviceApprove, EventDeviceDeny,
	EventAdminUserCreate, EventAdminUserUpdate, EventAdminUserDisable, EventAdminClientCreate,
	EventAdminClientUpdate, EventAdminClientDelete, EventAdminResourceCreate,
	EventAdminResourceDelete, EventAdminKeyRotate, EventAdminPolicySet, EventAdminSessionsEnd,
	EventAdminMFAReset, EventAdminPassword, EventAdminReencrypt,
	EventAdminUserEnable, EventAdminClientSecret, EventAdminSessionEnd, EventAdminClientSessionsEnd,
	EventRetention, EventChainKeyed,
}

// KnownType returns the stored event type that typ names, and whether there is one.
// The stored names spell enrolment both ways (mfa.enroll, mfa.enroll.start, but
// mfa.enrol.required); they are kept as recorded so that old events still match, and
// either spelling of the word is accepted here.
func KnownType(typ string) (string, bool) {
	for _, cand := range []string{
		typ,
		strings.Replace(typ, ".enrol.", ".enroll.", 1),
		strings.Replace(typ, ".enroll.", ".enrol.", 1),
		strings.TrimSuffix(typ, ".enrol") + ".enroll",
	} {
		if slices.Contains(EventTypes, cand) {
			return cand, true
		}
	}
	return "", false
}
