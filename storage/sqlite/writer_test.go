package sqlite

import (
	"context"
	"errors"
	"fmt"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage/internal/groupcommit"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// A job is answered only after its batch's commit has been flushed to the disk: the
// writer's Sync flushes the write-ahead log (fdatasync) after the commit, and when that
// fails the job fails, although its transaction committed.
func TestBatchSyncedBeforeAnswer(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	var syncs atomic.Int64
	var committedAtSync atomic.Bool
	s.w.Close()
	opt := writerOptions
	opt.Sync = func(ctx context.Context) error {
		syncs.Add(1)
		// What the batch wrote is committed (visible to a reader) when Sync runs.
		var n int
		if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM access_tokens`).Scan(&n); err == nil && n > 0 {
			committedAtSync.Store(true)
		}
		return s.syncWAL(ctx)
	}
	s.w = groupcommit.New(s.runBatch, opt)
	now := time.Now()
	issue := func(id string) *storage.TokenIssue {
		return &storage.TokenIssue{Access: &storage.AccessToken{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}
	}
	if err := s.IssueTokens(ctx, issue("at-1")); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() != 1 || !committedAtSync.Load() {
		t.Fatalf("%d syncs, committed when synced: %v; want one, after the commit", syncs.Load(), committedAtSync.Load())
	}
	if n, spent := s.Flushes(); n != 1 || spent <= 0 {
		t.Fatalf("Flushes() = %d, %v; want the one flush and its time", n, spent)
	}
	// The log cannot be flushed: the job fails.
	s.walPath = filepath.Join(t.TempDir(), "missing-wal")
	err := s.IssueTokens(ctx, issue("at-2"))
	if err == nil || !strings.Contains(err.Error(), "flush the write-ahead log") {
		t.Fatalf("IssueTokens with the log unflushable: %v, want the flush error", err)
	}
	if n, _ := s.Flushes(); n != 2 {
		t.Fatalf("Flushes() = %d after a failed flush, want 2 (failed ones count)", n)
	}
}

// An issue's WhileWriting runs once its transaction has committed (a reader sees the
// token) and while the write-ahead log is flushed (the flush here waits for it: were it
// run after the flush, the flush would time out and fail the issue), and IssueTokens
// returns after both; a failing flush is the issue's error even when WhileWriting
// succeeded.
func TestIssueWhileWriting(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	ran := make(chan struct{}, 1)
	var synced atomic.Bool
	s.w.Close()
	opt := writerOptions
	opt.Sync = func(ctx context.Context) error {
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			return errors.New("WhileWriting did not run during the flush")
		}
		err := s.syncWAL(ctx)
		synced.Store(true)
		return err
	}
	s.w = groupcommit.New(s.runBatch, opt)
	now := time.Now()
	issue := func(id string) *storage.TokenIssue {
		return &storage.TokenIssue{Access: &storage.AccessToken{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			WhileWriting: func() error { ran <- struct{}{}; return nil }}
	}
	var visible bool
	w := issue("at-1")
	w.WhileWriting = func() error {
		_, err := s.GetAccessToken(ctx, "at-1")
		visible = err == nil
		ran <- struct{}{}
		return nil
	}
	if err := s.IssueTokens(ctx, w); err != nil || !visible || !synced.Load() {
		t.Fatalf("IssueTokens: %v; WhileWriting saw the token committed: %v; flushed on return: %v", err, visible, synced.Load())
	}
	s.walPath = filepath.Join(t.TempDir(), "missing-wal")
	err := s.IssueTokens(ctx, issue("at-2"))
	if err == nil || !strings.Contains(err.Error(), "flush the write-ahead log") {
		t.Fatalf("IssueTokens with the log unflushable: %v, want the flush error", err)
	}
}

// An event that does not link to the newest event — a fork, or a skip — is refused by
// the database itself (migration 0019's trigger).
func TestAuditForkRefused(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	for range 2 {
		if err := s.AppendAudit(ctx, &storage.AuditEvent{Type: "test", Result: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %v, %v", evs, err)
	}
	for _, prev := range []string{evs[0].Hash, "", "0000"} { // the older event: a fork; none; made up
		_, err := s.db.ExecContext(ctx, `INSERT INTO audit_events (occurred_at, type, prev_hash, hash) VALUES (?, 'forged', ?, 'x')`,
			time.Now().UnixNano(), prev)
		if err == nil || !strings.Contains(err.Error(), "must link to the newest event") {
			t.Fatalf("insert linking to %q: %v, want it refused", prev, err)
		}
	}
	// Linking to the newest is accepted.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO audit_events (occurred_at, type, prev_hash, hash) VALUES (?, 'next', ?, 'y')`,
		time.Now().UnixNano(), evs[1].Hash); err != nil {
		t.Fatalf("insert linking to the newest: %v", err)
	}
}

// The background checkpointer copies the WAL into the database file while the writer
// never checkpoints by itself (below 20,000 pages): after a burst of writes, the WAL is
// fully copied within a few checkpoint intervals and the writer starts it over.
func TestBackgroundCheckpoints(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	now := time.Now()
	for i := range 200 {
		id := secret.NewSortableID()
		if err := s.IssueTokens(ctx, &storage.TokenIssue{Access: &storage.AccessToken{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			Events: []*storage.AuditEvent{{Type: "token.issue", Result: "success", TokenID: id, Reason: fmt.Sprint(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	runs := s.ckpt.runs.Load()
	deadline := time.Now().Add(10 * time.Second)
	for {
		last := s.ckpt.last.Load()
		logFrames, copied := last>>32, last&0xffffffff
		if s.ckpt.runs.Load() > runs+1 && logFrames > 0 && logFrames == copied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpointer ran %d times, last: WAL %d frames, %d copied", s.ckpt.runs.Load()-runs, logFrames, copied)
		}
		time.Sleep(checkpointInterval)
	}
	if n := s.ckpt.errors.Load(); n != 0 {
		t.Fatalf("%d checkpoints failed", n)
	}
}
