package cache_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/cache"
	"github.com/openidp/idp/storage/sqlite"
)

// fakeStore counts the reads that reach it, can hold a read until released, and is a
// ChangeWatcher driven by the test.
type fakeStore struct {
	storage.Storage // nil: only the methods below are used
	mu              sync.Mutex
	clients         map[string]storage.Client
	keys            []storage.SigningKey
	reads           atomic.Int64
	hold            chan struct{} // when set, GetClient waits on it after reading
	read            chan struct{} // signalled when GetClient has read, before holding
	h               chan storage.ChangeHandler
}

func newFake() *fakeStore {
	return &fakeStore{clients: map[string]storage.Client{}, h: make(chan storage.ChangeHandler, 1)}
}

func (f *fakeStore) GetClient(_ context.Context, id string) (*storage.Client, error) {
	f.reads.Add(1)
	f.mu.Lock()
	c, ok := f.clients[id]
	hold, read := f.hold, f.read
	f.mu.Unlock()
	if hold != nil {
		read <- struct{}{}
		<-hold
	}
	if !ok {
		return nil, storage.ErrNotFound
	}
	c.Scopes = append([]string(nil), c.Scopes...)
	return &c, nil
}

func (f *fakeStore) ListSigningKeys(context.Context) ([]storage.SigningKey, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]storage.SigningKey(nil), f.keys...), nil
}

func (f *fakeStore) GetTypePolicy(_ context.Context, typ string) (*storage.MFAPolicy, error) {
	f.reads.Add(1)
	if typ == "staff" {
		return &storage.MFAPolicy{MFA: "required"}, nil
	}
	return nil, storage.ErrNotFound
}

func (f *fakeStore) set(c storage.Client) {
	f.mu.Lock()
	f.clients[c.ID] = c
	f.mu.Unlock()
}

func (f *fakeStore) WatchChanges(ctx context.Context, h storage.ChangeHandler) error {
	f.h <- h
	<-ctx.Done()
	return ctx.Err()
}

