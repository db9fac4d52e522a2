package regulation_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/sqlite"
)

func newRegulator(t *testing.T) (*regulation.Regulator, storage.Storage, *time.Time) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	return &regulation.Regulator{Store: st, Now: func() time.Time { return now }}, st, &now
}

var (
	pair   = storage.AttemptRule{Limit: 100, Window: time.Hour, BackoffAfter: 3, BackoffBase: time.Minute, BackoffMax: time.Hour}
	shared = storage.AttemptRule{Limit: 5, Window: time.Hour}
	never  = storage.AttemptRule{Limit: 2}
)

func limits() []regulation.Limit {
	return []regulation.Limit{
		{Key: "acct:ip", Rule: pair, OnSuccess: regulation.Reset},
		{Key: "ip", Rule: shared, OnSuccess: regulation.Release},
	}
}

func TestRegulator(t *testing.T) {
	ctx := context.Background()
	type outcome int
	const (
		fail outcome = iota
		succeed
		cancel
	)
	tests := []struct {
		name     string
		outcomes []outcome
		wantLock string // "" none, "until", "permanent": the next Reserve's answer
	}{
		{"two failures lock nothing", []outcome{fail, fail}, ""},
		{"the third failure starts the back-off", []outcome{fail, fail, fail}, "until"},
		{"a success resets the pair and gives the address its attempt back", []outcome{fail, fail, succeed, fail, fail}, ""},
		{"a cancelled attempt does not count", []outcome{fail, fail, cancel, cancel, cancel}, ""},
		{"the address limit holds across accounts' successes", []outcome{fail, succeed, fail, fail, fail}, "until"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := newRegulator(t)
			for i, o := range tc.outcomes {
				a, err := r.Reserve(ctx, limits()...)
				if err != nil {
					t.Fatalf("attempt %d: %v", i+1, err)
				}
				switch o {
				case fail:
					a.Failed()
				case succeed:
					if err := a.Succeeded(ctx); err != nil {
						t.Fatal(err)
					}
				case cancel:
					if err := a.Cancel(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := r.Reserve(ctx, limits()...)
			var locked *regulation.LockedError
			switch tc.wantLock {
			case "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case "until":
				if !errors.As(err, &locked) || locked.Permanent || locked.Until.IsZero() {
					t.Fatalf("got %v, want a lock with an end", err)
				}
			}
		})
	}
}

// A limit that refuses gives back what earlier limits reserved: a refused attempt costs
// nothing anywhere.
func TestRefusalReleasesEarlierLimits(t *testing.T) {
	ctx := context.Background()
	r, st, now := newRegulator(t)
	ls := []regulation.Limit{{Key: "first", Rule: shared}, {Key: "last", Rule: never}}
	for range 2 {
		a, err := r.Reserve(ctx, ls...)
		if err != nil {
			t.Fatal(err)
		}
		if lock := a.Failed(); lock != nil && !lock.Permanent {
			t.Fatalf("unexpected lock %v", lock)
		}
	}
	for range 3 {
		_, err := r.Reserve(ctx, ls...)
		var locked *regulation.LockedError
		if !errors.As(err, &locked) || !locked.Permanent || locked.Key != "last" {
			t.Fatalf("got %v, want a permanent lock by the last limit", err)
		}
	}
	res, err := st.ReserveAttempt(ctx, "first", shared, *now)
	if err != nil || res.Count != 3 { // two failures and this one
		t.Fatalf("first limit counted refused attempts: %+v %v", res, err)
	}
	if n, err := r.Unlock(ctx, "la"); err != nil || n != 1 {
		t.Fatalf("unlock: %d %v", n, err)
	}
	if _, err := r.Reserve(ctx, ls...); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

// Failed reports the lock the failure leaves: permanent at a windowless limit, else the
// back-off's end.
func TestFailedReportsTheLock(t *testing.T) {
	ctx := context.Background()
	r, _, now := newRegulator(t)
	ls := []regulation.Limit{{Key: "pair", Rule: pair}, {Key: "account", Rule: storage.AttemptRule{Limit: 3, BackoffAfter: 2, BackoffBase: time.Minute}}}
	var locks []*regulation.LockedError
	for range 3 {
		a, err := r.Reserve(ctx, ls...)
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, a.Failed())
		*now = now.Add(time.Hour)
	}
	if locks[0] != nil {
		t.Fatalf("first failure locked: %v", locks[0])
	}
	if locks[1] == nil || locks[1].Permanent || locks[1].Key != "account" {
		t.Fatalf("second failure: %v, want the account's back-off", locks[1])
	}
	if locks[2] == nil || !locks[2].Permanent {
		t.Fatalf("third failure: %v, want permanent", locks[2])
	}
}

// A ClearOnly limit is neither counted nor refusing, and a success resets it.
func TestClearOnly(t *testing.T) {
	ctx := context.Background()
	r, st, now := newRegulator(t)
	for range 2 {
		if _, err := st.ReserveAttempt(ctx, "account", never, *now); err != nil {
			t.Fatal(err)
		}
	}
	ls := []regulation.Limit{{Key: "device", Rule: pair}, {Key: "account", ClearOnly: true}}
	a, err := r.Reserve(ctx, ls...)
	if err != nil {
		t.Fatalf("a full ClearOnly limit refused: %v", err)
	}
	if err := a.Succeeded(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := st.ReserveAttempt(ctx, "account", never, *now); err != nil || !res.Reserved || res.Count != 1 {
		t.Fatalf("account counter not reset by the success: %+v %v", res, err)
	}
}
