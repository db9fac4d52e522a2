package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
)

const resourceCols = `uri, name, allowed_clients, required_scopes, created_at`

func scanResource(row scanner) (storage.Resource, error) {
	var r storage.Resource
	err := row.Scan(&r.URI, &r.Name, &r.AllowedClients, &r.RequiredScopes, scanTS(&r.CreatedAt))
	return r, err
}

// CreateResource inserts r; ErrAlreadyExists when the URI is taken.
func (s *Store) CreateResource(ctx context.Context, r *storage.Resource) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO resources (`+resourceCols+`) VALUES ($1, $2, $3, $4, $5)`,
		r.URI, r.Name, r.AllowedClients, r.RequiredScopes, ts(r.CreatedAt))
	return wrapErr("create resource", err)
}

// GetResource returns the resource with that URI, or ErrNotFound.
func (s *Store) GetResource(ctx context.Context, uri string) (*storage.Resource, error) {
	r, err := scanResource(s.pool.QueryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE uri = $1`, uri))
	if err != nil {
		return nil, wrapErr("get resource", err)
	}
	return &r, nil
}

// ListResources returns every resource ordered by creation time.
func (s *Store) ListResources(ctx context.Context) ([]storage.Resource, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+resourceCols+` FROM resources ORDER BY created_at, uri`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Resource, error) { return scanResource(r) })
	if err != nil {
		return nil, wrapErr("list resources", err)
	}
	return out, nil
}

// DeleteResource removes the resource; ErrNotFound when missing.
func (s *Store) DeleteResource(ctx context.Context, uri string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM resources WHERE uri = $1`, uri)
	if err != nil {
		return wrapErr("delete resource", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("delete resource")
	}
	return nil
}
