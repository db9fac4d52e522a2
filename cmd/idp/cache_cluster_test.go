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
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// TestClusterCacheInvalidation runs two `idp serve` processes on one PostgreSQL
// database, each caching clients in memory. A client changed through process A's
// admin API, or by an operator's SQL, is seen by process B, which had the old client
// cached, without a restart and well within the cache's TTL.
func TestClusterCacheInvalidation(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	env := append(os.Environ(),
		"IDP_DATABASE="+dsn,
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_DATA_DIR="+t.TempDir(),
		"IDP_LOG_LEVEL=warn",
	)
	runCLI := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("idp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	type created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	createClient := func(args ...string) idptest.Client {
		t.Helper()
		var c created
		if err := json.Unmarshal([]byte(runCLI(append([]string{"clients", "create", "--json"}, args...)...)), &c); err != nil {
			t.Fatal(err)
		}
		return idptest.Client{ID: c.ClientID, Secret: c.ClientSecret}
	}
	runCLI("migrate")
	ops := createClient("--name", "Ops", "--grants", "client_credentials", "--scopes", "admin")
	svc := createClient("--name", "Svc", "--grants", "client_credentials", "--scopes", "api")
	app := createClient("--name", "App", "--redirect-uri", "https://app.example.com/cb", "--skip-consent")

	start := func(addr string) *proc {
		t.Helper()
		p := &proc{addr: addr, stderr: &syncBuffer{}}
		p.cmd = exec.Command(bin, "serve", "--addr", addr, "--issuer", "http://"+addr)
		p.cmd.Env = env
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		waitReady(t, addr, p.stderr)
		return p
	}
	a, b := start(freeAddr(t)), start(freeAddr(t))
	token := func(p *proc, c idptest.Client, scope string) idptest.TokenResponse {
		t.Helper()
		return idptest.PostToken(t, "http://"+p.addr+"/oauth/token", c,
			url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
	}
	adminCall := func(p *proc, method, path string, body any) (int, []byte) {
		t.Helper()
		tr := token(p, ops, "admin")
		if tr.AccessToken == "" {
			t.Fatalf("admin token from %s: %+v", p.addr, tr)
		}
		var rd *bytes.Reader
		if body != nil {
			js, _ := json.Marshal(body)
			rd = bytes.NewReader(js)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, "http://"+p.addr+path, rd)
		req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	policyOn := func(p *proc) string {
		t.Helper()
		status, body := adminCall(p, http.MethodGet, "/api/v1/admin/clients/"+app.ID, nil)
		if status != http.StatusOK {
			t.Fatalf("GET client on %s: %d %s", p.addr, status, body)
		}
		var v admin.ClientView
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return v.Policy.MFA
	}
	eventually := func(what string, check func() error) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second) // the cache's TTL is a minute
		for {
			err := check()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v\nB's log:\n%s", what, err, b.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// B reads (and caches) the client twice before the change.
	for range 2 {
		if mfa := policyOn(b); mfa == "required" {
			t.Fatalf("policy before the change: %q", mfa)
		}
	}
	// A changes it through its admin API.
	if status, body := adminCall(a, http.MethodPut, "/api/v1/admin/clients/"+app.ID+"/policy",
		admin.PolicyView{MFA: "required"}); status != http.StatusOK {
		t.Fatalf("PUT policy on A: %d %s", status, body)
	}
	eventually("B sees the policy set through A", func() error {
		if mfa := policyOn(b); mfa != "required" {
			return fmt.Errorf("B still says mfa %q", mfa)
		}
		return nil
	})

	// B issues tokens to Svc (and caches it); an operator then takes the grant away
	// in SQL, and B refuses Svc.
	for range 2 {
		if tr := token(b, svc, "api"); tr.AccessToken == "" {
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
	eventually("B refuses the client whose grant was removed", func() error {
		tr := token(b, svc, "api")
		if tr.AccessToken != "" || tr.Error == "" {
			return fmt.Errorf("B still issues tokens to it: %+v", tr)
		}
		return nil
	})
}
