package mfa

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/openidp/idp/storage"
)

// Helpers shared by the tests of the code-by-message factors (e-mail and SMS).

// codeTestUser returns a user that exists only in memory (factors do not reference users).
func codeTestUser(email string) *storage.User {
	return &storage.User{ID: newID(), Email: email}
}

// codeTestDigits finds a sent code in a message.
var codeTestDigits = regexp.MustCompile(`\b\d{6}\b`)

// codeTestFind returns the one 6-digit code in a message body.
func codeTestFind(t *testing.T, body string) string {
	t.Helper()
	codes := codeTestDigits.FindAllString(body, -1)
	if len(codes) != 1 {
		t.Fatalf("want one 6-digit code in the message, found %q in:\n%s", codes, body)
	}
	return codes[0]
}

// codeTestMessage is one message a fake sender was asked to deliver.
type codeTestMessage struct {
	To, Subject, Body string
}

// codeTestSender records the messages it is given (as an EmailSender and an SMSSender) and
// fails with err when set.
type codeTestSender struct {
	mu   sync.Mutex
	msgs []codeTestMessage
	err  func(body string) error
}

func (s *codeTestSender) deliver(ctx context.Context, to, subject, body string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		if err := s.err(body); err != nil {
			return err
		}
	}
	s.msgs = append(s.msgs, codeTestMessage{To: to, Subject: subject, Body: body})
	return nil
}

func (s *codeTestSender) sent() []codeTestMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]codeTestMessage(nil), s.msgs...)
}

// last returns the last message delivered.
func (s *codeTestSender) last(t *testing.T) codeTestMessage {
	t.Helper()
	msgs := s.sent()
	if len(msgs) == 0 {
		t.Fatal("nothing was sent")
	}
	return msgs[len(msgs)-1]
}

// codeTestEmail adapts codeTestSender to EmailSender.
type codeTestEmail struct{ *codeTestSender }

func (s codeTestEmail) Send(ctx context.Context, to, subject, body string) error {
	return s.deliver(ctx, to, subject, body)
}

// codeTestSMS adapts codeTestSender to SMSSender.
type codeTestSMS struct{ *codeTestSender }

func (s codeTestSMS) Send(ctx context.Context, to, body string) error {
	return s.deliver(ctx, to, "", body)
}

// codeTestKind describes one code-by-message factor for the tests run against both.
type codeTestKind struct {
	name  string
	kind  Kind
	amr   string
	req   EnrollRequest // a valid enrolment
	other EnrollRequest // a second valid destination
	// newFactor returns the factor over env and a fake sender that records its messages.
	newFactor func(env *Env, s *codeTestSender) Factor
}

var codeTestKinds = []codeTestKind{
	{
		name:  "email",
		kind:  KindEmail,
		amr:   AMROTP,
		req:   EnrollRequest{Email: "alice@example.com"},
		other: EnrollRequest{Email: "alice@example.org"},
		newFactor: func(env *Env, s *codeTestSender) Factor {
			return &Email{Env: env, Sender: codeTestEmail{s}}
		},
	},
	{
		name:  "sms",
		kind:  KindSMS,
		amr:   AMRSMS,
		req:   EnrollRequest{Phone: "+44 7400 123456"},
		other: EnrollRequest{Phone: "+44 7400 654321"},
		newFactor: func(env *Env, s *codeTestSender) Factor {
			return &SMS{Env: env, Sender: codeTestSMS{s}, Phones: PhonePolicy{DefaultRegion: "GB"}}
		},
	},
}

// codeTestEach runs test as a subtest for the e-mail and the SMS factor, each with a
// fresh Env and fake sender.
func codeTestEach(t *testing.T, test func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender)) {
	t.Helper()
	for _, ck := range codeTestKinds {
		t.Run(ck.name, func(t *testing.T) {
			env := newTestEnv(t)
			s := &codeTestSender{}
			test(t, ck, env, ck.newFactor(env, s), s)
		})
	}
}

// codeTestEnrollConfirmed enrolls a factor of the given request and confirms it with the code
// that was sent.
func codeTestEnrollConfirmed(t *testing.T, f Factor, s *codeTestSender, u *storage.User, req EnrollRequest) *storage.Factor {
	t.Helper()
	ctx := context.Background()
	en, err := f.Enroll(ctx, u, req)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if err := f.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, s.last(t).Body)); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return en.Factor
}

// codeTestAudit returns the recorded events of type typ.
func codeTestAudit(t *testing.T, env *Env, typ string) []storage.AuditEvent {
	t.Helper()
	var out []storage.AuditEvent
	for _, ev := range testAuditEvents(t, env) {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// codeTestNoCodeInAudit fails if any recorded audit event mentions one of codes.
func codeTestNoCodeInAudit(t *testing.T, env *Env, codes ...string) {
	t.Helper()
	for _, ev := range testAuditEvents(t, env) {
		for _, c := range codes {
			if c != "" && (strings.Contains(ev.Reason, c) || strings.Contains(ev.Type, c)) {
				t.Errorf("audit event %+v contains the code %s", ev, c)
			}
		}
	}
}
