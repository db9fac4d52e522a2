package mfa

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// TestConfirmingRefused: a factor that passes its enrolment check is stored as confirmed
// only when Env.Confirming (where the provider writes the enrolment's audit event)
// allows it; its error is Confirm's, and the factor stays unconfirmed.
func TestConfirmingRefused(t *testing.T) {
	refused := errors.New("audit event not recorded")
	check := func(t *testing.T, env *Env, f *storage.Factor, seen []string, err error, want bool) {
		t.Helper()
		got, gerr := env.Store.GetFactor(context.Background(), f.ID)
		if gerr != nil {
			t.Fatal(gerr)
		}
		if got.Confirmed != want {
			t.Errorf("after Confirm (%v): confirmed %v, want %v", err, got.Confirmed, want)
		}
		if len(seen) != 1 || seen[0] != f.ID {
			t.Errorf("Confirming saw %q, want once %q", seen, f.ID)
		}
	}

	t.Run("totp", func(t *testing.T) {
		ctx := context.Background()
		env := newTestEnv(t)
		var seen []string
		env.Confirming = func(_ context.Context, f *storage.Factor) error { seen = append(seen, f.ID); return refused }
		m := &TOTP{Env: env}
		u := totpTestUser("alice@example.com")
		e, err := m.Enroll(ctx, u, EnrollRequest{})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Confirm(ctx, u, e.Factor, "", totpTestCode(t, e.Secret, env.now()))
		if !errors.Is(err, refused) {
			t.Fatalf("Confirm with Confirming refusing = %v, want its error", err)
		}
		check(t, env, e.Factor, seen, err, false)

		seen = nil
		env.Confirming = func(_ context.Context, f *storage.Factor) error { seen = append(seen, f.ID); return nil }
		advanceTestNow(t, env, 30*time.Second) // the refused code's time step is spent
		f, err := env.Store.GetFactor(ctx, e.Factor.ID)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Confirm(ctx, u, f, "", totpTestCode(t, e.Secret, env.now()))
		if err != nil {
			t.Fatalf("Confirm = %v", err)
		}
		check(t, env, f, seen, err, true)
	})

	codeTestEach(t, func(t *testing.T, ck codeTestKind, env *Env, f Factor, s *codeTestSender) {
		ctx := context.Background()
		var seen []string
		env.Confirming = func(_ context.Context, f *storage.Factor) error { seen = append(seen, f.ID); return refused }
		u := codeTestUser("alice@example.com")
		en, err := f.Enroll(ctx, u, ck.req)
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		err = f.Confirm(ctx, u, en.Factor, en.ChallengeID, codeTestFind(t, s.last(t).Body))
		if !errors.Is(err, refused) {
			t.Fatalf("Confirm with Confirming refusing = %v, want its error", err)
		}
		check(t, env, en.Factor, seen, err, false)
	})
}
