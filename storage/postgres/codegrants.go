package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const codeGrantCols = `code_hash, client_id, user_id, access_token_id, family_id,
	redeemed_at, replayed_at, expires_at`

func scanCodeGrant(row scanner) (*storage.CodeGrant, error) {
	var g storage.CodeGrant
	err := row.Scan(&g.CodeHash, &g.ClientID, &g.UserID, &g.AccessTokenID, &g.FamilyID,
		scanTS(&g.RedeemedAt), scanTS(&g.ReplayedAt), scanTS(&g.ExpiresAt))
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// IssueCodeTokens stores at (and rt with it, when not nil) for the redeemed code
// codeHash and records them in its grant, in one transaction. The grant row is claimed
// first by a conditional UPDATE, which holds its lock until commit: a concurrent
// RevokeCodeGrant either ran before (the UPDATE matches nothing: ErrConflict, nothing
// stored) or waits and then sees, and revokes, what this stored. ErrNotFound when the
// code has no grant.
func (s *Store) IssueCodeTokens(ctx context.Context, codeHash string, at *storage.AccessToken, rt *storage.RefreshToken) error {
	w := &storage.TokenIssue{CodeHash: codeHash, Access: at, Refresh: rt}
	return wrapErr("issue code tokens", s.write(ctx, issueJob(w)))
}

const claimCodeGrantSQL = `UPDATE code_grants
	SET access_token_id = $2, family_id = $3, expires_at = GREATEST(expires_at, $4, $5)
	WHERE code_hash = $1 AND replayed_at IS NULL AND access_token_id = ''`

func claimCodeGrantArgs(codeHash string, at *storage.AccessToken, rt *storage.RefreshToken) []any {
	familyID, rtExpires := "", time.Time{}
	if rt != nil {
		familyID, rtExpires = rt.FamilyID, rt.ExpiresAt
	}
	return []any{codeHash, at.ID, familyID, ts(at.ExpiresAt), ts(rtExpires)}
}

// claimCodeGrant records at and rt in the grant of codeHash with a conditional UPDATE:
// ErrConflict when it was replayed or already given tokens, ErrNotFound when missing.
func claimCodeGrant(ctx context.Context, tx pgx.Tx, codeHash string, at *storage.AccessToken, rt *storage.RefreshToken) error {
	if at == nil {
		return errors.New("code grant without an access token")
	}
	tag, err := tx.Exec(ctx, claimCodeGrantSQL, claimCodeGrantArgs(codeHash, at, rt)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return conflictOrNotFound(ctx, tx, "issue code tokens", `SELECT EXISTS (SELECT 1 FROM code_grants WHERE code_hash = $1)`, codeHash)
	}
	return nil
}

// RevokeCodeGrant marks the grant of codeHash replayed (keeping the first replay time),
// deletes its access token and revokes its refresh family, in one transaction. The
// UPDATE waits for a concurrent IssueCodeTokens holding the row and then reads the
// tokens it recorded. ErrNotFound when the code has no grant.
func (s *Store) RevokeCodeGrant(ctx context.Context, codeHash string, now time.Time) (*storage.CodeGrant, error) {
	var g *storage.CodeGrant
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		g, err = scanCodeGrant(tx.QueryRow(ctx, `UPDATE code_grants
			SET replayed_at = COALESCE(replayed_at, $2) WHERE code_hash = $1
			RETURNING `+codeGrantCols, codeHash, ts(now)))
		if err != nil {
			return wrapErr("revoke code grant", err)
		}
		if g.AccessTokenID != "" {
			if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE id = $1`, g.AccessTokenID); err != nil {
				return wrapErr("revoke code grant: delete access token", err)
			}
		}
		if g.FamilyID != "" {
			if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
				WHERE family_id = $1 AND revoked_at IS NULL`, g.FamilyID, ts(now)); err != nil {
				return wrapErr("revoke code grant: revoke refresh family", err)
			}
			if _, err := tx.Exec(ctx, deleteFamilyAccessSQL, g.FamilyID); err != nil {
				return wrapErr("revoke code grant: delete access tokens", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}
