package sqlite

import (
	"context"
	"database/sql"

	"github.com/openidp/idp/storage"
)

// SetAuditChainKey makes later appends key the audit chain with k (see
// storage.AuditChainKeyer).
func (s *Store) SetAuditChainKey(k *storage.AuditChainKey) { s.auditKey.Store(k) }

// AuditHead returns the newest event and the number of events up to it, in one statement
// (one snapshot); ErrNotFound when the trail is empty.
func (s *Store) AuditHead(ctx context.Context) (storage.AuditHead, error) {
	var h storage.AuditHead
	err := s.db.QueryRowContext(ctx, `SELECT e.id, e.hash, e.chain_key,
		(SELECT count(*) FROM audit_events WHERE id <= e.id)
		FROM audit_events e ORDER BY e.id DESC LIMIT 1`).Scan(&h.EventID, &h.Hash, &h.ChainKey, &h.Count)
	if err != nil {
		return h, wrap("audit head", err)
	}
	return h, nil
}

// AddAuditCheckpoint stores c and sets c.ID.
func (s *Store) AddAuditCheckpoint(ctx context.Context, c *storage.AuditCheckpoint) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO audit_checkpoints (event_id, hash, created_at, jws)
			VALUES (?, ?, ?, ?) RETURNING id`, c.EventID, c.Hash, c.CreatedAt.UnixNano(), c.JWS).Scan(&c.ID)
	})
	return wrap("add audit checkpoint", err)
}

// ListAuditCheckpoints returns every checkpoint, oldest first.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]storage.AuditCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event_id, hash, created_at, jws FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, wrap("list audit checkpoints", err)
	}
	defer rows.Close()
	var out []storage.AuditCheckpoint
	for rows.Next() {
		var c storage.AuditCheckpoint
		if err := rows.Scan(&c.ID, &c.EventID, &c.Hash, timeCol{&c.CreatedAt}, &c.JWS); err != nil {
			return nil, wrap("list audit checkpoints", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list audit checkpoints", err)
	}
	return out, nil
}

// DeleteAuditCheckpointsBefore removes the checkpoints of events below eventID.
func (s *Store) DeleteAuditCheckpointsBefore(ctx context.Context, eventID int64) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE event_id < ?`, eventID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap("delete audit checkpoints", err)
	}
	return n, nil
}
