package idp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// backends lists the storage backends every end-to-end test runs on.
var backends = []struct {
	name string
	open func(tb testing.TB) storage.Storage
}{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

func openSQLite(tb testing.TB) storage.Storage {
	tb.Helper()
	return openSQLiteAt(tb, filepath.Join(tb.TempDir(), "idp.db"))
}

// clusterBackends: two stores on one database, as two processes of a cluster have (two
// handles on one SQLite file; two connection pools on one PostgreSQL database).
var clusterBackends = []struct {
	name string
	open func(tb testing.TB) (storage.Storage, storage.Storage)
}{
	{"sqlite", func(tb testing.TB) (storage.Storage, storage.Storage) {
		path := filepath.Join(tb.TempDir(), "idp.db")
		return openSQLiteAt(tb, path), openSQLiteAt(tb, path)
	}},
	{"postgres", func(tb testing.TB) (storage.Storage, storage.Storage) {
		dsn := pgtest.NewDatabase(tb)
		return openPostgresAt(tb, dsn), openPostgresAt(tb, dsn)
	}},
}

// openSQLiteAt opens and migrates the SQLite database at path.
func openSQLiteAt(tb testing.TB, path string) storage.Storage {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}

func openPostgres(tb testing.TB) storage.Storage {
	tb.Helper()
	return openPostgresAt(tb, pgtest.NewDatabase(tb))
}

// openPostgresAt opens and migrates a store on the database at dsn; each call has a
// connection pool of its own, as a separate process would.
func openPostgresAt(tb testing.TB, dsn string) storage.Storage {
	tb.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return st
}

// clock is a settable clock shared by the server under test.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// env is a running provider with a store the test can inspect.
type env struct {
	t      testing.TB
	store  storage.Storage
	server *idp.Server
	issuer string
	clock  *clock
	admin  *admin.Admin
	sealer *seal.Sealer
	rawKey []byte // the encryption key behind sealer, unless a mutator replaced the sealer
}

func newEnv(tb testing.TB, st storage.Storage, mutate ...func(*idp.Config)) *env {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	rawKey := seal.NewKey()
	sealer, err := seal.New(rawKey)
	if err != nil {
		tb.Fatal(err)
	}
	clk := &clock{}
	cfg := idp.Config{
		Issuer: issuer, Sealer: sealer, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := idp.New(context.Background(), st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	tb.Cleanup(ts.Close)
	e := &env{t: tb, store: st, server: srv, issuer: issuer, clock: clk, sealer: cfg.Sealer, rawKey: rawKey}
	e.admin = &admin.Admin{Store: st, Audit: srv.Auditor(), Keys: srv.Keys(), Now: clk.Now}
	return e
}

func (e *env) createUser(email, password string) *storage.User {
	e.t.Helper()
	u, err := e.admin.CreateUser(context.Background(), "test", admin.NewUser{Email: email, Name: "Test " + email, Password: password})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// Aliases for the shared HTTP test helpers.
type (
	testClient    = idptest.Client
	tokenResponse = idptest.TokenResponse
	browser       = idptest.Browser
	page          = idptest.Page
)

var (
	pkce       = idptest.PKCE
	randString = idptest.RandString
	getJSON    = idptest.GetJSON
)

func (e *env) createClient(in admin.NewClient) testClient {
	e.t.Helper()
	if len(in.RedirectURIs) == 0 && !(len(in.GrantTypes) == 1 && in.GrantTypes[0] == "client_credentials") {
		in.RedirectURIs = []string{"https://app.example.com/callback"}
	}
	if in.Name == "" {
		in.Name = "Test app"
	}
	c, secret, err := e.admin.CreateClient(context.Background(), "test", in)
	if err != nil {
		e.t.Fatal(err)
	}
	tc := testClient{ID: c.ID, Secret: secret}
	if len(c.RedirectURIs) > 0 {
		tc.RedirectURI = c.RedirectURIs[0]
	}
	return tc
}

func (e *env) auditCount(typ, result string) int {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if result == "" || ev.Result == result {
			n++
		}
	}
	return n
}

func (e *env) newBrowser() *browser { return idptest.NewBrowser(e.t, e.issuer) }

// authURL builds an authorization request for c.
func (e *env) authURL(c testClient, extra url.Values) string {
	return idptest.AuthURL(e.issuer, c, extra)
}

// tokenRequest posts form to the token endpoint as client c.
func (e *env) tokenRequest(c testClient, form url.Values) tokenResponse {
	e.t.Helper()
	return idptest.PostToken(e.t, e.issuer+"/oauth/token", c, form)
}
