package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const resetCols = `id, user_id, token_hash, auth_request_id, pending_id, pending_hash, created_at,
	expires_at, consumed_at`

func scanReset(row scanner) (*storage.PasswordReset, error) {
	var r storage.PasswordReset
	err := row.Scan(&r.ID, &r.UserID, &r.TokenHash, &r.AuthRequestID, &r.PendingID, &r.PendingHash,
		scanTS(&r.CreatedAt), scanTS(&r.ExpiresAt), scanTS(&r.ConsumedAt))
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CreatePasswordReset inserts r; ErrAlreadyExists when its id or token hash is taken.
func (s *Store) CreatePasswordReset(ctx context.Context, r *storage.PasswordReset) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO password_resets (`+resetCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.UserID, r.TokenHash, r.AuthRequestID, r.PendingID, r.PendingHash,
		ts(r.CreatedAt), ts(r.ExpiresAt), ts(r.ConsumedAt))
	return wrapErr("create password reset", err)
}

// GetPasswordReset returns the link whose token hashes to tokenHash, or ErrNotFound.
func (s *Store) GetPasswordReset(ctx context.Context, tokenHash string) (*storage.PasswordReset, error) {
	r, err := scanReset(s.pool.QueryRow(ctx,
		`SELECT `+resetCols+` FROM password_resets WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return nil, wrapErr("get password reset", err)
	}
	return r, nil
}

// SetPasswordResetPending records a pending password on an unconsumed, unexpired link
// with one conditional UPDATE; ErrNotFound otherwise.
func (s *Store) SetPasswordResetPending(ctx context.Context, id, pendingID, hash string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE password_resets SET pending_id = $2, pending_hash = $3
		WHERE id = $1 AND consumed_at IS NULL AND expires_at > $4`, id, pendingID, hash, ts(now))
	if err != nil {
		return wrapErr("set password reset pending", err)
	}
	if tag.RowsAffected() == 0 {
		return wrapErr("set password reset pending", pgx.ErrNoRows)
	}
	return nil
}

// CompletePasswordReset consumes link id (conditional UPDATE ... RETURNING), sets the
// user's password to its pending hash and consumes the user's other links, in one
// transaction.
func (s *Store) CompletePasswordReset(ctx context.Context, id, pendingID string, now time.Time) (*storage.PasswordReset, error) {
	var r *storage.PasswordReset
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The person's row is locked first, so that two of their links completed at once
		// queue on it instead of each holding its own link and waiting for the other's.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users
			WHERE id = (SELECT user_id FROM password_resets WHERE id = $1) FOR UPDATE`, id); err != nil {
			return err
		}
		var err error
		r, err = scanReset(tx.QueryRow(ctx, `UPDATE password_resets SET consumed_at = $1
			WHERE id = $2 AND consumed_at IS NULL AND expires_at > $1 AND pending_id = $3 AND pending_id <> ''
			RETURNING `+resetCols, ts(now), id, pendingID))
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1`,
			r.UserID, r.PendingHash, ts(now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		_, err = tx.Exec(ctx, `UPDATE password_resets SET consumed_at = $2
			WHERE user_id = $1 AND consumed_at IS NULL`, r.UserID, ts(now))
		return err
	})
	if err != nil {
		return nil, wrapErr("complete password reset", err)
	}
	r.ConsumedAt = time.Time{}
	return r, nil
}
