package sqlite

import (
	"context"
	"time"

	"github.com/openidp/idp/storage"
)

const sessionCols = `id, token_hash, user_id, auth_time, amr, acr, ip, user_agent, created_at,
	last_seen_at, expires_at`

func scanSession(sc scanner) (*storage.Session, error) {
	var ss storage.Session
	err := sc.Scan(&ss.ID, &ss.TokenHash, &ss.UserID, timeCol{&ss.AuthTime}, listCol{&ss.AMR},
		&ss.ACR, &ss.IP, &ss.UserAgent, timeCol{&ss.CreatedAt}, timeCol{&ss.LastSeenAt},
		timeCol{&ss.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &ss, nil
}

// CreateSession inserts ss; ErrAlreadyExists when the id or token hash is taken.
func (s *Store) CreateSession(ctx context.Context, ss *storage.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.TokenHash, ss.UserID, ts(ss.AuthTime), list(ss.AMR), ss.ACR, ss.IP,
		ss.UserAgent, ts(ss.CreatedAt), ts(ss.LastSeenAt), ts(ss.ExpiresAt))
	return wrap("create session", err)
}

// GetSessionByTokenHash returns the session whose cookie hashes to tokenHash, or
// ErrNotFound.
func (s *Store) GetSessionByTokenHash(ctx context.Context, tokenHash string) (*storage.Session, error) {
	ss, err := scanSession(s.db.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return nil, wrap("get session by token hash", err)
	}
	return ss, nil
}

// GetSession returns the session with that id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*storage.Session, error) {
	ss, err := scanSession(s.db.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get session", err)
	}
	return ss, nil
}

// UpdateSessionAuth records a new authentication in session id; ErrNotFound when
// missing.
func (s *Store) UpdateSessionAuth(ctx context.Context, id string, authTime time.Time, amr []string, acr string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET auth_time = ?, amr = ?, acr = ? WHERE id = ?`,
		ts(authTime), list(amr), acr, id)
	if err != nil {
		return wrap("update session auth", err)
	}
	return wrap("update session auth", mustAffect(res))
}

// TouchSession sets LastSeenAt of session id; ErrNotFound when missing.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, ts(at), id)
	if err != nil {
		return wrap("touch session", err)
	}
	return wrap("touch session", mustAffect(res))
}

// ListUserSessions returns the sessions of a user, newest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]storage.Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = ? ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, wrap("list user sessions", err)
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, wrap("list user sessions", err)
		}
		out = append(out, *ss)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list user sessions", err)
	}
	return out, nil
}

// DeleteSession removes session id; deleting a missing session is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return wrap("delete session", err)
}

// DeleteUserSessions removes every session of a user and returns how many went.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, wrap("delete user sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("delete user sessions", err)
	}
	return n, nil
}
