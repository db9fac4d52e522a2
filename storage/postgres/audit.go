package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

// auditLockKey is the transaction-scoped advisory lock that serialises audit appends
// (and retention deletes) across every process sharing the database. It spells
// "idp-audt" in ASCII.
const auditLockKey int64 = 0x6964702d61756474

// AppendAudit inserts e as the newest link of the audit hash chain and sets e.ID,
// e.PrevHash and e.Hash. It goes through the group-commit writer (writer.go), whose
// transaction takes the advisory lock auditLockKey once per batch before it reads the
// newest hash, so appends from every process are serialised and the chain never forks.
// The time is stored with microsecond precision, which is what the hash covers; a zero
// e.Time is set to now first, as in every backend.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	err := s.write(ctx, writeJob{
		run: func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
			return appendAuditTx(ctx, tx, head, e)
		},
		queue: func(b *pgx.Batch, head *chainHead) (func(), error) { return queueAudit(b, head, e) },
	})
	return wrapErr("append audit", err)
}

// DeleteAuditBefore removes the events older than t (retention) and returns how many
// went. It removes a prefix of the chain: every event up to the first one (by id) at or
// after t, so the retained events stay one unbroken chain even if clocks of several
// processes disagreed (an older-stamped event appended after a newer one is kept). It
// holds the append lock, so no append interleaves with it.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE id < COALESCE(
			(SELECT min(id) FROM audit_events WHERE time >= $1),
			(SELECT max(id) FROM audit_events) + 1)`, ts(t))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrapErr("delete audit", err)
	}
	return n, nil
}

// ListAudit returns the events matching f in chain (id) order, oldest first; with
// f.Limit > 0, the newest f.Limit of them (still oldest first).
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	q, args := auditQuery(f)
	rows, _ := s.pool.Query(ctx, q, args...)
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.AuditEvent, error) {
		var e storage.AuditEvent
		err := r.Scan(&e.ID, scanTS(&e.Time), &e.Type, &e.UserID, &e.ClientID, &e.IP, &e.UserAgent,
			&e.Result, &e.Reason, &e.PrevHash, &e.Hash, &e.ChainKey,
			&e.TokenID, &e.FamilyID, &e.SessionID, &e.FactorID)
		return e, err
	})
	if err != nil {
		return nil, wrapErr("list audit", err)
	}
	if f.Limit > 0 {
		slices.Reverse(events)
	}
	return events, nil
}

// auditQuery is ListAudit's query for f and its arguments. The person and client
// indexes hold only events with one (user_id or client_id not empty); a generic plan
// of the prepared statement (PostgreSQL's choice after five runs) uses a partial index
// only when the query states its condition, hence the not-empty terms
// (TestPartialIndexesUsed).
func auditQuery(f storage.AuditFilter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.UserID != "" {
		add("user_id = ? AND user_id <> ''", f.UserID)
	}
	if f.ClientID != "" {
		add("client_id = ? AND client_id <> ''", f.ClientID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.TokenID != "" {
		add("token_id = ?", f.TokenID)
	}
	if !f.Since.IsZero() {
		add("time >= ?", ts(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < ?", ts(f.Until))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	q := `SELECT id, time, type, user_id, client_id, ip, user_agent, result, reason, prev_hash, hash,
		chain_key, COALESCE(token_id, ''), COALESCE(family_id, ''), COALESCE(session_id, ''), COALESCE(factor_id, '')
		FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	} else {
		q += " ORDER BY id"
	}
	return q, args
}
