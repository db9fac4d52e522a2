package mfa

import (
	"context"
	"fmt"
	"strings"

	"github.com/openidp/idp/storage"
)

// SMSSender delivers a text message to an E.164 number. TwilioSender, WebhookSender and
// LogSender (development) implement it; RetrySender adds retries to any of them.
type SMSSender interface {
	Send(ctx context.Context, to, body string) error
}

// reportingSender is an SMSSender that tries several times and reports every failed
// attempt (RetrySender), so that each one is audited.
type reportingSender interface {
	SendReporting(ctx context.Context, to, body string, report func(attempt int, err error)) error
}

// SMS is the factor that sends a 6-digit code by text message to a mobile number
// accepted by Phones. It earns the AMR value "sms". Being phishable and exposed to SIM
// swaps, it is the weakest factor offered; the idp layer decides whether it counts.
type SMS struct {
	Env    *Env
	Sender SMSSender
	Phones PhonePolicy
}

var _ Factor = (*SMS)(nil)

// Kind returns storage.FactorSMS.
func (s *SMS) Kind() storage.FactorKind { return storage.FactorSMS }

func (s *SMS) codes() *codeFactor {
	return &codeFactor{env: s.Env, kind: storage.FactorSMS, amr: AMRSMS, mask: maskPhone, deliver: s.deliver}
}

// Enroll normalizes req.Phone (an *InputError says what is wrong with it), stores an
// unconfirmed SMS factor for it and texts it a code to confirm.
func (s *SMS) Enroll(ctx context.Context, u *storage.User, req EnrollRequest) (*Enrollment, error) {
	if s.Sender == nil {
		return nil, fmt.Errorf("%w: sms", ErrNotConfigured)
	}
	number, err := s.Phones.Normalize(req.Phone)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = "Phone " + maskPhone(number)
	}
	return s.codes().create(ctx, u, number, name)
}

// Confirm checks the code sent by Enroll and marks the factor confirmed.
func (s *SMS) Confirm(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) error {
	return s.codes().confirm(ctx, u, f, challengeID, response)
}

// Challenge texts a fresh code to the confirmed number of f.
func (s *SMS) Challenge(ctx context.Context, u *storage.User, f *storage.Factor) (*Challenge, error) {
	if s.Sender == nil {
		return nil, fmt.Errorf("%w: sms", ErrNotConfigured)
	}
	return s.codes().challenge(ctx, u, f)
}

// Verify checks the code sent by Challenge and returns []string{AMRSMS}.
func (s *SMS) Verify(ctx context.Context, u *storage.User, f *storage.Factor, challengeID, response string) ([]string, error) {
	return s.codes().verify(ctx, u, f, challengeID, response)
}

// deliver texts the code, reporting every failed attempt of a retrying sender.
func (s *SMS) deliver(ctx context.Context, to, code string, enrolling bool, failed func(error)) error {
	purpose := "sign in"
	if enrolling {
		purpose = "confirm this phone"
	}
	body := fmt.Sprintf("Your %s code to %s is %s. It expires in %d minutes. If you did not ask for it, ignore this message.",
		issuerName(s.Env), purpose, code, int(codeTTL.Minutes()))
	if rs, ok := s.Sender.(reportingSender); ok {
		return rs.SendReporting(ctx, to, body, func(_ int, err error) { failed(err) })
	}
	if err := s.Sender.Send(ctx, to, body); err != nil {
		failed(err)
		return err
	}
	return nil
}
