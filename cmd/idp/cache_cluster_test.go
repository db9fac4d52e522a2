package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// cacheCluster runs `idp` processes on one database for the cache tests.
type cacheCluster struct {
	t   *testing.T
	bin string
	env []string
	ops idptest.Client // a client allowed the admin API
}

func newCacheCluster(t *testing.T, database string) *cacheCluster {
	t.Helper()
	c := &cacheCluster{t: t, bin: buildBinary(t), env: append(os.Environ(),
		"IDP_DATABASE="+database,
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+t.TempDir(),
		"IDP_LOG_LEVEL=warn",
	)}
	c.cli("migrate")
	c.ops = c.createClient("--name", "Ops", "--grants", "client_credentials", "--scopes", "admin")
	return c
}

// cli runs an `idp` command and returns its standard output.
func (c *cacheCluster) cli(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func (c *cacheCluster) createClient(args ...string) idptest.Client {
	c.t.Helper()
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(c.cli(append([]string{"clients", "create", "--json"}, args...)...)), &created); err != nil {
		c.t.Fatal(err)
	}
	return idptest.Client{ID: created.ClientID, Secret: created.ClientSecret}
}

// serve starts `idp serve` on a free port.
func (c *cacheCluster) serve() *proc {
	c.t.Helper()
	addr := freeAddr(c.t)
	return startServeProcess(c.t, c.bin, c.env, addr, "http://"+addr)
}

func (c *cacheCluster) token(p *proc, cl idptest.Client, scope string) idptest.TokenResponse {
	c.t.Helper()
	return idptest.PostToken(c.t, "http://"+p.addr+"/oauth/token", cl,
		url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
}

// admin calls p's admin API as the Ops client.
func (c *cacheCluster) admin(p *proc, method, path string, body any) (int, []byte) {
	c.t.Helper()
	tr := c.token(p, c.ops, "admin")
	if tr.AccessToken == "" {
		c.t.Fatalf("admin token from %s: %+v", p.addr, tr)
	}
	var js []byte
	if body != nil {
		js, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, "http://"+p.addr+path, bytes.NewReader(js))
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// policy returns the MFA setting of client id as p's admin API reads it (through
// p's cache).
func (c *cacheCluster) policy(p *proc, id string) string {
	c.t.Helper()
	status, body := c.admin(p, http.MethodGet, "/api/v1/admin/clients/"+id, nil)
	if status != http.StatusOK {
		c.t.Fatalf("GET client on %s: %d %s", p.addr, status, body)
	}
	var v admin.ClientView
	if err := json.Unmarshal(body, &v); err != nil {
		c.t.Fatal(err)
	}
	return v.Policy.MFA
}

// eventually polls check until it passes; the bound is far below the cache's TTL (a
// minute), so only an invalidation can make it pass.
func (c *cacheCluster) eventually(p *proc, what string, check func() error) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v\nlog of %s:\n%s", what, err, p.addr, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterCacheInvalidation runs two `idp serve` processes on one PostgreSQL
// database, each caching clients in memory. A client changed through process A's
// admin API, or by an operator's SQL, is seen by process B, which had the old client
// cached, without a restart and well within the cache's TTL.
func TestClusterCacheInvalidation(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := newCacheCluster(t, dsn)
	svc := c.createClient("--name", "Svc", "--grants", "client_credentials", "--scopes", "api")
	app := c.createClient("--name", "App", "--redirect-uri", "https://app.example.com/cb", "--skip-consent")
	a, b := c.serve(), c.serve()

	// B reads (and caches) the client twice before the change.
	for range 2 {
		if mfa := c.policy(b, app.ID); mfa == "required" {
			t.Fatalf("policy before the change: %q", mfa)
		}
	}
	// A changes it through its admin API.
	if status, body := c.admin(a, http.MethodPut, "/api/v1/admin/clients/"+app.ID+"/policy",
		admin.PolicyView{MFA: "required"}); status != http.StatusOK {
		t.Fatalf("PUT policy on A: %d %s", status, body)
	}
	c.eventually(b, "B sees the policy set through A", func() error {
		if mfa := c.policy(b, app.ID); mfa != "required" {
			return fmt.Errorf("B still says mfa %q", mfa)
		}
		return nil
	})

	// B issues tokens to Svc (and caches it); an operator then takes the grant away
	// in SQL, and B refuses Svc.
	for range 2 {
		if tr := c.token(b, svc, "api"); tr.AccessToken == "" {
			t.Fatalf("client_credentials on B before the change: %+v", tr)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE clients SET grant_types = '{}' WHERE id = $1`, svc.ID); err != nil {
		t.Fatal(err)
	}
	c.eventually(b, "B refuses the client whose grant was removed", func() error {
		tr := c.token(b, svc, "api")
		if tr.AccessToken != "" || tr.Error == "" {
			return fmt.Errorf("B still issues tokens to it: %+v", tr)
		}
		return nil
	})
}

// TestSQLiteCacheSeesCLI: on SQLite the CLI is another process writing the same file;
// a client policy it changes reaches the running server, which had the client cached.
func TestSQLiteCacheSeesCLI(t *testing.T) {
	c := newCacheCluster(t, "sqlite:"+filepath.Join(t.TempDir(), "idp.db"))
	app := c.createClient("--name", "App", "--redirect-uri", "https://app.example.com/cb", "--skip-consent")
	p := c.serve()
	for range 2 {
		if mfa := c.policy(p, app.ID); mfa == "required" {
			t.Fatalf("policy before the change: %q", mfa)
		}
	}
	c.cli("clients", "policy", "set", app.ID, "--mfa", "required")
	c.eventually(p, "the server sees the policy set by the CLI", func() error {
		if mfa := c.policy(p, app.ID); mfa != "required" {
			return fmt.Errorf("server still says mfa %q", mfa)
		}
		return nil
	})
}
