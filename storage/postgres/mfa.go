package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const factorCols = `id, user_id, kind, name, target, secret, confirmed, last_step, created_at,
	last_used_at`

const challengeCols = `id, user_id, factor_id, kind, code_hash, data, attempts, created_at,
	expires_at, consumed_at`

func scanFactor(row scanner) (storage.Factor, error) {
	var f storage.Factor
	err := row.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Target, &f.Secret, &f.Confirmed,
		&f.LastStep, scanTS(&f.CreatedAt), scanTS(&f.LastUsedAt))
	return f, err
}

func scanChallenge(row scanner) (storage.Challenge, error) {
	var c storage.Challenge
	err := row.Scan(&c.ID, &c.UserID, &c.FactorID, &c.Kind, &c.CodeHash, &c.Data, &c.Attempts,
		scanTS(&c.CreatedAt), scanTS(&c.ExpiresAt), scanTS(&c.ConsumedAt))
	return c, err
}

// bytesArg is a bytea query argument: an empty slice is NULL, like a nil one.
func bytesArg(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CreateFactor inserts f; ErrAlreadyExists when the id is taken.
func (s *Store) CreateFactor(ctx context.Context, f *storage.Factor) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO factors (`+factorCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		f.ID, f.UserID, f.Kind, f.Name, f.Target, bytesArg(f.Secret), f.Confirmed, f.LastStep,
		ts(f.CreatedAt), ts(f.LastUsedAt))
	return wrapErr("create factor", err)
}

// GetFactor returns the factor with that id, or ErrNotFound.
func (s *Store) GetFactor(ctx context.Context, id string) (*storage.Factor, error) {
	f, err := scanFactor(s.pool.QueryRow(ctx, `SELECT `+factorCols+` FROM factors WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get factor", err)
	}
	return &f, nil
}

// ListFactors returns the factors of a user, confirmed or not, most recently used first;
// never-used ones follow, newest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+factorCols+` FROM factors WHERE user_id = $1
		ORDER BY last_used_at DESC NULLS LAST, created_at DESC, id DESC`, userID)
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Factor, error) { return scanFactor(r) })
	if err != nil {
		return nil, wrapErr("list factors", err)
	}
	return fs, nil
}

// ListAllFactors returns every factor of every user, ordered by user, then creation.
func (s *Store) ListAllFactors(ctx context.Context) ([]storage.Factor, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+factorCols+` FROM factors ORDER BY user_id, created_at, id`)
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Factor, error) { return scanFactor(r) })
	if err != nil {
		return nil, wrapErr("list all factors", err)
	}
	return fs, nil
}

// UpdateFactor replaces Name, Target, Secret, Confirmed and LastUsedAt of f.ID;
// ErrNotFound when missing. LastStep is left alone.
func (s *Store) UpdateFactor(ctx context.Context, f *storage.Factor) error {
	tag, err := s.pool.Exec(ctx, `UPDATE factors SET name = $2, target = $3, secret = $4,
		confirmed = $5, last_used_at = $6 WHERE id = $1`,
		f.ID, f.Name, f.Target, bytesArg(f.Secret), f.Confirmed, ts(f.LastUsedAt))
	if err != nil {
		return wrapErr("update factor", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update factor")
	}
	return nil
}

// DeleteFactor removes factor id of user userID and, when it is the backup factor, every
// backup code of that user, in one transaction. ErrNotFound when no such factor belongs
// to userID; nothing is deleted then.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var kind storage.FactorKind
		if err := tx.QueryRow(ctx, `DELETE FROM factors WHERE id = $1 AND user_id = $2
			RETURNING kind`, id, userID).Scan(&kind); err != nil {
			return wrapErr("delete factor", err)
		}
		if kind != storage.FactorBackup {
			return nil
		}
		_, err := tx.Exec(ctx, `DELETE FROM backup_codes WHERE user_id = $1`, userID)
		return wrapErr("delete factor: delete backup codes", err)
	})
}

// DeleteUserFactors removes every factor and backup code of a user, in one transaction,
// and returns how many factors went.
func (s *Store) DeleteUserFactors(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM factors WHERE user_id = $1`, userID)
		if err != nil {
			return wrapErr("delete user factors", err)
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM backup_codes WHERE user_id = $1`, userID)
		return wrapErr("delete user factors: delete backup codes", err)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AdvanceTOTPStep records step as the last accepted time step of factor id (and usedAt
// as its LastUsedAt) with one conditional UPDATE that matches only while the stored
// step is lower, so of concurrent callers with one step exactly one wins. ErrConflict
// when the stored step is not lower, ErrNotFound when the factor does not exist.
func (s *Store) AdvanceTOTPStep(ctx context.Context, id string, step int64, usedAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE factors SET last_step = $2, last_used_at = $3
		WHERE id = $1 AND last_step < $2`, id, step, ts(usedAt))
	if err != nil {
		return wrapErr("advance totp step", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	// Nothing matched: tell a replay from a missing factor. The factor's existence is
	// all this read decides, so it need not be atomic with the update.
	return conflictOrNotFound(ctx, s.pool, "advance totp step", `SELECT EXISTS (SELECT 1 FROM factors WHERE id = $1)`, id)
}

// ReplaceBackupCodes deletes every backup code of the user and inserts hashes, in one
// transaction. ErrAlreadyExists (and no change) when hashes holds a duplicate.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM backup_codes WHERE user_id = $1`, userID); err != nil {
			return wrapErr("replace backup codes: delete", err)
		}
		if len(hashes) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO backup_codes (user_id, code_hash, created_at)
			SELECT $1, h, $3 FROM unnest($2::text[]) AS h`, userID, hashes, ts(now))
		return wrapErr("replace backup codes", err)
	})
}

// ConsumeBackupCode marks the user's unused code with that hash used at now, with one
// conditional UPDATE; ErrNotFound when there is none (wrong or already used).
func (s *Store) ConsumeBackupCode(ctx context.Context, userID, hash string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE backup_codes SET used_at = $3
		WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`, userID, hash, ts(now))
	if err != nil {
		return wrapErr("consume backup code", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("consume backup code")
	}
	return nil
}

