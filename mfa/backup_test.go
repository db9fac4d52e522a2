package mfa

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// backupFormat is how codes are displayed.
var backupFormat = regexp.MustCompile(`^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}$`)

// backupTestEnroll enrolls backup codes for a new user.
func backupTestEnroll(t *testing.T, env *Env) (*Backup, *storage.User, *Enrollment) {
	t.Helper()
	b := &Backup{Env: env}
	u := &storage.User{ID: newID(), Email: "alice@example.com"}
	e, err := b.Enroll(context.Background(), u, EnrollRequest{})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return b, u, e
}

// backupTestRemaining returns b.Remaining or fails the test.
func backupTestRemaining(t *testing.T, b *Backup, userID string) int {
	t.Helper()
	n, err := b.Remaining(context.Background(), userID)
	if err != nil {
		t.Fatalf("Remaining: %v", err)
	}
	return n
}

func TestBackupEnroll(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, e := backupTestEnroll(t, env)

	if len(e.Codes) != 10 {
		t.Fatalf("%d codes, want 10", len(e.Codes))
	}
	seen := map[string]bool{}
	for _, c := range e.Codes {
		if !backupFormat.MatchString(c) {
			t.Errorf("code %q is not XXXX-XXXX over the alphabet without look-alikes", c)
		}
		if seen[c] {
			t.Errorf("code %q twice", c)
		}
		seen[c] = true
	}

	f := e.Factor
	if f == nil || f.Kind != "backup" || !f.Confirmed || f.UserID != u.ID || f.Name != "Backup codes" {
		t.Fatalf("factor = %+v, want a confirmed backup factor of the user", f)
	}
	got, err := env.Store.GetFactor(ctx, f.ID)
	if err != nil {
		t.Fatalf("GetFactor: %v", err)
	}
	if !got.Confirmed || got.Kind != "backup" {
		t.Errorf("stored factor = %+v", got)
	}
	if n := backupTestRemaining(t, b, u.ID); n != 10 {
		t.Errorf("Remaining = %d, want 10", n)
	}

	// Regenerating keeps the one factor.
	e2, err := b.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Factor.ID != f.ID {
		t.Errorf("regeneration made factor %s, want the existing %s", e2.Factor.ID, f.ID)
	}
	fs, err := env.Store.ListFactors(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Errorf("user has %d factors, want 1", len(fs))
	}
}

func TestBackupCodeAlphabet(t *testing.T) {
	// Over many codes every character comes from the alphabet, and no look-alike appears.
	counts := map[rune]int{}
	for range 2000 {
		c, err := backupCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 8 {
			t.Fatalf("code %q has %d characters", c, len(c))
		}
		for _, r := range c {
			counts[r]++
		}
	}
	for r := range counts {
		if !strings.ContainsRune(backupAlphabet, r) || strings.ContainsRune("01OIL", r) {
			t.Errorf("character %q in a code", r)
		}
	}
	if len(counts) != len(backupAlphabet) {
		t.Errorf("%d distinct characters in 16000, want all %d", len(counts), len(backupAlphabet))
	}
}

func TestBackupVerify(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, e := backupTestEnroll(t, env)
	f := e.Factor

	for i, c := range e.Codes {
		amr, err := b.Verify(ctx, u, f, "", c)
		if err != nil {
			t.Fatalf("Verify(code %d) = %v", i, err)
		}
		if len(amr) != 1 || amr[0] != AMROTP {
			t.Errorf("amr = %v, want [%s]", amr, AMROTP)
		}
		if n := backupTestRemaining(t, b, u.ID); n != 9-i {
			t.Errorf("Remaining after %d used = %d, want %d", i+1, n, 9-i)
		}
		if _, err := b.Verify(ctx, u, f, "", c); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("Verify(code %d again) = %v, want ErrInvalidCode", i, err)
		}
	}
	got, err := env.Store.GetFactor(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsedAt.Equal(env.now()) {
		t.Errorf("LastUsedAt = %v, want %v", got.LastUsedAt, env.now())
	}
}

func TestBackupInputs(t *testing.T) {
	tests := []struct {
		name  string
		input func(code string) string
		ok    bool
	}{
		{"as shown", func(c string) string { return c }, true},
		{"lower case", strings.ToLower, true},
		{"no dash", func(c string) string { return strings.ReplaceAll(c, "-", "") }, true},
		{"spaced", func(c string) string { return " " + c[:2] + " " + c[2:4] + " " + c[5:] + "\t" }, true},
		{"space for dash", func(c string) string { return strings.ReplaceAll(strings.ToLower(c), "-", " ") }, true},
		{"empty", func(string) string { return "" }, false},
		{"too short", func(c string) string { return c[:8] }, false},
		{"too long", func(c string) string { return c + "2" }, false},
		{"look-alike", func(c string) string { return "O" + c[1:] }, false},
		{"another code", func(string) string { return "2345-6789" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			b, u, e := backupTestEnroll(t, env)
			_, err := b.Verify(context.Background(), u, e.Factor, "", tt.input(e.Codes[0]))
			if tt.ok && err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("Verify = %v, want ErrInvalidCode", err)
			}
			want := 9
			if !tt.ok {
				want = 10
			}
			if n := backupTestRemaining(t, b, u.ID); n != want {
				t.Errorf("Remaining = %d, want %d", n, want)
			}
		})
	}
}

