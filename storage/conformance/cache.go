package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/cache"
)

// eventuallyTimeout bounds how long the cache tests wait for a change made by another
// store instance to be seen. Changes normally arrive within a second; the bound is
// generous so that a loaded machine does not fail the test (no timed assertions).
const eventuallyTimeout = 20 * time.Second

// RunCacheTests runs the tests of storage/cache over the backend, and the whole
// conformance suite through the cache. newDB creates a fresh, migrated database and
// returns an opener: each call opens another store on that database, as another
// process would, and registers its Close with t.Cleanup. The first store opened is
// the one under the cache.
func RunCacheTests(t *testing.T, newDB func(t *testing.T) func(t *testing.T) storage.Storage) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, open func(t *testing.T) storage.Storage)
	}{
		{"SeesOtherProcess", testCacheSeesOtherProcess},
		{"Bounded", testCacheBounded},
		{"ChangesOnlyOnCommit", testChangesOnlyOnCommit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newDB(t)) })
	}
	// The cache is transparent: every store contract holds through it.
	t.Run("Suite", func(t *testing.T) {
		RunTests(t, func(t *testing.T) storage.Storage {
			return StartCache(t, newDB(t)(t), cache.Options{})
		})
	})
}

// StartCache puts a cache in front of s, runs its watcher until the test ends, and
// waits until the cache is on.
func StartCache(t *testing.T, s storage.Storage, opts cache.Options) *cache.Store {
	t.Helper()
	c := cache.New(s, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	// Registered after the store's Close, so it runs before it.
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "cache on", func() error {
		if !c.Watching() {
			return fmt.Errorf("not watching yet")
		}
		return nil
	})
	return c
}

