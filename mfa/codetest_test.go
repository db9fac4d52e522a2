package mfa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
	kind  storage.FactorKind
	amr   string
	req   EnrollRequest // a valid enrolment
	other EnrollRequest // a second valid destination
	// newFactor returns the factor over env and a fake sender that records its messages.
	newFactor func(env *Env, s *codeTestSender) Factor
}

var codeTestKinds = []codeTestKind{
	{
		name:  "email",
		kind:  storage.FactorEmail,
		amr:   AMROTP,
		req:   EnrollRequest{Email: "alice@example.com"},
		other: EnrollRequest{Email: "alice@example.org"},
		newFactor: func(env *Env, s *codeTestSender) Factor {
			return &Email{Env: env, Sender: codeTestEmail{s}}
		},
	},
	{
		name:  "sms",
		kind:  storage.FactorSMS,
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

func TestCodeFactorEnrollConfirmVerify(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		en, err := f.Enroll(ctx, u, ck.req)
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		fac := en.Factor
		if fac.Confirmed || fac.Kind != ck.kind || fac.UserID != u.ID || fac.Target == "" || fac.Name == "" {
			t.Fatalf("enrolled factor %+v", fac)
		}
		if en.ChallengeID == "" || en.SentTo == "" || strings.Contains(en.SentTo, fac.Target) {
			t.Errorf("enrolment challenge %q sent to %q (target %q): want an id and a masked destination", en.ChallengeID, en.SentTo, fac.Target)
		}
		enrolCode := codeTestFind(t, s.last(t).Body)
		if got := s.last(t).To; got != fac.Target {
			t.Errorf("sent to %q, want %q", got, fac.Target)
		}

		// Unconfirmed, the factor serves for nothing.
		if _, err := f.Challenge(ctx, u, fac); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("Challenge of an unconfirmed factor = %v, want ErrInvalidCode", err)
		}
		if _, err := f.Verify(ctx, u, fac, en.ChallengeID, enrolCode); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("Verify with an unconfirmed factor = %v, want ErrInvalidCode", err)
		}
		if n := len(s.sent()); n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}

		if err := f.Confirm(ctx, u, fac, en.ChallengeID, " "+enrolCode[:3]+" "+enrolCode[3:]); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		stored, err := env.Store.GetFactor(ctx, fac.ID)
		if err != nil || !stored.Confirmed {
			t.Fatalf("stored factor after Confirm: %+v, %v", stored, err)
		}

		advanceTestNow(t, env, time.Minute)
		ch, err := f.Challenge(ctx, u, stored)
		if err != nil {
			t.Fatalf("Challenge: %v", err)
		}
		if ch.ID == "" || ch.ID == en.ChallengeID || ch.SentTo != en.SentTo {
			t.Errorf("challenge %+v", ch)
		}
		code := codeTestFind(t, s.last(t).Body)
		amr, err := f.Verify(ctx, u, stored, ch.ID, code)
		if err != nil || len(amr) != 1 || amr[0] != ck.amr {
			t.Fatalf("Verify = %v, %v; want [%s]", amr, err, ck.amr)
		}
		stored, err = env.Store.GetFactor(ctx, fac.ID)
		if err != nil || !stored.LastUsedAt.Equal(env.now()) {
			t.Errorf("LastUsedAt = %v (%v), want %v", stored.LastUsedAt, err, env.now())
		}

		sent := codeTestAudit(t, env, "mfa.code.sent")
		if len(sent) != 2 {
			t.Fatalf("%d mfa.code.sent events, want 2", len(sent))
		}
		for _, ev := range sent {
			want := string(ck.kind) + " code sent to " + en.SentTo
			if ev.UserID != u.ID || ev.Result != "success" || ev.Reason != want {
				t.Errorf("audit %+v, want reason %q", ev, want)
			}
		}
		codeTestNoCodeInAudit(t, env, enrolCode, code)
	})
}

func TestCodeFactorAttempts(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		fac := codeTestEnrollConfirmed(t, f, s, u, ck.req)
		ch, err := f.Challenge(ctx, u, fac)
		if err != nil {
			t.Fatal(err)
		}
		code := codeTestFind(t, s.last(t).Body)
		wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1000000)
		for i := range 3 {
			if _, err := f.Verify(ctx, u, fac, ch.ID, wrong); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("wrong code %d: %v, want ErrInvalidCode", i+1, err)
			}
		}
		if _, err := f.Verify(ctx, u, fac, ch.ID, code); !errors.Is(err, ErrExpired) {
			t.Fatalf("right code after 3 wrong ones: %v, want ErrExpired", err)
		}
	})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCodeFactorExpiry(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		fac := codeTestEnrollConfirmed(t, f, s, u, ck.req)

		ch, err := f.Challenge(ctx, u, fac)
		if err != nil {
			t.Fatal(err)
		}
		advanceTestNow(t, env, 9*time.Minute)
		if _, err := f.Verify(ctx, u, fac, ch.ID, codeTestFind(t, s.last(t).Body)); err != nil {
			t.Fatalf("Verify after 9 minutes: %v", err)
		}

		ch, err = f.Challenge(ctx, u, fac)
		if err != nil {
			t.Fatal(err)
		}
		advanceTestNow(t, env, 11*time.Minute)
		if _, err := f.Verify(ctx, u, fac, ch.ID, codeTestFind(t, s.last(t).Body)); !errors.Is(err, ErrExpired) {
			t.Fatalf("Verify after 11 minutes: %v, want ErrExpired", err)
		}
	})
}

