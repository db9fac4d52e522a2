package postgres

import (
	"context"
	"errors"
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
// e.PrevHash and e.Hash. The transaction takes the advisory lock auditLockKey before it
// reads the newest hash, so appends from every process are serialised and the chain
// never forks. The time is stored with microsecond precision, which is what the hash
// covers; a zero e.Time is set to now first, as in every backend.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	var id int64
	linked := *e
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return err
		}
		var prev, prevKey string
		err := tx.QueryRow(ctx, `SELECT hash, chain_key FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev, &prevKey)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := storage.LinkAudit(s.auditKey.Load(), prev, prevKey, &linked); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO audit_events
			(time, type, user_id, client_id, ip, user_agent, result, reason, prev_hash, hash, chain_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			ts(e.Time.Truncate(time.Microsecond)), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent,
			e.Result, e.Reason, linked.PrevHash, linked.Hash, linked.ChainKey).Scan(&id)
	})
	if err != nil {
		return wrapErr("append audit", err)
	}
	e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	return nil
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
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
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
		chain_key FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))
	} else {
		q += " ORDER BY id"
	}
	rows, _ := s.pool.Query(ctx, q, args...)
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.AuditEvent, error) {
		var e storage.AuditEvent
		err := r.Scan(&e.ID, scanTS(&e.Time), &e.Type, &e.UserID, &e.ClientID, &e.IP, &e.UserAgent,
			&e.Result, &e.Reason, &e.PrevHash, &e.Hash, &e.ChainKey)
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
