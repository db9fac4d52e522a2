package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const deviceCols = `id, user_id, token_hash, name, ip, created_at, last_used_at, expires_at`

func scanDevice(row scanner) (storage.Device, error) {
	var d storage.Device
	err := row.Scan(&d.ID, &d.UserID, &d.TokenHash, &d.Name, &d.IP, scanTS(&d.CreatedAt),
		scanTS(&d.LastUsedAt), scanTS(&d.ExpiresAt))
	return d, err
}

// CreateDevice inserts d; ErrAlreadyExists when its id or token hash is taken.
func (s *Store) CreateDevice(ctx context.Context, d *storage.Device) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO devices (`+deviceCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		d.ID, d.UserID, d.TokenHash, d.Name, d.IP, ts(d.CreatedAt), ts(d.LastUsedAt), ts(d.ExpiresAt))
	return wrapErr("create device", err)
}

// GetDeviceByTokenHash returns the device whose cookie hashes to tokenHash, or
// ErrNotFound.
func (s *Store) GetDeviceByTokenHash(ctx context.Context, tokenHash string) (*storage.Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return nil, wrapErr("get device by token hash", err)
	}
	return &d, nil
}

// TouchDevice sets LastUsedAt of device id; ErrNotFound when missing.
func (s *Store) TouchDevice(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET last_used_at = $2 WHERE id = $1`, id, ts(at))
	if err != nil {
		return wrapErr("touch device", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("touch device")
	}
	return nil
}

// ListUserDevices returns a user's devices, newest first.
func (s *Store) ListUserDevices(ctx context.Context, userID string) ([]storage.Device, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = $1
		ORDER BY created_at DESC, id DESC`, userID)
	devices, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Device, error) { return scanDevice(r) })
	if err != nil {
		return nil, wrapErr("list user devices", err)
	}
	return devices, nil
}

// DeleteDevice removes device id of user userID; ErrNotFound when no such device
// belongs to that user (nothing is deleted then).
func (s *Store) DeleteDevice(ctx context.Context, userID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return wrapErr("delete device", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete device")
	}
	return nil
}

// DeleteUserDevices removes every device of a user and returns how many went.
func (s *Store) DeleteUserDevices(ctx context.Context, userID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE user_id = $1`, userID)
	if err != nil {
		return 0, wrapErr("delete user devices", err)
	}
	return tag.RowsAffected(), nil
}
