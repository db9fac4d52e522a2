package mfa

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// BenchmarkTOTPVerify measures one TOTP check: unseal the seed, compare three steps,
// and the atomic replay-protection write, on SQLite.
func BenchmarkTOTPVerify(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	sealer, _ := seal.New(seal.NewKey())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := &Env{Store: st, Sealer: sealer, Now: func() time.Time { return now }, Issuer: "bench"}
	u := &storage.User{ID: "u1", Email: "bench@example.com", CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	f := &TOTP{Env: env}
	enr, err := f.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		b.Fatal(err)
	}
	code, _ := totp.GenerateCode(enr.Secret, now)
	if err := f.Confirm(ctx, u, enr.Factor, "", code); err != nil {
		b.Fatal(err)
	}
	factor, _ := st.GetFactor(ctx, enr.Factor.ID)
	for b.Loop() {
		now = now.Add(30 * time.Second) // a fresh step each time: no replay
		code, _ := totp.GenerateCode(enr.Secret, now)
		if _, err := f.Verify(ctx, u, factor, "", code); err != nil {
			b.Fatal(err)
		}
	}
}
