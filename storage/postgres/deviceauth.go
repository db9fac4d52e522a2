package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const deviceAuthCols = `id, device_code_hash, user_code_hash, client_id, scopes, state,
	login_user_id, login_session_id, login_auth_time, login_amr, login_acr, last_poll_at,
	created_at, expires_at`

func scanDeviceAuth(row scanner) (*storage.DeviceAuthorization, error) {
	var d storage.DeviceAuthorization
	var state string
	err := row.Scan(&d.ID, &d.DeviceCodeHash, &d.UserCodeHash, &d.ClientID, &d.Scopes, &state,
		&d.Login.UserID, &d.Login.SessionID, scanTS(&d.Login.AuthTime), &d.Login.AMR, &d.Login.ACR,
		scanTS(&d.LastPollAt), scanTS(&d.CreatedAt), scanTS(&d.ExpiresAt))
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
	_, err := s.pool.Exec(ctx, `INSERT INTO device_authorizations (`+deviceAuthCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		d.ID, d.DeviceCodeHash, d.UserCodeHash, d.ClientID, d.Scopes, string(state),
		d.Login.UserID, d.Login.SessionID, ts(d.Login.AuthTime), d.Login.AMR, d.Login.ACR,
		ts(d.LastPollAt), ts(d.CreatedAt), ts(d.ExpiresAt))
	return wrapErr("create device authorization", err)
}

// GetDeviceAuthorizationByUserCode returns the authorization of userCodeHash, or ErrNotFound.
func (s *Store) GetDeviceAuthorizationByUserCode(ctx context.Context, userCodeHash string) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.pool.QueryRow(ctx,
		`SELECT `+deviceAuthCols+` FROM device_authorizations WHERE user_code_hash = $1`, userCodeHash))
	if err != nil {
		return nil, wrapErr("get device authorization", err)
	}
	return d, nil
}

// PollDeviceAuthorization records a poll at now unless the previous one was less than
// interval ago (ErrConflict), in one conditional UPDATE.
func (s *Store) PollDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time, interval time.Duration) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.pool.QueryRow(ctx, `UPDATE device_authorizations SET last_poll_at = $2
		WHERE device_code_hash = $1 AND (last_poll_at IS NULL OR last_poll_at <= $3)
		RETURNING `+deviceAuthCols, deviceCodeHash, ts(now), ts(now.Add(-interval))))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, conflictOrNotFound(ctx, s.pool, "poll device authorization",
			`SELECT EXISTS (SELECT 1 FROM device_authorizations WHERE device_code_hash = $1)`, deviceCodeHash)
	}
	if err != nil {
		return nil, wrapErr("poll device authorization", err)
	}
	return d, nil
}

// ConsumeDeviceAuthorization moves an approved, unexpired authorization to consumed.
func (s *Store) ConsumeDeviceAuthorization(ctx context.Context, deviceCodeHash string, now time.Time) (*storage.DeviceAuthorization, error) {
	d, err := scanDeviceAuth(s.pool.QueryRow(ctx, `UPDATE device_authorizations SET state = 'consumed'
		WHERE device_code_hash = $1 AND state = 'approved' AND expires_at > $2
		RETURNING `+deviceAuthCols, deviceCodeHash, ts(now)))
	if err != nil {
		return nil, wrapErr("consume device authorization", err)
	}
	return d, nil
}

// ApproveDeviceAuthorization records l on a pending, unexpired authorization.
func (s *Store) ApproveDeviceAuthorization(ctx context.Context, id string, l storage.AuthLogin, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE device_authorizations SET state = 'approved',
		login_user_id = $2, login_session_id = $3, login_auth_time = $4, login_amr = $5, login_acr = $6
		WHERE id = $1 AND state = 'pending' AND expires_at > $7`,
		id, l.UserID, l.SessionID, ts(l.AuthTime), l.AMR, l.ACR, ts(now))
	if err != nil {
		return wrapErr("approve device authorization", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("approve device authorization")
	}
	return nil
}

// DenyDeviceAuthorization moves a pending authorization to denied.
func (s *Store) DenyDeviceAuthorization(ctx context.Context, id string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE device_authorizations SET state = 'denied'
		WHERE id = $1 AND state = 'pending' AND expires_at > $2`, id, ts(now))
	if err != nil {
		return wrapErr("deny device authorization", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("deny device authorization")
	}
	return nil
}
