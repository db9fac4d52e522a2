package mfa

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// testEnvStart is where the clock of a test Env starts.
var testEnvStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testEnvState is the clock and audit trail behind an Env made by newTestEnv.
type testEnvState struct {
	mu     sync.Mutex
	now    time.Time
	events []storage.AuditEvent
	dir    string
	store  storage.Storage
}

// testEnvs maps each Env made by newTestEnv to its state.
var testEnvs sync.Map // *Env -> *testEnvState

// newTestEnv returns an Env on a fresh, migrated SQLite database in t.TempDir(), with a
// new Sealer and HashKey, a clock that stands still at testEnvStart until setTestNow or
// advanceTestNow moves it, and an Audit func whose events testAuditEvents returns.
func newTestEnv(t *testing.T) *Env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "idp.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatalf("sealer: %v", err)
	}
	st := &testEnvState{now: testEnvStart, dir: dir, store: store}
	e := &Env{
		Store:  store,
		Sealer: sealer,
		Now: func() time.Time {
			st.mu.Lock()
			defer st.mu.Unlock()
			return st.now
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Audit: func(_ context.Context, ev storage.AuditEvent) {
			st.mu.Lock()
			defer st.mu.Unlock()
			st.events = append(st.events, ev)
		},
		Issuer: "Test IdP",
	}
	_, _ = rand.Read(e.HashKey[:])
	testEnvs.Store(e, st)
	t.Cleanup(func() { testEnvs.Delete(e) })
	return e
}

// testState returns the state of an Env made by newTestEnv.
func testState(t *testing.T, e *Env) *testEnvState {
	t.Helper()
	st, ok := testEnvs.Load(e)
	if !ok {
		t.Fatal("Env not made by newTestEnv")
	}
	return st.(*testEnvState)
}

// testStore returns the whole store behind an Env made by newTestEnv, for what the
// factors never do themselves (creating users).
func testStore(t *testing.T, e *Env) storage.Storage {
	t.Helper()
	return testState(t, e).store
}

// setTestNow sets the clock of e.
func setTestNow(t *testing.T, e *Env, now time.Time) {
	t.Helper()
	st := testState(t, e)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.now = now
}

// advanceTestNow moves the clock of e by d.
func advanceTestNow(t *testing.T, e *Env, d time.Duration) {
	t.Helper()
	st := testState(t, e)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.now = st.now.Add(d)
}

// testAuditEvents returns a copy of the audit events e recorded so far.
func testAuditEvents(t *testing.T, e *Env) []storage.AuditEvent {
	t.Helper()
	st := testState(t, e)
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]storage.AuditEvent(nil), st.events...)
}

// testDBDir returns the directory holding e's database files.
func testDBDir(t *testing.T, e *Env) string {
	t.Helper()
	return testState(t, e).dir
}
