// Package pgtest gives tests a fresh, empty PostgreSQL database of their own. Any package
// whose tests need a real database imports it.
//
// The server comes from the IDP_TEST_POSTGRES_URL environment variable (default
// DefaultServerURL). When the server cannot be reached the test is skipped, except under
// CI=true, where it fails: CI must run the PostgreSQL tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvServerURL names the environment variable holding the URL of the PostgreSQL server
// tests create their databases on. The user must be allowed to create databases.
const EnvServerURL = "IDP_TEST_POSTGRES_URL"

// DefaultServerURL is the server used when EnvServerURL is unset: a local PostgreSQL
// with trust authentication.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// connectTimeout bounds every connection attempt to the server, so a server that does
// not answer turns into a quick skip rather than a hung test.
const connectTimeout = 10 * time.Second

// ServerURL returns the URL of the test server: EnvServerURL if set, else DefaultServerURL.
func ServerURL() string {
	if u := os.Getenv(EnvServerURL); u != "" {
		return u
	}
	return DefaultServerURL
}

// NewDatabase creates an empty database named idp_test_<random hex> on the test server
// and returns its URL. The database is dropped, even with connections still open, when
// the test and its subtests finish; close stores opened on it in a t.Cleanup registered
// after this call (cleanups run last-in first-out) so they go first.
//
// If the server is unreachable, NewDatabase skips the test, or fails it when the CI
// environment variable is "true".
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := ServerURL()
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvServerURL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: PostgreSQL server %s unreachable and CI=true, so this is a failure: %v",
				u.Redacted(), err)
		}
		t.Skipf("pgtest: PostgreSQL server %s unreachable (%v); start one, e.g. "+
			"`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "+
			"or point %s at one", u.Redacted(), err, EnvServerURL)
	}
	defer admin.Close(context.Background())

	name := "idp_test_" + randomHex(t, 8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, server, name) })

	db := *u
	db.Path = "/" + name
	db.RawPath = ""
	return db.String()
}

// dropDatabase drops database name on server, terminating connections still open to it.
func dropDatabase(t testing.TB, server, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Errorf("pgtest: drop database %s: connect: %v", name, err)
		return
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: random database name: %v", err)
	}
	return hex.EncodeToString(b)
}
