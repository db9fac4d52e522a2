package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/attemptsql"
)

// ReserveAttempt adds one attempt to key in a single conditional upsert: the row is
// inserted, or updated only while the key is not blocked and its window has ended or
// holds fewer than rule.Limit attempts. ON CONFLICT DO UPDATE locks the row and
// evaluates the condition on its newest version, so concurrent reservations — from any
// process — are serialised on the row and none can slip past the limit.
func (s *Store) ReserveAttempt(ctx context.Context, key string, rule storage.AttemptRule, now time.Time) (storage.AttemptResult, error) {
	if rule.Limit < 1 {
		return storage.AttemptResult{}, fmt.Errorf("postgres: reserve attempt: limit %d must be at least 1", rule.Limit)
	}
	n := now.UnixNano()
	newCount := "CASE WHEN t.window_end <= $2 THEN 1 ELSE t.count + 1 END"
	q := `INSERT INTO attempt_counters AS t (key, count, window_end, blocked_until)
		VALUES ($1, 1, $3, ` + attemptsql.BlockedUntil(rule, "$2::bigint", "1") + `)
		ON CONFLICT (key) DO UPDATE SET
			count         = ` + newCount + `,
			window_end    = CASE WHEN t.window_end <= $2 THEN $3 ELSE t.window_end END,
			blocked_until = ` + attemptsql.BlockedUntil(rule, "$2::bigint", newCount) + `
		WHERE t.blocked_until <= $2 AND (t.window_end <= $2 OR t.count < $4)
		RETURNING count, window_end, blocked_until`
	var count int
	var windowEnd, blocked int64
	err := s.pool.QueryRow(ctx, q, key, n, attemptsql.WindowEnd(rule, now), rule.Limit).Scan(&count, &windowEnd, &blocked)
	if err == nil {
		return attemptsql.Result(rule, true, count, windowEnd, blocked, now), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return storage.AttemptResult{}, wrapErr("reserve attempt", err)
	}
	// Refused: read the counter to say until when (information only; nothing changes).
	err = s.pool.QueryRow(ctx, `SELECT count, window_end, blocked_until FROM attempt_counters WHERE key = $1`, key).
		Scan(&count, &windowEnd, &blocked)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return storage.AttemptResult{}, wrapErr("read attempt counter", err)
	}
	return attemptsql.Result(rule, false, count, windowEnd, blocked, now), nil
}

// ReleaseAttempt gives one attempt of key back, lifting the back-off below its threshold.
func (s *Store) ReleaseAttempt(ctx context.Context, key string, rule storage.AttemptRule) error {
	_, err := s.pool.Exec(ctx, `UPDATE attempt_counters
		SET count = count - 1, blocked_until = CASE WHEN count - 1 < $2 THEN 0 ELSE blocked_until END
		WHERE key = $1 AND count > 0`, key, attemptsql.ReleaseBelow(rule))
	return wrapErr("release attempt", err)
}

// ResetAttempts deletes the counter of key.
func (s *Store) ResetAttempts(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM attempt_counters WHERE key = $1`, key)
	return wrapErr("reset attempts", err)
}

// ResetAttemptsPrefix deletes every counter whose key starts with prefix.
func (s *Store) ResetAttemptsPrefix(ctx context.Context, prefix string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM attempt_counters WHERE substr(key, 1, length($1)) = $1`, prefix)
	if err != nil {
		return 0, wrapErr("reset attempts", err)
	}
	return tag.RowsAffected(), nil
}
