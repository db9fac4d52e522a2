package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage/seal"
)

// cli runs idp commands in-process against one data directory.
type cli struct {
	t       *testing.T
	dataDir string
}

// newCLI returns a cli over a fresh data directory, with IDP_* variables cleared and a
// fresh IDP_ENCRYPTION_KEY set.
func newCLI(t *testing.T) *cli {
	t.Helper()
	for _, ef := range envFlags {
		t.Setenv(ef.env, "")
	}
	t.Setenv(envEncryptionKeysOld, "")
	t.Setenv(envEncryptionKey, base64.StdEncoding.EncodeToString(seal.NewKey()))
	return &cli{t: t, dataDir: t.TempDir()}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs `idp --data-dir <dir> args...` with stdin and returns what it printed.
func (c *cli) run(stdin string, args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--data-dir", c.dataDir}, args...)
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs the command, fails the test unless it succeeded, and returns its stdout.
func (c *cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("idp %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs the command and decodes its stdout into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok("", args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("idp %s: output is not JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *cli) createUser(email, password string) userJSON {
	c.t.Helper()
	var u userJSON
	out := c.ok(password+"\n", "users", "create", "--email", email, "--name", "Test User", "--password-stdin", "--json")
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		c.t.Fatalf("users create --json: %v\n%s", err, out)
	}
	return u
}

func TestMigrate(t *testing.T) {
	c := newCLI(t)
	var first, second struct {
		Applied *int `json:"applied"`
	}
	c.okJSON(&first, "migrate", "--json")
	c.okJSON(&second, "migrate", "--json")
	if first.Applied == nil || *first.Applied < 1 {
		t.Errorf("first migrate applied %v, want at least 1", first.Applied)
	}
	if second.Applied == nil || *second.Applied != 0 {
		t.Errorf("second migrate applied %v, want 0", second.Applied)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "idp.db")); err != nil {
		t.Errorf("default database not created in the data directory: %v", err)
	}
	if out := c.ok("", "migrate"); !strings.Contains(out, "Applied 0 migration") {
		t.Errorf("migrate text output = %q", out)
	}
}

func TestUsers(t *testing.T) {
	c := newCLI(t)
	created := c.createUser("Ada@Example.com", "correct horse battery")
	if created.Email != "ada@example.com" || created.ID == "" {
		t.Fatalf("created = %+v", created)
	}

	var users []map[string]any
	c.okJSON(&users, "users", "list", "--json")
	if len(users) != 1 || users[0]["id"] != created.ID || users[0]["email"] != "ada@example.com" ||
		users[0]["name"] != "Test User" || users[0]["disabled"] != false || users[0]["created_at"] == nil {
		t.Fatalf("users list --json = %v", users)
	}
	for k := range users[0] {
		if !slices.Contains([]string{"id", "email", "name", "disabled", "created_at"}, k) {
			t.Errorf("unexpected key %q in users list --json", k)
		}
	}
	if out := c.ok("", "users", "list"); !strings.Contains(out, "ada@example.com") || !strings.Contains(out, "EMAIL") {
		t.Errorf("users list table = %q", out)
	}

	c.ok("", "users", "disable", "ada@example.com")
	c.okJSON(&users, "users", "list", "--json")
	if users[0]["disabled"] != true {
		t.Errorf("user not disabled: %v", users[0])
	}
}

func TestUsageAndInputErrors(t *testing.T) {
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{
			name:       "create without --password-stdin",
			args:       []string{"users", "create", "--email", "a@example.com"},
			wantCode:   2,
			wantStderr: []string{"--password-stdin is required", "Usage:"},
		},
		{
			name:       "there is no password flag",
			args:       []string{"users", "create", "--email", "a@example.com", "--password", "secret123"},
			wantCode:   2,
			wantStderr: []string{"unknown flag: --password", "Usage:"},
		},
		{
			name:       "create without --email",
			stdin:      "correct horse battery\n",
			args:       []string{"users", "create", "--password-stdin"},
			wantCode:   2,
			wantStderr: []string{"--email is required"},
		},
		{
			name:       "empty password",
			stdin:      "\n",
			args:       []string{"users", "create", "--email", "a@example.com", "--password-stdin"},
			wantCode:   1,
			wantStderr: []string{"no password on standard input"},
		},
		{
			name:       "short password",
			stdin:      "short\n",
			args:       []string{"users", "create", "--email", "a@example.com", "--password-stdin"},
			wantCode:   1,
			wantStderr: []string{"at least 8 characters"},
		},
		{
			name:       "invalid email",
			stdin:      "correct horse battery\n",
			args:       []string{"users", "create", "--email", "nope", "--password-stdin"},
			wantCode:   1,
			wantStderr: []string{`"nope" is not a valid e-mail address`},
		},
		{
			name:       "disable unknown user",
			args:       []string{"users", "disable", "nobody@example.com"},
			wantCode:   1,
			wantStderr: []string{`user "nobody@example.com" not found`},
		},
		{
			name:       "disable without argument",
			args:       []string{"users", "disable"},
			wantCode:   2,
			wantStderr: []string{"accepts 1 arg", "Usage:"},
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantCode:   2,
			wantStderr: []string{`unknown command "frobnicate"`},
		},
		{
			name:       "unknown subcommand",
			args:       []string{"users", "delete"},
			wantCode:   2,
			wantStderr: []string{`unknown command "delete" for "idp users"`},
		},
		{
			name:       "bad redirect URI",
			args:       []string{"clients", "create", "--name", "Bad", "--redirect-uri", "http://app.example.com/cb"},
			wantCode:   1,
			wantStderr: []string{`invalid redirect URI "http://app.example.com/cb": http is allowed only for localhost`},
		},
		{
			name:       "client without name",
			args:       []string{"clients", "create", "--redirect-uri", "https://app.example.com/cb"},
			wantCode:   2,
			wantStderr: []string{"--name is required"},
		},
		{
			name:       "bad lifetime",
			args:       []string{"clients", "create", "--name", "A", "--redirect-uri", "https://a.example.com/cb", "--access-token-lifetime", "soon"},
			wantCode:   2,
			wantStderr: []string{"invalid argument", "--access-token-lifetime"},
		},
		{
			name:       "bad log level",
			args:       []string{"--log-level", "loud", "migrate"},
			wantCode:   2,
			wantStderr: []string{`invalid log level "loud"`},
		},
		{
			name:       "bad --since",
			args:       []string{"audit", "list", "--since", "yesterday"},
			wantCode:   2,
			wantStderr: []string{`invalid --since "yesterday"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			r := c.run(tt.stdin, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "secret123") || strings.Contains(r.stdout+r.stderr, "correct horse") {
				t.Errorf("a password was printed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
			}
		})
	}
}

func TestClients(t *testing.T) {
	c := newCLI(t)
	tests := []struct {
		name       string
		args       []string
		wantSecret bool
	}{
		{"confidential", []string{"--name", "Web app", "--redirect-uri", "https://app.example.com/cb", "--redirect-uri", "https://app.example.com/cb2,https://app.example.com/cb3"}, true},
		{"public", []string{"--name", "CLI", "--public", "--redirect-uri", "http://127.0.0.1:8400/cb"}, false},
		{"client credentials", []string{"--name", "Batch", "--grants", "client_credentials", "--scopes", "api:read"}, true},
		// RFC 8628: TVs and CLIs, public or confidential, need no redirect URI.
		{"device public", []string{"--name", "TV", "--public", "--grants", "urn:ietf:params:oauth:grant-type:device_code,refresh_token"}, false},
		{"device confidential", []string{"--name", "Kiosk", "--grants", "urn:ietf:params:oauth:grant-type:device_code"}, true},
	}
	ids := map[string]string{}
	var secrets []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]string
			c.okJSON(&got, append([]string{"clients", "create", "--json"}, tt.args...)...)
			if len(got["client_id"]) == 0 {
				t.Fatalf("no client_id in %v", got)
			}
			secret, has := got["client_secret"]
			if has != tt.wantSecret {
				t.Fatalf("client_secret present = %v, want %v: %v", has, tt.wantSecret, got)
			}
			if tt.wantSecret && len(secret) != 43 {
				t.Errorf("secret is %d characters, want 43", len(secret))
			}
			if len(got) > 2 {
				t.Errorf("unexpected keys in %v", got)
			}
			ids[tt.name] = got["client_id"]
			if secret != "" {
				secrets = append(secrets, secret)
			}
		})
	}

	out := c.ok("", "clients", "list", "--json")
	var list []clientJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("clients list --json: %v\n%s", err, out)
	}
	if len(list) != len(tests) {
		t.Fatalf("listed %d clients, want %d", len(list), len(tests))
	}
	byID := map[string]clientJSON{}
	for _, cl := range list {
		byID[cl.ID] = cl
	}
	web := byID[ids["confidential"]]
	if web.Name != "Web app" || len(web.RedirectURIs) != 3 || web.Public || web.IDTokenSigningAlg != "ES256" ||
		web.AccessTokenLifetimeSeconds != 900 || !slices.Equal(web.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("confidential client listed as %+v", web)
	}
	if !byID[ids["public"]].Public {
		t.Errorf("public client listed as %+v", byID[ids["public"]])
	}
	table := c.ok("", "clients", "list")
	for _, s := range secrets {
		if strings.Contains(out, s) || strings.Contains(table, s) {
			t.Error("clients list prints a client secret")
		}
	}
	if strings.Contains(strings.ToLower(out), "secret") || strings.Contains(strings.ToLower(out), "hash") {
		t.Errorf("clients list --json has a secret or hash field:\n%s", out)
	}
	if !strings.Contains(table, ids["public"]) || !strings.Contains(table, "public") {
		t.Errorf("clients list table = %s", table)
	}

	text := c.ok("", "clients", "create", "--name", "Text", "--redirect-uri", "https://t.example.com/cb")
	if !strings.Contains(text, "Client ID:") || !strings.Contains(text, "Client secret:") || !strings.Contains(text, "will not be shown again") {
		t.Errorf("clients create text output = %q", text)
	}
}

func TestKeysRotate(t *testing.T) {
	c := newCLI(t)
	type rotated struct {
		KeyIDs []string  `json:"key_ids"`
		Keys   []keyJSON `json:"keys"`
	}
	// Nothing to replace: the first keys sign at once.
	var first rotated
	c.okJSON(&first, "keys", "rotate", "--json")
	if len(first.KeyIDs) != len(keys.SupportedAlgs) || first.KeyIDs[0] == first.KeyIDs[1] {
		t.Fatalf("key_ids = %v, want %d distinct ids (ES256, RS256)", first.KeyIDs, len(keys.SupportedAlgs))
	}
	for _, k := range first.Keys {
		if k.State != keys.StateActive {
			t.Errorf("first key %s is %s, want active", k.ID, k.State)
		}
	}
	// A rotation with keys in place publishes the new ones as pending for the delay.
	var second rotated
	before := time.Now()
	c.okJSON(&second, "keys", "rotate", "--json")
	for _, k := range second.Keys {
		if k.State != keys.StatePending || k.ActivatesAt.Before(before.Add(keys.DefaultPublishDelay).Truncate(time.Second)) ||
			k.ActivatesAt.After(time.Now().Add(keys.DefaultPublishDelay)) {
			t.Errorf("rotated key %s: %s from %v, want pending for %s", k.ID, k.State, k.ActivatesAt, keys.DefaultPublishDelay)
		}
	}
	var list []keyJSON
	c.okJSON(&list, "keys", "list", "--json")
	states := map[keys.State]int{}
	for _, k := range list {
		states[k.State]++
	}
	if states[keys.StatePending] != 2 || states[keys.StateActive] != 2 || len(list) != 4 {
		t.Errorf("keys list states = %v", states)
	}
	if table := c.ok("", "keys", "list"); !strings.Contains(table, "SIGNS FROM") || strings.Count(table, "pending") != 2 {
		t.Errorf("keys list table:\n%s", table)
	}
	if text := c.ok("", "keys", "rotate", "--key-publish-delay", "2h"); !strings.Contains(text, "(pending)") || !strings.Contains(text, "in 2h0m0s") {
		t.Errorf("keys rotate text output = %q", text)
	}

	var events []auditEventJSON
	c.okJSON(&events, "audit", "list", "--type", audit.EventAdminKeyRotate, "--json")
	if len(events) != 3 || !strings.Contains(events[0].Reason, first.KeyIDs[0]) {
		t.Errorf("key rotation audit events = %+v", events)
	}

	// A delay shorter than the JWKS max-age is refused; 0 (sign at once) is allowed.
	if r := c.run("", "keys", "rotate", "--key-publish-delay", "1m"); r.code != 2 || !strings.Contains(r.stderr, "--jwks-max-age") {
		t.Errorf("short publish delay: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var now rotated
	c.okJSON(&now, "keys", "rotate", "--json", "--key-publish-delay", "0")
	if now.Keys[0].State != keys.StateActive {
		t.Errorf("--key-publish-delay 0: key is %s, want active", now.Keys[0].State)
	}
	// A retention shorter than a client's token lifetime is refused.
	c.ok("", "clients", "create", "--name", "Long", "--redirect-uri", "https://l.example.com/cb", "--id-token-lifetime", "2h")
	if r := c.run("", "keys", "rotate", "--key-retention", "90m"); r.code != 1 || !strings.Contains(r.stderr, "key retention 1h30m0s is shorter than the ID token lifetime 2h0m0s") {
		t.Errorf("short retention: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestEncryptionKeySources(t *testing.T) {
	t.Run("missing key without dev key file", func(t *testing.T) {
		c := newCLI(t)
		t.Setenv(envEncryptionKey, "")
		r := c.run("", "keys", "rotate")
		if r.code != 1 || !strings.Contains(r.stderr, "IDP_ENCRYPTION_KEY is not set") ||
			!strings.Contains(r.stderr, "openssl rand -base64 32") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(c.dataDir, devKeyFile)); err == nil {
			t.Error("a development key was created outside dev mode")
		}
	})
	t.Run("dev key file", func(t *testing.T) {
		c := newCLI(t)
		t.Setenv(envEncryptionKey, "")
		key := base64.StdEncoding.EncodeToString(seal.NewKey())
		if err := os.WriteFile(filepath.Join(c.dataDir, devKeyFile), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := c.run("", "keys", "rotate", "--json")
		// The command builds the sealer twice; the warning is printed once.
		if r.code != 0 || strings.Count(r.stderr, "DEVELOPMENT ONLY") != 1 {
			t.Errorf("exit %d, want one development-key warning; stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		c := newCLI(t)
		t.Setenv(envEncryptionKey, "dG9vIHNob3J0")
		r := c.run("", "keys", "rotate")
		if r.code != 1 || !strings.Contains(r.stderr, "IDP_ENCRYPTION_KEY: encryption key must be 32 bytes") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("invalid old key", func(t *testing.T) {
		c := newCLI(t)
		t.Setenv(envEncryptionKeysOld, base64.StdEncoding.EncodeToString(seal.NewKey())+",bad!")
		r := c.run("", "keys", "rotate")
		if r.code != 1 || !strings.Contains(r.stderr, "IDP_ENCRYPTION_KEYS_OLD entry 2") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("dev key created once and reused", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "sub", devKeyFile)
		k1, created, err := loadOrCreateDevKey(path)
		if err != nil || !created {
			t.Fatalf("first load: created %v, err %v", created, err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode = %v, err %v; want 0600", st.Mode().Perm(), err)
		}
		k2, created, err := loadOrCreateDevKey(path)
		if err != nil || created || !bytes.Equal(k1, k2) {
			t.Fatalf("second load: created %v, same key %v, err %v", created, bytes.Equal(k1, k2), err)
		}
	})
}

func TestAuditList(t *testing.T) {
	c := newCLI(t)
	ada := c.createUser("ada@example.com", "correct horse battery")
	bob := c.createUser("bob@example.com", "correct horse battery")
	var client map[string]string
	c.okJSON(&client, "clients", "create", "--name", "App", "--redirect-uri", "https://app.example.com/cb", "--json")
	c.ok("", "users", "disable", ada.ID)

	tests := []struct {
		name      string
		args      []string
		wantTypes []string
	}{
		{"all", nil, []string{audit.EventAdminUserCreate, audit.EventAdminUserCreate, audit.EventAdminClientCreate, audit.EventAdminUserDisable}},
		{"user by email", []string{"--user", "ADA@example.com"}, []string{audit.EventAdminUserCreate, audit.EventAdminUserDisable}},
		{"user by id", []string{"--user", bob.ID}, []string{audit.EventAdminUserCreate}},
		{"client", []string{"--client", client["client_id"]}, []string{audit.EventAdminClientCreate}},
		{"type", []string{"--type", audit.EventAdminUserDisable}, []string{audit.EventAdminUserDisable}},
		{"since duration", []string{"--since", "1h"}, []string{audit.EventAdminUserCreate, audit.EventAdminUserCreate, audit.EventAdminClientCreate, audit.EventAdminUserDisable}},
		{"since future", []string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil},
		{"limit keeps the newest", []string{"--limit", "1"}, []string{audit.EventAdminUserDisable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []map[string]any
			c.okJSON(&events, append([]string{"audit", "list", "--json"}, tt.args...)...)
			var types []string
			for _, e := range events {
				types = append(types, e["type"].(string))
				if e["result"] != audit.ResultSuccess || !strings.Contains(e["reason"].(string), "actor=cli") {
					t.Errorf("event %v", e)
				}
				if _, ok := e["time"]; !ok {
					t.Errorf("event without time: %v", e)
				}
			}
			if !slices.Equal(types, tt.wantTypes) {
				t.Errorf("types = %v, want %v", types, tt.wantTypes)
			}
		})
	}

	table := c.ok("", "audit", "list")
	for _, col := range []string{"TIME", "TYPE", "RESULT", "USER", "CLIENT", "IP", "IDS", "REASON", "ada@example.com", audit.EventAdminUserDisable} {
		if !strings.Contains(table, col) {
			t.Errorf("audit table lacks %q:\n%s", col, table)
		}
	}
	r := c.run("", "audit", "list", "--user", "nobody@example.com")
	if r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("unknown --user: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestEnvFallback(t *testing.T) {
	c := newCLI(t)
	envDir := t.TempDir()
	t.Setenv("IDP_DATA_DIR", envDir)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"migrate"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(envDir, "idp.db")); err != nil {
		t.Errorf("IDP_DATA_DIR not used: %v", err)
	}
	// The flag wins over the environment.
	c.ok("", "migrate")
	if _, err := os.Stat(filepath.Join(c.dataDir, "idp.db")); err != nil {
		t.Errorf("--data-dir did not win over IDP_DATA_DIR: %v", err)
	}
	// IDP_DATABASE names the database.
	dbPath := filepath.Join(t.TempDir(), "other.db")
	t.Setenv("IDP_DATABASE", "sqlite:"+dbPath)
	c.ok("", "migrate")
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("IDP_DATABASE not used: %v", err)
	}
	t.Setenv("IDP_LOG_FORMAT", "xml")
	if r := c.run("", "migrate"); r.code == 0 || !strings.Contains(r.stderr, `invalid log format "xml"`) {
		t.Errorf("bad IDP_LOG_FORMAT: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	commands := [][]string{
		{}, {"serve"}, {"migrate"}, {"users"}, {"users", "create"}, {"users", "list"}, {"users", "disable"},
		{"clients"}, {"clients", "create"}, {"clients", "list"}, {"keys"}, {"keys", "rotate"}, {"audit"}, {"audit", "list"},
	}
	for _, args := range commands {
		t.Run(strings.Join(append([]string{"idp"}, args...), " "), func(t *testing.T) {
			c := newCLI(t)
			out := c.ok("", append(args, "--help")...)
			if !strings.Contains(out, "Usage:") || !strings.Contains(out, "--data-dir") {
				t.Errorf("help output:\n%s", out)
			}
		})
	}
}

func TestMaskDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sqlite:/var/lib/idp/idp.db", "sqlite:/var/lib/idp/idp.db"},
		{"postgres://idp:s3cret@db:5432/idp?sslmode=require", "postgres://idp:xxxxx@db:5432/idp?sslmode=require"},
		{"postgresql://idp@db/idp?password=s3cret", "postgresql://idp@db/idp?password=xxxxx"},
		{"postgres://db/idp", "postgres://db/idp"},
	}
	for _, tt := range tests {
		if got := maskDSN(tt.in); got != tt.want {
			t.Errorf("maskDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"24h", now.Add(-24 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"2025-02-28T08:00:00Z", time.Date(2025, 2, 28, 8, 0, 0, 0, time.UTC), false},
		{"2025-02-28T08:00:00+02:00", time.Date(2025, 2, 28, 6, 0, 0, 0, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadPassword(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"pass word\n", "pass word", false},
		{"pass word\r\n", "pass word", false},
		{"pass word", "pass word", false},
		{"pass word\n\n", "pass word\n", false},
		{" spaced \n", " spaced ", false},
		{"", "", true},
		{"\n", "", true},
		{strings.Repeat("x", maxPasswordInput+1), "", true},
	}
	for _, tt := range tests {
		got, err := readPassword(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("readPassword(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// startServe runs `idp serve` until the returned stop function is called, waiting until
// the discovery document is served. stop returns the exit code.
func startServe(t *testing.T, dataDir string, args ...string) (stdout, stderr *idptest.LockedBuffer, stop func() int) {
	t.Helper()
	stdout, stderr = &idptest.LockedBuffer{}, &idptest.LockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--data-dir", dataDir, "serve"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	stop = func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not stop within 20s")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	return stdout, stderr, stop
}

// waitDiscovery polls the discovery document of the server at addr until it answers.
func waitDiscovery(t *testing.T, addr string, stderr *idptest.LockedBuffer) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/.well-known/openid-configuration")
		if err == nil {
			var doc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return doc
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("discovery not served at %s; stderr:\n%s", addr, stderr.String())
	return nil
}

func TestServeDev(t *testing.T) {
	c := newCLI(t)
	t.Setenv(envEncryptionKey, "")
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	issuer := "http://localhost:" + port

	stdout, stderr, stop := startServe(t, c.dataDir, "--dev", "--addr", addr)
	doc := waitDiscovery(t, addr, stderr)
	if doc["issuer"] != issuer {
		t.Errorf("discovery issuer = %v, want %s", doc["issuer"], issuer)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"Issuer:     " + issuer,
		issuer + "/.well-known/openid-configuration",
		"sqlite:" + filepath.Join(c.dataDir, "idp.db"),
		"Demo user:      demo@example.com",
		"Open " + issuer + "/ and click Sign in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(stderr.String(), "DEVELOPMENT ONLY"); n != 1 {
		t.Errorf("%d development-key warnings on stderr, want 1:\n%s", n, stderr.String())
	}
	for _, name := range []string{devKeyFile, demoFileName} {
		st, err := os.Stat(filepath.Join(c.dataDir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v (mode %v), want mode 0600", name, err, st.Mode().Perm())
		}
	}
	var demo demoFile
	data, err := os.ReadFile(filepath.Join(c.dataDir, demoFileName))
	if err != nil || json.Unmarshal(data, &demo) != nil {
		t.Fatalf("read demo.json: %v", err)
	}
	if !strings.Contains(out, "Demo password:  "+demo.Password) || !strings.Contains(out, "Demo client ID: "+demo.ClientID) {
		t.Errorf("printed credentials differ from demo.json:\n%s", out)
	}
	if strings.Contains(out, demo.ClientSecret) || strings.Contains(stderr.String(), demo.ClientSecret) {
		t.Error("the demo client secret was printed")
	}

	// A second dev start on the now non-empty database reloads the same demo.
	stdout, stderr, stop = startServe(t, c.dataDir, "--dev", "--addr", addr)
	waitDiscovery(t, addr, stderr)
	if code := stop(); code != 0 {
		t.Fatalf("second serve exit %d; stderr:\n%s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "Demo password:  "+demo.Password) || !strings.Contains(out, "Demo client ID: "+demo.ClientID) {
		t.Errorf("second start did not reuse the demo:\n%s", out)
	}
	var users []userJSON
	c.okJSON(&users, "users", "list", "--json")
	if len(users) != 1 {
		t.Errorf("%d users after two dev starts, want 1", len(users))
	}
}

func TestServeWithoutKey(t *testing.T) {
	c := newCLI(t)
	t.Setenv(envEncryptionKey, "")
	r := c.run("", "serve", "--addr", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "openssl rand -base64 32") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
