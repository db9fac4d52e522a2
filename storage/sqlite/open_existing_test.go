package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenExisting checks that OpenExisting opens an existing database, with spaces and
// URI characters in its path, and creates neither a missing file nor its folder.
func TestOpenExisting(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a dir #1 %20")
	path := filepath.Join(dir, "idp.db")
	if _, err := OpenExisting(ctx, path); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("missing database: err = %v, want ErrNoDatabase", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("OpenExisting created the folder")
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = OpenExisting(ctx, path)
	if err != nil {
		t.Fatalf("existing database: %v", err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on the existing database: %v", err)
	}
	if _, err := s.ListUsers(ctx); err != nil {
		t.Fatalf("read: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("files beside the folder: %v", entries)
	}
}
