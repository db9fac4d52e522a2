package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/openidp/idp/storage"
)

// TOTP parameters (RFC 6238): what every authenticator app supports.
const (
	totpPeriod     = 30 // seconds per time step
	totpDigits     = 6
	totpSecretSize = 20 // bytes: 160 bits, the length RFC 4226 recommends
	totpSkew       = 1  // steps of clock drift accepted either side
	totpQRSize     = 256
	totpIssuer     = "openidp"
	totpName       = "Authenticator app"
)

// totpOpts are the options every code is generated with.
var totpOpts = totp.ValidateOpts{
	Period:    totpPeriod,
	Digits:    otp.DigitsSix,
	Algorithm: otp.AlgorithmSHA1,
}

// TOTP is the authenticator-app factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps,
// one step of drift either side). The seed is sealed at rest; each accepted time step is
// recorded atomically in storage, so a code cannot be used twice, not even by another
// process.
type TOTP struct{ Env *Env }

var _ Factor = (*TOTP)(nil)

// Kind returns storage.FactorTOTP.
func (*TOTP) Kind() storage.FactorKind { return storage.FactorTOTP }

// Enroll generates a 160-bit seed, stores it sealed in an unconfirmed factor and returns
// the seed in base32, as an otpauth:// URI and as a QR code.
func (t *TOTP) Enroll(ctx context.Context, u *storage.User, req EnrollRequest) (*Enrollment, error) {
	if u == nil {
		return nil, errors.New("totp enroll: no user")
	}
	seed := make([]byte, totpSecretSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate totp key: %w", err)
	}
	// Base32 without padding, as otp's own generator writes it.
	enr, err := t.enrollment(u, base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed))
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = totpName
	}
	f := &storage.Factor{
		ID:        newID(),
		UserID:    u.ID,
		Kind:      storage.FactorTOTP,
		Name:      name,
		CreatedAt: t.Env.now(),
	}
	f.Secret, err = t.Env.Sealer.Seal([]byte(enr.Secret), totpAAD(f.ID))
	if err != nil {
		return nil, fmt.Errorf("seal totp secret: %w", err)
	}
	if err := t.Env.Store.CreateFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("create totp factor: %w", err)
	}
	enr.Factor = f
	return enr, nil
}

// Pending rebuilds the enrolment of u's unconfirmed factor f from its sealed seed (the
// base32 seed, otpauth:// URI and QR code), so that a person who mistyped the
// confirming code can scan it again. A confirmed factor's seed is never shown again.
func (t *TOTP) Pending(u *storage.User, f *storage.Factor) (*Enrollment, error) {
	if err := totpCheckFactor(u, f); err != nil {
		return nil, err
	}
	if f.Confirmed {
		return nil, fmt.Errorf("totp factor %s is confirmed: its key is not shown again", f.ID)
	}
	secret, err := t.Env.Sealer.Open(f.Secret, totpAAD(f.ID))
	if err != nil {
		return nil, fmt.Errorf("open totp secret: %w", err)
	}
	enr, err := t.enrollment(u, string(secret))
	if err != nil {
		return nil, err
	}
	enr.Factor = f
	return enr, nil
}

// enrollment returns the seed secret of u as shown for enrolment: in base32, as an
// otpauth:// URI and as a QR code.
func (t *TOTP) enrollment(u *storage.User, secret string) (*Enrollment, error) {
	issuer := totpIssuer
	if t.Env.DisplayName != "" || t.Env.Issuer != "" {
		issuer = issuerName(t.Env)
	}
	account := u.Email
	if account == "" {
		account = u.ID
	}
	// Key URI format: the label is issuer:account, and neither part may contain a
	// colon (a default display name is a host, which may carry a port).
	noColon := strings.NewReplacer(":", " ")
	issuer, account = strings.TrimSpace(noColon.Replace(issuer)), noColon.Replace(account)
	// otp leaves "&" and "#" of the issuer unescaped in the query; the URI is built
	// escaped per the Key URI format (spaces as %20 in the label and the parameters).
	key, err := otp.NewKeyFromURL(keyURI(issuer, account, secret))
	if err != nil {
		return nil, fmt.Errorf("totp key uri: %w", err)
	}
	img, err := key.Image(totpQRSize, totpQRSize)
	if err != nil {
		return nil, fmt.Errorf("totp qr code: %w", err)
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return nil, fmt.Errorf("totp qr code: %w", err)
	}
	return &Enrollment{Secret: key.Secret(), URI: key.URL(), QRPNG: qr.Bytes()}, nil
}

