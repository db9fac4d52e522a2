package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/sqlite"
)

// auditRawDB is a second, raw connection to a store's database, as someone tampering
// with the audit table would use.
type auditRawDB struct {
	postgres bool
	exec     func(ctx context.Context, query string, args ...any) error
}

// run executes the SQLite or the PostgreSQL form of a statement, whichever applies.
func (r auditRawDB) run(t *testing.T, sqliteQuery, postgresQuery string, args ...any) {
	t.Helper()
	q := sqliteQuery
	if r.postgres {
		q = postgresQuery
	}
	if err := r.exec(t.Context(), q, args...); err != nil {
		t.Fatalf("raw SQL %q: %v", q, err)
	}
}

// at is t as a query argument for the time column of audit_events.
func (r auditRawDB) at(t time.Time) any {
	if r.postgres {
		return t
	}
	return t.UnixNano()
}

// auditChainBackends are the real stores the verifier is tested on, each with a raw
// connection to the same database.
var auditChainBackends = []struct {
	name string
	open func(t *testing.T) (storage.Storage, auditRawDB)
}{
	{"sqlite", func(t *testing.T) (storage.Storage, auditRawDB) {
		path := filepath.Join(t.TempDir(), "idp.db")
		st, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return st, auditRawDB{exec: func(ctx context.Context, q string, args ...any) error {
			_, err := db.ExecContext(ctx, q, args...)
			return err
		}}
	}},
	{"postgres", func(t *testing.T) (storage.Storage, auditRawDB) {
		dsn := pgtest.NewDatabase(t)
		st, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return st, auditRawDB{postgres: true, exec: func(ctx context.Context, q string, args ...any) error {
			_, err := conn.Exec(ctx, q, args...)
			return err
		}}
	}},
}

