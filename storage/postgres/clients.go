package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const clientCols = `id, name, secret_hash, public, redirect_uris, post_logout_redirect_uris,
	grant_types, scopes, skip_consent, access_token_format, id_token_signing_alg,
	access_token_lifetime, id_token_lifetime, refresh_token_lifetime, policy,
	backchannel_logout_uri, created_at, token_endpoint_auth_method, jwks, jwks_uri, require_par`

func scanClient(row scanner) (storage.Client, error) {
	var c storage.Client
	var atl, itl, rtl int64
	err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &c.Public, &c.RedirectURIs, &c.PostLogoutRedirectURIs,
		&c.GrantTypes, &c.Scopes, &c.SkipConsent, &c.AccessTokenFormat, &c.IDTokenSigningAlg,
		&atl, &itl, &rtl, scanPolicy(&c.Policy), &c.BackchannelLogoutURI, scanTS(&c.CreatedAt),
		&c.TokenEndpointAuthMethod, &c.JWKS, &c.JWKSURI, &c.RequirePAR)
	c.AccessTokenLifetime = time.Duration(atl)
	c.IDTokenLifetime = time.Duration(itl)
	c.RefreshTokenLifetime = time.Duration(rtl)
	return c, err
}

// CreateClient inserts c; ErrAlreadyExists when the id is taken.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	pol, err := policyArg(c.Policy)
	if err != nil {
		return wrapErr("create client", err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO clients (`+clientCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		c.ID, c.Name, c.SecretHash, c.Public, c.RedirectURIs, c.PostLogoutRedirectURIs,
		c.GrantTypes, c.Scopes, c.SkipConsent, c.AccessTokenFormat, c.IDTokenSigningAlg,
		int64(c.AccessTokenLifetime), int64(c.IDTokenLifetime), int64(c.RefreshTokenLifetime),
		pol, c.BackchannelLogoutURI, ts(c.CreatedAt), c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.RequirePAR)
	return wrapErr("create client", err)
}

// GetClient returns the client with that id, or ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, id))
	if err != nil {
		return nil, wrapErr("get client", err)
	}
	return &c, nil
}

// ListClients returns all clients ordered by creation time.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY created_at, id`)
	clients, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Client, error) { return scanClient(r) })
	if err != nil {
		return nil, wrapErr("list clients", err)
	}
	return clients, nil
}

// UpdateClient replaces every field of client c.ID but its id and creation time;
// ErrNotFound when missing.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client) error {
	pol, err := policyArg(c.Policy)
	if err != nil {
		return wrapErr("update client", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE clients SET
		name = $2, secret_hash = $3, public = $4, redirect_uris = $5, post_logout_redirect_uris = $6,
		grant_types = $7, scopes = $8, skip_consent = $9, access_token_format = $10,
		id_token_signing_alg = $11, access_token_lifetime = $12, id_token_lifetime = $13,
		refresh_token_lifetime = $14, policy = $15, backchannel_logout_uri = $16,
		token_endpoint_auth_method = $17, jwks = $18, jwks_uri = $19, require_par = $20
		WHERE id = $1`,
		c.ID, c.Name, c.SecretHash, c.Public, c.RedirectURIs, c.PostLogoutRedirectURIs,
		c.GrantTypes, c.Scopes, c.SkipConsent, c.AccessTokenFormat, c.IDTokenSigningAlg,
		int64(c.AccessTokenLifetime), int64(c.IDTokenLifetime), int64(c.RefreshTokenLifetime),
		pol, c.BackchannelLogoutURI, c.TokenEndpointAuthMethod, c.JWKS, c.JWKSURI, c.RequirePAR)
	if err != nil {
		return wrapErr("update client", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update client")
	}
	return nil
}

// DeleteClient removes client id; ErrNotFound when missing.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id)
	if err != nil {
		return wrapErr("delete client", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete client")
	}
	return nil
}

// UseAssertion records the client assertion jti of clientID until expiresAt;
// ErrConflict when it is recorded and not expired at now.
func (s *Store) UseAssertion(ctx context.Context, clientID, jti string, expiresAt, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO used_assertions AS u (client_id, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE u.expires_at < $4`, clientID, jti, ts(expiresAt), ts(now))
	if err != nil {
		return wrapErr("use assertion", err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrConflict
	}
	return nil
}

// CreatePushedRequest stores a pushed authorization request.
func (s *Store) CreatePushedRequest(ctx context.Context, p *storage.PushedRequest) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO pushed_requests (id, client_id, params, expires_at) VALUES ($1, $2, $3, $4)`,
		p.ID, p.ClientID, p.Params, ts(p.ExpiresAt))
	return wrapErr("create pushed request", err)
}

// ConsumePushedRequest removes and returns pushed request id of clientID if unexpired.
func (s *Store) ConsumePushedRequest(ctx context.Context, id, clientID string, now time.Time) (*storage.PushedRequest, error) {
	p := storage.PushedRequest{ID: id, ClientID: clientID}
	err := s.pool.QueryRow(ctx, `DELETE FROM pushed_requests WHERE id = $1 AND client_id = $2
		RETURNING params, expires_at`, id, clientID).Scan(&p.Params, scanTS(&p.ExpiresAt))
	if err != nil {
		return nil, wrapErr("consume pushed request", err)
	}
	if !now.Before(p.ExpiresAt) {
		return nil, storage.ErrNotFound
	}
	return &p, nil
}
