// Package mfa implements the second factors: TOTP, backup codes, e-mail and SMS codes and
// WebAuthn. Each kind lives in its own file behind the Factor interface, so adding a
// kind touches one place. Guessing is limited by the provider's regulator
// (idp/regulation), which reserves every attempt before a factor checks it.
// The package knows nothing of OIDC: the idp package asks it to enrol, challenge and
// verify, and turns the AMR values it returns into tokens.
package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// AMR values (RFC 8176) the factors report.
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"  // TOTP, e-mail codes and backup codes
	AMRSMS      = "sms"  // SMS codes
	AMRHardware = "hwk"  // WebAuthn, device-bound credential (security key)
	AMRSoftware = "swk"  // WebAuthn, synced credential (passkey that may leave the device)
	AMRUser     = "user" // the authenticator verified the user (PIN or biometric)
	AMRMFA      = "mfa"  // two or more kinds of factor were used
)

// Errors every factor returns (wrapped or not); check with errors.Is. The idp layer
// shows people one generic message for ErrInvalidCode and friends.
var (
	// ErrInvalidCode: the code or assertion did not verify.
	ErrInvalidCode = errors.New("mfa: invalid code")
	// ErrReplay: a TOTP code (time step) that was already accepted once.
	ErrReplay = errors.New("mfa: code already used")
	// ErrExpired: the challenge (e-mail/SMS code, WebAuthn ceremony) expired, was used,
	// or ran out of attempts.
	ErrExpired = errors.New("mfa: challenge expired or used up")
	// ErrSendLimit: too many codes were sent to this account recently.
	ErrSendLimit = errors.New("mfa: too many codes sent, try again later")
	// ErrNotConfigured: the factor kind is not configured on this server (no SMTP, no
	// SMS provider, no WebAuthn relying party).
	ErrNotConfigured = errors.New("mfa: factor not configured on this server")
	// ErrSignCount: a WebAuthn authenticator's signature counter went backwards, a sign
	// of a cloned authenticator.
	ErrSignCount = errors.New("mfa: authenticator signature counter regressed")
)

// InputError is a refusal the person can fix (a malformed phone number, a landline);
// its Message is safe to show.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// Store is the storage the factors use: their factors, backup codes and challenges, and
// the rate-limit counters behind the per-account send limit.
type Store interface {
	storage.MFAStore
	storage.RateLimitStore
}

// Env is what every factor needs from the provider.
type Env struct {
	Store  Store
	Sealer *seal.Sealer
	// HashKey keys the hashes of backup codes and sent codes. It is a server secret kept
	// (sealed) in the database, so every process and every encryption key agree on it.
	HashKey [32]byte
	Now     func() time.Time
	Logger  *slog.Logger
	// Audit records an event (kind-specific ones such as "code sent" or "provider
	// failure"); never pass a secret or code in it.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// Issuer is the provider's issuer URL.
	Issuer string
	// DisplayName names the service to people: the TOTP label and issuer, e-mail
	// subjects, SMS texts. Default: the issuer's host.
	DisplayName string
	// SendGate, when set, is asked before every e-mail or SMS code is sent, with the
	// destination (normalised: an e-mail address or an E.164 number). A non-nil error
	// stops the send and is returned wrapped with ErrSendLimit. The provider uses it
	// for limits per destination and per source address; the per-account limit lives
	// in this package.
	SendGate func(ctx context.Context, kind storage.FactorKind, userID, target string) error
	// Confirming, when set, is called by Confirm once f has passed its enrolment check,
	// just before f is stored as confirmed. A non-nil error leaves f unconfirmed and is
	// returned by Confirm: the provider writes the enrolment's audit event there, so that
	// a factor whose event cannot be written never counts.
	Confirming func(ctx context.Context, f *storage.Factor) error
}

// confirming calls Confirming, when set, for f.
func (e *Env) confirming(ctx context.Context, f *storage.Factor) error {
	if e.Confirming == nil {
		return nil
	}
	return e.Confirming(ctx, f)
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) audit(ctx context.Context, ev storage.AuditEvent) {
	if e.Audit != nil {
		e.Audit(ctx, ev)
	}
}

// Hash returns the keyed hash (HMAC-SHA256 under HashKey, hex) of a code.
func (e *Env) Hash(purpose, code string) string {
	m := hmac.New(sha256.New, e.HashKey[:])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// EnrollRequest is what the person supplies to start enrolling a factor.
type EnrollRequest struct {
	Name  string // label for the factor
	Phone string // SMS: the number as typed
	Email string // e-mail: the address (default: the account's)
	// Device names the browser the person enrols from ("Chrome on macOS"); WebAuthn
	// names an unnamed credential after it when its authenticator is not a known one.
	Device string
	// Passkey: WebAuthn must make a discoverable credential (resident key required), one
	// that signs in alone; an authenticator that cannot is refused (an account that has
	// no password needs one).
	Passkey bool
}

// Enrollment is what the person needs to finish enrolling.
type Enrollment struct {
	Factor      *storage.Factor // created; Confirmed only for backup codes
	Secret      string          // TOTP: base32 seed for manual entry
	URI         string          // TOTP: otpauth:// URI
	QRPNG       []byte          // TOTP: the URI as a QR code (PNG)
	ChallengeID string          // e-mail/SMS: the code that was sent; WebAuthn: the ceremony
	Options     json.RawMessage // WebAuthn: PublicKeyCredentialCreationOptions
	SentTo      string          // e-mail/SMS: masked destination
	Codes       []string        // backup: the new codes, shown once
}

// Challenge is a started sign-in check.
type Challenge struct {
	ID      string          // e-mail/SMS/WebAuthn: the challenge to answer; "" for TOTP/backup
	Options json.RawMessage // WebAuthn: PublicKeyCredentialRequestOptions
	SentTo  string          // e-mail/SMS: masked destination
}

// Factor is one kind of second factor.
type Factor interface {
	Kind() storage.FactorKind
	// Enroll starts enrolling a factor of this kind for u and stores it unconfirmed
	// (backup codes: confirmed, and any earlier codes replaced).
	Enroll(ctx context.Context, u *storage.User, req EnrollRequest) (*Enrollment, error)
	// Confirm finishes enrolment of f with the person's response: a TOTP code, the code
	// that was sent (challengeID), or the WebAuthn attestation (JSON).
	Confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) error
	// Challenge starts a sign-in check with f: e-mail and SMS send a code, WebAuthn
	// returns assertion options, TOTP and backup codes need nothing.
	Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error)
	// Verify checks the response to a challenge and returns the AMR values earned.
	Verify(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) ([]string, error)
}

// Registry holds the factor kinds this server offers.
type Registry struct {
	factors map[storage.FactorKind]Factor
	order   []storage.FactorKind
}

// NewRegistry registers factors in display order.
func NewRegistry(factors ...Factor) *Registry {
	r := &Registry{factors: map[storage.FactorKind]Factor{}}
	for _, f := range factors {
		r.factors[f.Kind()] = f
		r.order = append(r.order, f.Kind())
	}
	return r
}

// Get returns the factor of kind k, or ErrNotConfigured.
func (r *Registry) Get(k storage.FactorKind) (Factor, error) {
	f, ok := r.factors[k]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotConfigured, k)
	}
	return f, nil
}

// Kinds lists the registered kinds in display order.
func (r *Registry) Kinds() []storage.FactorKind { return append([]storage.FactorKind(nil), r.order...) }

// randomDigits returns n random decimal digits.
func randomDigits(n int) (string, error) {
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			return "", fmt.Errorf("random digits: %w", err)
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b), nil
}

// newID returns a random 128-bit id (base64url-safe hex).
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
