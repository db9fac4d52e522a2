package postgres

import (
	"context"

	"github.com/openidp/idp/storage"
)

// GetConsent returns the grant of user to client, or ErrNotFound.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*storage.Consent, error) {
	var c storage.Consent
	err := s.pool.QueryRow(ctx, `SELECT user_id, client_id, scopes, granted_at FROM consents
		WHERE user_id = $1 AND client_id = $2`, userID, clientID).
		Scan(&c.UserID, &c.ClientID, &c.Scopes, scanTS(&c.GrantedAt))
	if err != nil {
		return nil, wrapErr("get consent", err)
	}
	return &c, nil
}

// SaveConsent inserts or replaces the grant for (c.UserID, c.ClientID).
func (s *Store) SaveConsent(ctx context.Context, c *storage.Consent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, granted_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, client_id) DO UPDATE
		SET scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at`,
		c.UserID, c.ClientID, c.Scopes, ts(c.GrantedAt))
	return wrapErr("save consent", err)
}

// DeleteConsent removes a grant; a missing grant is not an error.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM consents WHERE user_id = $1 AND client_id = $2`, userID, clientID)
	return wrapErr("delete consent", err)
}
