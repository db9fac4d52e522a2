package conformance

import (
	"testing"

	"github.com/openidp/idp/storage"
)

func testMigrateAndPing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	must(t, s.Ping(ctx))
	n, err := s.Migrate(ctx)
	must(t, err)
	if n != 0 {
		t.Errorf("Migrate on a migrated store applied %d, want 0", n)
	}
}