func TestCodeFactorSendLimit(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		fac := codeTestEnrollConfirmed(t, f, s, u, ck.req) // send 1
		for i := 2; i <= 3; i++ {
			if _, err := f.Challenge(ctx, u, fac); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		advanceTestNow(t, env, 14*time.Minute)
		if _, err := f.Challenge(ctx, u, fac); !errors.Is(err, ErrSendLimit) {
			t.Fatalf("fourth send within 15 minutes: %v, want ErrSendLimit", err)
		}
		if _, err := f.Enroll(ctx, u, ck.other); !errors.Is(err, ErrSendLimit) {
			t.Fatalf("enrolment past the limit: %v, want ErrSendLimit", err)
		}
		if n := len(s.sent()); n != 3 {
			t.Errorf("%d messages sent, want 3", n)
		}
		if n := len(codeTestAudit(t, env, "mfa.code.sent")); n != 3 {
			t.Errorf("%d mfa.code.sent events, want 3", n)
		}
		if fs, err := env.Store.ListFactors(ctx, u.ID); err != nil || len(fs) != 1 {
			t.Errorf("factors after a refused enrolment: %d (%v), want 1", len(fs), err)
		}

		// Another account is not affected; a new window allows sends again.
		bob := codeTestUser("bob@example.com")
		if _, err := f.Enroll(ctx, bob, ck.req); err != nil {
			t.Errorf("another account's enrolment: %v", err)
		}
		advanceTestNow(t, env, 2*time.Minute)
		ch, err := f.Challenge(ctx, u, fac)
		if err != nil {
			t.Fatalf("send in a new window: %v", err)
		}
		if _, err := f.Verify(ctx, u, fac, ch.ID, codeTestFind(t, s.last(t).Body)); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

func TestCodeFactorRefusesOtherChallenges(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		alice := codeTestUser("alice@example.com")
		bob := codeTestUser("bob@example.com")
		aliceFac := codeTestEnrollConfirmed(t, f, s, alice, ck.req)
		aliceOther := codeTestEnrollConfirmed(t, f, s, alice, ck.other)
		bobFac := codeTestEnrollConfirmed(t, f, s, bob, ck.req)

		bobCh, err := f.Challenge(ctx, bob, bobFac)
		if err != nil {
			t.Fatal(err)
		}
		bobCode := codeTestFind(t, s.last(t).Body)
		otherCh, err := f.Challenge(ctx, alice, aliceOther)
		if err != nil {
			t.Fatal(err)
		}
		otherCode := codeTestFind(t, s.last(t).Body)

		// Bob's challenge and code, presented by Alice with her factor.
		if _, err := f.Verify(ctx, alice, aliceFac, bobCh.ID, bobCode); !errors.Is(err, ErrExpired) {
			t.Errorf("another user's challenge: %v, want ErrExpired", err)
		}
		// Bob's factor presented as Alice's.
		if _, err := f.Verify(ctx, alice, bobFac, bobCh.ID, bobCode); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("another user's factor: %v, want ErrInvalidCode", err)
		}
		if _, err := f.Challenge(ctx, alice, bobFac); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("Challenge of another user's factor: %v, want ErrInvalidCode", err)
		}
		// A challenge of Alice's other factor.
		if _, err := f.Verify(ctx, alice, aliceFac, otherCh.ID, otherCode); !errors.Is(err, ErrExpired) {
			t.Errorf("another factor's challenge: %v, want ErrExpired", err)
		}
		// An unknown challenge.
		if _, err := f.Verify(ctx, alice, aliceFac, newID(), otherCode); !errors.Is(err, ErrExpired) {
			t.Errorf("unknown challenge: %v, want ErrExpired", err)
		}
		if _, err := f.Verify(ctx, alice, aliceFac, "", otherCode); !errors.Is(err, ErrExpired) {
			t.Errorf("no challenge: %v, want ErrExpired", err)
		}

		// The code of another challenge of the same factor.
		advanceTestNow(t, env, 16*time.Minute)
		chA, err := f.Challenge(ctx, alice, aliceFac)
		if err != nil {
			t.Fatal(err)
		}
		codeA := codeTestFind(t, s.last(t).Body)
		chB, err := f.Challenge(ctx, alice, aliceFac)
		if err != nil {
			t.Fatal(err)
		}
		codeB := codeTestFind(t, s.last(t).Body)
		if codeA != codeB {
			if _, err := f.Verify(ctx, alice, aliceFac, chA.ID, codeB); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("code of another challenge: %v, want ErrInvalidCode", err)
			}
		}
		if _, err := f.Verify(ctx, alice, aliceFac, chA.ID, codeA); err != nil {
			t.Errorf("Verify A: %v", err)
		}
		if _, err := f.Verify(ctx, alice, aliceFac, chB.ID, codeB); err != nil {
			t.Errorf("Verify B: %v", err)
		}
	})
}