// appendAuditEvents appends n events an hour apart, ending now, and returns them.
func appendAuditEvents(t *testing.T, st storage.Storage, n int) []storage.AuditEvent {
	t.Helper()
	now := time.Now()
	var out []storage.AuditEvent
	for i := range n {
		e := storage.AuditEvent{
			Time:      now.Add(time.Duration(i-n+1) * time.Hour),
			Type:      audit.EventLoginPassword,
			UserID:    fmt.Sprintf("user-%d", i),
			ClientID:  "app",
			IP:        "192.0.2.10",
			UserAgent: "Mozilla/5.0",
			Result:    audit.ResultFailure,
			Reason:    "bad password",
		}
		if err := st.AppendAudit(t.Context(), &e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		out = append(out, e)
	}
	return out
}

func verifyAudit(t *testing.T, st storage.Storage) audit.VerifyResult {
	t.Helper()
	res, err := audit.VerifyChain(t.Context(), st, nil)
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	return res
}

// wantBroken checks that res reports a break of kind problem at event id.
func wantBroken(t *testing.T, res audit.VerifyResult, id int64, problem string, checked int) {
	t.Helper()
	if res.Intact || res.BrokenID != id || res.Problem != problem || res.Checked != checked || res.Reason == "" {
		t.Errorf("result %+v, want broken at id %d (%s) after %d checked", res, id, problem, checked)
	}
	if !strings.Contains(res.Reason, fmt.Sprintf("event %d", id)) {
		t.Errorf("reason %q does not name event %d", res.Reason, id)
	}
}

func TestVerifyAuditChain(t *testing.T) {
	for _, b := range auditChainBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("empty trail", func(t *testing.T) {
				st, _ := b.open(t)
				if res := verifyAudit(t, st); !res.Intact || res.Checked != 0 || res.BrokenID != 0 {
					t.Errorf("empty trail: %+v", res)
				}
			})

			t.Run("intact chain", func(t *testing.T) {
				st, _ := b.open(t)
				evs := appendAuditEvents(t, st, 6)
				res := verifyAudit(t, st)
				if !res.Intact || res.Checked != 6 || res.Unchained != 0 || res.BrokenID != 0 {
					t.Fatalf("intact chain: %+v", res)
				}
				if res.FirstID != evs[0].ID || res.LastID != evs[5].ID || res.Head != evs[5].Hash ||
					res.Anchor != "" || !res.AnchorRecorded {
					t.Errorf("intact chain: %+v, want ids %d..%d, head %s, no anchor", res, evs[0].ID, evs[5].ID, evs[5].Hash)
				}
			})

			t.Run("edited row", func(t *testing.T) {
				st, raw := b.open(t)
				evs := appendAuditEvents(t, st, 6)
				raw.run(t, `UPDATE audit_events SET reason = ? WHERE id = ?`,
					`UPDATE audit_events SET reason = $1 WHERE id = $2`, "nothing to see", evs[2].ID)
				wantBroken(t, verifyAudit(t, st), evs[2].ID, audit.ProblemEdited, 2)
			})

			t.Run("edited time", func(t *testing.T) {
				st, raw := b.open(t)
				evs := appendAuditEvents(t, st, 4)
				raw.run(t, `UPDATE audit_events SET occurred_at = occurred_at - 1000 WHERE id = ?`,
					`UPDATE audit_events SET time = time - interval '1 second' WHERE id = $1`, evs[3].ID)
				wantBroken(t, verifyAudit(t, st), evs[3].ID, audit.ProblemEdited, 3)
			})

			t.Run("deleted middle row", func(t *testing.T) {
				st, raw := b.open(t)
				evs := appendAuditEvents(t, st, 6)
				raw.run(t, `DELETE FROM audit_events WHERE id = ?`, `DELETE FROM audit_events WHERE id = $1`, evs[3].ID)
				wantBroken(t, verifyAudit(t, st), evs[4].ID, audit.ProblemDeletedOrInserted, 3)
			})

			t.Run("inserted row", func(t *testing.T) {
				st, raw := b.open(t)
				evs := appendAuditEvents(t, st, 3)
				forged := storage.AuditEvent{Time: time.Now(), Type: audit.EventLoginPassword, UserID: "user-0",
					Result: audit.ResultSuccess, PrevHash: strings.Repeat("ab", 32)}
				forged.Hash = storage.ChainHash(forged.PrevHash, &forged)
				// SQLite itself refuses an event that does not link to the newest
				// (TestAuditForkRefused); someone with write access drops that guard first.
				raw.run(t, `DROP TRIGGER audit_events_link`, `SELECT 1`)
				raw.run(t,
					`INSERT INTO audit_events (occurred_at, type, user_id, result, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)`,
					`INSERT INTO audit_events (time, type, user_id, result, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6)`,
					raw.at(forged.Time.Truncate(time.Microsecond)), forged.Type, forged.UserID, forged.Result, forged.PrevHash, forged.Hash)
				all, err := st.ListAudit(t.Context(), storage.AuditFilter{})
				if err != nil || len(all) != 4 {
					t.Fatalf("ListAudit: %d events, %v", len(all), err)
				}
				wantBroken(t, verifyAudit(t, st), all[3].ID, audit.ProblemDeletedOrInserted, len(evs))
			})

			t.Run("row without hash after the chain", func(t *testing.T) {
				st, raw := b.open(t)
				evs := appendAuditEvents(t, st, 3)
				raw.run(t, `UPDATE audit_events SET prev_hash = '', hash = '' WHERE id = ?`,
					`UPDATE audit_events SET prev_hash = '', hash = '' WHERE id = $1`, evs[2].ID)
				wantBroken(t, verifyAudit(t, st), evs[2].ID, audit.ProblemUnchained, 2)
			})

			t.Run("rows from before the chain", func(t *testing.T) {
				st, raw := b.open(t)
				for range 2 {
					raw.run(t, `INSERT INTO audit_events (occurred_at, type, result) VALUES (?, 'login.password', 'success')`,
						`INSERT INTO audit_events (time, type, result) VALUES ($1, 'login.password', 'success')`,
						raw.at(time.Now().Add(-48*time.Hour)))
				}
				evs := appendAuditEvents(t, st, 3)
				if evs[0].PrevHash != "" {
					t.Errorf("first chained event after unchained rows: PrevHash %q, want \"\"", evs[0].PrevHash)
				}
				res := verifyAudit(t, st)
				if !res.Intact || res.Unchained != 2 || res.Checked != 3 || res.FirstID != evs[0].ID {
					t.Errorf("unchained rows then chain: %+v", res)
				}
			})

			t.Run("retention keeps the chain verifiable", func(t *testing.T) {
				st, _ := b.open(t)
				evs := appendAuditEvents(t, st, 6)
				n, err := st.DeleteAuditBefore(t.Context(), evs[2].Time)
				if err != nil || n != 2 {
					t.Fatalf("DeleteAuditBefore: %d, %v; want 2", n, err)
				}
				res := verifyAudit(t, st)
				if !res.Intact || res.Checked != 4 || res.Anchor != evs[1].Hash || res.FirstID != evs[2].ID {
					t.Fatalf("after retention: %+v, want intact from id %d anchored at %s", res, evs[2].ID, evs[1].Hash)
				}
				if res.AnchorRecorded {
					t.Errorf("anchor reported recorded without a retention event: %+v", res)
				}
				rec := storage.AuditEvent{Time: time.Now(), Type: audit.EventRetention, Result: audit.ResultSuccess,
					Reason: fmt.Sprintf("actor=test removed=2 %s=%s", audit.RetentionAnchorKey, evs[1].Hash)}
				if err := st.AppendAudit(t.Context(), &rec); err != nil {
					t.Fatal(err)
				}
				if res := verifyAudit(t, st); !res.Intact || !res.AnchorRecorded || res.Checked != 5 {
					t.Errorf("after recording the retention: %+v", res)
				}
			})
		})
	}
}
