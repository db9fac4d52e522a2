package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HitRateLimit adds one to the counter of key with a single upsert: a missing row or a
// window that closed by now (window_start <= now - window) starts a new window at now
// with count 1; otherwise the count goes up by one. It returns the new count.
func (s *Store) HitRateLimit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	if window <= 0 {
		return 0, fmt.Errorf("postgres: hit rate limit: window %v must be positive", window)
	}
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO rate_limits AS r (key, window_start, window_ns, count)
		VALUES ($1, $2, $3, 1)
		ON CONFLICT (key) DO UPDATE SET
			count        = CASE WHEN r.window_start <= $4 THEN 1 ELSE r.count + 1 END,
			window_start = CASE WHEN r.window_start <= $4 THEN EXCLUDED.window_start ELSE r.window_start END,
			window_ns    = EXCLUDED.window_ns
		RETURNING count`,
		key, ts(now), int64(window), ts(now.Add(-window))).Scan(&n)
	if err != nil {
		return 0, wrapErr("hit rate limit", err)
	}
	return n, nil
}

// RateLimitCount returns the counter of key if its window is still open at now, else 0.
func (s *Store) RateLimitCount(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count FROM rate_limits WHERE key = $1 AND window_start > $2`,
		key, ts(now.Add(-window))).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapErr("rate limit count", err)
	}
	return n, nil
}

// ResetRateLimit deletes the counter of key; a missing counter is not an error.
func (s *Store) ResetRateLimit(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM rate_limits WHERE key = $1`, key)
	return wrapErr("reset rate limit", err)
}
