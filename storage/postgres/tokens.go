package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/sweep"
)

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const accessTokenCols = `id, client_id, user_id, audience, scopes, auth_time, amr, acr,
	session_id, family_id, created_at, expires_at`

const refreshTokenCols = `id, token_hash, family_id, client_id, user_id, audience, scopes,
	auth_time, amr, acr, session_id, created_at, expires_at, rotated_at, revoked_at, resources`

// refreshTokenSelect reads refreshTokenCols and the successor of a rotated token.
const refreshTokenSelect = refreshTokenCols + `, COALESCE(successor_id, ''), successor_sealed`

const insertAccessSQL = `INSERT INTO access_tokens (` + accessTokenCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`

func accessArgs(at *storage.AccessToken) []any {
	return []any{at.ID, at.ClientID, at.UserID, at.Audience, at.Scopes, ts(at.AuthTime), at.AMR, at.ACR,
		at.SessionID, at.FamilyID, ts(at.CreatedAt), ts(at.ExpiresAt)}
}

func insertAccessToken(ctx context.Context, db execer, at *storage.AccessToken) error {
	_, err := db.Exec(ctx, insertAccessSQL, accessArgs(at)...)
	return wrapErr("create access token", err)
}

const insertRefreshSQL = `INSERT INTO refresh_tokens (` + refreshTokenCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

func refreshArgs(rt *storage.RefreshToken) []any {
	return []any{rt.ID, rt.TokenHash, rt.FamilyID, rt.ClientID, rt.UserID, rt.Audience, rt.Scopes,
		ts(rt.AuthTime), rt.AMR, rt.ACR, rt.SessionID, ts(rt.CreatedAt), ts(rt.ExpiresAt),
		ts(rt.RotatedAt), ts(rt.RevokedAt), rt.Resources}
}

func insertRefreshToken(ctx context.Context, db execer, rt *storage.RefreshToken) error {
	_, err := db.Exec(ctx, insertRefreshSQL, refreshArgs(rt)...)
	return wrapErr("create refresh token", err)
}

func scanRefreshToken(row scanner) (*storage.RefreshToken, error) {
	var rt storage.RefreshToken
	err := row.Scan(&rt.ID, &rt.TokenHash, &rt.FamilyID, &rt.ClientID, &rt.UserID, &rt.Audience, &rt.Scopes,
		scanTS(&rt.AuthTime), &rt.AMR, &rt.ACR, &rt.SessionID, scanTS(&rt.CreatedAt), scanTS(&rt.ExpiresAt),
		scanTS(&rt.RotatedAt), scanTS(&rt.RevokedAt), &rt.Resources, &rt.SuccessorID, &rt.SuccessorSealed)
	if err != nil {
		return nil, err
	}
	return &rt, nil
}

// CreateAccessToken inserts at; ErrAlreadyExists when its id is taken.
func (s *Store) CreateAccessToken(ctx context.Context, at *storage.AccessToken) error {
	return wrapErr("create access token", s.write(ctx, issueJob(&storage.TokenIssue{Access: at})))
}

// GetAccessToken returns the access token with that id, or ErrNotFound.
func (s *Store) GetAccessToken(ctx context.Context, id string) (*storage.AccessToken, error) {
	var at storage.AccessToken
	err := s.pool.QueryRow(ctx, `SELECT `+accessTokenCols+` FROM access_tokens WHERE id = $1`, id).
		Scan(&at.ID, &at.ClientID, &at.UserID, &at.Audience, &at.Scopes, scanTS(&at.AuthTime), &at.AMR, &at.ACR,
			&at.SessionID, &at.FamilyID, scanTS(&at.CreatedAt), scanTS(&at.ExpiresAt))
	if err != nil {
		return nil, wrapErr("get access token", err)
	}
	return &at, nil
}

// DeleteAccessToken revokes an access token; a missing one is not an error.
func (s *Store) DeleteAccessToken(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM access_tokens WHERE id = $1`, id)
	return wrapErr("delete access token", err)
}

// CreateRefreshToken inserts rt and, when at is not nil, the access token issued beside
// it, in one transaction.
func (s *Store) CreateRefreshToken(ctx context.Context, rt *storage.RefreshToken, at *storage.AccessToken) error {
	return wrapErr("create refresh token", s.write(ctx, issueJob(&storage.TokenIssue{Refresh: rt, Access: at})))
}

// RotateRefreshToken marks oldID rotated with a conditional UPDATE (only a current,
// unrevoked token matches) and inserts next and at, all in one transaction. Exactly one
// of several concurrent callers wins; the others get ErrConflict. ErrNotFound when oldID
// does not exist.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *storage.RefreshToken, at *storage.AccessToken) error {
	w := &storage.TokenIssue{RotateID: oldID, RotatedAt: now, Refresh: next, Access: at}
	return wrapErr("rotate refresh token", s.write(ctx, issueJob(w)))
}

