package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/openidp/idp/storage"
)

const authRequestCols = `id, client_id, redirect_uri, state, nonce, scopes, response_type,
	response_mode, prompt, max_age, acr_values, login_hint, ui_locales, code_challenge,
	code_challenge_method, hint_user_id, created_at, expires_at, login_user_id,
	login_session_id, login_auth_time, login_amr, login_acr, login_done, code_hash,
	code_expires_at, essential_acr, login_grace, resources`

func scanAuthRequest(sc scanner) (*storage.AuthRequest, error) {
	var r storage.AuthRequest
	err := sc.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, listCol[string]{&r.Scopes},
		&r.ResponseType, &r.ResponseMode, listCol[string]{&r.Prompt}, &r.MaxAge, listCol[string]{&r.ACRValues},
		&r.LoginHint, listCol[string]{&r.UILocales}, &r.CodeChallenge, &r.CodeChallengeMethod,
		&r.HintUserID, timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, &r.Login.UserID,
		&r.Login.SessionID, timeCol{&r.Login.AuthTime}, listCol[string]{&r.Login.AMR}, &r.Login.ACR,
		&r.Login.Done, &r.CodeHash, timeCol{&r.CodeExpiresAt}, listCol[string]{&r.EssentialACR}, &r.Login.Grace,
		listCol[string]{&r.Resources})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateAuthRequest inserts r; ErrAlreadyExists when the id (or code hash) is taken.
func (s *Store) CreateAuthRequest(ctx context.Context, r *storage.AuthRequest) error {
	err := s.writeCommitted(ctx, func(ctx context.Context, tx *sql.Tx, _ *chainHead) error {
		return insertAuthRequest(ctx, tx, r)
	})
	return wrap("create auth request", err)
}

// FinishAuthRequest stores f in one job of the writer's batch. It waits for the batch's
// flush, as its events must be durable before the code is handed out.
func (s *Store) FinishAuthRequest(ctx context.Context, f *storage.AuthRequestFinish) error {
	for _, e := range f.Events {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, head *chainHead) error {
		if err := insertAuthRequest(ctx, tx, f.Request); err != nil {
			return err
		}
		if f.SessionClient != "" {
			if _, err := tx.ExecContext(ctx, addSessionClientSQL, f.SessionClient, f.Request.Login.SessionID); err != nil {
				return err
			}
		}
		for _, e := range f.Events {
			if err := appendAuditTx(ctx, tx, head, e); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("finish auth request", err)
}

func insertAuthRequest(ctx context.Context, tx *sql.Tx, r *storage.AuthRequest) error {
	var maxAge any
	if r.MaxAge != nil {
		maxAge = *r.MaxAge
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_requests (`+authRequestCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, list(r.Scopes), r.ResponseType,
		r.ResponseMode, list(r.Prompt), maxAge, list(r.ACRValues), r.LoginHint,
		list(r.UILocales), r.CodeChallenge, r.CodeChallengeMethod, r.HintUserID,
		ts(r.CreatedAt), ts(r.ExpiresAt), r.Login.UserID, r.Login.SessionID,
		ts(r.Login.AuthTime), list(r.Login.AMR), r.Login.ACR, r.Login.Done, r.CodeHash,
		ts(r.CodeExpiresAt), list(r.EssentialACR), r.Login.Grace, list(r.Resources))
	return err
}

// GetAuthRequest returns the request with that id, or ErrNotFound.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (*storage.AuthRequest, error) {
	r, err := scanAuthRequest(s.rdb.QueryRowContext(ctx,
		`SELECT `+authRequestCols+` FROM auth_requests WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get auth request", err)
	}
	return r, nil
}

// SetAuthRequestLogin replaces the Login part of request id; ErrNotFound when missing.
func (s *Store) SetAuthRequestLogin(ctx context.Context, id string, l storage.AuthLogin) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_requests SET login_user_id = ?,
		login_session_id = ?, login_auth_time = ?, login_amr = ?, login_acr = ?, login_done = ?,
		login_grace = ?
		WHERE id = ?`,
		l.UserID, l.SessionID, ts(l.AuthTime), list(l.AMR), l.ACR, l.Done, l.Grace, id)
	if err != nil {
		return wrap("set auth request login", err)
	}
	return wrap("set auth request login", mustAffect(res))
}

// SaveAuthCode records the hash of a code issued for request id, replacing an earlier
// code (and its redeemed flag: the new code is redeemable once). ErrNotFound when the
// request is missing.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_requests
		SET code_hash = ?, code_expires_at = ?, code_redeemed = 0 WHERE id = ?`,
		codeHash, ts(expiresAt), id)
	if err != nil {
		return wrap("save auth code", err)
	}
	return wrap("save auth code", mustAffect(res))
}

// consumeAuthCodeSQL marks the request of a code redeemed. The code's index holds only
// requests with a code (code_hash not empty), and SQLite uses a partial index only for a
// query that states its condition: without it, every code exchange would read every
// pending request, and anyone can add those (TestPartialIndexesUsed).
const consumeAuthCodeSQL = `UPDATE auth_requests SET code_redeemed = 1
	WHERE code_hash = ?1 AND code_hash <> '' AND code_redeemed = 0 AND code_expires_at > ?2
		AND NOT EXISTS (SELECT 1 FROM code_grants WHERE code_hash = ?1)
	RETURNING ` + authRequestCols

// ConsumeAuthCode atomically redeems a code: in one write transaction a conditional
// UPDATE marks the request whose code hash matches, is unexpired at now, was not
// redeemed before and has no CodeGrant, and the grant is inserted. It returns the
// request, or ErrNotFound.
func (s *Store) ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (*storage.AuthRequest, error) {
	if codeHash == "" {
		return nil, wrap("consume auth code", storage.ErrNotFound)
	}
	var r *storage.AuthRequest
	err := s.writeCommitted(ctx, func(ctx context.Context, tx *sql.Tx, _ *chainHead) error {
		var err error
		r, err = scanAuthRequest(tx.QueryRowContext(ctx, consumeAuthCodeSQL, codeHash, now.UnixNano()))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO code_grants (code_hash, client_id, user_id,
			redeemed_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			codeHash, r.ClientID, r.Login.UserID, ts(now), ts(r.CodeExpiresAt))
		return err
	})
	if err != nil {
		return nil, wrap("consume auth code", err)
	}
	return r, nil
}

// DeleteAuthRequest removes request id; deleting a missing request is not an error.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM auth_requests WHERE id = ?`, id)
	return wrap("delete auth request", err)
}
