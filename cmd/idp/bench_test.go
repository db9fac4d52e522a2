package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openidp/idp/cmd/idp/internal/bench"
)

// TestBench runs `idp bench` briefly against `idp serve` on SQLite: it seeds through the
// database, runs every scenario for a fixed number of operations without an error, and
// prints JSON; a second run reuses the saved credentials without seeding and prints the
// table.
func TestBench(t *testing.T) {
	c := newCLI(t)
	addr := freeAddr(t)
	issuer := "http://" + addr
	_, stderr, stop := startServe(t, c.dataDir, "--addr", addr, "--issuer", issuer, "--trusted-proxies", "127.0.0.1")
	waitDiscovery(t, addr, stderr)
	defer func() {
		if code := stop(); code != 0 {
			t.Errorf("serve exit %d; stderr:\n%s", code, stderr.String())
		}
	}()

	credsFile := filepath.Join(t.TempDir(), "creds.json")
	var rep bench.Report
	c.okJSON(&rep, "bench", "--issuer", issuer, "--people", "6", "--requests", "4", "--concurrency", "2",
		"--forwarded-for", "--save-credentials", credsFile, "--json")
	if len(rep.Results) != len(bench.Scenarios) {
		t.Fatalf("%d results, want %d: %+v", len(rep.Results), len(bench.Scenarios), rep)
	}
	for _, r := range rep.Results {
		if r.Requests != 4 || r.Errors != 0 || r.AccessTokens != "jwt" {
			t.Errorf("%s: %d done, %d errors (%s), access tokens %q; want 4, none and jwt (the default)",
				r.Scenario, r.Requests, r.Errors, r.FirstError, r.AccessTokens)
		}
		// Tokens are durable writes: SQLite flushed its log for them, and says how long
		// that took (openidp_store_flushes_total, openidp_store_flush_seconds_total).
		if r.Scenario == bench.ScenarioClientCredentials && (r.FlushMean == nil || *r.FlushMean <= 0) {
			t.Errorf("client_credentials: mean flush %v, want the store's flush time", r.FlushMean)
		}
	}
	var saved bench.Credentials
	data, err := os.ReadFile(credsFile)
	if err != nil || json.Unmarshal(data, &saved) != nil {
		t.Fatalf("read saved credentials: %v", err)
	}
	if len(saved.People) != 6 || len(saved.TOTPPeople) != 6 || saved.Service.Secret == "" {
		t.Errorf("saved credentials: %d people, %d with TOTP, service secret set %t", len(saved.People), len(saved.TOTPPeople), saved.Service.Secret != "")
	}
	if st, err := os.Stat(credsFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode: %v %v, want 0600", st.Mode().Perm(), err)
	}

	out := c.ok("", "bench", "--issuer", issuer, "--no-seed", "--credentials", credsFile, "--requests", "3",
		"--scenarios", "client_credentials,refresh", "--label", "test run")
	for _, want := range []string{"test run", "client_credentials", "refresh", "commits/1000", "flush"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "n/a") { // the server exposes openidp_store_commits_total
		t.Errorf("table lacks the store commits:\n%s", out)
	}
	if strings.Contains(out, "password_totp") || strings.Contains(out, "first error") {
		t.Errorf("table has scenarios not asked for, or errors:\n%s", out)
	}
	var users []userJSON
	c.okJSON(&users, "users", "list", "--json")
	if len(users) != 12 {
		t.Errorf("%d users after one seeded and one unseeded run, want 12", len(users))
	}

	// Seeded clients with opaque access tokens: the provider issues them, and the
	// table's last column says so.
	out = c.ok("", "bench", "--issuer", issuer, "--people", "1", "--requests", "2",
		"--scenarios", "client_credentials", "--access-token-format", "opaque")
	if row := tableRow(out, "client_credentials"); !strings.HasSuffix(row, " opaque") {
		t.Errorf("client_credentials row %q does not end in the format opaque:\n%s", row, out)
	}
}

// tableRow returns the row of the text report out that starts with scenario, trimmed.
func tableRow(out, scenario string) string {
	for line := range strings.Lines(out) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, scenario+" ") {
			return line
		}
	}
	return ""
}

// TestBenchUsage checks that bad flags are usage errors, before anything is seeded.
func TestBenchUsage(t *testing.T) {
	c := newCLI(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no issuer", []string{"bench"}, "--issuer is required"},
		{"unknown scenario", []string{"bench", "--issuer", "http://127.0.0.1:1", "--scenarios", "nope"}, `unknown scenario "nope"`},
		{"credentials with seed", []string{"bench", "--issuer", "http://127.0.0.1:1", "--credentials", "x.json"}, "--no-seed"},
		{"no workers", []string{"bench", "--issuer", "http://127.0.0.1:1", "--concurrency", "0"}, "--concurrency"},
		{"introspect-with", []string{"bench", "--issuer", "http://127.0.0.1:1", "--introspect-with", "who"}, "--introspect-with"},
		{"access-token-format", []string{"bench", "--issuer", "http://127.0.0.1:1", "--access-token-format", "jws"}, "--access-token-format must be jwt or opaque"},
		{"access-token-format without seeding", []string{"bench", "--issuer", "http://127.0.0.1:1", "--no-seed", "--access-token-format", "opaque"}, "needs seeding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run("", tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "idp.db")); err == nil {
		t.Error("a usage error created the database")
	}
}
