package conformance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testChallenges(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const maxAttempts = 3
	c := newChallenge("ch-1", now)
	must(t, s.CreateChallenge(ctx, c))
	// A WebAuthn ceremony: no code, no data round-trips as empty.
	wa := &storage.Challenge{ID: "ch-webauthn", UserID: "user-a", Kind: "webauthn", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	must(t, s.CreateChallenge(ctx, wa))

	want := *c
	for i := 1; i <= maxAttempts; i++ {
		got, err := s.AttemptChallenge(ctx, c.ID, now.Add(time.Duration(i)*time.Second), maxAttempts)
		must(t, err)
		want.Attempts = i
		equal(t, fmt.Sprintf("attempt %d", i), got, &want)
	}
	got, err := s.AttemptChallenge(ctx, wa.ID, now, maxAttempts)
	must(t, err)
	wantWA := *wa
	wantWA.Attempts = 1
	equal(t, "attempt at webauthn challenge", got, &wantWA)

	expiring := newChallenge("ch-expiring", now)
	expiring.ExpiresAt = now.Add(time.Minute)
	consumed := newChallenge("ch-consumed", now)
	must(t, s.CreateChallenge(ctx, expiring))
	must(t, s.CreateChallenge(ctx, consumed))
	_, err = s.AttemptChallenge(ctx, consumed.ID, now, maxAttempts)
	must(t, err)
	must(t, s.ConsumeChallenge(ctx, consumed.ID, now.Add(time.Second)))

	runErrCases(t, []errCase{
		{"attempt past maxAttempts", func() error {
			_, err := s.AttemptChallenge(ctx, c.ID, now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"attempt after expiry", func() error {
			_, err := s.AttemptChallenge(ctx, expiring.ID, expiring.ExpiresAt.Add(time.Second), maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"attempt after consumption", func() error {
			_, err := s.AttemptChallenge(ctx, consumed.ID, now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"second consumption", func() error {
			return s.ConsumeChallenge(ctx, consumed.ID, now.Add(2*time.Second))
		}, storage.ErrNotFound},
		{"attempt missing", func() error {
			_, err := s.AttemptChallenge(ctx, "ch-missing", now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"consume missing", func() error {
			return s.ConsumeChallenge(ctx, "ch-missing", now)
		}, storage.ErrNotFound},
		{"CreateChallenge duplicate id", func() error {
			return s.CreateChallenge(ctx, newChallenge(c.ID, now))
		}, storage.ErrAlreadyExists},
	})

	// Failed attempts are not counted: the expired attempt left the counter alone.
	got, err = s.AttemptChallenge(ctx, expiring.ID, now, maxAttempts)
	must(t, err)
	if got.Attempts != 1 {
		t.Errorf("Attempts after a refused and an accepted attempt = %d, want 1", got.Attempts)
	}
	// A larger limit lets the exhausted challenge go on counting from where it was.
	got, err = s.AttemptChallenge(ctx, c.ID, now, maxAttempts+1)
	must(t, err)
	if got.Attempts != maxAttempts+1 {
		t.Errorf("Attempts = %d, want %d", got.Attempts, maxAttempts+1)
	}
	must(t, s.ConsumeChallenge(ctx, c.ID, now))
	wantErr(t, s.ConsumeChallenge(ctx, c.ID, now), storage.ErrNotFound)
}

func testChallengeConcurrentAttempts(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const maxAttempts = 5
	c := newChallenge("ch-race", now)
	must(t, s.CreateChallenge(ctx, c))
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	wins := race(t, concurrency, storage.ErrNotFound, func(int) error {
		got, err := s.AttemptChallenge(ctx, c.ID, now, maxAttempts)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[got.Attempts] {
			t.Errorf("two attempts were both counted as number %d", got.Attempts)
		}
		seen[got.Attempts] = true
		return nil
	})
	if wins != maxAttempts {
		t.Fatalf("%d of %d concurrent attempts were accepted, want exactly %d", wins, concurrency, maxAttempts)
	}
	wins = race(t, concurrency, storage.ErrNotFound, func(int) error {
		return s.ConsumeChallenge(ctx, c.ID, now)
	})
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeChallenge calls won, want exactly 1", wins, concurrency)
	}
}

func testFailureCounters(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	until := now.Add(15 * time.Minute)
	// The steps run in order against one store.
	steps := []struct {
		name      string
		op        string // inc, get, lock, unlock or reset
		key       string
		want      int       // failures returned by inc or get
		wantUntil time.Time // lockedUntil returned by get
		wantErr   error
	}{
		{"missing counter", "get", "acct:alice", 0, time.Time{}, nil},
		{"first failure", "inc", "acct:alice", 1, time.Time{}, nil},
		{"second failure", "inc", "acct:alice", 2, time.Time{}, nil},
		{"other key", "inc", "acct:bob", 1, time.Time{}, nil},
		{"get", "get", "acct:alice", 2, time.Time{}, nil},
		{"lock", "lock", "acct:alice", 0, time.Time{}, nil},
		{"get locked", "get", "acct:alice", 2, until, nil},
		{"failure while locked", "inc", "acct:alice", 3, time.Time{}, nil},
		{"increment keeps the lock", "get", "acct:alice", 3, until, nil},
		{"unlock", "unlock", "acct:alice", 0, time.Time{}, nil},
		{"get unlocked", "get", "acct:alice", 3, time.Time{}, nil},
		{"lock missing counter", "lock", "acct:nobody", 0, time.Time{}, storage.ErrNotFound},
		{"lock did not create a counter", "get", "acct:nobody", 0, time.Time{}, nil},
		{"lock again", "lock", "acct:alice", 0, time.Time{}, nil},
		{"reset", "reset", "acct:alice", 0, time.Time{}, nil},
		{"get after reset", "get", "acct:alice", 0, time.Time{}, nil},
		{"reset missing counter", "reset", "acct:nobody", 0, time.Time{}, nil},
		{"failure after reset starts at 1, unlocked", "inc", "acct:alice", 1, time.Time{}, nil},
		{"get after reset and failure", "get", "acct:alice", 1, time.Time{}, nil},
		{"other key unaffected", "get", "acct:bob", 1, time.Time{}, nil},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var (
				got      int
				gotUntil time.Time
				err      error
			)
			switch st.op {
			case "inc":
				got, err = s.IncrementFailures(ctx, st.key, now.Add(time.Duration(i)*time.Second))
			case "get":
				got, gotUntil, err = s.GetFailures(ctx, st.key)
			case "lock":
				err = s.SetLockedUntil(ctx, st.key, until)
			case "unlock":
				err = s.SetLockedUntil(ctx, st.key, time.Time{})
			case "reset":
				err = s.ResetFailures(ctx, st.key)
			}
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
				return
			}
			must(t, err)
			if got != st.want {
				t.Errorf("%s %s = %d, want %d", st.op, st.key, got, st.want)
			}
			equal(t, st.op+" "+st.key+" lockedUntil", gotUntil, st.wantUntil)
		})
	}
}

// testReplaceChallenge: ReplaceChallenge inserts, then overwrites every field of the
// challenge with the same id (a used or exhausted challenge becomes a fresh one), and
// never adds a second row.
func testReplaceChallenge(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	first := &storage.Challenge{ID: "passkey:ar-1", Kind: "passkey", Data: []byte(`{"c":1}`), CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	must(t, s.ReplaceChallenge(ctx, first))
	got, err := s.AttemptChallenge(ctx, first.ID, now, 1)
	must(t, err)
	want := *first
	want.Attempts = 1
	equal(t, "first attempt", got, &want)
	must(t, s.ConsumeChallenge(ctx, first.ID, now))

	second := &storage.Challenge{ID: first.ID, Kind: "passkey", Data: []byte(`{"c":2}`), CreatedAt: now.Add(time.Second), ExpiresAt: now.Add(2 * time.Minute)}
	must(t, s.ReplaceChallenge(ctx, second))
	got, err = s.AttemptChallenge(ctx, first.ID, now.Add(time.Second), 1)
	must(t, err)
	want = *second
	want.Attempts = 1
	equal(t, "attempt after replacement", got, &want)
	runErrCases(t, []errCase{
		{"replaced challenge has one attempt like any other", func() error {
			_, err := s.AttemptChallenge(ctx, first.ID, now.Add(time.Second), 1)
			return err
		}, storage.ErrNotFound},
		{"create with the replaced id still conflicts", func() error {
			return s.CreateChallenge(ctx, &storage.Challenge{ID: first.ID, CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
		}, storage.ErrAlreadyExists},
	})
}
