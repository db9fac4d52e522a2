package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/openidp/idp/storage"
)

const codeGrantCols = `code_hash, client_id, user_id, access_token_id, family_id,
	redeemed_at, replayed_at, expires_at`

func scanCodeGrant(sc scanner) (*storage.CodeGrant, error) {
	var g storage.CodeGrant
	err := sc.Scan(&g.CodeHash, &g.ClientID, &g.UserID, &g.AccessTokenID, &g.FamilyID,
		timeCol{&g.RedeemedAt}, timeCol{&g.ReplayedAt}, timeCol{&g.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// IssueCodeTokens stores at (and rt with it, when not nil) for the redeemed code
// codeHash and records them in its grant, in one transaction. The grant is claimed by a
// conditional UPDATE first: ErrConflict when it was replayed or already given tokens,
// ErrNotFound when there is none; either way nothing is stored.
func (s *Store) IssueCodeTokens(ctx context.Context, codeHash string, at *storage.AccessToken, rt *storage.RefreshToken) error {
	w := &storage.TokenIssue{CodeHash: codeHash, Access: at, Refresh: rt}
	return wrap("issue code tokens", s.write(ctx, issueJob(w)))
}

// claimCodeGrant records at and rt in the grant of codeHash with a conditional UPDATE:
// ErrConflict when it was replayed or already given tokens, ErrNotFound when missing.
func claimCodeGrant(ctx context.Context, tx *sql.Tx, codeHash string, at *storage.AccessToken, rt *storage.RefreshToken) error {
	if at == nil {
		return errors.New("code grant without an access token")
	}
	familyID, expires := "", at.ExpiresAt
	if rt != nil {
		familyID = rt.FamilyID
		if rt.ExpiresAt.After(expires) {
			expires = rt.ExpiresAt
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE code_grants
		SET access_token_id = ?, family_id = ?, expires_at = MAX(COALESCE(expires_at, 0), COALESCE(?, 0))
		WHERE code_hash = ? AND replayed_at IS NULL AND access_token_id = ''`,
		at.ID, familyID, ts(expires), codeHash)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return conflictOrNotFound(ctx, tx, `SELECT EXISTS (SELECT 1 FROM code_grants WHERE code_hash = ?)`, codeHash)
	}
	return nil
}

// RevokeCodeGrant marks the grant of codeHash replayed (keeping the first replay time),
// deletes its access token and revokes its refresh family, in one transaction. Because
// IssueCodeTokens claims the grant only while it is not replayed, and both take the
// database's write lock, tokens are either stored before and revoked here, or never
// stored. ErrNotFound when the code has no grant.
func (s *Store) RevokeCodeGrant(ctx context.Context, codeHash string, now time.Time) (*storage.CodeGrant, error) {
	var g *storage.CodeGrant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = scanCodeGrant(tx.QueryRowContext(ctx, `UPDATE code_grants
			SET replayed_at = COALESCE(replayed_at, ?) WHERE code_hash = ?
			RETURNING `+codeGrantCols, ts(now), codeHash))
		if err != nil {
			return err
		}
		if g.AccessTokenID != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = ?`, g.AccessTokenID); err != nil {
				return err
			}
		}
		if g.FamilyID != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ?
				WHERE family_id = ? AND revoked_at IS NULL`, ts(now), g.FamilyID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, deleteFamilyAccessSQL, g.FamilyID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("revoke code grant", err)
	}
	return g, nil
}