// ClearRefreshSuccessors sets successor_sealed to NULL on the refresh tokens rotated
// before rotatedBefore, sweep.Batch rows a statement, and returns how many it cleared.
// The partial index refresh_tokens_successor_sealed (migration 0021) holds only the rows
// that keep one.
func (s *Store) ClearRefreshSuccessors(ctx context.Context, rotatedBefore time.Time) (int64, error) {
	n, err := sweep.Repeat(func(limit int) (int64, error) {
		tag, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET successor_sealed = NULL
			WHERE id IN (SELECT id FROM refresh_tokens
				WHERE successor_sealed IS NOT NULL AND rotated_at < $1 LIMIT $2)`, ts(rotatedBefore), limit)
		return tag.RowsAffected(), err
	})
	return n, wrapErr("clear refresh successors", err)
}

// IssueTokens stores w through the group-commit writer: its checks, tokens and audit
// events in one savepoint of a shared transaction, committed before it returns, with
// w.WhileWriting run beside the write (groupcommit.Writer.DoWhile).
func (s *Store) IssueTokens(ctx context.Context, w *storage.TokenIssue) error {
	return wrapErr("issue tokens", s.w.DoWhile(ctx, issueJob(w), w.WhileWriting))
}

// SQL of the statements of a token issue, shared by issueJob's two forms.
const (
	requireCurrentSQL = `SELECT EXISTS (SELECT 1 FROM refresh_tokens
		WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL)`
	rotateSQL = `UPDATE refresh_tokens SET rotated_at = $2, successor_id = $3, successor_sealed = $4
		WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL`
	revokeFamilySQL = `UPDATE refresh_tokens SET revoked_at = $2
		WHERE family_id = $1 AND revoked_at IS NULL`
	// The family index holds only tokens of a family: see deleteUserAccessSQL.
	deleteFamilyAccessSQL = `DELETE FROM access_tokens WHERE family_id = $1 AND family_id <> ''`
	deleteAccessSQL       = `DELETE FROM access_tokens WHERE id = $1`
	deleteAuthRequestSQL  = `DELETE FROM auth_requests WHERE id = $1`
	refreshExistsSQL      = `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE id = $1)`
)

// sealedArg is the successor_sealed argument of a rotation: NULL when empty.
func sealedArg(w *storage.TokenIssue) []byte {
	if len(w.SuccessorSealed) > 0 {
		return w.SuccessorSealed
	}
	return nil
}

// issueJob is the writer job of w: run checks and writes statement by statement (and
// tells a conflict from a missing row); queue pipelines the same statements, each
// conditional one failing the batch on the server when it matches nothing (required).
func issueJob(w *storage.TokenIssue) writeJob {
	return writeJob{run: issueRun(w), queue: issueQueue(w)}
}

func issueRun(w *storage.TokenIssue) func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
	return func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
		if w.RequireCurrent != "" {
			var current bool
			if err := tx.QueryRow(ctx, requireCurrentSQL, w.RequireCurrent).Scan(&current); err != nil {
				return err
			}
			if !current {
				return conflictOrNotFound(ctx, tx, "issue tokens", refreshExistsSQL, w.RequireCurrent)
			}
		}
		if w.RotateID != "" {
			if w.Refresh == nil {
				return errors.New("rotation without a successor")
			}
			tag, err := tx.Exec(ctx, rotateSQL, w.RotateID, ts(w.RotatedAt), w.Refresh.ID, sealedArg(w))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return conflictOrNotFound(ctx, tx, "rotate refresh token", refreshExistsSQL, w.RotateID)
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
			tag, err := tx.Exec(ctx, revokeFamilySQL, w.RevokeFamily, ts(w.RevokedAt))
			if err != nil {
				return err
			}
			w.Revoked = tag.RowsAffected()
			if _, err := tx.Exec(ctx, deleteFamilyAccessSQL, w.RevokeFamily); err != nil {
				return err
			}
		}
		if w.DeleteAccessToken != "" {
			if _, err := tx.Exec(ctx, deleteAccessSQL, w.DeleteAccessToken); err != nil {
				return err
			}
		}
		if w.DeleteAuthRequest != "" {
			if _, err := tx.Exec(ctx, deleteAuthRequestSQL, w.DeleteAuthRequest); err != nil {
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

// required wraps update, an UPDATE that must change a row, so that the server fails the
// transaction (openidp_require, SQLSTATE OI002; migration 0022) when it changed none.
func required(update string) string {
	return `WITH changed AS (` + update + ` RETURNING 1) SELECT openidp_require(count(*) > 0) FROM changed`
}

// Queued forms of the conditional statements: checked by the server.
var (
	requireCurrentQueuedSQL = `SELECT openidp_require((` + requireCurrentSQL + `))`
	rotateQueuedSQL         = required(rotateSQL)
	claimCodeGrantQueuedSQL = required(claimCodeGrantSQL)
)

func issueQueue(w *storage.TokenIssue) queueFunc {
	return func(b *pgx.Batch, head *chainHead) (func(), error) {
		if w.RequireCurrent != "" {
			b.Queue(requireCurrentQueuedSQL, w.RequireCurrent)
		}
		if w.RotateID != "" {
			if w.Refresh == nil {
				return nil, errors.New("rotation without a successor")
			}
			b.Queue(rotateQueuedSQL, w.RotateID, ts(w.RotatedAt), w.Refresh.ID, sealedArg(w))
		}
		if w.CodeHash != "" {
			if w.Access == nil {
				return nil, errors.New("code grant without an access token")
			}
			b.Queue(claimCodeGrantQueuedSQL, claimCodeGrantArgs(w.CodeHash, w.Access, w.Refresh)...)
		}
		if w.Refresh != nil {
			b.Queue(insertRefreshSQL, refreshArgs(w.Refresh)...)
		}
		if w.Access != nil {
			b.Queue(insertAccessSQL, accessArgs(w.Access)...)
		}
		var revoked int64
		if w.RevokeFamily != "" {
			b.Queue(revokeFamilySQL, w.RevokeFamily, ts(w.RevokedAt)).Exec(func(ct pgconn.CommandTag) error {
				revoked = ct.RowsAffected()
				return nil
			})
			b.Queue(deleteFamilyAccessSQL, w.RevokeFamily)
		}
		if w.DeleteAccessToken != "" {
			b.Queue(deleteAccessSQL, w.DeleteAccessToken)
		}
		if w.DeleteAuthRequest != "" {
			b.Queue(deleteAuthRequestSQL, w.DeleteAuthRequest)
		}
		audited, err := queueAudits(b, head, w.Events)
		if err != nil {
			return nil, err
		}
		return func() {
			if w.RevokeFamily != "" {
				w.Revoked = revoked
			}
			audited()
		}, nil
	}
}

// GetRefreshToken returns the refresh token with that id, or ErrNotFound.
func (s *Store) GetRefreshToken(ctx context.Context, id string) (*storage.RefreshToken, error) {
	rt, err := scanRefreshToken(s.pool.QueryRow(ctx,
		`SELECT `+refreshTokenSelect+` FROM refresh_tokens WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get refresh token", err)
	}
	return rt, nil
}