// start runs the cache over f and returns the handler the test drives it with.
func start(t *testing.T, f *fakeStore, opts cache.Options) (*cache.Store, storage.ChangeHandler) {
	t.Helper()
	c := cache.New(f, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h := <-f.h
	return c, h
}

func get(t *testing.T, c *cache.Store, id string) *storage.Client {
	t.Helper()
	got, err := c.GetClient(context.Background(), id)
	if err != nil {
		t.Fatalf("GetClient(%s): %v", id, err)
	}
	return got
}

func TestCacheStates(t *testing.T) {
	f := newFake()
	f.set(storage.Client{ID: "a", Name: "one", Scopes: []string{"openid"}})
	c, h := start(t, f, cache.Options{TTL: time.Hour})

	// Not watching yet: every read reaches the store.
	get(t, c, "a")
	get(t, c, "a")
	if n := f.reads.Load(); n != 2 {
		t.Fatalf("reads before watching = %d, want 2", n)
	}

	h.Watching()
	get(t, c, "a")
	get(t, c, "a")
	if n := f.reads.Load(); n != 3 {
		t.Fatalf("reads while watching = %d, want 3 (one fill, one hit)", n)
	}

	// A change of another client leaves this one; a change of this one drops it.
	h.Changed(storage.Change{Kind: storage.ChangeClient, ID: "b"})
	get(t, c, "a")
	if n := f.reads.Load(); n != 3 {
		t.Fatalf("a change of b dropped a: reads %d", n)
	}
	f.set(storage.Client{ID: "a", Name: "two"})
	h.Changed(storage.Change{Kind: storage.ChangeClient, ID: "a"})
	if got := get(t, c, "a"); got.Name != "two" {
		t.Fatalf("after a change: %q", got.Name)
	}
	// A change of any client (no id) drops every client.
	f.set(storage.Client{ID: "a", Name: "three"})
	h.Changed(storage.Change{Kind: storage.ChangeClient})
	if got := get(t, c, "a"); got.Name != "three" {
		t.Fatalf("after a change of any client: %q", got.Name)
	}

	// Lost: nothing served from memory until watching again.
	h.Lost(errors.New("connection reset"))
	if c.Watching() || c.Len() != 0 {
		t.Fatalf("after Lost: watching %v, %d entries", c.Watching(), c.Len())
	}
	f.set(storage.Client{ID: "a", Name: "four"})
	before := f.reads.Load()
	for range 3 {
		if got := get(t, c, "a"); got.Name != "four" {
			t.Fatalf("while lost: %q", got.Name)
		}
	}
	if n := f.reads.Load() - before; n != 3 {
		t.Fatalf("while lost %d of 3 reads reached the store", n)
	}
	h.Watching()
	get(t, c, "a")
	f.set(storage.Client{ID: "a", Name: "five"}) // no notification: stays cached
	if got := get(t, c, "a"); got.Name != "four" {
		t.Fatalf("not served from memory after watching again: %q", got.Name)
	}
	// Watching again (a reconnection) drops everything.
	h.Watching()
	if got := get(t, c, "a"); got.Name != "five" {
		t.Fatalf("reconnection did not drop the cache: %q", got.Name)
	}

	// Keys: cached as one list, dropped by a key change.
	if _, err := c.ListSigningKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	before = f.reads.Load()
	if _, err := c.ListSigningKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.reads.Load() != before {
		t.Fatal("keys not served from memory")
	}
	f.mu.Lock()
	f.keys = []storage.SigningKey{{ID: "k"}}
	f.mu.Unlock()
	h.Changed(storage.Change{Kind: storage.ChangeSigningKeys})
	keys, err := c.ListSigningKeys(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys after a change: %v %v", keys, err)
	}
}

// TestCacheFillRace: a read that began before a change must not put its (old) value
// in the cache after the change's notification dropped the entry.
func TestCacheFillRace(t *testing.T) {
	f := newFake()
	f.set(storage.Client{ID: "a", Name: "old"})
	c, h := start(t, f, cache.Options{TTL: time.Hour})
	h.Watching()

	f.mu.Lock()
	f.hold, f.read = make(chan struct{}), make(chan struct{})
	hold := f.hold
	f.mu.Unlock()
	done := make(chan string)
	go func() {
		got, err := c.GetClient(context.Background(), "a")
		if err != nil {
			done <- err.Error()
			return
		}
		done <- got.Name
	}()
	<-f.read // the slow read has the old value
	f.mu.Lock()
	f.hold = nil
	f.mu.Unlock()
	f.set(storage.Client{ID: "a", Name: "new"})
	h.Changed(storage.Change{Kind: storage.ChangeClient, ID: "a"})
	close(hold)
	if name := <-done; name != "old" {
		t.Fatalf("slow read returned %q", name)
	}
	if got := get(t, c, "a"); got.Name != "new" {
		t.Fatalf("the old value landed in the cache after the change: %q", got.Name)
	}
}

func TestCacheTTLAndCopies(t *testing.T) {
	f := newFake()
	f.set(storage.Client{ID: "a", Name: "one", Scopes: []string{"openid"}})
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	c, h := start(t, f, cache.Options{TTL: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	h.Watching()
	got := get(t, c, "a")
	got.Scopes[0] = "mutated"
	if again := get(t, c, "a"); again.Scopes[0] != "openid" {
		t.Fatalf("a caller's change reached the cache: %v", again.Scopes)
	}
	f.set(storage.Client{ID: "a", Name: "two"})
	mu.Lock()
	now = now.Add(time.Minute + time.Second)
	mu.Unlock()
	if got := get(t, c, "a"); got.Name != "two" {
		t.Fatalf("entry served past its TTL: %q", got.Name)
	}
}

func TestCacheWithoutWatcherIsOff(t *testing.T) {
	s := openSQLite(t)
	type plain struct{ storage.Storage } // hides WatchChanges
	c := cache.New(plain{s}, cache.Options{})
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run without a watcher: %v", err)
	}
	ctx := context.Background()
	if err := s.CreateClient(ctx, &storage.Client{ID: "a", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.GetClient(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if hits, misses := c.Stats(); hits != 0 || misses != 2 || c.Len() != 0 {
		t.Fatalf("cache without a watcher: hits %d misses %d len %d", hits, misses, c.Len())
	}
}

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// BenchmarkGetClient compares GetClient on SQLite straight and through the cache.
func BenchmarkGetClient(b *testing.B) {
	s := openSQLite(b)
	ctx := context.Background()
	for i := range 10 {
		if err := s.CreateClient(ctx, &storage.Client{ID: fmt.Sprintf("c%d", i), Name: "bench",
			RedirectURIs: []string{"https://x.example/cb"}, GrantTypes: []string{"client_credentials"},
			Scopes: []string{"api"}, CreatedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	c := cache.New(s, cache.Options{})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	b.Cleanup(func() { cancel(); <-done })
	for !c.Watching() {
		time.Sleep(time.Millisecond)
	}
	for _, bc := range []struct {
		name  string
		store storage.ClientStore
	}{{"uncached", s}, {"cached", c}} {
		b.Run(bc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := bc.store.GetClient(ctx, fmt.Sprintf("c%d", i%10)); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// TestCacheSharedKeys: ListSigningKeysShared serves the cached list itself (no copy per
// token signed), ListSigningKeys still a copy, and a key change replaces the list
// without touching one handed out before.
func TestCacheSharedKeys(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	f.keys = []storage.SigningKey{{ID: "k1", Algorithm: "ES256", PublicJWK: []byte(`{"kid":"k1"}`)}}
	c, h := start(t, f, cache.Options{TTL: time.Minute})
	h.Watching()
	first, err := c.ListSigningKeysShared(ctx) // a miss: read from the store
	if err != nil || len(first) != 1 || first[0].ID != "k1" {
		t.Fatalf("first list = %v, %v", first, err)
	}
	a, _ := c.ListSigningKeysShared(ctx)
	b, _ := c.ListSigningKeysShared(ctx)
	if got := f.reads.Load(); got != 1 {
		t.Fatalf("store read %d times, want 1 (hits are served from memory)", got)
	}
	if &a[0] != &b[0] {
		t.Fatal("two hits got two copies; want the cached list itself")
	}
	cp, _ := c.ListSigningKeys(ctx)
	if &cp[0] == &a[0] {
		t.Fatal("ListSigningKeys handed out the cached list; want a copy")
	}
	cp[0].PublicJWK[2] = 'X'
	if again, _ := c.ListSigningKeysShared(ctx); string(again[0].PublicJWK) != `{"kid":"k1"}` {
		t.Fatalf("a change to ListSigningKeys' copy reached the cache: %s", again[0].PublicJWK)
	}

	f.mu.Lock()
	f.keys = []storage.SigningKey{{ID: "k2", Algorithm: "ES256"}, {ID: "k1", Algorithm: "ES256"}}
	f.mu.Unlock()
	h.Changed(storage.Change{Kind: storage.ChangeSigningKeys})
	now, _ := c.ListSigningKeysShared(ctx)
	if len(now) != 2 || now[0].ID != "k2" {
		t.Fatalf("after the change: %v, want k2 first", now)
	}
	if len(a) != 1 || a[0].ID != "k1" {
		t.Fatalf("the list handed out before the change changed: %v", a)
	}
}

// TestCacheTypePoliciesBounded: a type's policy and a type's lack of one are served from
// memory, at most MaxTypePolicies types are kept however many are looked up, and a
// type_policy change drops them all.
func TestCacheTypePoliciesBounded(t *testing.T) {
	f := newFake()
	c, h := start(t, f, cache.Options{MaxTypePolicies: 3})
	h.Watching()
	ctx := context.Background()
	lookup := func(typ string) {
		t.Helper()
		p, err := c.GetTypePolicy(ctx, typ)
		if typ == "staff" && (err != nil || p.MFA != "required") {
			t.Fatalf("staff: %+v, %v", p, err)
		}
		if typ != "staff" && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: want ErrNotFound, got %+v, %v", typ, p, err)
		}
	}
	lookup("staff")
	lookup("guest")
	before := f.reads.Load()
	lookup("staff")
	lookup("guest")
	if got := f.reads.Load() - before; got != 0 {
		t.Fatalf("%d reads reached the store for cached types (a policy and a missing one), want 0", got)
	}
	for i := range 100 {
		lookup(fmt.Sprintf("type-%d", i))
	}
	// Three types kept at most: of staff, guest and the last type, at least one of
	// the first two was dropped, so the three take at least one read.
	before = f.reads.Load()
	for _, typ := range []string{"staff", "guest", "type-99"} {
		lookup(typ)
	}
	if got := f.reads.Load() - before; got < 1 {
		t.Fatalf("100 types looked up and all of staff, guest and type-99 still cached: the bound of 3 is not kept")
	}
	// A change of any type's policy drops them all.
	lookup("staff")
	h.Changed(storage.Change{Kind: storage.ChangeTypePolicy})
	before = f.reads.Load()
	lookup("staff")
	if got := f.reads.Load() - before; got != 1 {
		t.Fatalf("after a type_policy change: %d reads, want 1", got)
	}
}
