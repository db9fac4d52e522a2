package mfa

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/openidp/idp/storage"
)

// EmailSender delivers a plain-text e-mail. SMTPSender is the production implementation.
type EmailSender interface {
	Send(ctx context.Context, to, subject, textBody string) error
}

// Email is the factor that sends a 6-digit code to an e-mail address. Confirming the
// first code verifies the address; only a verified address serves as a second factor.
// It earns the AMR value "otp".
type Email struct {
	Env    *Env
	Sender EmailSender
}

var _ Factor = (*Email)(nil)

// Kind returns storage.FactorEmail.
func (e *Email) Kind() storage.FactorKind { return storage.FactorEmail }

func (e *Email) codes() *codeFactor {
	return &codeFactor{env: e.Env, kind: storage.FactorEmail, amr: AMROTP, mask: maskEmail, deliver: e.deliver}
}

// Enroll stores an unconfirmed e-mail factor for req.Email (default: the account's
// address) and sends it a code to confirm.
func (e *Email) Enroll(ctx context.Context, u *storage.User, req EnrollRequest) (*Enrollment, error) {
	if e.Sender == nil {
		return nil, fmt.Errorf("%w: e-mail", ErrNotConfigured)
	}
	input := strings.TrimSpace(req.Email)
	if input == "" {
		input = u.Email
	}
	addr, err := normalizeEmail(input)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = "E-mail " + maskEmail(addr)
	}
	return e.codes().create(ctx, u, addr, name)
}

// Confirm checks the code sent by Enroll and marks the factor (the address) verified.
func (e *Email) Confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) error {
	return e.codes().confirm(ctx, u, f, challengeID, response)
}

// Challenge sends a fresh code to the verified address of f.
func (e *Email) Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	if e.Sender == nil {
		return nil, fmt.Errorf("%w: e-mail", ErrNotConfigured)
	}
	return e.codes().challenge(ctx, u, f)
}

// Verify checks the code sent by Challenge and returns []string{AMROTP}.
func (e *Email) Verify(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) ([]string, error) {
	return e.codes().verify(ctx, u, f, challengeID, response)
}

// deliver writes the message carrying code. Errors are the sender's; the code is never
// part of them.
func (e *Email) deliver(ctx context.Context, to, code string, enrolling bool, failed func(error)) error {
	issuer := issuerName(e.Env)
	purpose := "sign in"
	if enrolling {
		purpose = "confirm this e-mail address"
	}
	subject := fmt.Sprintf("Your %s verification code", issuer)
	body := fmt.Sprintf(`Your %s code to %s is:

    %s

The code expires in %d minutes.

If you did not ask for this code, ignore this message: someone may have typed your
address by mistake, and nothing changes unless the code is entered. Never share the
code with anyone.
`, issuer, purpose, code, int(codeTTL.Minutes()))
	if err := e.Sender.Send(ctx, to, subject, body); err != nil {
		failed(err)
		return err
	}
	return nil
}

// normalizeEmail accepts a bare address (no display name) and returns it as parsed.
func normalizeEmail(input string) (string, error) {
	bad := &InputError{Message: "That is not a valid e-mail address."}
	a, err := mail.ParseAddress(input)
	if err != nil || a.Name != "" || strings.ContainsAny(input, "<>") {
		return "", bad
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return "", bad
	}
	return a.Address, nil
}

// maskEmail shows the first character of the local part and the whole domain:
// a***@example.com.
func maskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	first := []rune(addr[:at])[0]
	return string(first) + "***" + addr[at:]
}
