package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
)

// AppendAudit inserts e as the newest link of the audit hash chain and sets e.ID,
// e.PrevHash and e.Hash. A zero e.Time is set to now first (the column cannot hold the
// zero time, and the hash must cover the time that is stored).
//
// The append goes through the group-commit writer (writer.go): its transaction (BEGIN
// IMMEDIATE, see Open) holds the database write lock from reading the newest hash to
// commit, so appends from every goroutine and every process sharing the file are
// serialised and the chain never forks.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, head *chainHead) error {
		return appendAuditTx(ctx, tx, head, e)
	})
	return wrap("append audit", err)
}

// DeleteAuditBefore removes the events older than t (retention) and returns how many
// went. It removes a prefix of the chain: every event up to the first one (by id) at or
// after t, so the retained events stay one unbroken chain even if clocks of several
// processes disagreed (an older-stamped event appended after a newer one is kept).
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id < COALESCE(
			(SELECT MIN(id) FROM audit_events WHERE occurred_at >= ?1),
			(SELECT MAX(id) FROM audit_events) + 1)`, t.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap("delete audit", err)
	}
	return n, nil
}

// ListAudit returns matching events in chain (id) order, oldest first; when f.Limit > 0,
// the newest f.Limit of them, still oldest first.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	q, args := auditQuery(f)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list audit", err)
	}
	defer rows.Close()
	var out []storage.AuditEvent
	for rows.Next() {
		var e storage.AuditEvent
		if err := rows.Scan(&e.ID, timeCol{&e.Time}, &e.Type, &e.UserID, &e.ClientID, &e.IP,
			&e.UserAgent, &e.Result, &e.Reason, &e.PrevHash, &e.Hash, &e.ChainKey,
			&e.TokenID, &e.FamilyID, &e.SessionID, &e.FactorID); err != nil {
			return nil, wrap("list audit", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list audit", err)
	}
	if f.Limit > 0 { // newest first
		slices.Reverse(out)
	}
	return out, nil
}

// auditQuery is ListAudit's query for f and its arguments. The person index holds only
// events of a person (user_id not empty), and SQLite uses a partial index only for a query
// that states its condition (TestPartialIndexesUsed).
func auditQuery(f storage.AuditFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.UserID != "" {
		where, args = append(where, "user_id = ? AND user_id <> ''"), append(args, f.UserID)
	}
	if f.ClientID != "" {
		where, args = append(where, "client_id = ?"), append(args, f.ClientID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if f.TokenID != "" {
		where, args = append(where, "token_id = ?"), append(args, f.TokenID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "occurred_at >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "occurred_at < ?"), append(args, f.Until.UnixNano())
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := `SELECT id, occurred_at, type, user_id, client_id, ip, user_agent, result, reason,
		prev_hash, hash, chain_key, COALESCE(token_id, ''), COALESCE(family_id, ''), COALESCE(session_id, ''),
		COALESCE(factor_id, '') FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		q += " ORDER BY id DESC LIMIT ?"
		args = append(args, f.Limit)
	} else {
		q += " ORDER BY id"
	}
	return q, args
}
