package mfa

import (
	"context"
	"strings"
	"testing"

	"github.com/pquerna/otp"
)

// The display name is what people see the service called: the TOTP label and issuer
// (Key URI format), e-mail subjects and SMS texts.
func TestDisplayNameTOTP(t *testing.T) {
	tests := []struct {
		name, issuer, display string
		wantIssuer            string
	}{
		{"display name", "https://id.example.com", "Example ID & Co", "Example ID & Co"},
		{"default is the issuer host", "http://127.0.0.1:18300", "", "127.0.0.1 18300"},
		{"colon removed", "https://id.example.com", "Example: Staff", "Example  Staff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.Issuer, env.DisplayName = tt.issuer, tt.display
			u := totpTestUser("bob@example.com")
			e, err := (&TOTP{Env: env}).Enroll(context.Background(), u, EnrollRequest{})
			if err != nil {
				t.Fatal(err)
			}
			key, err := otp.NewKeyFromURL(e.URI)
			if err != nil {
				t.Fatalf("parse %q: %v", e.URI, err)
			}
			if key.Issuer() != tt.wantIssuer || key.AccountName() != "bob@example.com" {
				t.Fatalf("issuer %q account %q from %q; want %q and bob@example.com", key.Issuer(), key.AccountName(), e.URI, tt.wantIssuer)
			}
			if strings.Contains(e.URI, "http") || strings.Contains(e.URI, "+") {
				t.Fatalf("URI %q carries the issuer URL or a + for a space", e.URI)
			}
		})
	}
}

func TestDisplayNameInMessages(t *testing.T) {
	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		env.Issuer, env.DisplayName = "http://localhost:8080", "Example ID"
		if _, err := f.Enroll(context.Background(), codeTestUser("alice@example.com"), ck.req); err != nil {
			t.Fatal(err)
		}
		m := s.last(t)
		text := m.Body
		if ck.kind == "email" {
			text = m.Subject
		}
		if !strings.Contains(text, "Example ID") || strings.Contains(m.Subject+m.Body, "localhost:8080") {
			t.Fatalf("%s message names the service wrongly: subject %q body %q", ck.name, m.Subject, m.Body)
		}
	})
}
