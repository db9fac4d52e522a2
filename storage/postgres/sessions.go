package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const sessionCols = `id, token_hash, user_id, auth_time, password_at, mfa_at, factors, amr, acr, ip,
	user_agent, created_at, last_seen_at, expires_at, sign_in`

func scanSession(row scanner) (storage.Session, error) {
	var s storage.Session
	err := row.Scan(&s.ID, &s.TokenHash, &s.UserID, scanTS(&s.AuthTime), scanTS(&s.PasswordAt),
		scanTS(&s.MFAAt), &s.Factors, &s.AMR, &s.ACR, &s.IP, &s.UserAgent, scanTS(&s.CreatedAt),
		scanTS(&s.LastSeenAt), scanTS(&s.ExpiresAt), &s.SignIn)
	return s, err
}

// CreateSession inserts sess; ErrAlreadyExists when its id or token hash is taken.
func (s *Store) CreateSession(ctx context.Context, sess *storage.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		sess.ID, sess.TokenHash, sess.UserID, ts(sess.AuthTime), ts(sess.PasswordAt), ts(sess.MFAAt),
		sess.Factors, sess.AMR, sess.ACR, sess.IP, sess.UserAgent, ts(sess.CreatedAt), ts(sess.LastSeenAt),
		ts(sess.ExpiresAt), nonNil(sess.SignIn))
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

// UpdateSessionAuth records a new authentication in session id (AuthTime, PasswordAt,
// MFAAt, AMR and ACR of a, and the cookie hash when a.TokenHash is set); ErrNotFound
// when missing.
func (s *Store) UpdateSessionAuth(ctx context.Context, id string, a storage.SessionAuth) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions
		SET auth_time = $2, password_at = $3, mfa_at = $4, factors = $5, amr = $6, acr = $7, sign_in = $9,
			token_hash = COALESCE(NULLIF($8, ''), token_hash)
		WHERE id = $1`,
		id, ts(a.AuthTime), ts(a.PasswordAt), ts(a.MFAAt), a.Factors, a.AMR, a.ACR, a.TokenHash, nonNil(a.SignIn))
	if err != nil {
		return wrapErr("update session auth", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update session auth")
	}
	return nil
}

// AddSessionClient records that session id signed the person in to clientID; adding
// the same pair twice is not an error. ErrNotFound when the session does not exist
// (nothing is recorded then). The session row is locked (FOR KEY SHARE) while the pair
// is inserted, so a concurrent DeleteSession either waits and then deletes the new row
// too, or deletes the session first and this call records nothing.
func (s *Store) AddSessionClient(ctx context.Context, id, clientID string) error {
	var found int
	err := s.pool.QueryRow(ctx, `WITH sess AS (
			SELECT id FROM sessions WHERE id = $1 FOR KEY SHARE
		), ins AS (
			INSERT INTO session_clients (session_id, client_id)
			SELECT id, $2 FROM sess
			ON CONFLICT (session_id, client_id) DO NOTHING
		)
		SELECT count(*) FROM sess`, id, clientID).Scan(&found)
	if err != nil {
		return wrapErr("add session client", err)
	}
	if found == 0 {
		return notFound("add session client")
	}
	return nil
}

// ListSessionClients returns the clients session id signed in to, ordered by id.
func (s *Store) ListSessionClients(ctx context.Context, id string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT client_id FROM session_clients WHERE session_id = $1
		ORDER BY client_id`, id)
	clients, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrapErr("list session clients", err)
	}
	return clients, nil
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

// ListClientSessions returns the sessions that signed in to clientID, newest first.
func (s *Store) ListClientSessions(ctx context.Context, clientID string) ([]storage.Session, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE id IN (SELECT session_id FROM session_clients WHERE client_id = $1)
		ORDER BY created_at DESC, id DESC`, clientID)
	sessions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, wrapErr("list client sessions", err)
	}
	return sessions, nil
}

// deleteSessionsWhere deletes the sessions matching cond (with $1 its argument) and
// then their session clients, in one transaction, and returns how many sessions went.
// The sessions go first: their row locks make a concurrent AddSessionClient wait, and
// the second statement, under READ COMMITTED, sees any pair it added before.
func (s *Store) deleteSessionsWhere(ctx context.Context, cond string, arg any) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `DELETE FROM sessions WHERE `+cond+` RETURNING id`, arg)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		n = int64(len(ids))
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM session_clients WHERE session_id = ANY($1)`, ids)
		return err
	})
	return n, err
}

// DeleteSession removes session id and its session clients; a missing session is not
// an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.deleteSessionsWhere(ctx, `id = $1`, id)
	return wrapErr("delete session", err)
}

// DeleteUserSessions removes every session of a user and their session clients and
// returns how many sessions went.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	n, err := s.deleteSessionsWhere(ctx, `user_id = $1`, userID)
	if err != nil {
		return 0, wrapErr("delete user sessions", err)
	}
	return n, nil
}

// nonNil stores an absent list as an empty array: the column is NOT NULL.
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
