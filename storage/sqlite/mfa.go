package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
)

const factorCols = `id, user_id, kind, name, target, secret, confirmed, last_step, created_at,
	last_used_at`

const challengeCols = `id, user_id, factor_id, kind, code_hash, data, attempts, created_at,
	expires_at, consumed_at`

func scanFactor(sc scanner) (*storage.Factor, error) {
	var f storage.Factor
	err := sc.Scan(&f.ID, &f.UserID, &f.Kind, &f.Name, &f.Target, &f.Secret, &f.Confirmed,
		&f.LastStep, timeCol{&f.CreatedAt}, timeCol{&f.LastUsedAt})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

func scanChallenge(sc scanner) (*storage.Challenge, error) {
	var c storage.Challenge
	err := sc.Scan(&c.ID, &c.UserID, &c.FactorID, &c.Kind, &c.CodeHash, &c.Data, &c.Attempts,
		timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, timeCol{&c.ConsumedAt})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// queryFactors runs a SELECT of factorCols and collects the rows.
func (s *Store) queryFactors(ctx context.Context, query string, args ...any) ([]storage.Factor, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.Factor
	for rows.Next() {
		f, err := scanFactor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateFactor inserts f; ErrAlreadyExists when the id is taken.
func (s *Store) CreateFactor(ctx context.Context, f *storage.Factor) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO factors (`+factorCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.UserID, f.Kind, f.Name, f.Target, blob(f.Secret), f.Confirmed, f.LastStep,
		ts(f.CreatedAt), ts(f.LastUsedAt))
	return wrap("create factor", err)
}

// GetFactor returns the factor with that id, or ErrNotFound.
func (s *Store) GetFactor(ctx context.Context, id string) (*storage.Factor, error) {
	f, err := scanFactor(s.rdb.QueryRowContext(ctx,
		`SELECT `+factorCols+` FROM factors WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get factor", err)
	}
	return f, nil
}

// ListFactors returns the factors of a user, confirmed or not, most recently used first;
// never-used ones follow, newest first.
func (s *Store) ListFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	out, err := s.queryFactors(ctx, `SELECT `+factorCols+` FROM factors WHERE user_id = ?
		ORDER BY last_used_at DESC NULLS LAST, created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, wrap("list factors", err)
	}
	return out, nil
}

// ListAllFactors returns every factor of every user, ordered by user, then creation.
func (s *Store) ListAllFactors(ctx context.Context) ([]storage.Factor, error) {
	out, err := s.queryFactors(ctx, `SELECT `+factorCols+` FROM factors
		ORDER BY user_id, created_at, id`)
	if err != nil {
		return nil, wrap("list all factors", err)
	}
	return out, nil
}

// UpdateFactor replaces Name, Target, Secret, Confirmed and LastUsedAt of f.ID;
// ErrNotFound when missing. LastStep is left alone.
func (s *Store) UpdateFactor(ctx context.Context, f *storage.Factor) error {
	res, err := s.db.ExecContext(ctx, `UPDATE factors SET name = ?, target = ?, secret = ?,
		confirmed = ?, last_used_at = ? WHERE id = ?`,
		f.Name, f.Target, blob(f.Secret), f.Confirmed, ts(f.LastUsedAt), f.ID)
	if err != nil {
		return wrap("update factor", err)
	}
	return wrap("update factor", mustAffect(res))
}

// DeleteFactor removes factor id of user userID and, when it is the backup factor, every
// backup code of that user, in one transaction. ErrNotFound when no such factor belongs
// to userID; nothing is deleted then.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var kind storage.FactorKind
		if err := tx.QueryRowContext(ctx, `DELETE FROM factors WHERE id = ? AND user_id = ?
			RETURNING kind`, id, userID).Scan(&kind); err != nil {
			return err
		}
		if kind != storage.FactorBackup {
			return nil
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM backup_codes WHERE user_id = ?`, userID)
		return err
	})
	return wrap("delete factor", err)
}

