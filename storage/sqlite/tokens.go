package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/sweep"
)

const accessTokenCols = `id, client_id, user_id, audience, scopes, auth_time, amr, acr,
	session_id, family_id, created_at, expires_at`

const refreshTokenCols = `id, token_hash, family_id, client_id, user_id, audience, scopes,
	auth_time, amr, acr, session_id, created_at, expires_at, rotated_at, revoked_at, resources`

// refreshTokenSelect reads refreshTokenCols and the successor of a rotated token.
const refreshTokenSelect = refreshTokenCols + `, COALESCE(successor_id, ''), successor_sealed`

// execer is the ExecContext method shared by *sql.DB and *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertAccessToken(ctx context.Context, e execer, at *storage.AccessToken) error {
	_, err := e.ExecContext(ctx, accessTokenInsertSQL,
		at.ID, at.ClientID, at.UserID, list(at.Audience), list(at.Scopes), ts(at.AuthTime),
		list(at.AMR), at.ACR, at.SessionID, at.FamilyID, ts(at.CreatedAt), ts(at.ExpiresAt))
	return err
}

func insertRefreshToken(ctx context.Context, e execer, rt *storage.RefreshToken) error {
	_, err := e.ExecContext(ctx, refreshTokenInsertSQL,
		rt.ID, rt.TokenHash, rt.FamilyID, rt.ClientID, rt.UserID, list(rt.Audience),
		list(rt.Scopes), ts(rt.AuthTime), list(rt.AMR), rt.ACR, rt.SessionID,
		ts(rt.CreatedAt), ts(rt.ExpiresAt), ts(rt.RotatedAt), ts(rt.RevokedAt), list(rt.Resources))
	return err
}

