// Package backends opens the storage backend named by a data source name, so that
// commands need not know every backend: "sqlite:PATH" for SQLite, a postgres:// or
// postgresql:// URL for PostgreSQL.
package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/sqlite"
)

// errBadDSN is the message for a DSN in neither accepted form. It never quotes the DSN,
// which may hold a password.
var errBadDSN = errors.New(`storage DSN must be "sqlite:PATH" or a "postgres://" (or "postgresql://") URL`)

// Open opens the storage named by dsn: "sqlite:PATH" opens the SQLite database file at
// PATH, "postgres://..." or "postgresql://..." the PostgreSQL database at that URL. It
// does not migrate; call Migrate on the result.
func Open(ctx context.Context, dsn string) (storage.Storage, error) {
	return open(ctx, dsn, false)
}

// OpenExisting is Open for commands that only read: a SQLite database must exist
// already (sqlite.OpenExisting; the error wraps sqlite.ErrNoDatabase otherwise). A
// PostgreSQL database is never created by connecting to it.
func OpenExisting(ctx context.Context, dsn string) (storage.Storage, error) {
	return open(ctx, dsn, true)
}

func open(ctx context.Context, dsn string, existing bool) (storage.Storage, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, fmt.Errorf("open storage: %w: sqlite: needs a file path", errBadDSN)
		}
		openSQLite := sqlite.Open
		if existing {
			openSQLite = sqlite.OpenExisting
		}
		s, err := openSQLite(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		return s, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("open storage: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("open storage: %w", errBadDSN)
	}
}
