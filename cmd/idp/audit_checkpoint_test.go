package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// rewriteKeyed plays an attacker who has the database and the encryption key: it deletes
// event drop, recomputes the keyed chain after it and deletes the stored checkpoints.
func (c *cli) rewriteKeyed(drop int64) {
	c.t.Helper()
	sealer, err := seal.New(c.encryptionKey())
	if err != nil {
		c.t.Fatal(err)
	}
	key := audit.CurrentChainKey(sealer)
	c.tamper(`DELETE FROM audit_events WHERE id = ?`, drop)
	db, err := sql.Open("sqlite", c.dbPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM audit_checkpoints`); err != nil {
		c.t.Fatal(err)
	}
	prev := ""
	for _, j := range c.auditEvents() {
		e := storage.AuditEvent{Time: j.Time, Type: j.Type, UserID: j.UserID, ClientID: j.ClientID, IP: j.IP,
			UserAgent: j.UserAgent, Result: j.Result, Reason: j.Reason, ChainKey: j.ChainKey}
		if j.ID > drop {
			h := storage.KeyedChainHash(key.Key[:], prev, &e)
			if _, err := db.Exec(`UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?`, prev, h, j.ID); err != nil {
				c.t.Fatal(err)
			}
			j.Hash = h
		}
		prev = j.Hash
	}
}

func TestAuditCheckpointCommands(t *testing.T) {
	t.Run("verify needs the encryption key", func(t *testing.T) {
		c := newCLI(t)
		c.seedAudit(1)
		t.Setenv(envEncryptionKey, "")
		r := c.run("", "audit", "verify")
		if r.code != 1 || !strings.Contains(r.stderr, "derived from the encryption key") || !strings.Contains(r.stderr, "IDP_ENCRYPTION_KEY") {
			t.Errorf("verify without the key: exit %d\nstderr: %s", r.code, r.stderr)
		}
	})

	t.Run("export and verify against the export", func(t *testing.T) {
		c := newCLI(t)
		events := c.seedAudit(4)
		var line audit.CheckpointLine
		c.okJSON(&line, "audit", "checkpoint", "--json")
		if line.EventID != events[3].ID || line.Hash != events[3].Hash || line.JWS == "" {
			t.Fatalf("audit checkpoint --json: %+v, want event %d", line, events[3].ID)
		}
		file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
		if out := c.ok("", "audit", "checkpoints", "export", "--output", file); !strings.Contains(out, "Exported 1 audit checkpoints") {
			t.Errorf("export output: %s", out)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var exported audit.CheckpointLine
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(data))), &exported); err != nil || exported.JWS != line.JWS || len(exported.JWK) == 0 {
			t.Fatalf("exported line %q (%v): want the checkpoint with its public key", data, err)
		}
		if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
			t.Errorf("export file mode %v, want 0600", st.Mode().Perm())
		}
		out := c.ok("", "audit", "verify", "--checkpoints", file)
		if !strings.Contains(out, "audit chain intact: 4 events") || !strings.Contains(out, "4 keyed events") ||
			!strings.Contains(out, "checkpoints ("+file+"): 1 match the chain") {
			t.Errorf("verify --checkpoints:\n%s", out)
		}

		// Someone with the database and the encryption key deletes event 2, recomputes the
		// chain and removes the stored checkpoints: only the export shows it.
		c.rewriteKeyed(events[1].ID)
		if r := c.run("", "audit", "verify"); r.code != 0 {
			t.Fatalf("the database alone should not show this rewrite (else the test proves nothing): exit %d\n%s", r.code, r.stderr)
		}
		r := c.run("", "audit", "verify", "--checkpoints", file)
		if r.code != 1 || !strings.Contains(r.stderr, audit.ProblemCheckpointMismatch) || !strings.Contains(r.stderr, "rewritten") {
			t.Errorf("verify --checkpoints after the rewrite: exit %d\nstderr: %s", r.code, r.stderr)
		}
	})

	t.Run("bad checkpoints file", func(t *testing.T) {
		c := newCLI(t)
		c.seedAudit(1)
		file := filepath.Join(t.TempDir(), "bad.jsonl")
		if err := os.WriteFile(file, []byte("{\"event_id\": 1}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := c.run("", "audit", "verify", "--checkpoints", file)
		if r.code == 0 || !strings.Contains(r.stderr, "line 1 is not an exported checkpoint") {
			t.Errorf("verify with a bad file: exit %d\nstderr: %s", r.code, r.stderr)
		}
	})
}
