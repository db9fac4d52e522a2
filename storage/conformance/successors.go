package conformance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// testClearRefreshSuccessors: ClearRefreshSuccessors drops the sealed successor of the
// tokens rotated before the cut-off only — keeping the rotation and the successor's id —
// is idempotent, and clears a backlog larger than one statement's batch (1,000) whole.
func testClearRefreshSuccessors(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	// rotate stores rt (when it is the family's first) and rotates it to next at at,
	// keeping sealed (nil: none) as the successor's value.
	rotate := func(t *testing.T, rt, next *storage.RefreshToken, at time.Time, sealed []byte) {
		t.Helper()
		must(t, s.IssueTokens(ctx, &storage.TokenIssue{RotateID: rt.ID, RotatedAt: at, SuccessorSealed: sealed, Refresh: next}))
	}
	a, b, c, d := newRefreshToken("succ-a", "user-a", "fam-succ", now), newRefreshToken("succ-b", "user-a", "fam-succ", now),
		newRefreshToken("succ-c", "user-a", "fam-succ", now), newRefreshToken("succ-d", "user-a", "fam-succ", now)
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{Refresh: a}))
	rotate(t, a, b, now, []byte("sealed b"))
	rotate(t, b, c, now.Add(time.Minute), []byte("sealed c"))
	rotate(t, c, d, now.Add(2*time.Minute), nil)

	n, err := s.ClearRefreshSuccessors(ctx, now.Add(30*time.Second))
	must(t, err)
	if n != 1 {
		t.Errorf("ClearRefreshSuccessors(30 s after the first rotation) = %d, want 1", n)
	}
	for _, want := range []struct {
		id, successor string
		rotated       time.Time
		sealed        []byte
	}{
		{a.ID, b.ID, now, nil},
		{b.ID, c.ID, now.Add(time.Minute), []byte("sealed c")},
		{c.ID, d.ID, now.Add(2 * time.Minute), nil},
	} {
		got, err := s.GetRefreshToken(ctx, want.id)
		must(t, err)
		if got.SuccessorID != want.successor || !got.RotatedAt.Equal(want.rotated) || string(got.SuccessorSealed) != string(want.sealed) {
			t.Errorf("%s after the clear: successor %q rotated %v sealed %q, want %q %v %q",
				want.id, got.SuccessorID, got.RotatedAt, got.SuccessorSealed, want.successor, want.rotated, want.sealed)
		}
	}
	if n, err := s.ClearRefreshSuccessors(ctx, now.Add(30*time.Second)); err != nil || n != 0 {
		t.Errorf("the same clear again = %d, %v, want 0", n, err)
	}

	// A backlog of more than one batch, rotated concurrently.
	const backlog = 1005
	later := now.Add(3 * time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, backlog)
	sem := make(chan struct{}, 16)
	for i := range backlog {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fam := fmt.Sprintf("fam-backlog-%d", i)
			first, second := newRefreshToken(fam+"-1", "user-a", fam, now), newRefreshToken(fam+"-2", "user-a", fam, now)
			if err := s.IssueTokens(ctx, &storage.TokenIssue{Refresh: first}); err != nil {
				errs <- err
				return
			}
			errs <- s.IssueTokens(ctx, &storage.TokenIssue{RotateID: first.ID, RotatedAt: later, SuccessorSealed: []byte("sealed"), Refresh: second})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	n, err = s.ClearRefreshSuccessors(ctx, later.Add(time.Second))
	must(t, err)
	if n != backlog+1 { // and succ-b's
		t.Errorf("ClearRefreshSuccessors over the backlog = %d, want %d", n, backlog+1)
	}
	if n, err := s.ClearRefreshSuccessors(ctx, later.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("a clear after the backlog's = %d, %v, want 0", n, err)
	}
	got, err := s.GetRefreshToken(ctx, "fam-backlog-7-1")
	must(t, err)
	if got.SuccessorID != "fam-backlog-7-2" || len(got.SuccessorSealed) != 0 {
		t.Errorf("a backlog token after the clear: successor %q sealed %q", got.SuccessorID, got.SuccessorSealed)
	}
}