func TestBackupRegenerateInvalidates(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, old := backupTestEnroll(t, env)
	if _, err := b.Verify(ctx, u, old.Factor, "", old.Codes[0]); err != nil {
		t.Fatal(err)
	}
	fresh, err := b.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := backupTestRemaining(t, b, u.ID); n != 10 {
		t.Errorf("Remaining after regeneration = %d, want 10", n)
	}
	for i, c := range old.Codes[1:] {
		if _, err := b.Verify(ctx, u, fresh.Factor, "", c); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("Verify(old code %d) = %v, want ErrInvalidCode", i+1, err)
		}
	}
	if _, err := b.Verify(ctx, u, fresh.Factor, "", fresh.Codes[0]); err != nil {
		t.Errorf("Verify(new code) = %v", err)
	}
}

func TestBackupRefusesOtherFactors(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, alice, e := backupTestEnroll(t, env)
	_, bob, bobs := backupTestEnroll(t, env)
	totpFactor := *e.Factor
	totpFactor.Kind = storage.FactorTOTP

	tests := []struct {
		name string
		u    *storage.User
		f    *storage.Factor
		code string
	}{
		{"another user's factor", bob, e.Factor, e.Codes[0]},
		{"another user's code", alice, e.Factor, bobs.Codes[0]},
		{"factor of another kind", alice, &totpFactor, e.Codes[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := b.Verify(ctx, tt.u, tt.f, "", tt.code); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("Verify = %v, want ErrInvalidCode", err)
			}
		})
	}
	for _, u := range []*storage.User{alice, bob} {
		if n := backupTestRemaining(t, b, u.ID); n != 10 {
			t.Errorf("Remaining of %s = %d, want 10", u.Email, n)
		}
	}
}

func TestBackupConcurrentUse(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, e := backupTestEnroll(t, env)

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = b.Verify(ctx, u, e.Factor, "", e.Codes[0]) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrInvalidCode):
			t.Errorf("Verify = %v, want nil or ErrInvalidCode", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one code succeeded, want exactly 1", ok, n)
	}
}

func TestBackupStoredOnlyAsKeyedHashes(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, e := backupTestEnroll(t, env)

	// The factor record holds no code.
	f, err := env.Store.GetFactor(ctx, e.Factor.ID)
	if err != nil {
		t.Fatal(err)
	}
	record := strings.Join([]string{f.Name, f.Target, string(f.Secret)}, "\x00")
	for _, c := range e.Codes {
		if strings.Contains(record, c) || strings.Contains(record, strings.ReplaceAll(c, "-", "")) {
			t.Errorf("factor record contains code %s", c)
		}
	}

	// No code, in either form, is anywhere in the database files.
	var db []byte
	entries, err := os.ReadDir(testDBDir(t, env))
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		data, err := os.ReadFile(filepath.Join(testDBDir(t, env), de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		db = append(db, data...)
	}
	for _, c := range e.Codes {
		for _, form := range []string{c, strings.ReplaceAll(c, "-", "")} {
			if bytes.Contains(db, []byte(form)) {
				t.Errorf("database holds code %s in clear", form)
			}
		}
	}

	// What is stored is the keyed hash of the normalised code: consuming that hash
	// directly spends the code, and the code itself (or an unkeyed form) is no key.
	code := strings.ReplaceAll(e.Codes[0], "-", "")
	for _, notTheHash := range []string{code, e.Codes[0], (&Env{}).Hash("backup", code)} {
		if err := env.Store.ConsumeBackupCode(ctx, u.ID, notTheHash, env.now()); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ConsumeBackupCode(%q) = %v, want ErrNotFound", notTheHash, err)
		}
	}
	if err := env.Store.ConsumeBackupCode(ctx, u.ID, env.Hash("backup", code), env.now()); err != nil {
		t.Fatalf("ConsumeBackupCode(Env.Hash of the code) = %v", err)
	}
	if _, err := b.Verify(ctx, u, e.Factor, "", e.Codes[0]); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("Verify after the hash was consumed = %v, want ErrInvalidCode", err)
	}
	if len(testAuditEvents(t, env)) != 0 {
		t.Errorf("audit events %v, want none", testAuditEvents(t, env))
	}
}

func TestBackupLastUsedAtFollowsClock(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	b, u, e := backupTestEnroll(t, env)
	for i := range 2 {
		advanceTestNow(t, env, time.Hour)
		if _, err := b.Verify(ctx, u, e.Factor, "", e.Codes[i]); err != nil {
			t.Fatal(err)
		}
		f, err := env.Store.GetFactor(ctx, e.Factor.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !f.LastUsedAt.Equal(env.now()) || f.Name != "Backup codes" || !f.Confirmed {
			t.Errorf("after use %d: factor = %+v, want LastUsedAt %v and nothing else changed", i, f, env.now())
		}
	}
}
