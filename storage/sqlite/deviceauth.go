package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/openidp/idp/storage"
)

const deviceAuthCols = `id, device_code_hash, user_code_hash, client_id, scopes, state,
	login_user_id, login_session_id, login_auth_time, login_amr, login_acr, last_poll_at,
	created_at, expires_at`

func scanDeviceAuth(sc scanner) (*storage.DeviceAuthorization, error) {
	var d storage.DeviceAuthorization
	var state string
	err := sc.Scan(&d.ID, &d.DeviceCodeHash, &d.UserCodeHash, &d.ClientID, listCol[string]{&d.Scopes}, &state,
		&d.Login.UserID, &d.Login.SessionID, timeCol{&d.Login.AuthTime}, listCol[string]{&d.Login.AMR}, &d.Login.ACR,
		timeCol{&d.LastPollAt}, timeCol{&d.CreatedAt}, timeCol{&d.ExpiresAt})
	if err != nil {
		return nil, err
	}
	d.State = storage.DeviceAuthorizationState(state)
	return &d, nil
}

// CreateDeviceAuthorization inserts d; ErrAlreadyExists when its id or a hash is taken.
func (s *Store) CreateDeviceAuthorization(ctx context.Context, d *storage.DeviceAuthorization) error {
	state := d.State
	if state == "" {
		state = storage.DeviceAuthPending
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO device_authorizations (`+deviceAuthCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.DeviceCodeHash, d.UserCodeHash, d.ClientID, list(d.Scopes), string(state),
		d.Login.UserID, d.Login.SessionID, ts(d.Login.AuthTime), list(d.Login.AMR), d.Login.ACR,
		ts(d.LastPollAt), ts(d.CreatedAt), ts(d.ExpiresAt))
	return wrap("create device authorization", err)
}

// GetDeviceAuthorizationByUserCode returns the authorization of userCodeHash, or ErrNotFound.
func (s *Store) GetDeviceAuthorizationByUserCode(ctx context.Context, userCodeHash string) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.rdb.QueryRowContext(ctx,
		`SELECT `+deviceAuthCols+` FROM device_authorizations WHERE user_code_hash = ?`, userCodeHash))
	return d, wrap("get device authorization", err)
}

// PollDeviceAuthorization records a poll at now unless the previous one was less than
// interval ago (ErrConflict), in one conditional UPDATE.
func (s *Store) PollDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time, interval time.Duration) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.db.QueryRowContext(ctx, `UPDATE device_authorizations SET last_poll_at = ?
		WHERE device_code_hash = ? AND (last_poll_at IS NULL OR last_poll_at <= ?)
		RETURNING `+deviceAuthCols, now.UnixNano(), deviceCodeHash, now.Add(-interval).UnixNano()))
	if errors.Is(err, sql.ErrNoRows) {
		err = conflictOrNotFound(ctx, s.db, `SELECT EXISTS (SELECT 1 FROM device_authorizations WHERE device_code_hash = ?)`, deviceCodeHash)
	}
	if err != nil {
		return nil, wrap("poll device authorization", err)
	}
	return d, nil
}

// ConsumeDeviceAuthorization moves an approved, unexpired authorization to consumed.
func (s *Store) ConsumeDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.db.QueryRowContext(ctx, `UPDATE device_authorizations SET state = 'consumed'
		WHERE device_code_hash = ? AND state = 'approved' AND expires_at > ?
		RETURNING `+deviceAuthCols, deviceCodeHash, now.UnixNano()))
	if err != nil {
		return nil, wrap("consume device authorization", err)
	}
	return d, nil
}

// ApproveDeviceAuthorization records l on a pending, unexpired authorization.
func (s *Store) ApproveDeviceAuthorization(ctx context.Context, id string, l storage.AuthLogin, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE device_authorizations SET state = 'approved',
		login_user_id = ?, login_session_id = ?, login_auth_time = ?, login_amr = ?, login_acr = ?
		WHERE id = ? AND state = 'pending' AND expires_at > ?`,
		l.UserID, l.SessionID, ts(l.AuthTime), list(l.AMR), l.ACR, id, now.UnixNano())
	if err != nil {
		return wrap("approve device authorization", err)
	}
	return wrap("approve device authorization", mustAffect(res))
}

// DenyDeviceAuthorization moves a pending authorization to denied.
func (s *Store) DenyDeviceAuthorization(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE device_authorizations SET state = 'denied'
		WHERE id = ? AND state = 'pending' AND expires_at > ?`, id, now.UnixNano())
	if err != nil {
		return wrap("deny device authorization", err)
	}
	return wrap("deny device authorization", mustAffect(res))
}