// keyURI is the otpauth URI of a TOTP seed (Key URI format).
func keyURI(issuer, account, secret string) string {
	q := url.Values{
		"secret": {secret}, "issuer": {issuer}, "algorithm": {"SHA1"},
		"digits": {strconv.Itoa(int(otp.DigitsSix))}, "period": {strconv.Itoa(totpPeriod)},
	}
	return "otpauth://totp/" + url.PathEscape(issuer) + ":" + url.PathEscape(account) + "?" +
		strings.ReplaceAll(q.Encode(), "+", "%20")
}

// Confirm finishes enrolment when response is a valid code for f. The confirming code's
// time step is recorded, so that code cannot then be used to sign in.
func (t *TOTP) Confirm(ctx context.Context, u *storage.User, f *storage.Factor, _, response string) error {
	if err := totpCheckFactor(u, f); err != nil {
		return err
	}
	if f.Confirmed {
		return fmt.Errorf("%w: totp factor %s is already confirmed", ErrInvalidCode, f.ID)
	}
	if err := t.check(ctx, f, response); err != nil {
		return err
	}
	if err := t.Env.confirming(ctx, f); err != nil {
		return err
	}
	f.Confirmed = true
	if err := t.Env.Store.UpdateFactor(ctx, f); err != nil {
		f.Confirmed = false
		return fmt.Errorf("confirm totp factor: %w", err)
	}
	return nil
}

// Challenge has nothing to send: the code is on the person's device.
func (*TOTP) Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	return &Challenge{}, nil
}

// Verify checks a code against confirmed factor f. It returns ErrInvalidCode when the code
// matches none of the accepted time steps, and ErrReplay when it matches a step that was
// already accepted (or one older than the last accepted).
func (t *TOTP) Verify(ctx context.Context, u *storage.User, f *storage.Factor, _, response string) ([]string, error) {
	if err := totpCheckFactor(u, f); err != nil {
		return nil, err
	}
	if !f.Confirmed {
		return nil, fmt.Errorf("%w: totp factor %s is not confirmed", ErrInvalidCode, f.ID)
	}
	if err := t.check(ctx, f, response); err != nil {
		return nil, err
	}
	return []string{AMROTP}, nil
}

// check verifies code against f at the Env's clock and records the matching time step
// with AdvanceTOTPStep, which succeeds once per step across every process.
func (t *TOTP) check(ctx context.Context, f *storage.Factor, response string) error {
	code := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, response)
	if !totpWellFormed(code) {
		return fmt.Errorf("%w: not %d digits", ErrInvalidCode, totpDigits)
	}
	secret, err := t.Env.Sealer.Open(f.Secret, totpAAD(f.ID))
	if err != nil {
		return fmt.Errorf("open totp secret: %w", err)
	}
	now := t.Env.now()
	matches, err := totpMatches(string(secret), code, now)
	if err != nil {
		return err
	}
	if len(matches) == 0 {
		return ErrInvalidCode
	}
	// A code may (rarely) match more than one step; take the earliest one storage
	// still accepts, so a genuine code is never refused as a replay.
	for _, step := range matches {
		err = t.Env.Store.AdvanceTOTPStep(ctx, f.ID, step, now)
		if err == nil {
			f.LastStep, f.LastUsedAt = step, now
			return nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("record totp step: %w", err)
		}
	}
	t.Env.audit(ctx, storage.AuditEvent{
		Time:   now,
		Type:   "mfa.totp.replay",
		UserID: f.UserID,
		Result: "failure",
		Reason: "time step already used",
	})
	return ErrReplay
}

// totpMatches returns, in increasing order, the time steps around now whose code equals
// code. It computes and compares the code of every step in the window, whether or not an
// earlier one matched, in constant time.
func totpMatches(secret, code string, now time.Time) ([]int64, error) {
	current := now.Unix() / totpPeriod
	var matches []int64
	for step := current - totpSkew; step <= current+totpSkew; step++ {
		if step < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return nil, fmt.Errorf("compute totp code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matches = append(matches, step)
		}
	}
	return matches, nil
}

// totpWellFormed reports whether code is exactly totpDigits ASCII digits.
func totpWellFormed(code string) bool {
	if len(code) != totpDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// totpCheckFactor refuses a factor that is not a TOTP factor of u.
func totpCheckFactor(u *storage.User, f *storage.Factor) error {
	if u == nil || f == nil {
		return errors.New("totp: no user or factor")
	}
	if f.Kind != storage.FactorTOTP || f.UserID != u.ID {
		return fmt.Errorf("%w: factor %s is not a totp factor of user %s", ErrInvalidCode, f.ID, u.ID)
	}
	return nil
}

// totpAAD binds a sealed seed to its factor, so it cannot be moved to another one.
func totpAAD(factorID string) []byte { return []byte("factor:" + factorID) }
