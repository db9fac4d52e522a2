package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// One batch of three issues whose middle one fails: the other two commit with their
// events, chained to each other, and the failed one leaves nothing behind.
func TestBatchJobFailsAlone(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	issue := func(id string) *storage.TokenIssue {
		return &storage.TokenIssue{
			Access: &storage.AccessToken{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			Events: []*storage.AuditEvent{{Time: now, Type: "token.issue", Result: "success", TokenID: id}},
		}
	}
	a, b, c := issue("at-a"), issue("at-b"), issue("at-c")
	b.RotateID, b.RotatedAt = "rt-missing", now
	b.Refresh = &storage.RefreshToken{ID: "rt-b", TokenHash: "h-b", FamilyID: "f", ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	errs := s.runBatch(ctx, []writeJob{issueJob(a), issueJob(b), issueJob(c)})
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], storage.ErrNotFound) {
		t.Fatalf("errors %v, want [nil ErrNotFound nil]", errs)
	}
	for id, want := range map[string]bool{"at-a": true, "at-b": false, "at-c": true} {
		if _, err := s.GetAccessToken(ctx, id); (err == nil) != want {
			t.Fatalf("%s stored: %v, want %v", id, err == nil, want)
		}
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].TokenID != "at-a" || evs[1].TokenID != "at-c" || evs[1].PrevHash != evs[0].Hash ||
		evs[1].Hash != storage.ChainHash(evs[1].PrevHash, &evs[1]) {
		t.Fatalf("events %+v, want at-a then at-c chained", evs)
	}
	if got := s.Commits(); got != 0 {
		t.Fatalf("Commits() = %d: runBatch called directly is not counted by the writer", got)
	}
}

// A batch commits with synchronous=FULL (fsynced before it is answered: tokens and audit
// events survive a power loss); the writer's connection is back at NORMAL afterwards.
func TestBatchCommitsFull(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	var inBatch int
	errs := s.runBatch(ctx, []writeJob{func(ctx context.Context, tx *sql.Tx, _ *chainHead) error {
		return tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&inBatch)
	}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if inBatch != 2 {
		t.Fatalf("a batch ran with synchronous=%d, want 2 (FULL)", inBatch)
	}
	var after int
	if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != 1 {
		t.Fatalf("the writer's connection is at synchronous=%d after a batch, want 1 (NORMAL)", after)
	}
}
