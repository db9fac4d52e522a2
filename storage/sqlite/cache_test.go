package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/conformance"
)

// TestCache runs the cache tests: each "process" is another Open of the same file.
func TestCache(t *testing.T) {
	conformance.RunCacheTests(t, func(t *testing.T) func(t *testing.T) storage.Storage {
		path := filepath.Join(t.TempDir(), "idp.db")
		newMigrated := true
		return func(t *testing.T) storage.Storage {
			s := openTest(t, path)
			if newMigrated {
				newMigrated = false
				if _, err := s.Migrate(t.Context()); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
			}
			return s
		}
	})
}
