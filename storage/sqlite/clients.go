package sqlite

import (
	"context"
	"time"

	"github.com/openidp/idp/storage"
)

const clientCols = `id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris,
	grant_types, scopes, skip_consent, access_token_format, id_token_signing_alg,
	access_token_lifetime, id_token_lifetime, refresh_token_lifetime, policy,
	backchannel_logout_uri, created_at, token_endpoint_auth_method, jwks, jwks_uri, require_par`

func scanClient(sc scanner) (*storage.Client, error) {
	var (
		c                     storage.Client
		atLife, idLife, rLife int64
	)
	err := sc.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public,
		listCol[string]{&c.RedirectURIs}, listCol[string]{&c.PostLogoutRedirectURIs}, listCol[string]{&c.GrantTypes},
		listCol[string]{&c.Scopes}, &c.SkipConsent, &c.AccessTokenFormat, &c.IDTokenSigningAlg,
		&atLife, &idLife, &rLife, policyCol{&c.Policy}, &c.BackchannelLogoutURI,
		timeCol{&c.CreatedAt}, &c.TokenEndpointAuthMethod, &c.JWKS, &c.JWKSURI, &c.RequirePAR)
	if err != nil {
		return nil, err
	}
	c.AccessTokenLifetime = time.Duration(atLife)
	c.IDTokenLifetime = time.Duration(idLife)
	c.RefreshTokenLifetime = time.Duration(rLife)
	return &c, nil
}

// CreateClient inserts c; ErrAlreadyExists when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	pol, err := policy(c.Policy)
	if err != nil {
		return wrap("create client", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, blob(c.SecretHash), c.Public, list(c.RedirectURIs),
		list(c.PostLogoutRedirectURIs), list(c.GrantTypes), list(c.Scopes), c.SkipConsent,
		c.AccessTokenFormat, c.IDTokenSigningAlg, int64(c.AccessTokenLifetime),
		int64(c.IDTokenLifetime), int64(c.RefreshTokenLifetime), pol, c.BackchannelLogoutURI,
		ts(c.CreatedAt), c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.RequirePAR)
	return wrap("create client", err)
}

// GetClient returns the client with that id, or ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	c, err := scanClient(s.rdb.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ?`, id))
	if err != nil {
		return nil, wrap("get client", err)
	}
	return c, nil
}

// ListClients returns all clients ordered by creation time.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+clientCols+` FROM clients ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap("list clients", err)
	}
	defer rows.Close()
	var out []storage.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("list clients", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list clients", err)
	}
	return out, nil
}

// UpdateClient replaces every field but ID and CreatedAt; ErrNotFound when missing.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client) error {
	pol, err := policy(c.Policy)
	if err != nil {
		return wrap("update client", err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE clients SET
		name = ?, secret_hash = ?, public = ?, redirect_uris = ?, post_logout_redirect_uris = ?,
		grant_types = ?, scopes = ?, skip_consent = ?, access_token_format = ?,
		id_token_signing_alg = ?, access_token_lifetime = ?, id_token_lifetime = ?,
		refresh_token_lifetime = ?, policy = ?, backchannel_logout_uri = ?,
		token_endpoint_auth_method = ?, jwks = ?, jwks_uri = ?, require_par = ?
		WHERE id = ?`,
		c.Name, blob(c.SecretHash), c.Public, list(c.RedirectURIs), list(c.PostLogoutRedirectURIs),
		list(c.GrantTypes), list(c.Scopes), c.SkipConsent, c.AccessTokenFormat,
		c.IDTokenSigningAlg, int64(c.AccessTokenLifetime), int64(c.IDTokenLifetime),
		int64(c.RefreshTokenLifetime), pol, c.BackchannelLogoutURI,
		c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.RequirePAR, c.ID)
	if err != nil {
		return wrap("update client", err)
	}
	return wrap("update client", mustAffect(res))
}

// DeleteClient removes the client; ErrNotFound when missing.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM clients WHERE id = ?`, id)
	if err != nil {
		return wrap("delete client", err)
	}
	return wrap("delete client", mustAffect(res))
}

// UseAssertion records the client assertion jti of clientID until expiresAt;
// ErrConflict when it is recorded and not expired at now.
func (s *Store) UseAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO used_assertions (client_id, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE used_assertions.expires_at < ?`, clientID, jti, expiresAt.UnixNano(), now.UnixNano())
	if err != nil {
		return wrap("use assertion", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("use assertion", err)
	} else if n == 0 {
		return storage.ErrConflict
	}
	return nil
}

// CreatePushedRequest stores a pushed authorization request.
func (s *Store) CreatePushedRequest(ctx context.Context, p *storage.PushedRequest) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO pushed_requests (id, client_id, params, expires_at) VALUES (?, ?, ?, ?)`,
		p.ID, p.ClientID, p.Params, p.ExpiresAt.UnixNano())
	return wrap("create pushed request", err)
}

// ConsumePushedRequest removes and returns pushed request id of clientID if unexpired.
func (s *Store) ConsumePushedRequest(ctx context.Context, id, clientID string, now time.Time) (*storage.PushedRequest, error) {
	p := storage.PushedRequest{ID: id, ClientID: clientID}
	var exp int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM pushed_requests WHERE id = ? AND client_id = ?
		RETURNING params, expires_at`, id, clientID).Scan(&p.Params, &exp)
	if err != nil {
		return nil, wrap("consume pushed request", err)
	}
	p.ExpiresAt = time.Unix(0, exp).UTC()
	if !now.Before(p.ExpiresAt) {
		return nil, storage.ErrNotFound
	}
	return &p, nil
}