// DeleteUserFactors removes every factor and backup code of a user, in one transaction,
// and returns how many factors went.
func (s *Store) DeleteUserFactors(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM factors WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM backup_codes WHERE user_id = ?`, userID)
		return err
	})
	if err != nil {
		return 0, wrap("delete user factors", err)
	}
	return n, nil
}

// AdvanceTOTPStep records step as the last accepted time step of factor id (and usedAt
// as its LastUsedAt) with one conditional UPDATE that matches only while the stored
// step is lower, so of concurrent callers with one step exactly one wins. ErrConflict
// when the stored step is not lower, ErrNotFound when the factor does not exist.
func (s *Store) AdvanceTOTPStep(ctx context.Context, id string, step int64, usedAt time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE factors SET last_step = ?, last_used_at = ?
		WHERE id = ? AND last_step < ?`, step, ts(usedAt), id, step)
	if err != nil {
		return wrap("advance totp step", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("advance totp step", err)
	}
	if n > 0 {
		return nil
	}
	// Nothing matched: tell a replay from a missing factor. The factor's existence is
	// all this read decides, so it need not be atomic with the update.
	return wrap("advance totp step", conflictOrNotFound(ctx, s.db, `SELECT EXISTS (SELECT 1 FROM factors WHERE id = ?)`, id))
}

// ReplaceBackupCodes deletes every backup code of the user and inserts hashes, in one
// transaction. ErrAlreadyExists (and no change) when hashes holds a duplicate.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM backup_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if len(hashes) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO backup_codes (user_id, code_hash,
			created_at, used_at) VALUES (?, ?, ?, NULL)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, h := range hashes {
			if _, err := stmt.ExecContext(ctx, userID, h, ts(now)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("replace backup codes", err)
}

// ConsumeBackupCode marks the user's unused code with that hash used at now, with one
// conditional UPDATE; ErrNotFound when there is none (wrong or already used).
func (s *Store) ConsumeBackupCode(ctx context.Context, userID, hash string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE backup_codes SET used_at = ?
		WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`, ts(now), userID, hash)
	if err != nil {
		return wrap("consume backup code", err)
	}
	return wrap("consume backup code", mustAffect(res))
}

// CountBackupCodes returns how many unused backup codes the user has.
func (s *Store) CountBackupCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM backup_codes
		WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, wrap("count backup codes", err)
	}
	return n, nil
}

// CreateChallenge inserts c; ErrAlreadyExists when the id is taken.
func (s *Store) CreateChallenge(ctx context.Context, c *storage.Challenge) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO challenges (`+challengeCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.UserID, c.FactorID, c.Kind, c.CodeHash, blob(c.Data), c.Attempts,
		ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.ConsumedAt))
	return wrap("create challenge", err)
}

// ReplaceChallenge inserts c or overwrites the challenge with c.ID, in one upsert.
func (s *Store) ReplaceChallenge(ctx context.Context, c *storage.Challenge) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO challenges (`+challengeCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, factor_id = excluded.factor_id,
			kind = excluded.kind, code_hash = excluded.code_hash, data = excluded.data,
			attempts = excluded.attempts, created_at = excluded.created_at,
			expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`,
		c.ID, c.UserID, c.FactorID, c.Kind, c.CodeHash, blob(c.Data), c.Attempts,
		ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.ConsumedAt))
	return wrap("replace challenge", err)
}

// AttemptChallenge counts one attempt at challenge id and returns it, Attempts
// including this one, with one conditional UPDATE ... RETURNING that matches only while
// the challenge is unconsumed, unexpired at now (a zero expiry never matches) and has
// had fewer than maxAttempts attempts; ErrNotFound otherwise.
func (s *Store) AttemptChallenge(ctx context.Context, id string, now time.Time, maxAttempts int) (*storage.Challenge, error) {
	c, err := scanChallenge(s.db.QueryRowContext(ctx, `UPDATE challenges
		SET attempts = attempts + 1
		WHERE id = ? AND consumed_at IS NULL AND expires_at > ? AND attempts < ?
		RETURNING `+challengeCols, id, now.UnixNano(), maxAttempts))
	if err != nil {
		return nil, wrap("attempt challenge", err)
	}
	return c, nil
}

