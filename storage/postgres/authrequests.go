package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const authRequestCols = `id, client_id, redirect_uri, state, nonce, scopes, response_type,
	response_mode, prompt, max_age, acr_values, login_hint, ui_locales, code_challenge,
	code_challenge_method, hint_user_id, created_at, expires_at,
	login_user_id, login_session_id, login_auth_time, login_amr, login_acr, login_done,
	code_hash, code_expires_at, essential_acr, login_grace, resources`

func scanAuthRequest(row scanner) (*storage.AuthRequest, error) {
	var r storage.AuthRequest
	err := row.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, &r.Scopes, &r.ResponseType,
		&r.ResponseMode, &r.Prompt, &r.MaxAge, &r.ACRValues, &r.LoginHint, &r.UILocales, &r.CodeChallenge,
		&r.CodeChallengeMethod, &r.HintUserID, scanTS(&r.CreatedAt), scanTS(&r.ExpiresAt),
		&r.Login.UserID, &r.Login.SessionID, scanTS(&r.Login.AuthTime), &r.Login.AMR, &r.Login.ACR, &r.Login.Done,
		&r.CodeHash, scanTS(&r.CodeExpiresAt), &r.EssentialACR, &r.Login.Grace, &r.Resources)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateAuthRequest inserts r; ErrAlreadyExists when the id (or a non-empty code hash)
// is taken.
func (s *Store) CreateAuthRequest(ctx context.Context, r *storage.AuthRequest) error {
	_, err := s.pool.Exec(ctx, insertAuthRequestSQL, authRequestArgs(r)...)
	return wrapErr("create auth request", err)
}

const insertAuthRequestSQL = `INSERT INTO auth_requests (` + authRequestCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
			$19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)`

func authRequestArgs(r *storage.AuthRequest) []any {
	return []any{r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, r.Scopes, r.ResponseType,
		r.ResponseMode, r.Prompt, r.MaxAge, r.ACRValues, r.LoginHint, r.UILocales, r.CodeChallenge,
		r.CodeChallengeMethod, r.HintUserID, ts(r.CreatedAt), ts(r.ExpiresAt),
		r.Login.UserID, r.Login.SessionID, ts(r.Login.AuthTime), r.Login.AMR, r.Login.ACR, r.Login.Done,
		r.CodeHash, ts(r.CodeExpiresAt), r.EssentialACR, r.Login.Grace, r.Resources}
}

// finishSessionClientSQL records client $2 for session $1 when the session exists,
// holding it (FOR KEY SHARE) so that a sign-out cannot delete it in between.
const finishSessionClientSQL = `INSERT INTO session_clients (session_id, client_id)
		SELECT id, $2 FROM sessions WHERE id = $1 FOR KEY SHARE
		ON CONFLICT (session_id, client_id) DO NOTHING`

// FinishAuthRequest stores f through the writer, in one transaction with the batch's
// other jobs: its statements are pipelined with theirs, so the request, the session's
// client and the events cost the batch's one round trip together, where they took four
// on their own.
func (s *Store) FinishAuthRequest(ctx context.Context, f *storage.AuthRequestFinish) error {
	for _, e := range f.Events {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
	}
	err := s.write(ctx, writeJob{
		run: func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
			if _, err := tx.Exec(ctx, insertAuthRequestSQL, authRequestArgs(f.Request)...); err != nil {
				return err
			}
			if f.SessionClient != "" {
				if _, err := tx.Exec(ctx, finishSessionClientSQL, f.Request.Login.SessionID, f.SessionClient); err != nil {
					return err
				}
			}
			for _, e := range f.Events {
				if err := appendAuditTx(ctx, tx, head, e); err != nil {
					return err
				}
			}
			return nil
		},
		queue: func(b *pgx.Batch, head *chainHead) (func(), error) {
			b.Queue(insertAuthRequestSQL, authRequestArgs(f.Request)...)
			if f.SessionClient != "" {
				b.Queue(finishSessionClientSQL, f.Request.Login.SessionID, f.SessionClient)
			}
			return queueAudits(b, head, f.Events)
		},
	})
	return wrapErr("finish auth request", err)
}

// GetAuthRequest returns the request with that id, or ErrNotFound.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (*storage.AuthRequest, error) {
	r, err := scanAuthRequest(s.pool.QueryRow(ctx,
		`SELECT `+authRequestCols+` FROM auth_requests WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get auth request", err)
	}
	return r, nil
}

// SetAuthRequestLogin replaces the Login part of request id; ErrNotFound when missing.
func (s *Store) SetAuthRequestLogin(ctx context.Context, id string, l storage.AuthLogin) error {
	tag, err := s.pool.Exec(ctx, `UPDATE auth_requests SET
		login_user_id = $2, login_session_id = $3, login_auth_time = $4, login_amr = $5,
		login_acr = $6, login_done = $7, login_grace = $8
		WHERE id = $1`,
		id, l.UserID, l.SessionID, ts(l.AuthTime), l.AMR, l.ACR, l.Done, l.Grace)
	if err != nil {
		return wrapErr("set auth request login", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("set auth request login")
	}
	return nil
}

// SaveAuthCode records the hash of a code issued for request id, replacing an earlier
// code (redeemed or not); ErrNotFound when the request is missing.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE auth_requests
		SET code_hash = $2, code_expires_at = $3, code_redeemed = false
		WHERE id = $1`,
		id, codeHash, ts(expiresAt))
	if err != nil {
		return wrapErr("save auth code", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("save auth code")
	}
	return nil
}

// consumeAuthCodeSQL redeems a code and records its grant. The code's index holds only
// requests with a code (code_hash not empty). The pool's statements are prepared, and
// after five runs PostgreSQL may plan one for every value of $1, a generic plan, which
// can use a partial index only when the query states its condition: without the
// not-empty code_hash term, every code exchange then read every pending request, live and
// dead, and anyone can add those (TestPartialIndexesUsed).
const consumeAuthCodeSQL = `WITH r AS (
		UPDATE auth_requests SET code_redeemed = true
		WHERE code_hash = $1 AND code_hash <> '' AND NOT code_redeemed AND code_expires_at > $2
			AND NOT EXISTS (SELECT 1 FROM code_grants WHERE code_hash = $1)
		RETURNING ` + authRequestCols + `
	), g AS (
		INSERT INTO code_grants (code_hash, client_id, user_id, redeemed_at, expires_at)
		SELECT code_hash, client_id, login_user_id, $2, code_expires_at FROM r
	)
	SELECT ` + authRequestCols + ` FROM r`

// ConsumeAuthCode redeems a code with one statement: a conditional UPDATE marks the
// request (only the caller whose update flips code_redeemed gets it) and the same
// statement inserts the code's grant. Everyone else, any caller with an unknown or
// expired code, and a code hash that already has a grant, gets ErrNotFound.
func (s *Store) ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (*storage.AuthRequest, error) {
	if codeHash == "" {
		return nil, notFound("consume auth code")
	}
	r, err := scanAuthRequest(s.pool.QueryRow(ctx, consumeAuthCodeSQL, codeHash, ts(now)))
	if err != nil {
		return nil, wrapErr("consume auth code", err)
	}
	return r, nil
}

// DeleteAuthRequest removes request id; a missing request is not an error.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM auth_requests WHERE id = $1`, id)
	return wrapErr("delete auth request", err)
}