func TestCodeFactorSingleUse(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		en, err := f.Enroll(ctx, u, ck.req)
		if err != nil {
			t.Fatal(err)
		}
		enrolCode := codeTestFind(t, s.last(t).Body)
		if err := f.Confirm(ctx, u, en.Factor, en.ChallengeID, enrolCode); err != nil {
			t.Fatal(err)
		}
		// The enrolment code cannot sign in.
		if _, err := f.Verify(ctx, u, en.Factor, en.ChallengeID, enrolCode); !errors.Is(err, ErrExpired) {
			t.Errorf("enrolment code reused to sign in: %v, want ErrExpired", err)
		}
		ch, err := f.Challenge(ctx, u, en.Factor)
		if err != nil {
			t.Fatal(err)
		}
		code := codeTestFind(t, s.last(t).Body)
		if _, err := f.Verify(ctx, u, en.Factor, ch.ID, code); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if _, err := f.Verify(ctx, u, en.Factor, ch.ID, code); !errors.Is(err, ErrExpired) {
			t.Errorf("code reused: %v, want ErrExpired", err)
		}
	})
}

func TestCodeFactorConcurrentVerify(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		u := codeTestUser("alice@example.com")
		fac := codeTestEnrollConfirmed(t, f, s, u, ck.req)
		ch, err := f.Challenge(ctx, u, fac)
		if err != nil {
			t.Fatal(err)
		}
		code := codeTestFind(t, s.last(t).Body)
		const n = 8
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				fc := *fac
				_, err := f.Verify(ctx, u, &fc, ch.ID, code)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrExpired):
			default:
				t.Errorf("concurrent Verify: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d concurrent Verify calls succeeded, want exactly 1", ok)
		}
	})
}

func TestCodeFactorNotConfigured(t *testing.T) {
	env := newTestEnv(t)
	u := codeTestUser("alice@example.com")
	fac := &storage.Factor{ID: newID(), UserID: u.ID, Confirmed: true}
	for _, f := range []Factor{&Email{Env: env}, &SMS{Env: env}} {
		fac.Kind = f.Kind()
		fac.Target = "alice@example.com"
		if _, err := f.Enroll(context.Background(), u, EnrollRequest{Phone: "+44 7400 123456"}); !errors.Is(err, ErrNotConfigured) {
			t.Errorf("%s Enroll without a sender: %v, want ErrNotConfigured", f.Kind(), err)
		}
		if _, err := f.Challenge(context.Background(), u, fac); !errors.Is(err, ErrNotConfigured) {
			t.Errorf("%s Challenge without a sender: %v, want ErrNotConfigured", f.Kind(), err)
		}
	}
}

var errCodeTestProvider = errors.New("provider down")

func TestCodeFactorProviderFailure(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		var logs bytes.Buffer
		env.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		var code string
		s.err = func(body string) error {
			code = codeTestFind(t, body)
			// A provider that echoes the message in its error.
			return fmt.Errorf("%w: rejected %q", errCodeTestProvider, body)
		}
		u := codeTestUser("alice@example.com")
		_, err := f.Enroll(ctx, u, ck.req)
		if !errors.Is(err, errCodeTestProvider) {
			t.Fatalf("Enroll with a failing provider: %v, want the provider error", err)
		}
		if strings.Contains(err.Error(), code) {
			t.Errorf("error shows the code: %v", err)
		}
		if fs, err := env.Store.ListFactors(ctx, u.ID); err != nil || len(fs) != 0 {
			t.Errorf("factors left after a failed enrolment: %d (%v)", len(fs), err)
		}
		evs := codeTestAudit(t, env, "mfa.provider.failure")
		if len(evs) != 1 {
			t.Fatalf("%d mfa.provider.failure events, want 1", len(evs))
		}
		if ev := evs[0]; ev.UserID != u.ID || ev.Result != "failure" || !strings.HasPrefix(ev.Reason, string(ck.kind)+" provider: provider down") {
			t.Errorf("audit %+v", ev)
		}
		if n := len(codeTestAudit(t, env, "mfa.code.sent")); n != 0 {
			t.Errorf("%d mfa.code.sent events after a failure", n)
		}
		codeTestNoCodeInAudit(t, env, code)
		if strings.Contains(logs.String(), code) {
			t.Errorf("log shows the code:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "delivery failed") {
			t.Errorf("failure not logged:\n%s", logs.String())
		}
	})
}
