package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testSigningKeys(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	key := func(id, alg string, created time.Time) *storage.SigningKey {
		return &storage.SigningKey{
			ID: id, Algorithm: alg, CreatedAt: created,
			PrivateSealed: []byte("sealed\x00\xff" + id),
			PublicJWK:     []byte(`{"kty":"EC","kid":"` + id + `"}`),
		}
	}
	es1 := key("es-1", "ES256", now.Add(-2*time.Hour))
	rs1 := key("rs-1", "RS256", now.Add(-time.Hour))
	es2 := key("es-2", "ES256", now)
	es3 := key("es-3", "ES256", now.Add(time.Hour))

	must(t, s.AddSigningKey(ctx, es1, now.Add(time.Hour)))
	must(t, s.AddSigningKey(ctx, rs1, now.Add(time.Hour))) // other algorithm: es-1 stays active
	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys before rotation", list, []storage.SigningKey{*rs1, *es1})

	exp2 := now.Add(24 * time.Hour)
	must(t, s.AddSigningKey(ctx, es2, exp2))
	wantES1 := *es1
	wantES1.RetiredAt, wantES1.ExpiresAt = es2.CreatedAt, exp2
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after adding es-2", list, []storage.SigningKey{*es2, *rs1, wantES1})

	// Only not-yet-retired keys are retired: es-1 keeps its times.
	exp3 := now.Add(48 * time.Hour)
	must(t, s.AddSigningKey(ctx, es3, exp3))
	wantES2 := *es2
	wantES2.RetiredAt, wantES2.ExpiresAt = es3.CreatedAt, exp3
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	want := []storage.SigningKey{*es3, wantES2, *rs1, wantES1}
	equal(t, "keys after adding es-3", list, want)

	// A failed insert retires nothing.
	wantErr(t, s.AddSigningKey(ctx, key(es1.ID, "ES256", now.Add(2*time.Hour)), exp3), storage.ErrAlreadyExists)
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after failed AddSigningKey", list, want)
}

// testSigningKeyActivation: a key added with a later ActivatesAt (published before it
// signs) retires the key it replaces at its activation, not at its creation; a newer
// key replaces a pending one before it ever signs, and cuts short a retirement still to
// come.
func testSigningKeyActivation(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	key := func(id string, created, activates time.Time) *storage.SigningKey {
		return &storage.SigningKey{
			ID: id, Algorithm: "ES256", CreatedAt: created, ActivatesAt: activates,
			PrivateSealed: []byte("sealed " + id), PublicJWK: []byte(`{"kid":"` + id + `"}`),
		}
	}
	const retention = 24 * time.Hour
	k1 := key("k-1", now.Add(-48*time.Hour), time.Time{}) // legacy row: signs from creation
	must(t, s.AddSigningKey(ctx, k1, time.Time{}))
	if got := k1.Activation(); !got.Equal(k1.CreatedAt) {
		t.Errorf("Activation of a key without ActivatesAt = %v, want CreatedAt %v", got, k1.CreatedAt)
	}

	// k-2 is published now and signs in an hour: k-1 signs until then.
	k2 := key("k-2", now, now.Add(time.Hour))
	must(t, s.AddSigningKey(ctx, k2, k2.ActivatesAt.Add(retention)))
	wantK1 := *k1
	wantK1.RetiredAt, wantK1.ExpiresAt = k2.ActivatesAt, k2.ActivatesAt.Add(retention)
	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after adding pending k-2", list, []storage.SigningKey{*k2, wantK1})

	// k-3 comes before k-2 signs, with a longer delay: k-2 is replaced at k-3's
	// activation (so it signs from its own activation until then); k-1 keeps its times.
	k3 := key("k-3", now.Add(time.Minute), now.Add(2*time.Hour))
	must(t, s.AddSigningKey(ctx, k3, k3.ActivatesAt.Add(retention)))
	wantK2 := *k2
	wantK2.RetiredAt, wantK2.ExpiresAt = k3.ActivatesAt, k3.ActivatesAt.Add(retention)
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after adding pending k-3", list, []storage.SigningKey{*k3, wantK2, wantK1})

	// k-4 signs at once (an emergency rotation): every key retiring later than that is
	// retired now, k-3 before it ever signs.
	k4 := key("k-4", now.Add(2*time.Minute), now.Add(2*time.Minute))
	must(t, s.AddSigningKey(ctx, k4, k4.ActivatesAt.Add(retention)))
	cut := func(k storage.SigningKey) storage.SigningKey {
		k.RetiredAt, k.ExpiresAt = k4.ActivatesAt, k4.ActivatesAt.Add(retention)
		return k
	}
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after adding immediate k-4", list, []storage.SigningKey{*k4, cut(*k3), cut(wantK2), cut(wantK1)})
}

func testUpdateSigningKeySealed(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	es := &storage.SigningKey{ID: "es-1", Algorithm: "ES256", PrivateSealed: []byte("old\x00"), PublicJWK: []byte(`{"kid":"es-1"}`), CreatedAt: now}
	rs := &storage.SigningKey{ID: "rs-1", Algorithm: "RS256", PrivateSealed: []byte("rs"), PublicJWK: []byte(`{"kid":"rs-1"}`), CreatedAt: now.Add(-time.Hour)}
	must(t, s.AddSigningKey(ctx, rs, time.Time{}))
	must(t, s.AddSigningKey(ctx, es, time.Time{}))

	must(t, s.UpdateSigningKeySealed(ctx, es.ID, []byte("new\xff")))
	want := *es
	want.PrivateSealed = []byte("new\xff")
	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after UpdateSigningKeySealed", list, []storage.SigningKey{want, *rs})

	wantErr(t, s.UpdateSigningKeySealed(ctx, "missing", []byte("x")), storage.ErrNotFound)
}