func scanAccessToken(sc scanner) (*storage.AccessToken, error) {
	var at storage.AccessToken
	err := sc.Scan(&at.ID, &at.ClientID, &at.UserID, listCol[string]{&at.Audience}, listCol[string]{&at.Scopes},
		timeCol{&at.AuthTime}, listCol[string]{&at.AMR}, &at.ACR, &at.SessionID, &at.FamilyID,
		timeCol{&at.CreatedAt}, timeCol{&at.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &at, nil
}

func scanRefreshToken(sc scanner) (*storage.RefreshToken, error) {
	var rt storage.RefreshToken
	err := sc.Scan(&rt.ID, &rt.TokenHash, &rt.FamilyID, &rt.ClientID, &rt.UserID,
		listCol[string]{&rt.Audience}, listCol[string]{&rt.Scopes}, timeCol{&rt.AuthTime}, listCol[string]{&rt.AMR},
		&rt.ACR, &rt.SessionID, timeCol{&rt.CreatedAt}, timeCol{&rt.ExpiresAt},
		timeCol{&rt.RotatedAt}, timeCol{&rt.RevokedAt}, listCol[string]{&rt.Resources},
		&rt.SuccessorID, &rt.SuccessorSealed)
	if err != nil {
		return nil, err
	}
	return &rt, nil
}

// CreateAccessToken inserts at; ErrAlreadyExists when the id is taken.
func (s *Store) CreateAccessToken(ctx context.Context, at *storage.AccessToken) error {
	return wrap("create access token", s.write(ctx, issueJob(&storage.TokenIssue{Access: at})))
}

// GetAccessToken returns the access token with that id, or ErrNotFound (also once
// revoked).
func (s *Store) GetAccessToken(ctx context.Context, id string) (*storage.AccessToken, error) {
	at, err := scanAccessToken(s.rdb.QueryRowContext(ctx,
		`SELECT `+accessTokenCols+` FROM access_tokens WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get access token", err)
	}
	return at, nil
}

// DeleteAccessToken revokes an access token; a missing one is not an error.
func (s *Store) DeleteAccessToken(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = ?`, id)
	return wrap("delete access token", err)
}

// CreateRefreshToken inserts the first member of a new family together with the access
// token issued beside it (skipped when at is nil), in one transaction.
func (s *Store) CreateRefreshToken(ctx context.Context, rt *storage.RefreshToken, at *storage.AccessToken) error {
	return wrap("create refresh token", s.write(ctx, issueJob(&storage.TokenIssue{Refresh: rt, Access: at})))
}

// RotateRefreshToken atomically marks refresh token oldID rotated at now — only if it
// is neither rotated nor revoked — and inserts next and its access token (skipped when
// at is nil), in one transaction. ErrConflict when oldID was already rotated or revoked,
// ErrNotFound when it does not exist; either way nothing changes.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *storage.RefreshToken, at *storage.AccessToken) error {
	w := &storage.TokenIssue{RotateID: oldID, RotatedAt: now, Refresh: next, Access: at}
	return wrap("rotate refresh token", s.write(ctx, issueJob(w)))
}

// ClearRefreshSuccessors sets successor_sealed to NULL on the refresh tokens rotated
// before rotatedBefore, sweep.Batch rows a statement, and returns how many it cleared.
// The partial index refresh_tokens_successor_sealed (migration 0021) holds only the rows
// that keep one.
func (s *Store) ClearRefreshSuccessors(ctx context.Context, rotatedBefore time.Time) (int64, error) {
	n, err := sweep.Repeat(func(limit int) (int64, error) {
		res, err := s.db.ExecContext(ctx, `UPDATE refresh_tokens SET successor_sealed = NULL
			WHERE id IN (SELECT id FROM refresh_tokens
				WHERE successor_sealed IS NOT NULL AND rotated_at < ? LIMIT ?)`, ts(rotatedBefore), limit)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	return n, wrap("clear refresh successors", err)
}

// IssueTokens stores w through the group-commit writer: its checks, tokens and audit
// events in one savepoint of a shared transaction, committed before it returns, with
// w.WhileWriting run beside the write (groupcommit.Writer.DoWhile).
func (s *Store) IssueTokens(ctx context.Context, w *storage.TokenIssue) error {
	return wrap("issue tokens", s.w.DoWhile(ctx, issueJob(w), w.WhileWriting))
}

// issueJob is the writer job of w.
func issueJob(w *storage.TokenIssue) writeJob {
	return func(ctx context.Context, tx *sql.Tx, head *chainHead) error {
		if w.RequireCurrent != "" {
			var current bool
			if err := tx.QueryRowContext(ctx, refreshCurrentSQL, w.RequireCurrent).Scan(&current); err != nil {
				return err
			}
			if !current {
				return conflictOrNotFound(ctx, tx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE id = ?)`, w.RequireCurrent)
			}
		}
		if w.RotateID != "" {
			if w.Refresh == nil {
				return errors.New("rotation without a successor")
			}
			res, err := tx.ExecContext(ctx, refreshRotateSQL,
				ts(w.RotatedAt), w.Refresh.ID, nullBytes(w.SuccessorSealed), w.RotateID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return conflictOrNotFound(ctx, tx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE id = ?)`, w.RotateID)
			}
		}
		if w.CodeHash != "" {
			if err := claimCodeGrant(ctx, tx, w.CodeHash, w.Access, w.Refresh); err != nil {
				return err
			}
		}
		if w.Refresh != nil {
			if err := insertRefreshToken(ctx, tx, w.Refresh); err != nil {
				return err
			}
		}
		if w.Access != nil {
			if err := insertAccessToken(ctx, tx, w.Access); err != nil {
				return err
			}
		}
		if w.RevokeFamily != "" {
			res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ?
				WHERE family_id = ? AND revoked_at IS NULL`, ts(w.RevokedAt), w.RevokeFamily)
			if err != nil {
				return err
			}
			if w.Revoked, err = res.RowsAffected(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, deleteFamilyAccessSQL, w.RevokeFamily); err != nil {
				return err
			}
		}
		if w.DeleteAccessToken != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = ?`, w.DeleteAccessToken); err != nil {
				return err
			}
		}
		if w.DeleteAuthRequest != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM auth_requests WHERE id = ?`, w.DeleteAuthRequest); err != nil {
				return err
			}
		}
		for _, e := range w.Events {
			if err := appendAuditTx(ctx, tx, head, e); err != nil {
				return err
			}
		}
		return nil
	}
}

// nullBytes is b, or NULL when b is empty.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// GetRefreshToken returns the refresh token with that id, or ErrNotFound.
func (s *Store) GetRefreshToken(ctx context.Context, id string) (*storage.RefreshToken, error) {
	rt, err := scanRefreshToken(s.rdb.QueryRowContext(ctx,
		`SELECT `+refreshTokenSelect+` FROM refresh_tokens WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get refresh token", err)
	}
	return rt, nil
}

// GetRefreshTokenByHash returns the refresh token whose value hashes to tokenHash,
// rotated and revoked ones included, or ErrNotFound.
func (s *Store) GetRefreshTokenByHash(ctx context.Context, tokenHash string) (*storage.RefreshToken, error) {
	rt, err := scanRefreshToken(s.rdb.QueryRowContext(ctx,
		`SELECT `+refreshTokenSelect+` FROM refresh_tokens WHERE token_hash = ?`, tokenHash))
	if err != nil {
		return nil, wrap("get refresh token by hash", err)
	}
	return rt, nil
}

// RevokeRefreshFamily marks every unrevoked member of the family revoked at now and
// deletes the access tokens issued with the family, in one transaction. It returns how
// many refresh tokens changed. An empty familyID matches nothing.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error) {
	if familyID == "" {
		return 0, nil
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ?
			WHERE family_id = ? AND revoked_at IS NULL`, ts(now), familyID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, deleteFamilyAccessSQL, familyID)
		return err
	})
	if err != nil {
		return 0, wrap("revoke refresh family", err)
	}
	return n, nil
}

// The access tokens of a refresh family, and those of a person or of the person's
// families. Their indexes (migration 0019) hold only tokens with a family or a person,
// and SQLite uses a partial index only for a query that states its condition, hence
// the not-empty terms: without them each statement reads the whole table
// (TestPartialIndexesUsed).
const (
	deleteFamilyAccessSQL = `DELETE FROM access_tokens WHERE family_id = ? AND family_id <> ''`
	deleteUserAccessSQL   = `DELETE FROM access_tokens
		WHERE (user_id = ? AND user_id <> '') OR (family_id <> '' AND family_id IN (` + userFamiliesSQL + `))`
	// userFamiliesSQL selects the refresh families of a person.
	userFamiliesSQL = `SELECT family_id FROM refresh_tokens WHERE user_id = ?`
)

// RevokeUserTokens revokes every refresh family and deletes every access token of a
// user, in one transaction. An empty userID (client_credentials tokens) matches nothing.
func (s *Store) RevokeUserTokens(ctx context.Context, userID string, now time.Time) error {
	if userID == "" {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ?
			WHERE revoked_at IS NULL AND (user_id = ? OR family_id IN (`+userFamiliesSQL+`))`,
			ts(now), userID, userID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, deleteUserAccessSQL, userID, userID)
		return err
	})
	return wrap("revoke user tokens", err)
}
