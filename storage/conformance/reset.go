package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// newReset is an unused password-reset link of userID, valid 15 minutes from now.
func newReset(id, userID string, now time.Time) *storage.PasswordReset {
	return &storage.PasswordReset{ID: id, UserID: userID, TokenHash: "th-" + id, AuthRequestID: "ar-" + id,
		CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
}

// resetUser creates a user whose password hash is "old".
func resetUser(t *testing.T, s storage.Storage, id string, now time.Time) {
	t.Helper()
	must(t, s.CreateUser(t.Context(), &storage.User{ID: id, Email: id + "@example.com", PasswordHash: "old",
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour)}))
}

// wantPasswordHash fails the test unless userID's password hash is want.
func wantPasswordHash(t *testing.T, s storage.Storage, userID, want string) {
	t.Helper()
	u, err := s.GetUser(t.Context(), userID)
	must(t, err)
	if u.PasswordHash != want {
		t.Errorf("password hash of %s = %q, want %q", userID, u.PasswordHash, want)
	}
}

func testPasswordResets(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	resetUser(t, s, "u1", now)
	resetUser(t, s, "u2", now)
	r1, r2, other := newReset("r1", "u1", now), newReset("r2", "u1", now), newReset("r3", "u2", now)
	expired := newReset("r4", "u1", now.Add(-time.Hour))
	for _, r := range []*storage.PasswordReset{r1, r2, other, expired} {
		must(t, s.CreatePasswordReset(ctx, r))
	}
	got, err := s.GetPasswordReset(ctx, "th-r1")
	must(t, err)
	equal(t, "GetPasswordReset", got, r1)

	runErrCases(t, []errCase{
		{"CreatePasswordReset duplicate id", func() error { return s.CreatePasswordReset(ctx, newReset("r1", "u1", now)) }, storage.ErrAlreadyExists},
		{"CreatePasswordReset duplicate token", func() error {
			r := newReset("r9", "u1", now)
			r.TokenHash = "th-r1"
			return s.CreatePasswordReset(ctx, r)
		}, storage.ErrAlreadyExists},
		{"GetPasswordReset unknown", func() error { _, err := s.GetPasswordReset(ctx, "th-nope"); return err }, storage.ErrNotFound},
		{"SetPasswordResetPending expired", func() error { return s.SetPasswordResetPending(ctx, "r4", "p", "new", now) }, storage.ErrNotFound},
		{"SetPasswordResetPending unknown", func() error { return s.SetPasswordResetPending(ctx, "nope", "p", "new", now) }, storage.ErrNotFound},
		{"CompletePasswordReset without pending", func() error { _, err := s.CompletePasswordReset(ctx, "r1", "", now); return err }, storage.ErrNotFound},
	})
	wantPasswordHash(t, s, "u1", "old")

	// A pending password is replaced by the next one; completing needs the current one.
	must(t, s.SetPasswordResetPending(ctx, "r1", "p1", "first", now))
	must(t, s.SetPasswordResetPending(ctx, "r1", "p2", "second", now))
	got, err = s.GetPasswordReset(ctx, "th-r1")
	must(t, err)
	if got.PendingID != "p2" || got.PendingHash != "second" {
		t.Errorf("pending = %q %q, want p2 second", got.PendingID, got.PendingHash)
	}
	if _, err := s.CompletePasswordReset(ctx, "r1", "p1", now); err == nil {
		t.Fatal("CompletePasswordReset with a replaced pending id succeeded")
	}
	wantPasswordHash(t, s, "u1", "old")
	// An expired link never completes, even with a pending password set before expiry.
	must(t, s.SetPasswordResetPending(ctx, "r2", "q", "late", now))
	if _, err := s.CompletePasswordReset(ctx, "r2", "q", now.Add(16*time.Minute)); err == nil {
		t.Fatal("CompletePasswordReset of an expired link succeeded")
	}
	wantPasswordHash(t, s, "u1", "old")

	done, err := s.CompletePasswordReset(ctx, "r1", "p2", now)
	must(t, err)
	if done.UserID != "u1" || done.PendingHash != "second" || done.AuthRequestID != "ar-r1" {
		t.Errorf("CompletePasswordReset returned %+v", done)
	}
	wantPasswordHash(t, s, "u1", "second")
	u, err := s.GetUser(ctx, "u1")
	must(t, err)
	if !u.UpdatedAt.Equal(now) {
		t.Errorf("UpdatedAt = %v, want %v", u.UpdatedAt, now)
	}
	// The link is used, and so is the person's other link; another person's is not.
	for _, id := range []string{"r1", "r2"} {
		got, err := s.GetPasswordReset(ctx, "th-"+id)
		must(t, err)
		if got.ConsumedAt.IsZero() {
			t.Errorf("link %s not consumed after the reset of its user", id)
		}
	}
	wantErr(t, s.SetPasswordResetPending(ctx, "r2", "q2", "again", now), storage.ErrNotFound)
	if _, err := s.CompletePasswordReset(ctx, "r2", "q", now); err == nil {
		t.Fatal("a link invalidated by another link's use completed")
	}
	wantPasswordHash(t, s, "u1", "second")
	got, err = s.GetPasswordReset(ctx, "th-r3")
	must(t, err)
	if !got.ConsumedAt.IsZero() {
		t.Error("another person's link was consumed")
	}

	// DeleteExpired removes expired links.
	if _, err := s.DeleteExpired(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, func() error { _, err := s.GetPasswordReset(ctx, "th-r3"); return err }(), storage.ErrNotFound)
}

func testPasswordResetConcurrentComplete(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	resetUser(t, s, "u1", now)
	must(t, s.CreatePasswordReset(ctx, newReset("r1", "u1", now)))
	must(t, s.SetPasswordResetPending(ctx, "r1", "p", "new", now))
	wins := race(t, concurrency, storage.ErrNotFound, func(int) error {
		_, err := s.CompletePasswordReset(ctx, "r1", "p", now)
		return err
	})
	if wins != 1 {
		t.Fatalf("%d concurrent completions succeeded, want exactly 1", wins)
	}
	wantPasswordHash(t, s, "u1", "new")

	// Two links of one person, completed at once: one wins, the other is invalidated.
	for i := range 2 {
		id := fmt.Sprintf("s%d", i)
		must(t, s.CreatePasswordReset(ctx, newReset(id, "u1", now)))
		must(t, s.SetPasswordResetPending(ctx, id, "p", "hash-"+id, now))
	}
	wins = race(t, 2, storage.ErrNotFound, func(i int) error {
		_, err := s.CompletePasswordReset(ctx, fmt.Sprintf("s%d", i), "p", now)
		return err
	})
	if wins != 1 {
		t.Fatalf("%d of two links of one person completed, want exactly 1", wins)
	}
}
