package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

// AppendAudit inserts e and sets e.ID to the id the database assigned.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	err := s.pool.QueryRow(ctx, `INSERT INTO audit_events
		(time, type, user_id, client_id, ip, user_agent, result, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		ts(e.Time), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason).Scan(&e.ID)
	return wrapErr("append audit", err)
}

// ListAudit returns the events matching f, oldest first; with f.Limit > 0, the newest
// f.Limit of them (still oldest first).
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
	q := `SELECT id, time, type, user_id, client_id, ip, user_agent, result, reason FROM audit_events`
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
			&e.Result, &e.Reason)
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
