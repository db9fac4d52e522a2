package mfa

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSMSEnrollRefusesNumbers(t *testing.T) {
	tests := []struct {
		name    string
		phones  PhonePolicy
		phone   string
		wantMsg string
	}{
		{name: "invalid", phone: "+44 7400", wantMsg: msgPhoneInvalid},
		{name: "empty", phone: "", wantMsg: msgPhoneInvalid},
		{name: "no country code", phone: "07400 123456", wantMsg: msgPhoneInvalid},
		{name: "landline", phones: PhonePolicy{DefaultRegion: "GB"}, phone: "020 7946 0018", wantMsg: msgPhoneNotMobile},
		{name: "country not allowed", phones: PhonePolicy{AllowedCountryCodes: []int{44}}, phone: "+49 1512 3456789", wantMsg: msgPhoneCountry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			env := newTestEnv(t)
			s := &codeTestSender{}
			f := &SMS{Env: env, Sender: codeTestSMS{s}, Phones: tt.phones}
			u := codeTestUser("alice@example.com")
			_, err := f.Enroll(ctx, u, EnrollRequest{Phone: tt.phone})
			var ie *InputError
			if !errors.As(err, &ie) || ie.Message != tt.wantMsg {
				t.Fatalf("Enroll(%q) = %v, want InputError %q", tt.phone, err, tt.wantMsg)
			}
			if n := len(s.sent()); n != 0 {
				t.Errorf("%d messages sent to a refused number", n)
			}
			if fs, err := env.Store.ListFactors(ctx, u.ID); err != nil || len(fs) != 0 {
				t.Errorf("%d factors stored for a refused number (%v)", len(fs), err)
			}
		})
	}
}

func TestSMSEnroll(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	s := &codeTestSender{}
	f := &SMS{Env: env, Sender: codeTestSMS{s}, Phones: PhonePolicy{DefaultRegion: "GB"}}
	u := codeTestUser("alice@example.com")
	en, err := f.Enroll(ctx, u, EnrollRequest{Phone: "07400 123456"})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if en.Factor.Target != "+447400123456" || en.Factor.Name != "Phone +44 ••• ••• 3456" || en.SentTo != "+44 ••• ••• 3456" {
		t.Errorf("factor target %q name %q sent to %q", en.Factor.Target, en.Factor.Name, en.SentTo)
	}
	m := s.last(t)
	if m.To != "+447400123456" {
		t.Errorf("sent to %q", m.To)
	}
	codeTestFind(t, m.Body)
	for _, want := range []string{"Test IdP", "10 minutes", "did not ask"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("message does not say %q: %s", want, m.Body)
		}
	}
	if len(m.Body) > 160 {
		t.Errorf("message is %d characters, more than one SMS: %s", len(m.Body), m.Body)
	}
	ev := codeTestAudit(t, env, "mfa.code.sent")
	if len(ev) != 1 || ev[0].Reason != "sms code sent to +44 ••• ••• 3456" {
		t.Errorf("audit %+v", ev)
	}

	named, err := f.Enroll(ctx, u, EnrollRequest{Phone: "+44 7400 654321", Name: "Work phone"})
	if err != nil || named.Factor.Name != "Work phone" {
		t.Errorf("Enroll with a name: %+v, %v", named, err)
	}
}
