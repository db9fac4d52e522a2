package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testRateLimits(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const window = time.Minute
	// The steps run in order against one store; at is an offset from now.
	steps := []struct {
		name string
		op   string // hit, count or reset
		key  string
		at   time.Duration
		want int
	}{
		{"first hit", "hit", "login:alice", 0, 1},
		{"second hit", "hit", "login:alice", 10 * time.Second, 2},
		{"third hit", "hit", "login:alice", 20 * time.Second, 3},
		{"count does not increment", "count", "login:alice", 30 * time.Second, 3},
		{"count again", "count", "login:alice", 30 * time.Second, 3},
		{"other key is separate", "count", "login:bob", 30 * time.Second, 0},
		{"other key hit", "hit", "login:bob", 30 * time.Second, 1},
		{"count after window", "count", "login:alice", window + time.Second, 0},
		{"hit after window starts anew", "hit", "login:alice", window + time.Second, 1},
		{"hit in new window", "hit", "login:alice", window + 10*time.Second, 2},
		{"count in new window", "count", "login:alice", 2 * window, 2},
		{"reset", "reset", "login:alice", 0, 0},
		{"count after reset", "count", "login:alice", 2 * window, 0},
		{"hit after reset", "hit", "login:alice", 2 * window, 1},
		{"other key unaffected", "count", "login:bob", 40 * time.Second, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var (
				got int
				err error
			)
			at := now.Add(st.at)
			switch st.op {
			case "hit":
				got, err = s.HitRateLimit(ctx, st.key, window, at)
			case "count":
				got, err = s.RateLimitCount(ctx, st.key, window, at)
			case "reset":
				err = s.ResetRateLimit(ctx, st.key)
			}
			must(t, err)
			if got != st.want {
				t.Errorf("%s %s at +%v = %d, want %d", st.op, st.key, st.at, got, st.want)
			}
		})
	}
}