// eventually calls check until it returns nil, failing the test with its last error
// after eventuallyTimeout.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(eventuallyTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %v: %v", what, eventuallyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCacheSeesOtherProcess: a change made through a second store on the same
// database (another process: the CLI, another server) reaches the cached store; a
// change made through the cache is seen at once.
func testCacheSeesOtherProcess(t *testing.T, open func(t *testing.T) storage.Storage) {
	ctx := t.Context()
	a := open(t)
	other := open(t)
	// A TTL far longer than the test: only the change notifications can explain a
	// fresh value.
	c := StartCache(t, a, cache.Options{TTL: time.Hour})
	now := clock()

	cl := newClient("cached", now)
	must(t, other.CreateClient(ctx, cl))
	// The notification of the creation may arrive after the first read and drop what
	// it cached: read until a read is served from memory.
	eventually(t, "client served from memory", func() error {
		got, err := c.GetClient(ctx, cl.ID)
		if err != nil {
			return err
		}
		equal(t, "read", got, cl)
		hits, _ := c.Stats()
		if _, err := c.GetClient(ctx, cl.ID); err != nil {
			return err
		}
		if h, _ := c.Stats(); h != hits+1 {
			return fmt.Errorf("read not served from memory: hits %d -> %d", hits, h)
		}
		return nil
	})
	got, err := c.GetClient(ctx, cl.ID)
	must(t, err)
	// The caller owns what it gets: changing it does not change the cache.
	got.Scopes[0] = "changed"
	got.Name = "changed"
	got, err = c.GetClient(ctx, cl.ID)
	must(t, err)
	equal(t, "read after the caller changed its copy", got, cl)

	// Another process changes the client (e.g. its secret and policy).
	upd := *cl
	upd.SecretHash = []byte("rotated")
	upd.Policy = storage.MFAPolicy{MFA: "required"}
	must(t, other.UpdateClient(ctx, &upd))
	eventually(t, "update by another process seen", func() error {
		got, err := c.GetClient(ctx, cl.ID)
		if err != nil {
			return err
		}
		if string(got.SecretHash) != "rotated" || got.Policy.MFA != "required" {
			return fmt.Errorf("still the old client: %+v", got)
		}
		return nil
	})

	// A change made through the cache is seen at once.
	upd.Name = "renamed here"
	must(t, c.UpdateClient(ctx, &upd))
	got, err = c.GetClient(ctx, cl.ID)
	must(t, err)
	if got.Name != "renamed here" {
		t.Fatalf("own update not seen at once: %q", got.Name)
	}

	// Signing keys: the list is cached, and a key added elsewhere shows up.
	keys, err := c.ListSigningKeys(ctx)
	must(t, err)
	if len(keys) != 0 {
		t.Fatalf("keys at start: %v", keys)
	}
	k := &storage.SigningKey{ID: "other-key", Algorithm: "ES256", CreatedAt: now,
		PrivateSealed: []byte("sealed"), PublicJWK: []byte(`{"kid":"other-key"}`)}
	must(t, other.AddSigningKey(ctx, k, now.Add(time.Hour)))
	eventually(t, "key added by another process seen", func() error {
		keys, err := c.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(keys, func(sk storage.SigningKey) bool { return sk.ID == k.ID }) {
			return fmt.Errorf("keys %v lack %s", keys, k.ID)
		}
		return nil
	})
	// Re-sealed elsewhere (re-encryption): the new sealed bytes show up.
	must(t, other.UpdateSigningKeySealed(ctx, k.ID, []byte("resealed")))
	eventually(t, "re-sealed key seen", func() error {
		keys, err := c.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		if len(keys) != 1 || string(keys[0].PrivateSealed) != "resealed" {
			return fmt.Errorf("keys %+v", keys)
		}
		return nil
	})

	// Account types' policies. A type without one reads as not found, from memory too
	// (what most sign-ins read); one set, changed or deleted elsewhere shows up.
	eventually(t, "a type without a policy served from memory", func() error {
		if _, err := c.GetTypePolicy(ctx, "staff"); !isNotFound(err) {
			return fmt.Errorf("policy of a type without one: %v", err)
		}
		hits, _ := c.Stats()
		if _, err := c.GetTypePolicy(ctx, "staff"); !isNotFound(err) {
			return fmt.Errorf("second read: %v", err)
		}
		if h, _ := c.Stats(); h != hits+1 {
			return fmt.Errorf("not served from memory: hits %d -> %d", hits, h)
		}
		return nil
	})
	policyIs := func(what, mfa string) {
		t.Helper()
		eventually(t, what, func() error {
			p, err := c.GetTypePolicy(ctx, "staff")
			if err != nil {
				return err
			}
			if p.MFA != mfa {
				return fmt.Errorf("policy %+v, want mfa %q", p, mfa)
			}
			return nil
		})
	}
	must(t, other.SetTypePolicy(ctx, "staff", storage.MFAPolicy{MFA: "required", Factors: []storage.FactorKind{storage.FactorTOTP}}))
	policyIs("policy set by another process seen", "required")
	p, err := c.GetTypePolicy(ctx, "staff")
	must(t, err)
	p.Factors[0] = storage.FactorEmail // the caller owns its copy
	p, err = c.GetTypePolicy(ctx, "staff")
	must(t, err)
	if len(p.Factors) != 1 || p.Factors[0] != storage.FactorTOTP {
		t.Fatalf("read after the caller changed its copy: %+v", p)
	}
	must(t, other.SetTypePolicy(ctx, "staff", storage.MFAPolicy{MFA: "off"}))
	policyIs("policy changed by another process seen", "off")
	must(t, other.DeleteTypePolicy(ctx, "staff"))
	eventually(t, "policy deleted by another process seen", func() error {
		if p, err := c.GetTypePolicy(ctx, "staff"); !isNotFound(err) {
			return fmt.Errorf("deleted policy still returned: %+v, %v", p, err)
		}
		return nil
	})
	// Set through the cache: seen at once.
	must(t, c.SetTypePolicy(ctx, "staff", storage.MFAPolicy{MFA: "optional"}))
	if p, err := c.GetTypePolicy(ctx, "staff"); err != nil || p.MFA != "optional" {
		t.Fatalf("own policy change not seen at once: %+v, %v", p, err)
	}
	must(t, c.DeleteTypePolicy(ctx, "staff"))
	if _, err := c.GetTypePolicy(ctx, "staff"); !isNotFound(err) {
		t.Fatalf("own policy delete not seen at once: %v", err)
	}

	// Deleted elsewhere: the cache stops returning it.
	must(t, other.DeleteClient(ctx, cl.ID))
	eventually(t, "delete by another process seen", func() error {
		_, err := c.GetClient(ctx, cl.ID)
		if err == nil {
			return fmt.Errorf("deleted client still returned")
		}
		if !isNotFound(err) {
			return err
		}
		return nil
	})
}

