package sqlite

import (
	"context"

	"github.com/openidp/idp/storage"
)

// GetConsent returns the grant of user to client, or ErrNotFound.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*storage.Consent, error) {
	var c storage.Consent
	err := s.rdb.QueryRowContext(ctx, `SELECT user_id, client_id, scopes, granted_at
		FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID).
		Scan(&c.UserID, &c.ClientID, listCol[string]{&c.Scopes}, timeCol{&c.GrantedAt})
	if err != nil {
		return nil, wrap("get consent", err)
	}
	return &c, nil
}

// SaveConsent inserts or replaces the grant for (UserID, ClientID).
func (s *Store) SaveConsent(ctx context.Context, c *storage.Consent) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO consents (user_id, client_id, scopes, granted_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET
			scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.UserID, c.ClientID, list(c.Scopes), ts(c.GrantedAt))
	return wrap("save consent", err)
}

// DeleteConsent removes a grant; a missing grant is not an error.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM consents WHERE user_id = ? AND client_id = ?`,
		userID, clientID)
	return wrap("delete consent", err)
}