// ConsumeChallenge marks challenge id consumed at now with one conditional UPDATE;
// ErrNotFound when it is missing or was consumed already. Expiry is not checked here:
// AttemptChallenge did that.
func (s *Store) ConsumeChallenge(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE challenges SET consumed_at = ?
		WHERE id = ? AND consumed_at IS NULL`, now.UnixNano(), id)
	if err != nil {
		return wrap("consume challenge", err)
	}
	return wrap("consume challenge", mustAffect(res))
}

// IncrementFailures adds one to the counter of key (creating it at 1) with one atomic
// upsert and returns the new count. It leaves LockedUntil alone.
func (s *Store) IncrementFailures(ctx context.Context, key string, now time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `INSERT INTO failure_counters (key, failures, updated_at)
		VALUES (?1, 1, ?2)
		ON CONFLICT (key) DO UPDATE SET failures = failures + 1, updated_at = ?2
		RETURNING failures`, key, ts(now)).Scan(&n)
	if err != nil {
		return 0, wrap("increment failures", err)
	}
	return n, nil
}

// GetFailures returns the counter of key and until when it is locked; zero values when
// there is no counter.
func (s *Store) GetFailures(ctx context.Context, key string) (failures int, lockedUntil time.Time, err error) {
	err = s.rdb.QueryRowContext(ctx, `SELECT failures, locked_until FROM failure_counters
		WHERE key = ?`, key).Scan(&failures, timeCol{&lockedUntil})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, wrap("get failures", err)
	}
	return failures, lockedUntil, nil
}

// SetLockedUntil records until when key is locked (the zero time unlocks); ErrNotFound
// when key has no counter.
func (s *Store) SetLockedUntil(ctx context.Context, key string, until time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE failure_counters SET locked_until = ? WHERE key = ?`,
		ts(until), key)
	if err != nil {
		return wrap("set locked until", err)
	}
	return wrap("set locked until", mustAffect(res))
}

// ResetFailures deletes the counter of key; a missing counter is not an error.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM failure_counters WHERE key = ?`, key)
	return wrap("reset failures", err)
}

// errEmptySecret rejects an empty sealed secret: storing one would pin a useless key.
var errEmptySecret = errors.New("empty sealed secret")

// GetOrCreateSecret returns the sealed secret called name, first storing sealed if
// there is none. The insert (which does nothing when name exists) and the read run in
// one write transaction, so concurrent callers all get the value of the first one.
func (s *Store) GetOrCreateSecret(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("get or create secret %q: %w", name, errEmptySecret)
	}
	var out []byte
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO server_secrets (name, sealed, created_at)
			VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			name, sealed, time.Now().UnixNano()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT sealed FROM server_secrets WHERE name = ?`, name).
			Scan(&out)
	})
	if err != nil {
		return nil, wrap("get or create secret", err)
	}
	return out, nil
}

// ListSecrets returns every sealed secret by name.
func (s *Store) ListSecrets(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, sealed FROM server_secrets`)
	if err != nil {
		return nil, wrap("list secrets", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var (
			name   string
			sealed []byte
		)
		if err := rows.Scan(&name, &sealed); err != nil {
			return nil, wrap("list secrets", err)
		}
		out[name] = sealed
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list secrets", err)
	}
	return out, nil
}

// UpdateSecret replaces the sealed value of name; ErrNotFound when missing.
func (s *Store) UpdateSecret(ctx context.Context, name string, sealed []byte) error {
	if len(sealed) == 0 {
		return fmt.Errorf("update secret %q: %w", name, errEmptySecret)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE server_secrets SET sealed = ? WHERE name = ?`,
		sealed, name)
	if err != nil {
		return wrap("update secret", err)
	}
	return wrap("update secret", mustAffect(res))
}
