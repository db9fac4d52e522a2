package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDuplicateUser checks that a taken e-mail is reported in words, without the
// database's constraint message.
func TestDuplicateUser(t *testing.T) {
	c := newCLI(t)
	c.createUser("ada@example.com", "correct horse battery")
	r := c.run("correct horse battery\n", "users", "create", "--email", "ADA@example.com", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "Error: a user with e-mail ada@example.com already exists\n") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, raw := range []string{"UNIQUE", "constraint", "2067", "storage:"} {
		if strings.Contains(r.stderr, raw) {
			t.Errorf("stderr shows %q:\n%s", raw, r.stderr)
		}
	}
}

// TestAuditListType checks that an unknown --type is an error listing the event types,
// and that either spelling of enrol names the stored type.
func TestAuditListType(t *testing.T) {
	c := newCLI(t)
	c.createUser("ada@example.com", "correct horse battery")
	r := c.run("", "audit", "list", "--type", "nonsense")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown event type "nonsense"`) ||
		!strings.Contains(r.stderr, "  login.password\n") || !strings.Contains(r.stderr, "  mfa.enrol.required\n") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "TIME") {
		t.Errorf("a table was printed:\n%s", r.stdout)
	}
	for _, typ := range []string{"admin.user.create", "mfa.enrol", "mfa.enroll.required"} {
		if r := c.run("", "audit", "list", "--type", typ, "--json"); r.code != 0 {
			t.Errorf("--type %s: exit %d, stderr:\n%s", typ, r.code, r.stderr)
		}
	}
}

// TestServeValidatesBeforeMigrating checks that serve refuses bad settings before it
// creates or migrates a database.
func TestServeValidatesBeforeMigrating(t *testing.T) {
	for name, args := range map[string][]string{
		"http issuer":   {"--issuer", "http://id.example.com"},
		"issuer path":   {"--issuer", "https://id.example.com/idp"},
		"publish delay": {"--key-publish-delay", "1m", "--jwks-max-age", "1h"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCLI(t)
			r := c.run("", append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "config:") {
				t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "database migrated") {
				t.Errorf("migrated before validating:\n%s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(c.dataDir, "idp.db")); err == nil {
				t.Error("a database was created")
			}
		})
	}
}

// TestReadOnlyCommandsCreateNothing checks that commands that only read fail clearly on
// a missing database, and create neither it nor its folder.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "nonexistent", "dir")
	for _, args := range [][]string{
		{"users", "list"},
		{"clients", "list"},
		{"resources", "list"},
		{"keys", "list"},
		{"audit", "list"},
		{"audit", "verify"},
		{"policy", "explain", "--user", "ada@example.com", "--client", "x"},
		{"--database", "sqlite:" + filepath.Join(missingDir, "x.db"), "users", "list"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			c := newCLI(t)
			c.dataDir = filepath.Join(c.dataDir, "empty-folder")
			r := c.run("", args...)
			if r.code != 1 || !strings.Contains(r.stderr, "no database at sqlite:") || !strings.Contains(r.stderr, "idp migrate") {
				t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			for _, p := range []string{c.dataDir, missingDir} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("%s was created", p)
				}
			}
		})
	}

	// Once the database exists, they read it.
	c := newCLI(t)
	c.createUser("ada@example.com", "correct horse battery")
	if out := c.ok("", "users", "list"); !strings.Contains(out, "ada@example.com") {
		t.Errorf("users list:\n%s", out)
	}
}
