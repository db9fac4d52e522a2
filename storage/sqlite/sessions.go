package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/openidp/idp/storage"
)

const sessionCols = `id, token_hash, user_id, auth_time, password_at, mfa_at, factors, amr, acr, ip,
	user_agent, created_at, last_seen_at, expires_at, sign_in`

func scanSession(sc scanner) (*storage.Session, error) {
	var ss storage.Session
	err := sc.Scan(&ss.ID, &ss.TokenHash, &ss.UserID, timeCol{&ss.AuthTime},
		timeCol{&ss.PasswordAt}, timeCol{&ss.MFAAt}, listCol[storage.FactorKind]{&ss.Factors}, listCol[string]{&ss.AMR}, &ss.ACR, &ss.IP, &ss.UserAgent, timeCol{&ss.CreatedAt}, timeCol{&ss.LastSeenAt},
		timeCol{&ss.ExpiresAt}, listCol[string]{&ss.SignIn})
	if err != nil {
		return nil, err
	}
	return &ss, nil
}

// CreateSession inserts ss; ErrAlreadyExists when the id or token hash is taken.
func (s *Store) CreateSession(ctx context.Context, ss *storage.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ss.ID, ss.TokenHash, ss.UserID, ts(ss.AuthTime), ts(ss.PasswordAt), ts(ss.MFAAt),
		list(ss.Factors), list(ss.AMR), ss.ACR, ss.IP, ss.UserAgent, ts(ss.CreatedAt), ts(ss.LastSeenAt),
		ts(ss.ExpiresAt), list(ss.SignIn))
	return wrap("create session", err)
}

// GetSessionByTokenHash returns the session whose cookie hashes to tokenHash, or
// ErrNotFound.
func (s *Store) GetSessionByTokenHash(ctx context.Context, tokenHash string) (*storage.Session, error) {
	ss, err := scanSession(s.rdb.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return nil, wrap("get session by token hash", err)
	}
	return ss, nil
}

// GetSession returns the session with that id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*storage.Session, error) {
	ss, err := scanSession(s.rdb.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get session", err)
	}
	return ss, nil
}

// UpdateSessionAuth records a new authentication in session id (AuthTime, PasswordAt,
// MFAAt, AMR and ACR of a, and the cookie hash when a.TokenHash is set); ErrNotFound
// when missing.
func (s *Store) UpdateSessionAuth(ctx context.Context, id string, a storage.SessionAuth) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions
		SET auth_time = ?, password_at = ?, mfa_at = ?, factors = ?, amr = ?, acr = ?, sign_in = ?,
			token_hash = COALESCE(NULLIF(?, ''), token_hash)
		WHERE id = ?`,
		ts(a.AuthTime), ts(a.PasswordAt), ts(a.MFAAt), list(a.Factors), list(a.AMR), a.ACR, list(a.SignIn), a.TokenHash, id)
	if err != nil {
		return wrap("update session auth", err)
	}
	return wrap("update session auth", mustAffect(res))
}

// AddSessionClient records that session id signed the person in to clientID; adding
// the same pair twice is not an error. ErrNotFound when the session does not exist
// (nothing is recorded then, so no row outlives its session).
func (s *Store) AddSessionClient(ctx context.Context, id, clientID string) error {
	// One statement, in the writer's batch (every SSO sign-in makes this call). A pair
	// already recorded is rewritten as it is, so that a row is affected exactly when the
	// session exists.
	err := s.writeCommitted(ctx, func(ctx context.Context, tx *sql.Tx, _ *chainHead) error {
		res, err := tx.ExecContext(ctx, addSessionClientSQL, clientID, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	return wrap("add session client", err)
}

// addSessionClientSQL records client ($1) for session ($2) when the session exists. A
// pair already recorded is rewritten as it is, so that a row is affected exactly when
// the session exists.
const addSessionClientSQL = `INSERT INTO session_clients (session_id, client_id)
		SELECT id, ? FROM sessions WHERE id = ?
		ON CONFLICT (session_id, client_id) DO UPDATE SET client_id = excluded.client_id`

// ListSessionClients returns the clients session id signed in to, ordered by id.
func (s *Store) ListSessionClients(ctx context.Context, id string) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT client_id FROM session_clients
		WHERE session_id = ? ORDER BY client_id`, id)
	if err != nil {
		return nil, wrap("list session clients", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, wrap("list session clients", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list session clients", err)
	}
	return out, nil
}

// TouchSession sets LastSeenAt of session id; ErrNotFound when missing.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, ts(at), id)
	if err != nil {
		return wrap("touch session", err)
	}
	return wrap("touch session", mustAffect(res))
}

// ListClientSessions returns the sessions that signed in to clientID, newest first.
func (s *Store) ListClientSessions(ctx context.Context, clientID string) ([]storage.Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE id IN (SELECT session_id FROM session_clients WHERE client_id = ?)
		ORDER BY created_at DESC, id DESC`, clientID)
	if err != nil {
		return nil, wrap("list client sessions", err)
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, wrap("list client sessions", err)
		}
		out = append(out, *ss)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list client sessions", err)
	}
	return out, nil
}

// ListUserSessions returns the sessions of a user, newest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]storage.Session, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
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

// DeleteSession removes session id and its session clients, in one transaction;
// deleting a missing session is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM session_clients WHERE session_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
		return err
	})
	return wrap("delete session", err)
}

// DeleteUserSessions removes every session of a user and their session clients, in one
// transaction, and returns how many sessions went.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM session_clients
			WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?)`, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap("delete user sessions", err)
	}
	return n, nil
}
