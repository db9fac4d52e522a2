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
