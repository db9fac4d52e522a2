package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const signingKeyCols = `id, algorithm, private_sealed, public_jwk, created_at, activates_at, retired_at, expires_at`

// ListSigningKeys returns every stored key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+signingKeyCols+` FROM signing_keys ORDER BY created_at DESC, id DESC`)
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.SigningKey, error) {
		var k storage.SigningKey
		err := r.Scan(&k.ID, &k.Algorithm, &k.PrivateSealed, &k.PublicJWK,
			scanTS(&k.CreatedAt), scanTS(&k.ActivatesAt), scanTS(&k.RetiredAt), scanTS(&k.ExpiresAt))
		return k, err
	})
	if err != nil {
		return nil, wrapErr("list signing keys", err)
	}
	return keys, nil
}

// AddSigningKey inserts k and, in the same transaction, retires every other key of k's
// algorithm not retired by k.Activation() (RetiredAt = k.Activation(), ExpiresAt =
// retiredExpiry). Concurrent
// calls for one algorithm are serialised by an advisory lock, so at most one key of an
// algorithm is ever left active.
func (s *Store) AddSigningKey(ctx context.Context, k *storage.SigningKey, retiredExpiry time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`,
			signingKeyLock, k.Algorithm); err != nil {
			return wrapErr("add signing key: lock", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $2, expires_at = $3
			WHERE algorithm = $1 AND (retired_at IS NULL OR retired_at > $2) AND id <> $4`,
			k.Algorithm, ts(k.Activation()), ts(retiredExpiry), k.ID); err != nil {
			return wrapErr("add signing key: retire", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (`+signingKeyCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			k.ID, k.Algorithm, k.PrivateSealed, k.PublicJWK, ts(k.CreatedAt), ts(k.ActivatesAt), ts(k.RetiredAt), ts(k.ExpiresAt))
		return wrapErr("add signing key", err)
	})
}

// UpdateSigningKeySealed replaces the sealed private key of key id (re-encryption under
// a new encryption key); ErrNotFound when missing.
func (s *Store) UpdateSigningKeySealed(ctx context.Context, id string, sealed []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE signing_keys SET private_sealed = $2 WHERE id = $1`, id, sealed)
	if err != nil {
		return wrapErr("update signing key sealed", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update signing key sealed")
	}
	return nil
}
