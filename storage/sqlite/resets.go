package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/openidp/idp/storage"
)

const resetCols = `id, user_id, token_hash, auth_request_id, pending_id, pending_hash, created_at,
	expires_at, consumed_at`

func scanReset(sc scanner) (*storage.PasswordReset, error) {
	var r storage.PasswordReset
	err := sc.Scan(&r.ID, &r.UserID, &r.TokenHash, &r.AuthRequestID, &r.PendingID, &r.PendingHash,
		timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, timeCol{&r.ConsumedAt})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CreatePasswordReset inserts r; ErrAlreadyExists when its id or token hash is taken.
func (s *Store) CreatePasswordReset(ctx context.Context, r *storage.PasswordReset) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO password_resets (`+resetCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.UserID, r.TokenHash, r.AuthRequestID, r.PendingID, r.PendingHash,
		ts(r.CreatedAt), ts(r.ExpiresAt), ts(r.ConsumedAt))
	return wrap("create password reset", err)
}

// GetPasswordReset returns the link whose token hashes to tokenHash, or ErrNotFound.
func (s *Store) GetPasswordReset(ctx context.Context, tokenHash string) (*storage.PasswordReset, error) {
	r, err := scanReset(s.db.QueryRowContext(ctx,
		`SELECT `+resetCols+` FROM password_resets WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return nil, wrap("get password reset", err)
	}
	return r, nil
}

// SetPasswordResetPending records a pending password on an unconsumed, unexpired link
// with one conditional UPDATE; ErrNotFound otherwise.
func (s *Store) SetPasswordResetPending(ctx context.Context, id, pendingID, hash string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE password_resets SET pending_id = ?, pending_hash = ?
		WHERE id = ? AND consumed_at IS NULL AND expires_at > ?`, pendingID, hash, id, now.UnixNano())
	if err != nil {
		return wrap("set password reset pending", err)
	}
	return wrap("set password reset pending", mustAffect(res))
}

// CompletePasswordReset consumes link id (conditional UPDATE ... RETURNING), sets the
// user's password to its pending hash and consumes the user's other links, in one
// transaction.
func (s *Store) CompletePasswordReset(ctx context.Context, id, pendingID string, now time.Time) (*storage.PasswordReset, error) {
	var r *storage.PasswordReset
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = scanReset(tx.QueryRowContext(ctx, `UPDATE password_resets SET consumed_at = ?1
			WHERE id = ?2 AND consumed_at IS NULL AND expires_at > ?1 AND pending_id = ?3 AND pending_id <> ''
			RETURNING `+resetCols, now.UnixNano(), id, pendingID))
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`,
			r.PendingHash, now.UnixNano(), r.UserID)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE password_resets SET consumed_at = ?
			WHERE user_id = ? AND consumed_at IS NULL`, now.UnixNano(), r.UserID)
		return err
	})
	if err != nil {
		return nil, wrap("complete password reset", err)
	}
	r.ConsumedAt = time.Time{}
	return r, nil
}
