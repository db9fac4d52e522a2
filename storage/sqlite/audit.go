package sqlite

import (
	"context"
	"slices"
	"strings"

	"github.com/openidp/idp/storage"
)

// AppendAudit inserts e and sets e.ID.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO audit_events (occurred_at, type, user_id,
		client_id, ip, user_agent, result, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Time.UnixNano(), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason).
		Scan(&id)
	if err != nil {
		return wrap("append audit", err)
	}
	e.ID = id
	return nil
}

// ListAudit returns matching events ordered by time (then id), oldest first; when
// f.Limit > 0, the newest f.Limit of them, still oldest first.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if f.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	if f.ClientID != "" {
		where, args = append(where, "client_id = ?"), append(args, f.ClientID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "occurred_at >= ?"), append(args, f.Since.UnixNano())
	}
	q := `SELECT id, occurred_at, type, user_id, client_id, ip, user_agent, result, reason
		FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	newestFirst := f.Limit > 0
	if newestFirst {
		q += " ORDER BY occurred_at DESC, id DESC LIMIT ?"
		args = append(args, f.Limit)
	} else {
		q += " ORDER BY occurred_at, id"
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list audit", err)
	}
	defer rows.Close()
	var out []storage.AuditEvent
	for rows.Next() {
		var e storage.AuditEvent
		if err := rows.Scan(&e.ID, timeCol{&e.Time}, &e.Type, &e.UserID, &e.ClientID, &e.IP,
			&e.UserAgent, &e.Result, &e.Reason); err != nil {
			return nil, wrap("list audit", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list audit", err)
	}
	if newestFirst {
		slices.Reverse(out)
	}
	return out, nil
}
