package keys_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// openStore returns a migrated SQLite store and a sealer.
func openStore(t *testing.T) (*sqlite.Store, *seal.Sealer) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return st, sealer
}

// TestRotationTimeline follows one rotation through its states: the new key is pending
// (published, not signing) for the publish delay, then active; the key it replaces signs
// until then and is published for the retention after it. Two managers on one database
// (two processes) agree at every step, from the database and the clock alone.
func TestRotationTimeline(t *testing.T) {
	ctx := context.Background()
	st, sealer := openStore(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const delay, retention = time.Hour, 24 * time.Hour
	a := &keys.Manager{Store: st, Sealer: sealer, Retention: retention, PublishDelay: delay, Now: clock}
	b := &keys.Manager{Store: st, Sealer: sealer, Retention: retention, PublishDelay: delay, Now: clock}

	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := a.Active(ctx, keys.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	if !first.ActivatesAt.Equal(now) {
		t.Errorf("first key signs from %v, want at once (%v)", first.ActivatesAt, now)
	}
	rotatedAt := now
	ids, err := b.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ensure after a rotation adds nothing: a pending key counts.
	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		at          time.Time
		signer      string // "old" or "new"
		oldState    keys.State
		newState    keys.State
		oldInJWKS   bool
		publishedES int
	}{
		{"just rotated", rotatedAt, "old", keys.StateActive, keys.StatePending, true, 2},
		{"just before activation", rotatedAt.Add(delay - time.Nanosecond), "old", keys.StateActive, keys.StatePending, true, 2},
		{"at activation", rotatedAt.Add(delay), "new", keys.StateRetired, keys.StateActive, true, 2},
		{"end of retention", rotatedAt.Add(delay + retention), "new", keys.StateRetired, keys.StateActive, true, 2},
		{"after retention", rotatedAt.Add(delay + retention + time.Second), "new", keys.StateExpired, keys.StateActive, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = tc.at
			for name, m := range map[string]*keys.Manager{"a": a, "b": b} {
				k, err := m.Active(ctx, keys.AlgES256)
				if err != nil {
					t.Fatal(err)
				}
				newSigns := slices.Contains(ids, k.ID)
				if (tc.signer == "new") != newSigns || (!newSigns && k.ID != first.ID) {
					t.Errorf("manager %s signs with %s, want the %s key", name, k.ID, tc.signer)
				}
			}
			list, err := a.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range list {
				if k.Alg != keys.AlgES256 {
					continue
				}
				want := tc.newState
				if k.ID == first.ID {
					want = tc.oldState
				}
				if k.State != want {
					t.Errorf("key %s is %s, want %s", k.ID, k.State, want)
				}
			}
			published, err := a.Published(ctx)
			if err != nil {
				t.Fatal(err)
			}
			es, oldIn := 0, false
			for _, k := range published {
				if k.Alg == keys.AlgES256 {
					es++
				}
				oldIn = oldIn || k.ID == first.ID
			}
			if es != tc.publishedES || oldIn != tc.oldInJWKS {
				t.Errorf("published %d ES256 keys (old one: %v), want %d (%v)", es, oldIn, tc.publishedES, tc.oldInJWKS)
			}
		})
	}
}

// TestRotateWithoutKeys: with no key to replace, a rotation's keys sign at once (else
// nothing could sign during the publish delay).
func TestRotateWithoutKeys(t *testing.T) {
	ctx := context.Background()
	st, sealer := openStore(t)
	m := &keys.Manager{Store: st, Sealer: sealer, Retention: time.Hour, PublishDelay: time.Hour}
	ids, err := m.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range keys.SupportedAlgs {
		k, err := m.Active(ctx, alg)
		if err != nil || !slices.Contains(ids, k.ID) {
			t.Errorf("%s: active key %v, err %v; want one of %v", alg, k, err, ids)
		}
	}
}

// sharedLister is a key store that can share its list, counting how it is read.
type sharedLister struct {
	*sqlite.Store
	shared, copied int
}

func (s *sharedLister) ListSigningKeysShared(ctx context.Context) ([]storage.SigningKey, error) {
	s.shared++
	return s.Store.ListSigningKeys(ctx)
}

func (s *sharedLister) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	s.copied++
	return s.Store.ListSigningKeys(ctx)
}

// TestActiveUsesSharedList: Active, which runs for every token signed, reads the key
// list through SharedKeyLister when the store offers it (the cache: no copy of every
// key per token), and picks the same key as from a plain store.
func TestActiveUsesSharedList(t *testing.T) {
	ctx := context.Background()
	st, sealer := openStore(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	plain := &keys.Manager{Store: st, Sealer: sealer, Retention: time.Hour, Now: func() time.Time { return now }}
	if err := plain.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Rotate(ctx); err != nil { // no publish delay: the new keys sign at once
		t.Fatal(err)
	}
	want, err := plain.Active(ctx, keys.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	ls := &sharedLister{Store: st}
	m := &keys.Manager{Store: ls, Sealer: sealer, Retention: time.Hour, Now: func() time.Time { return now }}
	got, err := m.Active(ctx, keys.AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Private == nil || got.Public == nil {
		t.Fatalf("Active = %s (private %v), want %s", got.ID, got.Private != nil, want.ID)
	}
	if ls.shared != 1 || ls.copied != 0 {
		t.Fatalf("list read shared %d, copied %d times; want shared once", ls.shared, ls.copied)
	}
	if _, err := m.Active(ctx, "HS256"); err == nil {
		t.Fatal("Active for an algorithm without keys: no error")
	}
}
