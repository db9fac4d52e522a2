package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// HitRateLimit adds one to the counter of key for the window that contains now and
// returns the new count. A window starts at the first hit and lasts window; a hit at or
// after its end starts a new window. One atomic upsert, so concurrent hits never lose
// a count.
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	n := now.UnixNano()
	var count int
	err := s.writeCommitted(ctx, func(ctx context.Context, tx *sql.Tx, _ *chainHead) error {
		return tx.QueryRowContext(ctx, `INSERT INTO rate_limits (key, window_start, count, expires_at)
		VALUES (?1, ?2, 1, ?2 + ?3)
		ON CONFLICT (key) DO UPDATE SET
			count        = CASE WHEN window_start <= ?2 - ?3 THEN 1  ELSE count + 1 END,
			expires_at   = CASE WHEN window_start <= ?2 - ?3 THEN ?2 + ?3 ELSE expires_at END,
			window_start = CASE WHEN window_start <= ?2 - ?3 THEN ?2 ELSE window_start END
		RETURNING count`, key, n, int64(window)).Scan(&count)
	})
	if err != nil {
		return 0, wrap("hit rate limit", err)
	}
	return count, nil
}

// RateLimitCount returns the counter of key if its window is still open at now, else 0.
func (s *Store) RateLimitCount(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	var count int
	err := s.rdb.QueryRowContext(ctx, `SELECT count FROM rate_limits
		WHERE key = ? AND window_start > ?`, key, now.UnixNano()-int64(window)).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("rate limit count", err)
	}
	return count, nil
}

// ResetRateLimit deletes the counter of key.
func (s *Store) ResetRateLimit(ctx context.Context, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM rate_limits WHERE key = ?`, key)
	return wrap("reset rate limit", err)
}