// testCacheBounded: lookups of ids that do not exist leave nothing behind, and the
// cache never holds more clients than its bound, while every lookup stays right.
func testCacheBounded(t *testing.T, open func(t *testing.T) storage.Storage) {
	ctx := t.Context()
	const limit = 3
	c := StartCache(t, open(t), cache.Options{MaxClients: limit, TTL: time.Hour})
	for i := range 200 {
		if _, err := c.GetClient(ctx, fmt.Sprintf("random-%d", i)); !isNotFound(err) {
			t.Fatalf("GetClient(random-%d) = %v, want not found", i, err)
		}
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("after 200 lookups of unknown ids the cache holds %d clients, want 0", n)
	}
	now := clock()
	var ids []string
	for i := range 2 * limit {
		cl := newClient(fmt.Sprintf("bounded-%d", i), now)
		must(t, c.CreateClient(ctx, cl))
		ids = append(ids, cl.ID)
	}
	for round := range 3 {
		for _, id := range ids {
			got, err := c.GetClient(ctx, id)
			must(t, err)
			if got.ID != id {
				t.Fatalf("round %d: GetClient(%s) returned %s", round, id, got.ID)
			}
			if n := c.Len(); n > limit {
				t.Fatalf("cache holds %d clients, bound %d", n, limit)
			}
		}
	}
	if n := c.Len(); n == 0 {
		t.Fatal("cache holds no client after lookups of existing ones")
	}
}

// changeRecorder is a storage.ChangeHandler that remembers what it was told.
type changeRecorder struct {
	mu       sync.Mutex
	watching int
	lost     int
	changes  []storage.Change
}

func (r *changeRecorder) Watching()  { r.mu.Lock(); r.watching++; r.mu.Unlock() }
func (r *changeRecorder) Lost(error) { r.mu.Lock(); r.lost++; r.mu.Unlock() }
func (r *changeRecorder) Changed(c storage.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

// state returns a snapshot.
func (r *changeRecorder) state() (watching, lost int, changes []storage.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watching, r.lost, slices.Clone(r.changes)
}

// has reports whether a change of kind was recorded.
func (r *changeRecorder) has(kind storage.ChangeKind) bool {
	_, _, changes := r.state()
	return slices.ContainsFunc(changes, func(c storage.Change) bool { return c.Kind == kind })
}

// WatchForTest runs w.WatchChanges with a recorder until the test ends, and waits until
// it watches.
func WatchForTest(t *testing.T, w storage.ChangeWatcher) *changeRecorder {
	t.Helper()
	rec := &changeRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.WatchChanges(ctx, rec)
	}()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "watching", func() error {
		if n, _, _ := rec.state(); n == 0 {
			return fmt.Errorf("not watching yet")
		}
		return nil
	})
	return rec
}

// testChangesOnlyOnCommit: a change rolled back is never reported; committed ones are,
// to a watcher on another store instance.
func testChangesOnlyOnCommit(t *testing.T, open func(t *testing.T) storage.Storage) {
	ctx := t.Context()
	a := open(t)
	w, ok := a.(storage.ChangeWatcher)
	if !ok {
		t.Fatalf("%T does not implement storage.ChangeWatcher", a)
	}
	other := open(t)
	now := clock()
	key := func(id string, created time.Time) *storage.SigningKey {
		return &storage.SigningKey{ID: id, Algorithm: "ES256", CreatedAt: created,
			PrivateSealed: []byte("sealed " + id), PublicJWK: []byte(`{"kid":"` + id + `"}`)}
	}
	must(t, other.AddSigningKey(ctx, key("k1", now.Add(-time.Hour)), now.Add(time.Hour)))
	must(t, other.AddSigningKey(ctx, key("k2", now), now.Add(time.Hour)))

	rec := WatchForTest(t, w)
	// Reusing k1's id fails after the statement that retires k2 has run in the same
	// transaction: the whole transaction rolls back, and nothing may be reported.
	wantErr(t, other.AddSigningKey(ctx, key("k1", now.Add(time.Hour)), now.Add(2*time.Hour)), storage.ErrAlreadyExists)
	// A committed change after it, as a marker: once it is seen, the rolled-back one
	// would have been seen before it.
	must(t, other.CreateClient(ctx, newClient("marker", now)))
	eventually(t, "committed client change reported", func() error {
		if !rec.has(storage.ChangeClient) {
			return fmt.Errorf("no client change yet")
		}
		return nil
	})
	if rec.has(storage.ChangeSigningKeys) {
		_, _, changes := rec.state()
		t.Fatalf("a rolled-back key change was reported: %+v", changes)
	}
	keys, err := other.ListSigningKeys(ctx)
	must(t, err)
	for _, k := range keys {
		if k.ID == "k2" && !k.RetiredAt.IsZero() {
			t.Fatalf("the failed AddSigningKey retired k2: %+v", k)
		}
	}
	// A committed key change is reported.
	must(t, other.AddSigningKey(ctx, key("k3", now.Add(time.Hour)), now.Add(2*time.Hour)))
	eventually(t, "committed key change reported", func() error {
		if !rec.has(storage.ChangeSigningKeys) {
			return fmt.Errorf("no key change yet")
		}
		return nil
	})
	if _, lost, _ := rec.state(); lost != 0 {
		t.Fatalf("watcher lost track %d times", lost)
	}
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
