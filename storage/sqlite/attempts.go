package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/attemptsql"
)

// ReserveAttempt adds one attempt to key in a single conditional upsert: the row is
// inserted, or updated only while the key is not blocked and its window has ended or
// holds fewer than rule.Limit attempts. SQLite runs one writer at a time, so the
// condition and the increment cannot be split by a concurrent reservation.
func (s *Store) ReserveAttempt(ctx context.Context, key string, rule storage.AttemptRule, now time.Time) (storage.AttemptResult, error) {
	if rule.Limit < 1 {
		return storage.AttemptResult{}, fmt.Errorf("sqlite: reserve attempt: limit %d must be at least 1", rule.Limit)
	}
	n := now.UnixNano()
	newCount := "CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END"
	q := `INSERT INTO attempt_counters (key, count, window_end, blocked_until)
		VALUES (?1, 1, ?3, ` + attemptsql.BlockedUntil(rule, "?2", "1") + `)
		ON CONFLICT (key) DO UPDATE SET
			count         = ` + newCount + `,
			window_end    = CASE WHEN window_end <= ?2 THEN ?3 ELSE window_end END,
			blocked_until = ` + attemptsql.BlockedUntil(rule, "?2", newCount) + `
		WHERE blocked_until <= ?2 AND (window_end <= ?2 OR count < ?4)
		RETURNING count, window_end, blocked_until`
	var count int
	var windowEnd, blocked int64
	// The query text depends only on the rule, and rules are a fixed set (idp/regulation),
	// so the connection keeps one prepared statement per rule (stmtcache.go).
	err := s.db.QueryRowContext(ctx, q, key, n, attemptsql.WindowEnd(rule, now), rule.Limit).Scan(&count, &windowEnd, &blocked)
	if err == nil {
		return attemptsql.Result(rule, true, count, windowEnd, blocked, now), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return storage.AttemptResult{}, wrap("reserve attempt", err)
	}
	// Refused: read the counter to say until when (information only; nothing changes).
	err = s.rdb.QueryRowContext(ctx, `SELECT count, window_end, blocked_until FROM attempt_counters WHERE key = ?`, key).
		Scan(&count, &windowEnd, &blocked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return storage.AttemptResult{}, wrap("read attempt counter", err)
	}
	return attemptsql.Result(rule, false, count, windowEnd, blocked, now), nil
}

// ReleaseAttempt gives one attempt of key back, lifting the back-off below its threshold.
func (s *Store) ReleaseAttempt(ctx context.Context, key string, rule storage.AttemptRule) error {
	_, err := s.db.ExecContext(ctx, `UPDATE attempt_counters
		SET count = count - 1, blocked_until = CASE WHEN count - 1 < ?2 THEN 0 ELSE blocked_until END
		WHERE key = ?1 AND count > 0`, key, attemptsql.ReleaseBelow(rule))
	return wrap("release attempt", err)
}

// ResetAttempts deletes the counter of key.
func (s *Store) ResetAttempts(ctx context.Context, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM attempt_counters WHERE key = ?`, key)
	return wrap("reset attempts", err)
}

// ResetAttemptsPrefix deletes every counter whose key starts with prefix.
func (s *Store) ResetAttemptsPrefix(ctx context.Context, prefix string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM attempt_counters WHERE substr(key, 1, length(?1)) = ?1`, prefix)
	if err != nil {
		return 0, wrap("reset attempts", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("reset attempts", err)
}
