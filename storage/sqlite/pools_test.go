package sqlite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// TestWriterAndReaders: one writer connection, read-only readers, and a read made
// right after a write returns (on a reader) sees the write.
func TestWriterAndReaders(t *testing.T) {
	s := newMigrated(t)
	ctx := context.Background()
	if got := s.db.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("writer pool allows %d connections, want 1", got)
	}
	if got := s.rdb.Stats().MaxOpenConnections; got != maxReaders {
		t.Fatalf("reader pool allows %d connections, want %d", got, maxReaders)
	}
	if _, err := s.rdb.ExecContext(ctx, `DELETE FROM clients`); err == nil {
		t.Fatal("a reader connection accepted a write")
	}
	// The writer keeps its savepoints' statement journal in memory (no temporary file
	// written per batch) and stays durable: WAL, synchronous NORMAL (a batch is flushed
	// by the writer's Sync: TestBatchSyncedBeforeAnswer), and checkpoints left to the
	// background checkpointer (TestBackgroundCheckpoints) up to a WAL of 20,000 pages.
	for _, p := range []struct {
		pragma string
		want   string
	}{{"temp_store", "2"}, {"journal_mode", "wal"}, {"synchronous", "1"}, {"wal_autocheckpoint", "20000"}} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p.pragma, err)
		}
		if got != p.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", p.pragma, got, p.want)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				id := fmt.Sprintf("c-%d-%d", g, i)
				if err := s.CreateClient(ctx, &storage.Client{ID: id, CreatedAt: time.Now()}); err != nil {
					errs <- err
					return
				}
				if _, err := s.GetClient(ctx, id); err != nil {
					errs <- fmt.Errorf("read after write of %s: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 160 {
		t.Fatalf("%d clients, want 160", len(list))
	}
}
