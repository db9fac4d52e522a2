package sqlite

import (
	"context"

	"github.com/openidp/idp/storage"
)

const resourceCols = `uri, name, allowed_clients, required_scopes, created_at`

func scanResource(sc scanner) (*storage.Resource, error) {
	var r storage.Resource
	err := sc.Scan(&r.URI, &r.Name, listCol[string]{&r.AllowedClients}, listCol[string]{&r.RequiredScopes},
		timeCol{&r.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// CreateResource inserts r; ErrAlreadyExists when the URI is taken.
func (s *Store) CreateResource(ctx context.Context, r *storage.Resource) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO resources (`+resourceCols+`) VALUES (?, ?, ?, ?, ?)`,
		r.URI, r.Name, list(r.AllowedClients), list(r.RequiredScopes), ts(r.CreatedAt))
	return wrap("create resource", err)
}

// GetResource returns the resource with that URI, or ErrNotFound.
func (s *Store) GetResource(ctx context.Context, uri string) (*storage.Resource, error) {
	r, err := scanResource(s.rdb.QueryRowContext(ctx, `SELECT `+resourceCols+` FROM resources WHERE uri = ?`, uri))
	if err != nil {
		return nil, wrap("get resource", err)
	}
	return r, nil
}

// ListResources returns every resource ordered by creation time.
func (s *Store) ListResources(ctx context.Context) ([]storage.Resource, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+resourceCols+` FROM resources ORDER BY created_at, uri`)
	if err != nil {
		return nil, wrap("list resources", err)
	}
	defer rows.Close()
	var out []storage.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, wrap("list resources", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list resources", err)
	}
	return out, nil
}

// DeleteResource removes the resource; ErrNotFound when missing.
func (s *Store) DeleteResource(ctx context.Context, uri string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM resources WHERE uri = ?`, uri)
	if err != nil {
		return wrap("delete resource", err)
	}
	return wrap("delete resource", mustAffect(res))
}
