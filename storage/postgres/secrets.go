package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// errEmptySecret rejects an empty sealed secret: storing one would pin a useless key.
var errEmptySecret = errors.New("empty sealed secret")

// GetOrCreateSecret returns the sealed secret called name, first storing sealed if
// there is none. The insert does nothing when name exists (waiting for a concurrent
// inserter to finish first), and the read that follows is a new statement, so under READ
// COMMITTED it sees whichever insert won: concurrent callers all get the same value.
func (s *Store) GetOrCreateSecret(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("postgres: get or create secret %q: %w", name, errEmptySecret)
	}
	var out []byte
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO server_secrets (name, sealed, created_at)
			VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, name, sealed, ts(time.Now())); err != nil {
			return wrapErr("get or create secret: insert", err)
		}
		err := tx.QueryRow(ctx, `SELECT sealed FROM server_secrets WHERE name = $1`, name).Scan(&out)
		return wrapErr("get or create secret", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListSecrets returns every sealed secret by name.
func (s *Store) ListSecrets(ctx context.Context) (map[string][]byte, error) {
	rows, _ := s.pool.Query(ctx, `SELECT name, sealed FROM server_secrets`)
	out := map[string][]byte{}
	var (
		name   string
		sealed []byte
	)
	_, err := pgx.ForEachRow(rows, []any{&name, &sealed}, func() error {
		out[name] = sealed
		return nil
	})
	if err != nil {
		return nil, wrapErr("list secrets", err)
	}
	return out, nil
}

// UpdateSecret replaces the sealed value of name; ErrNotFound when missing.
func (s *Store) UpdateSecret(ctx context.Context, name string, sealed []byte) error {
	if len(sealed) == 0 {
		return fmt.Errorf("postgres: update secret %q: %w", name, errEmptySecret)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE server_secrets SET sealed = $2 WHERE name = $1`, name, sealed)
	if err != nil {
		return wrapErr("update secret", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update secret")
	}
	return nil
}
