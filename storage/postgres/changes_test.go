package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/cache"
	"github.com/openidp/idp/storage/conformance"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// TestCache runs the cache tests: each "process" is another Open of the same database.
func TestCache(t *testing.T) {
	conformance.RunCacheTests(t, func(t *testing.T) func(t *testing.T) storage.Storage {
		url := pgtest.NewDatabase(t)
		migrated := false
		return func(t *testing.T) storage.Storage {
			s := openStore(t, url)
			if !migrated {
				migrated = true
				if _, err := s.Migrate(context.Background()); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
			}
			return s
		}
	})
}

// TestCacheReconnect: when the listening connection dies, the cache stops serving from
// memory, and when the listener is back it starts afresh — so a change made while no
// notification could arrive is still seen.
func TestCacheReconnect(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	a := openStore(t, url)
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := conformance.StartCache(t, a, cache.Options{TTL: time.Hour})
	now := time.Now().UTC().Truncate(time.Microsecond)
	cl := &storage.Client{ID: "c1", Name: "before", GrantTypes: []string{"client_credentials"}, CreatedAt: now}
	if err := a.CreateClient(ctx, cl); err != nil {
		t.Fatal(err)
	}
	// The creation's notification may drop the first read's entry: read until cached.
	waitFor(t, "client cached", func() error {
		if _, err := c.GetClient(ctx, cl.ID); err != nil {
			return err
		}
		if c.Len() != 1 {
			return fmt.Errorf("client not cached")
		}
		return nil
	})

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	// Kill the listening backend and, in the same transaction, change the client
	// without notifying.
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Change the client without a notification (as if it was lost): only the reset
	// on reconnection can make the cache see it. The ALTER TABLE also locks every
	// reader of clients out until the commit.
	if _, err := tx.Exec(ctx, `ALTER TABLE clients DISABLE TRIGGER clients_cache_notify`); err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%') k`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening backends, want 1", killed)
	}
	if _, err := tx.Exec(ctx, `UPDATE clients SET name = 'after' WHERE id = $1`, cl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE clients ENABLE TRIGGER clients_cache_notify`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.GetClient(ctx, cl.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache still returns %q after the listener reconnected", got.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And it is back on: notifications arrive again.
	waitFor(t, "cache on again", func() error {
		if !c.Watching() {
			return fmt.Errorf("not watching")
		}
		return nil
	})
	if _, err := admin.Exec(ctx, `UPDATE clients SET name = 'notified' WHERE id = $1`, cl.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "change after reconnect seen", func() error {
		got, err := c.GetClient(ctx, cl.ID)
		if err != nil {
			return err
		}
		if got.Name != "notified" {
			return fmt.Errorf("name %q", got.Name)
		}
		return nil
	})
}

func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchChangesIdle: a listener that waited through several idle checks (each a
// timed-out wait and a ping on the same connection) still hears of changes, without
// reconnecting.
func TestWatchChangesIdle(t *testing.T) {
	defer postgres.SetListenIdle(50 * time.Millisecond)()
	ctx := t.Context()
	s := newStore(t)
	var changes, watching, lost int
	var mu sync.Mutex
	h := &funcHandler{
		watching: func() { mu.Lock(); watching++; mu.Unlock() },
		lost:     func(error) { mu.Lock(); lost++; mu.Unlock() },
		changed:  func(storage.Change) { mu.Lock(); changes++; mu.Unlock() },
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.WatchChanges(wctx, h) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "watching", func() error {
		mu.Lock()
		defer mu.Unlock()
		if watching == 0 {
			return fmt.Errorf("not watching")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // about ten idle checks
	if err := s.CreateClient(ctx, &storage.Client{ID: "idle", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "change after idle checks", func() error {
		mu.Lock()
		defer mu.Unlock()
		if changes == 0 {
			return fmt.Errorf("no change reported")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if lost != 0 || watching != 1 {
		t.Fatalf("idle checks broke the connection: lost %d, watching %d", lost, watching)
	}
}

type funcHandler struct {
	watching func()
	lost     func(error)
	changed  func(storage.Change)
}

func (h *funcHandler) Watching()                { h.watching() }
func (h *funcHandler) Lost(err error)           { h.lost(err) }
func (h *funcHandler) Changed(c storage.Change) { h.changed(c) }
