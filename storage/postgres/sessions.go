package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const sessionCols = `id, token_hash, user_id, auth_time, amr, acr, ip, user_agent,
	created_at, last_seen_at, expires_at`

func scanSession(row scanner) (storage.Session, error) {
	var s storage.Session
	err := row.Scan(&s.ID, &s.TokenHash, &s.UserID, scanTS(&s.AuthTime), &s.AMR, &s.ACR, &s.IP, &s.UserAgent,
		scanTS(&s.CreatedAt), scanTS(&s.LastSeenAt), scanTS(&s.ExpiresAt))
	return s, err
}

// CreateSession inserts sess; ErrAlreadyExists when its id or token hash is taken.
func (s *Store) CreateSession(ctx context.Context, sess *storage.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		sess.ID, sess.TokenHash, sess.UserID, ts(sess.AuthTime), sess.AMR, sess.ACR, sess.IP, sess.UserAgent,
		ts(sess.CreatedAt), ts(sess.LastSeenAt), ts(sess.ExpiresAt))
	return wrapErr("create session", err)
}

// GetSessionByTokenHash returns the session whose cookie hashes to tokenHash, or
// ErrNotFound.
func (s *Store) GetSessionByTokenHash(ctx context.Context, tokenHash string) (*storage.Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return nil, wrapErr("get session by token hash", err)
	}
	return &sess, nil
}

// GetSession returns the session with that id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*storage.Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get session", err)
	}
	return &sess, nil
}

// UpdateSessionAuth records a new authentication in session id; ErrNotFound when missing.
func (s *Store) UpdateSessionAuth(ctx context.Context, id string, authTime time.Time, amr []string, acr string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET auth_time = $2, amr = $3, acr = $4 WHERE id = $1`,
		id, ts(authTime), amr, acr)
	if err != nil {
		return wrapErr("update session auth", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update session auth")
	}
	return nil
}

// TouchSession sets LastSeenAt of session id; ErrNotFound when missing.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $2 WHERE id = $1`, id, ts(at))
	if err != nil {
		return wrapErr("touch session", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("touch session")
	}
	return nil
}

// ListUserSessions returns the sessions of a user, newest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]storage.Session, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE user_id = $1
		ORDER BY created_at DESC, id DESC`, userID)
	sessions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, wrapErr("list user sessions", err)
	}
	return sessions, nil
}

// DeleteSession removes session id; a missing session is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	return wrapErr("delete session", err)
}

// DeleteUserSessions removes every session of a user and returns how many went.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, wrapErr("delete user sessions", err)
	}
	return tag.RowsAffected(), nil
}
