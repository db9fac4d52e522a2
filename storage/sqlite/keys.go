package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/openidp/idp/storage"
)

// ListSigningKeys returns every stored key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, algorithm, private_sealed, public_jwk,
		created_at, activates_at, retired_at, expires_at FROM signing_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	defer rows.Close()
	var out []storage.SigningKey
	for rows.Next() {
		var k storage.SigningKey
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateSealed, &k.PublicJWK,
			timeCol{&k.CreatedAt}, timeCol{&k.ActivatesAt}, timeCol{&k.RetiredAt}, timeCol{&k.ExpiresAt}); err != nil {
			return nil, wrap("list signing keys", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list signing keys", err)
	}
	return out, nil
}

// AddSigningKey inserts k and, in the same transaction, retires every other key with
// k's algorithm not retired by k.Activation() (RetiredAt = k.Activation(), ExpiresAt =
// retiredExpiry). ErrAlreadyExists when k.ID is taken.
func (s *Store) AddSigningKey(ctx context.Context, k *storage.SigningKey, retiredExpiry time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		at := ts(k.Activation())
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ?1, expires_at = ?2
			WHERE algorithm = ?3 AND (retired_at IS NULL OR retired_at > ?1) AND id <> ?4`,
			at, ts(retiredExpiry), k.Algorithm, k.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, algorithm, private_sealed,
			public_jwk, created_at, activates_at, retired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Algorithm, blob(k.PrivateSealed), blob(k.PublicJWK), ts(k.CreatedAt),
			ts(k.ActivatesAt), ts(k.RetiredAt), ts(k.ExpiresAt))
		return err
	})
	return wrap("add signing key", err)
}

// UpdateSigningKeySealed replaces the sealed private key of key id (re-encryption under
// a new encryption key); ErrNotFound when missing.
func (s *Store) UpdateSigningKeySealed(ctx context.Context, id string, sealed []byte) error {
	res, err := s.db.ExecContext(ctx, `UPDATE signing_keys SET private_sealed = ? WHERE id = ?`,
		blob(sealed), id)
	if err != nil {
		return wrap("update signing key sealed", err)
	}
	return wrap("update signing key sealed", mustAffect(res))
}
