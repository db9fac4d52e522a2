package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/conformance"
)

// openTest opens a store on a new file in a temporary directory, closed at cleanup.
func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newMigrated returns a fresh, migrated store.
func newMigrated(t testing.TB) *Store {
	t.Helper()
	s := openTest(t, filepath.Join(t.TempDir(), "idp.db"))
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Storage { return newMigrated(t) })
}

func migrationCount(t *testing.T) int {
	t.Helper()
	ms, err := migrations.Load("sqlite")
	if err != nil {
		t.Fatalf("load migrations: %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("no sqlite migrations embedded")
	}
	return len(ms)
}

func TestMigrate(t *testing.T) {
	want := migrationCount(t)
	// The parent directory does not exist yet: Open creates it.
	s := openTest(t, filepath.Join(t.TempDir(), "nested", "dir", "idp.db"))
	ctx := t.Context()
	for i, wantN := range []int{want, 0} {
		n, err := s.Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate run %d: %v", i+1, err)
		}
		if n != wantN {
			t.Fatalf("Migrate run %d applied %d, want %d", i+1, n, wantN)
		}
	}
	var recorded int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&recorded); err != nil {
		t.Fatalf("count schema_migrations: %v", err)
	}
	if recorded != want {
		t.Errorf("schema_migrations has %d rows, want %d", recorded, want)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	want := migrationCount(t)
	path := filepath.Join(t.TempDir(), "idp.db")
	const processes = 4
	stores := make([]*Store, processes)
	for i := range stores {
		stores[i] = openTest(t, path)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		start = make(chan struct{})
		ctx   = t.Context()
		errs  []error
	)
	for i, s := range stores {
		wg.Go(func() {
			<-start
			n, err := s.Migrate(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("store %d: %w", i, err))
			}
			total += n
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("Migrate: %v", err)
	}
	if total != want {
		t.Errorf("concurrent Migrate applied %d in total, want %d", total, want)
	}
}

// TestTimesUTC checks that non-zero times come back in UTC and zero times as the zero
// value, whatever location they were written in.
func TestTimesUTC(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	loc := time.FixedZone("UTC+5", 5*3600)
	created := time.Date(2030, 1, 2, 3, 4, 5, 123456789, loc)
	if err := s.CreateUser(ctx, &storage.User{ID: "u", Email: "u@example.com", CreatedAt: created}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	u, err := s.GetUser(ctx, "u")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if u.CreatedAt.Location() != time.UTC || !u.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want %v in UTC", u.CreatedAt, created.UTC())
	}
	if u.CreatedAt.Nanosecond() != 123456789 {
		t.Errorf("CreatedAt lost precision: %v", u.CreatedAt)
	}
	if u.UpdatedAt != (time.Time{}) {
		t.Errorf("UpdatedAt = %v, want the zero time", u.UpdatedAt)
	}
}

func BenchmarkConsumeAuthCode(b *testing.B) {
	s := newMigrated(b)
	ctx := context.Background()
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("ar-%d", i)
		if err := s.CreateAuthRequest(ctx, &storage.AuthRequest{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			b.Fatal(err)
		}
		if err := s.SaveAuthCode(ctx, id, "hash-"+id, now.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ConsumeAuthCode(ctx, "hash-"+id, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHitRateLimitParallel(b *testing.B) {
	s := newMigrated(b)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.HitRateLimit(ctx, "bench", time.Minute, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
