package backends

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/sqlite"
)

func TestOpenDispatches(t *testing.T) {
	ctx := context.Background()
	pgURL := pgtest.NewDatabase(t)
	tests := []struct {
		name string
		dsn  string
		want func(any) bool
	}{
		{"sqlite", "sqlite:" + filepath.Join(t.TempDir(), "idp.db"), func(s any) bool { _, ok := s.(*sqlite.Store); return ok }},
		{"postgres", pgURL, func(s any) bool { _, ok := s.(*postgres.Store); return ok }},
		{"postgresql", "postgresql://" + strings.TrimPrefix(pgURL, "postgres://"), func(s any) bool { _, ok := s.(*postgres.Store); return ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.dsn)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if !tt.want(s) {
				t.Errorf("Open returned %T", s)
			}
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
	}{
		{"empty", ""},
		{"bare path", "/var/lib/idp/idp.db"},
		{"sqlite without path", "sqlite:"},
		{"other scheme", "mysql://user:secret@host/db"},
		{"postgres without slashes", "postgres:host/db"},
		{"upper-case scheme", "SQLITE:/tmp/x.db"},
		{"key value string", "host=localhost user=postgres password=secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.dsn)
			}
			if !errors.Is(err, errBadDSN) {
				t.Errorf("Open(%q) = %v, want errBadDSN", tt.dsn, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "sqlite:PATH") || !strings.Contains(msg, "postgres://") {
				t.Errorf("error %q does not name both accepted forms", msg)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q leaks the DSN", msg)
			}
		})
	}
}
