package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// encryptionKey is the IDP_ENCRYPTION_KEY the cli runs with.
func (c *cli) encryptionKey() []byte {
	c.t.Helper()
	k, err := seal.ParseKey(os.Getenv(envEncryptionKey))
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// dbPath is the default SQLite database of the cli's data directory.
func (c *cli) dbPath() string { return filepath.Join(c.dataDir, "idp.db") }

// tamper runs a raw SQL statement on the cli's SQLite database, as someone editing the
// file directly would.
func (c *cli) tamper(query string, args ...any) {
	c.t.Helper()
	db, err := sql.Open("sqlite", c.dbPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		c.t.Fatalf("tamper %q: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		c.t.Fatalf("tamper %q changed %d rows, want 1", query, n)
	}
}

// auditEvents returns every audit event, oldest first, as `audit list --json` shows them.
func (c *cli) auditEvents() []auditEventJSON {
	c.t.Helper()
	var events []auditEventJSON
	c.okJSON(&events, "audit", "list", "--limit", "0", "--json")
	return events
}

// seedAudit creates users through the CLI so that the trail holds n events.
func (c *cli) seedAudit(n int) []auditEventJSON {
	c.t.Helper()
	for i := range n {
		c.createUser(fmt.Sprintf("user%d@example.com", i), "correct horse battery")
	}
	events := c.auditEvents()
	if len(events) != n {
		c.t.Fatalf("seeded %d audit events, want %d", len(events), n)
	}
	return events
}

func TestAuditVerify(t *testing.T) {
	t.Run("intact", func(t *testing.T) {
		c := newCLI(t)
		c.ok("", "migrate") // verify only reads: it never creates the database
		r := c.run("", "audit", "verify")
		if r.code != 0 || !strings.Contains(r.stdout, "audit chain intact: 0 events") {
			t.Errorf("empty trail: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		events := c.seedAudit(3)
		out := c.ok("", "audit", "verify")
		if !strings.Contains(out, "audit chain intact: 3 events") || !strings.Contains(out, events[2].Hash) {
			t.Errorf("verify output:\n%s", out)
		}
		var res audit.VerifyResult
		c.okJSON(&res, "audit", "verify", "--json")
		if !res.Intact || res.Checked != 3 || res.FirstID != events[0].ID || res.LastID != events[2].ID || res.Head != events[2].Hash {
			t.Errorf("verify --json: %+v", res)
		}
		for i, e := range events {
			if e.Hash == "" || (i > 0 && e.PrevHash != events[i-1].Hash) {
				t.Errorf("audit list --json event %d lacks its chain: %+v", i, e)
			}
		}
	})

	t.Run("edited row", func(t *testing.T) {
		c := newCLI(t)
		events := c.seedAudit(4)
		c.tamper(`UPDATE audit_events SET reason = 'actor=someone-else' WHERE id = ?`, events[1].ID)
		r := c.run("", "audit", "verify")
		want := fmt.Sprintf("audit chain broken at event %d", events[1].ID)
		if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "edited") {
			t.Errorf("verify after edit: exit %d, want 1 and %q\nstdout: %s\nstderr: %s", r.code, want, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout, "intact") {
			t.Errorf("verify after edit claims the chain is intact:\n%s", r.stdout)
		}
		r = c.run("", "audit", "verify", "--json")
		var res audit.VerifyResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("verify --json after edit: %v\n%s", err, r.stdout)
		}
		if r.code != 1 || res.Intact || res.BrokenID != events[1].ID || res.Problem != audit.ProblemEdited || res.Checked != 1 {
			t.Errorf("verify --json after edit: exit %d, %+v", r.code, res)
		}
	})

	t.Run("deleted row", func(t *testing.T) {
		c := newCLI(t)
		events := c.seedAudit(4)
		c.tamper(`DELETE FROM audit_events WHERE id = ?`, events[2].ID)
		r := c.run("", "audit", "verify")
		want := fmt.Sprintf("audit chain broken at event %d", events[3].ID)
		if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "deleted") {
			t.Errorf("verify after delete: exit %d, want 1 and %q\nstderr: %s", r.code, want, r.stderr)
		}
	})

	t.Run("oldest rows deleted without prune", func(t *testing.T) {
		c := newCLI(t)
		events := c.seedAudit(3)
		c.tamper(`DELETE FROM audit_events WHERE id = ?`, events[0].ID)
		r := c.run("", "audit", "verify")
		if r.code != 0 || !strings.Contains(r.stdout, "audit chain intact: 2 events") ||
			!strings.Contains(r.stderr, "Warning") || !strings.Contains(r.stderr, "no audit.retention event records") {
			t.Errorf("verify after truncation: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestAuditExport(t *testing.T) {
	c := newCLI(t)
	events := c.seedAudit(3)

	readLines := func(t *testing.T, data string) []map[string]any {
		t.Helper()
		var out []map[string]any
		sc := bufio.NewScanner(strings.NewReader(data))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("export line is not JSON (%v): %s", err, sc.Text())
			}
			out = append(out, m)
		}
		return out
	}

	lines := readLines(t, c.ok("", "audit", "export", "--since", "1h"))
	if len(lines) != len(events) {
		t.Fatalf("export --since 1h: %d lines, want %d", len(lines), len(events))
	}
	keys := []string{"chain_key", "client_id", "factor_id", "family_id", "hash", "id", "ip", "prev_hash", "reason", "result", "session_id", "time", "token_id", "type", "user_agent", "user_id"}
	sealer, err := seal.New(c.encryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	chainKeys := audit.ChainKeysOf(sealer)
	for i, l := range lines {
		var got []string
		for k := range l {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("line %d keys %v, want %v", i, got, keys)
		}
		if int64(l["id"].(float64)) != events[i].ID || l["hash"] != events[i].Hash || l["type"] != audit.EventAdminUserCreate {
			t.Errorf("line %d = %v, want event %+v", i, l, events[i])
		}
		// Whoever holds the audit chain key can recompute the chain from the exported fields.
		tm, err := time.Parse(time.RFC3339Nano, l["time"].(string))
		if err != nil {
			t.Fatalf("line %d time: %v", i, err)
		}
		e := storage.AuditEvent{Time: tm, Type: l["type"].(string), UserID: l["user_id"].(string),
			ClientID: l["client_id"].(string), IP: l["ip"].(string), UserAgent: l["user_agent"].(string),
			Result: l["result"].(string), Reason: l["reason"].(string), ChainKey: l["chain_key"].(string),
			TokenID: l["token_id"].(string), FamilyID: l["family_id"].(string), SessionID: l["session_id"].(string), FactorID: l["factor_id"].(string)}
		key, ok := chainKeys[e.ChainKey]
		if !ok {
			t.Fatalf("line %d: chain_key %q is not the CLI's encryption key %s", i, e.ChainKey, sealer.CurrentKeyID())
		}
		if h := storage.KeyedChainHash(key[:], l["prev_hash"].(string), &e); h != l["hash"] {
			t.Errorf("line %d: recomputed hash %s, exported %s", i, h, l["hash"])
		}
	}

	out := filepath.Join(t.TempDir(), "audit.jsonl")
	msg := c.ok("", "audit", "export", "--since", "2000-01-01T00:00:00Z", "--until", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--output", out)
	if !strings.Contains(msg, "Exported 3 audit events to "+out) {
		t.Errorf("export --output message: %q", msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(readLines(t, string(data))); n != 3 {
		t.Errorf("export file holds %d lines, want 3", n)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode: %v, %v", fi.Mode(), err)
	}

	if got := c.ok("", "audit", "export", "--since", "2h", "--until", "1h"); got != "" {
		t.Errorf("export of an empty window printed %q", got)
	}

	for _, args := range [][]string{
		{"audit", "export"},
		{"audit", "export", "--since", "yesterday"},
		{"audit", "export", "--since", "1h", "--until", "soon"},
		{"audit", "export", "--since", "1h", "--until", "2h"},
		{"audit", "export", "--since", "1h", "extra"},
	} {
		if r := c.run("", args...); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("idp %s: exit %d, want 2 with usage\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestAuditPrune(t *testing.T) {
	c := newCLI(t)
	c.ok("", "migrate")

	// Three events from over a year ago, written through the store as the server would.
	st, err := sqlite.Open(context.Background(), c.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	var old []storage.AuditEvent
	for i := range 3 {
		e := storage.AuditEvent{Time: time.Now().Add(-400*24*time.Hour + time.Duration(i)*time.Hour),
			Type: audit.EventLoginPassword, UserID: "someone", Result: audit.ResultSuccess}
		if err := st.AppendAudit(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
		old = append(old, e)
	}
	st.Close()
	recent := c.seedAuditAfter(2, 3)

	for _, args := range [][]string{
		{"audit", "prune"},
		{"audit", "prune", "--older-than", "0s"},
		{"audit", "prune", "--older-than", "-1h"},
		{"audit", "prune", "--older-than", "a year"},
	} {
		if r := c.run("", args...); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("idp %s: exit %d, want 2 with usage\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
	}

	out := c.ok("", "audit", "prune", "--older-than", "8760h")
	if !strings.Contains(out, "Removed 3 audit events") || !strings.Contains(out, old[2].Hash) {
		t.Errorf("prune output:\n%s", out)
	}
	events := c.auditEvents()
	if len(events) != 3 || events[0].ID != recent[0].ID || events[0].PrevHash != old[2].Hash {
		t.Fatalf("after prune: %+v", events)
	}
	ret := events[2]
	if ret.Type != audit.EventRetention || ret.Result != audit.ResultSuccess ||
		!strings.Contains(ret.Reason, "actor=cli") || !strings.Contains(ret.Reason, "removed=3") ||
		!strings.Contains(ret.Reason, audit.RetentionAnchorKey+"="+old[2].Hash) {
		t.Errorf("retention event: %+v", ret)
	}

	r := c.run("", "audit", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "audit chain intact: 3 events") || strings.Contains(r.stderr, "Warning") {
		t.Errorf("verify after prune: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	var res audit.PruneResult
	c.okJSON(&res, "audit", "prune", "--older-than", "8760h", "--json")
	if res.Removed != 0 || res.NewestRemovedHash != "" || res.EventID == 0 {
		t.Errorf("second prune --json: %+v", res)
	}
	c.ok("", "audit", "verify")
}

// seedAuditAfter creates n users through the CLI when the trail already holds before
// events, and returns the n new events.
func (c *cli) seedAuditAfter(n, before int) []auditEventJSON {
	c.t.Helper()
	for i := range n {
		c.createUser(fmt.Sprintf("recent%d@example.com", i), "correct horse battery")
	}
	events := c.auditEvents()
	if len(events) != before+n {
		c.t.Fatalf("audit trail holds %d events, want %d", len(events), before+n)
	}
	return events[before:]
}

func TestAuditHelp(t *testing.T) {
	for _, sub := range []string{"verify", "export", "prune"} {
		c := newCLI(t)
		out := c.ok("", "audit", sub, "--help")
		if !strings.Contains(out, "Usage:") || !strings.Contains(out, "idp audit "+sub) {
			t.Errorf("audit %s --help:\n%s", sub, out)
		}
	}
	if out := newCLI(t).ok("", "audit", "--help"); !strings.Contains(out, "verify") || !strings.Contains(out, "prune") {
		t.Errorf("audit --help lacks the subcommands:\n%s", out)
	}
}

// audit list shows the ids an event concerns and filters by token; audit verify covers
// them.
func TestAuditListIDs(t *testing.T) {
	c := newCLI(t)
	c.seedAudit(1)
	st := c.store()
	sealer, err := seal.New(c.encryptionKey())
	if err != nil {
		t.Fatal(err)
	}
	if !audit.KeyStore(st, sealer) { // the CLI keyed the chain: append as the server does
		t.Fatal("the store takes no audit chain key")
	}
	ev := &storage.AuditEvent{Type: audit.EventTokenIssue, Result: audit.ResultSuccess, ClientID: "svc",
		TokenID: "tok-1", FamilyID: "fam-1", SessionID: "sess-1", FactorID: "fac-1"}
	if err := st.AppendAudit(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	var got []auditEventJSON
	c.okJSON(&got, "audit", "list", "--token", "tok-1", "--json")
	if len(got) != 1 || got[0].TokenID != "tok-1" || got[0].FamilyID != "fam-1" || got[0].SessionID != "sess-1" || got[0].FactorID != "fac-1" {
		t.Fatalf("audit list --token tok-1 --json = %+v", got)
	}
	if out := c.ok("", "audit", "list"); !strings.Contains(out, "token=tok-1 family=fam-1 session=sess-1 factor=fac-1") {
		t.Fatalf("audit list does not show the ids:\n%s", out)
	}
	if out := c.ok("", "audit", "verify"); !strings.Contains(out, "audit chain intact: 2 events") {
		t.Fatalf("audit verify:\n%s", out)
	}
}
