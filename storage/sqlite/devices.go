package sqlite

import (
	"context"
	"time"

	"github.com/openidp/idp/storage"
)

const deviceCols = `id, user_id, token_hash, name, ip, created_at, last_used_at, expires_at`

func scanDevice(sc scanner) (*storage.Device, error) {
	var d storage.Device
	err := sc.Scan(&d.ID, &d.UserID, &d.TokenHash, &d.Name, &d.IP, timeCol{&d.CreatedAt},
		timeCol{&d.LastUsedAt}, timeCol{&d.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// CreateDevice inserts d; ErrAlreadyExists when the id or token hash is taken.
func (s *Store) CreateDevice(ctx context.Context, d *storage.Device) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO devices (`+deviceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.UserID, d.TokenHash, d.Name, d.IP, ts(d.CreatedAt), ts(d.LastUsedAt), ts(d.ExpiresAt))
	return wrap("create device", err)
}

// GetDeviceByTokenHash returns the device whose cookie hashes to tokenHash, or
// ErrNotFound.
func (s *Store) GetDeviceByTokenHash(ctx context.Context, tokenHash string) (*storage.Device, error) {
	d, err := scanDevice(s.rdb.QueryRowContext(ctx,
		`SELECT `+deviceCols+` FROM devices WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return nil, wrap("get device by token hash", err)
	}
	return d, nil
}

// TouchDevice sets LastUsedAt of device id; ErrNotFound when missing.
func (s *Store) TouchDevice(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE devices SET last_used_at = ? WHERE id = ?`, ts(at), id)
	if err != nil {
		return wrap("touch device", err)
	}
	return wrap("touch device", mustAffect(res))
}

// ListUserDevices returns a user's devices, newest first.
func (s *Store) ListUserDevices(ctx context.Context, userID string) ([]storage.Device, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices
		WHERE user_id = ? ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, wrap("list user devices", err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, wrap("list user devices", err)
		}
		out = append(out, *d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list user devices", err)
	}
	return out, nil
}

// DeleteDevice removes device id of user userID; ErrNotFound when no such device
// belongs to that user (nothing is deleted then).
func (s *Store) DeleteDevice(ctx context.Context, userID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE id = ? AND user_id = ?`, id, userID)
	if err != nil {
		return wrap("delete device", err)
	}
	return wrap("delete device", mustAffect(res))
}

// DeleteUserDevices removes every device of a user and returns how many went.
func (s *Store) DeleteUserDevices(ctx context.Context, userID string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE user_id = ?`, userID)
	if err != nil {
		return 0, wrap("delete user devices", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("delete user devices", err)
	}
	return n, nil
}