// CountBackupCodes returns how many unused backup codes the user has.
func (s *Store) CountBackupCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM backup_codes
		WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, wrapErr("count backup codes", err)
	}
	return n, nil
}

// CreateChallenge inserts c; ErrAlreadyExists when the id is taken.
func (s *Store) CreateChallenge(ctx context.Context, c *storage.Challenge) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO challenges (`+challengeCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.ID, c.UserID, c.FactorID, c.Kind, c.CodeHash, bytesArg(c.Data), c.Attempts,
		ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.ConsumedAt))
	return wrapErr("create challenge", err)
}

// ReplaceChallenge inserts c or overwrites the challenge with c.ID, in one upsert.
func (s *Store) ReplaceChallenge(ctx context.Context, c *storage.Challenge) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO challenges (`+challengeCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, factor_id = EXCLUDED.factor_id,
			kind = EXCLUDED.kind, code_hash = EXCLUDED.code_hash, data = EXCLUDED.data,
			attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at,
			expires_at = EXCLUDED.expires_at, consumed_at = EXCLUDED.consumed_at`,
		c.ID, c.UserID, c.FactorID, c.Kind, c.CodeHash, bytesArg(c.Data), c.Attempts,
		ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.ConsumedAt))
	return wrapErr("replace challenge", err)
}

// AttemptChallenge counts one attempt at challenge id and returns it, Attempts
// including this one, with one conditional UPDATE ... RETURNING that matches only while
// the challenge is unconsumed, unexpired at now (a zero expiry never matches) and has
// had fewer than maxAttempts attempts; ErrNotFound otherwise.
func (s *Store) AttemptChallenge(ctx context.Context, id string, now time.Time, maxAttempts int) (*storage.Challenge, error) {
	c, err := scanChallenge(s.pool.QueryRow(ctx, `UPDATE challenges SET attempts = attempts + 1
		WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3
		RETURNING `+challengeCols, id, ts(now), maxAttempts))
	if err != nil {
		return nil, wrapErr("attempt challenge", err)
	}
	return &c, nil
}

// ConsumeChallenge marks challenge id consumed at now with one conditional UPDATE;
// ErrNotFound when it is missing or was consumed already. Expiry is not checked here:
// AttemptChallenge did that.
func (s *Store) ConsumeChallenge(ctx context.Context, id string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE challenges SET consumed_at = $2
		WHERE id = $1 AND consumed_at IS NULL`, id, ts(now))
	if err != nil {
		return wrapErr("consume challenge", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("consume challenge")
	}
	return nil
}

// IncrementFailures adds one to the counter of key (creating it at 1) with one atomic
// upsert and returns the new count. It leaves LockedUntil alone.
func (s *Store) IncrementFailures(ctx context.Context, key string, now time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO failure_counters AS f (key, failures, updated_at)
		VALUES ($1, 1, $2)
		ON CONFLICT (key) DO UPDATE SET failures = f.failures + 1, updated_at = EXCLUDED.updated_at
		RETURNING failures`, key, ts(now)).Scan(&n)
	if err != nil {
		return 0, wrapErr("increment failures", err)
	}
	return n, nil
}

// GetFailures returns the counter of key and until when it is locked; zero values when
// there is no counter.
func (s *Store) GetFailures(ctx context.Context, key string) (failures int, lockedUntil time.Time, err error) {
	err = s.pool.QueryRow(ctx, `SELECT failures, locked_until FROM failure_counters WHERE key = $1`, key).
		Scan(&failures, scanTS(&lockedUntil))
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, wrapErr("get failures", err)
	}
	return failures, lockedUntil, nil
}

// SetLockedUntil records until when key is locked (the zero time unlocks); ErrNotFound
// when key has no counter.
func (s *Store) SetLockedUntil(ctx context.Context, key string, until time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE failure_counters SET locked_until = $2 WHERE key = $1`,
		key, ts(until))
	if err != nil {
		return wrapErr("set locked until", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("set locked until")
	}
	return nil
}

// ResetFailures deletes the counter of key; a missing counter is not an error.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM failure_counters WHERE key = $1`, key)
	return wrapErr("reset failures", err)
}
