package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

// SetAuditChainKey makes later appends key the audit chain with k (see
// storage.AuditChainKeyer).
func (s *Store) SetAuditChainKey(k *storage.AuditChainKey) { s.auditKey.Store(k) }

// AuditHead returns the newest event and the number of events up to it, in one statement
// (one snapshot); ErrNotFound when the trail is empty.
func (s *Store) AuditHead(ctx context.Context) (storage.AuditHead, error) {
	var h storage.AuditHead
	err := s.pool.QueryRow(ctx, `SELECT e.id, e.hash, e.chain_key,
		(SELECT count(*) FROM audit_events WHERE id <= e.id)
		FROM audit_events e ORDER BY e.id DESC LIMIT 1`).Scan(&h.EventID, &h.Hash, &h.ChainKey, &h.Count)
	if err != nil {
		return h, wrapErr("audit head", err)
	}
	return h, nil
}

// AddAuditCheckpoint stores c and sets c.ID.
func (s *Store) AddAuditCheckpoint(ctx context.Context, c *storage.AuditCheckpoint) error {
	err := s.pool.QueryRow(ctx, `INSERT INTO audit_checkpoints (event_id, hash, created_at, jws)
		VALUES ($1, $2, $3, $4) RETURNING id`, c.EventID, c.Hash, ts(c.CreatedAt), c.JWS).Scan(&c.ID)
	return wrapErr("add audit checkpoint", err)
}

// ListAuditCheckpoints returns every checkpoint, oldest first.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]storage.AuditCheckpoint, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, event_id, hash, created_at, jws FROM audit_checkpoints ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.AuditCheckpoint, error) {
		var c storage.AuditCheckpoint
		err := r.Scan(&c.ID, &c.EventID, &c.Hash, scanTS(&c.CreatedAt), &c.JWS)
		return c, err
	})
	if err != nil {
		return nil, wrapErr("list audit checkpoints", err)
	}
	return out, nil
}

// DeleteAuditCheckpointsBefore removes the checkpoints of events below eventID.
func (s *Store) DeleteAuditCheckpointsBefore(ctx context.Context, eventID int64) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_checkpoints WHERE event_id < $1`, eventID)
	if err != nil {
		return 0, wrapErr("delete audit checkpoints", err)
	}
	return tag.RowsAffected(), nil
}
