package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

var errRefused = errors.New("refused")

// reserve calls ReserveAttempt and fails the test on a storage error.
func reserve(t *testing.T, s storage.Storage, key string, rule storage.AttemptRule, now time.Time) storage.AttemptResult {
	t.Helper()
	res, err := s.ReserveAttempt(context.Background(), key, rule, now)
	must(t, err)
	return res
}

func testAttempts(t *testing.T, s storage.Storage) {
	ctx := context.Background()
	now := clock()
	window := storage.AttemptRule{Limit: 3, Window: 15 * time.Minute}
	backoff := storage.AttemptRule{Limit: 6, BackoffAfter: 3, BackoffBase: time.Minute, BackoffMax: 4 * time.Minute}

	steps := []struct {
		name string
		key  string
		rule storage.AttemptRule
		at   time.Duration
		want storage.AttemptResult
	}{
		{"window: first", "w", window, 0, storage.AttemptResult{Reserved: true, Count: 1, WindowEnd: now.Add(15 * time.Minute)}},
		{"window: second", "w", window, time.Second, storage.AttemptResult{Reserved: true, Count: 2, WindowEnd: now.Add(15 * time.Minute)}},
		{"window: third", "w", window, 2 * time.Second, storage.AttemptResult{Reserved: true, Count: 3, WindowEnd: now.Add(15 * time.Minute)}},
		{"window: fourth refused until the window ends", "w", window, 3 * time.Second,
			storage.AttemptResult{Count: 3, BlockedUntil: now.Add(15 * time.Minute), WindowEnd: now.Add(15 * time.Minute)}},
		{"window: a new window starts afresh", "w", window, 15 * time.Minute,
			storage.AttemptResult{Reserved: true, Count: 1, WindowEnd: now.Add(30 * time.Minute)}},
		{"backoff: first", "b", backoff, 0, storage.AttemptResult{Reserved: true, Count: 1}},
		{"backoff: second", "b", backoff, 0, storage.AttemptResult{Reserved: true, Count: 2}},
		{"backoff: third blocks for the base delay", "b", backoff, 0,
			storage.AttemptResult{Reserved: true, Count: 3, BlockedUntil: now.Add(time.Minute)}},
		{"backoff: refused while blocked", "b", backoff, 59 * time.Second,
			storage.AttemptResult{Count: 3, BlockedUntil: now.Add(time.Minute)}},
		{"backoff: fourth doubles", "b", backoff, time.Minute,
			storage.AttemptResult{Reserved: true, Count: 4, BlockedUntil: now.Add(3 * time.Minute)}},
		{"backoff: fifth capped", "b", backoff, 3 * time.Minute,
			storage.AttemptResult{Reserved: true, Count: 5, BlockedUntil: now.Add(7 * time.Minute)}},
		{"backoff: sixth capped", "b", backoff, 7 * time.Minute,
			storage.AttemptResult{Reserved: true, Count: 6, BlockedUntil: now.Add(11 * time.Minute)}},
		{"backoff: no window, the limit holds until reset", "b", backoff, 365 * 24 * time.Hour,
			storage.AttemptResult{Count: 6}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := reserve(t, s, st.key, st.rule, now.Add(st.at))
			equal(t, "result", got, st.want)
		})
	}

	t.Run("release gives one attempt back", func(t *testing.T) {
		must(t, s.ReleaseAttempt(ctx, "w", window))
		equal(t, "after release", reserve(t, s, "w", window, now.Add(15*time.Minute+time.Second)),
			storage.AttemptResult{Reserved: true, Count: 1, WindowEnd: now.Add(30 * time.Minute)})
		must(t, s.ReleaseAttempt(ctx, "missing", window))
	})
	t.Run("release below the back-off threshold lifts the back-off", func(t *testing.T) {
		rule := storage.AttemptRule{Limit: 10, Window: time.Hour, BackoffAfter: 2, BackoffBase: time.Minute}
		reserve(t, s, "rb", rule, now)
		if got := reserve(t, s, "rb", rule, now); got.BlockedUntil.IsZero() {
			t.Fatal("second attempt set no back-off")
		}
		must(t, s.ReleaseAttempt(ctx, "rb", rule))
		equal(t, "after release", reserve(t, s, "rb", rule, now).Reserved, true)
	})
	t.Run("an attempt that read the clock earlier is not refused", func(t *testing.T) {
		reserve(t, s, "skew", window, now.Add(5*time.Second))
		equal(t, "earlier clock", reserve(t, s, "skew", window, now.Add(4*time.Second)).Reserved, true)
	})
	t.Run("reset and reset by prefix", func(t *testing.T) {
		must(t, s.ResetAttempts(ctx, "b"))
		equal(t, "after reset", reserve(t, s, "b", backoff, now), storage.AttemptResult{Reserved: true, Count: 1})
		for _, k := range []string{"acct:u1:1.2.3.4", "acct:u1:5.6.7.8", "acct:u10:1.2.3.4"} {
			reserve(t, s, k, window, now)
		}
		n, err := s.ResetAttemptsPrefix(ctx, "acct:u1:")
		must(t, err)
		equal(t, "counters reset by prefix", n, int64(2))
		equal(t, "other account kept", reserve(t, s, "acct:u10:1.2.3.4", window, now).Count, 2)
		// LIKE wildcards in a prefix are plain characters.
		n, err = s.ResetAttemptsPrefix(ctx, "acct:%")
		must(t, err)
		equal(t, "wildcard prefix", n, int64(0))
	})
	t.Run("expired counters are deleted, counters without a window are kept", func(t *testing.T) {
		reserve(t, s, "gone", window, now)
		reserve(t, s, "kept", backoff, now)
		_, err := s.DeleteExpired(ctx, now.Add(time.Hour))
		must(t, err)
		equal(t, "expired window starts afresh", reserve(t, s, "gone", window, now).Count, 1)
		equal(t, "consecutive count kept", reserve(t, s, "kept", backoff, now.Add(time.Hour)).Count, 2)
	})
	t.Run("limit below one is an error", func(t *testing.T) {
		if _, err := s.ReserveAttempt(ctx, "x", storage.AttemptRule{}, now); err == nil {
			t.Fatal("limit 0 accepted")
		}
	})
}

// testAttemptsConcurrent: under any concurrency a key reserves exactly as many attempts
// as its rule allows — the property that makes every guessing limit hold.
func testAttemptsConcurrent(t *testing.T, s storage.Storage) {
	now := clock()
	rules := []struct {
		name string
		rule storage.AttemptRule
		want int
	}{
		{"window limit", storage.AttemptRule{Limit: 5, Window: time.Minute}, 5},
		{"back-off", storage.AttemptRule{Limit: 100, BackoffAfter: 5, BackoffBase: time.Minute}, 5},
	}
	for _, rc := range rules {
		t.Run(rc.name, func(t *testing.T) {
			key := "race:" + rc.name
			wins := race(t, 40, errRefused, func(int) error {
				res, err := s.ReserveAttempt(context.Background(), key, rc.rule, now)
				if err != nil {
					return fmt.Errorf("reserve: %w", err)
				}
				if !res.Reserved {
					return errRefused
				}
				return nil
			})
			equal(t, "attempts reserved by 40 concurrent callers", wins, rc.want)
		})
	}
}