// GetRefreshTokenByHash returns the refresh token whose value hashes to tokenHash,
// rotated and revoked ones included, or ErrNotFound.
func (s *Store) GetRefreshTokenByHash(ctx context.Context, tokenHash string) (*storage.RefreshToken, error) {
	rt, err := scanRefreshToken(s.pool.QueryRow(ctx,
		`SELECT `+refreshTokenSelect+` FROM refresh_tokens WHERE token_hash = $1`, tokenHash))
	if err != nil {
		return nil, wrapErr("get refresh token by hash", err)
	}
	return rt, nil
}

// RevokeRefreshFamily sets RevokedAt on every not-yet-revoked member of the family and
// deletes the access tokens issued with it, in one transaction. It returns how many
// refresh tokens it revoked.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
			WHERE family_id = $1 AND revoked_at IS NULL`, familyID, ts(now))
		if err != nil {
			return wrapErr("revoke refresh family", err)
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, deleteFamilyAccessSQL, familyID); err != nil {
			return wrapErr("revoke refresh family: delete access tokens", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteUserAccessSQL deletes the access tokens of a person, deleteUserFamilyAccessSQL
// those of the person's refresh families. The two indexes of access tokens hold only
// tokens with a person or a family (user_id or family_id not empty). The pool's
// statements are prepared, and a generic plan (PostgreSQL's choice after five runs) can
// use a partial index only when the query states its condition: without the not-empty
// terms they may read the whole table. Two statements, because PostgreSQL reads the
// whole table for one that ORs the two conditions (TestPartialIndexesUsed).
const (
	deleteUserAccessSQL       = `DELETE FROM access_tokens WHERE user_id = $1 AND user_id <> ''`
	deleteUserFamilyAccessSQL = `DELETE FROM access_tokens
		WHERE family_id <> '' AND family_id IN (` + userFamiliesSQL + `)`
	// userFamiliesSQL selects the refresh families of the person $1.
	userFamiliesSQL = `SELECT family_id FROM refresh_tokens WHERE user_id = $1`
)

// RevokeUserTokens revokes every refresh family of a user and deletes every access
// token of the user or of those families, in one transaction.
func (s *Store) RevokeUserTokens(ctx context.Context, userID string, now time.Time) error {
	if userID == "" {
		// "" is the user of every client_credentials token: never revoke them all.
		return errors.New("postgres: revoke user tokens: empty user id")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
			WHERE revoked_at IS NULL AND family_id IN (`+userFamiliesSQL+`)`, userID, ts(now)); err != nil {
			return wrapErr("revoke user tokens", err)
		}
		if _, err := tx.Exec(ctx, deleteUserAccessSQL, userID); err != nil {
			return wrapErr("revoke user tokens: delete access tokens", err)
		}
		if _, err := tx.Exec(ctx, deleteUserFamilyAccessSQL, userID); err != nil {
			return wrapErr("revoke user tokens: delete access tokens of its families", err)
		}
		return nil
	})
}
