package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/conformance"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// One batch of three issues whose middle one fails: the other two commit with their
// events, chained to each other, and the failed one leaves nothing behind.
func TestBatchJobFailsAlone(t *testing.T) {
	s := newStore(t)
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
	errs := s.RunIssueBatch(ctx, []*storage.TokenIssue{a, b, c})
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
}

// pipelineIssue is an issue of access token id with n audit events naming it.
func pipelineIssue(id string, n int, now time.Time) *storage.TokenIssue {
	w := &storage.TokenIssue{Access: &storage.AccessToken{ID: id, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}
	for range n {
		w.Events = append(w.Events, &storage.AuditEvent{Time: now, Type: "token.issue", Result: "success", TokenID: id})
	}
	return w
}

// pipelineRefresh is a refresh token id of family fam.
func pipelineRefresh(id, fam string, now time.Time) *storage.RefreshToken {
	return &storage.RefreshToken{ID: id, TokenHash: "h-" + id, FamilyID: fam, ClientID: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// A batch that succeeds runs pipelined: its events are stored in queue order, each
// linked to the one before, with the ids, hashes and counts handed back to the jobs.
func TestBatchPipelinedChain(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	for _, rt := range []*storage.RefreshToken{pipelineRefresh("rt-1", "f1", now), pipelineRefresh("rt-2", "f2", now), pipelineRefresh("rt-3", "f2", now)} {
		if err := s.IssueTokens(ctx, &storage.TokenIssue{Refresh: rt}); err != nil {
			t.Fatal(err)
		}
	}
	a := pipelineIssue("at-a", 2, now)
	rot := pipelineIssue("at-r", 1, now)
	rot.RotateID, rot.RotatedAt, rot.RequireCurrent, rot.Refresh = "rt-1", now, "rt-1", pipelineRefresh("rt-1b", "f1", now)
	rev := &storage.TokenIssue{RevokeFamily: "f2", RevokedAt: now,
		Events: []*storage.AuditEvent{{Time: now, Type: "token.reuse", Result: "failure", FamilyID: "f2"}}}
	c := pipelineIssue("at-c", 2, now)
	ws := []*storage.TokenIssue{a, rot, rev, c}
	for i, err := range s.RunIssueBatch(ctx, ws) {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if rev.Revoked != 2 {
		t.Fatalf("revoked %d, want 2", rev.Revoked)
	}
	var sent []*storage.AuditEvent
	for _, w := range ws {
		sent = append(sent, w.Events...)
	}
	got, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sent) {
		t.Fatalf("%d events stored, want %d", len(got), len(sent))
	}
	for i, e := range got {
		if e.ID != sent[i].ID || e.Hash != sent[i].Hash || e.PrevHash != sent[i].PrevHash || e.Type != sent[i].Type {
			t.Fatalf("event %d stored %+v, job has %+v", i, e, *sent[i])
		}
		if i > 0 && (e.PrevHash != got[i-1].Hash || e.ID <= got[i-1].ID) {
			t.Fatalf("event %d (id %d) does not follow event %d (id %d)", i, e.ID, i-1, got[i-1].ID)
		}
		if e.Hash != storage.ChainHash(e.PrevHash, &got[i]) {
			t.Fatalf("event %d: hash does not cover it", i)
		}
	}
	old, err := s.GetRefreshToken(ctx, "rt-1")
	if err != nil || old.RotatedAt.IsZero() || old.SuccessorID != "rt-1b" {
		t.Fatalf("rt-1 %+v, %v: want rotated to rt-1b", old, err)
	}
}

// Conflicts inside one batch fail only their own job: the second rotation of a token
// and an issue requiring a token the batch already rotated get ErrConflict, a
// rotation of a missing token ErrNotFound; the others commit.
func TestBatchConflictsFailAlone(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	if err := s.IssueTokens(ctx, &storage.TokenIssue{Refresh: pipelineRefresh("rt-1", "f1", now)}); err != nil {
		t.Fatal(err)
	}
	rotate := func(id, from, next string) *storage.TokenIssue {
		w := pipelineIssue(id, 1, now)
		w.RotateID, w.RotatedAt, w.Refresh = from, now, pipelineRefresh(next, "f1", now)
		return w
	}
	first, second := rotate("at-1", "rt-1", "rt-1b"), rotate("at-2", "rt-1", "rt-1c")
	stale := pipelineIssue("at-3", 1, now)
	stale.RequireCurrent = "rt-1"
	missing := rotate("at-4", "rt-x", "rt-xb")
	ok := pipelineIssue("at-5", 1, now)
	errs := s.RunIssueBatch(ctx, []*storage.TokenIssue{first, second, stale, missing, ok})
	want := []error{nil, storage.ErrConflict, storage.ErrConflict, storage.ErrNotFound, nil}
	for i := range want {
		if (want[i] == nil) != (errs[i] == nil) || (want[i] != nil && !errors.Is(errs[i], want[i])) {
			t.Fatalf("errors %v, want %v", errs, want)
		}
	}
	for id, stored := range map[string]bool{"at-1": true, "at-2": false, "at-3": false, "at-4": false, "at-5": true} {
		if _, err := s.GetAccessToken(ctx, id); (err == nil) != stored {
			t.Fatalf("%s stored: %v, want %v", id, err == nil, stored)
		}
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].TokenID != "at-1" || evs[1].TokenID != "at-5" || evs[1].PrevHash != evs[0].Hash {
		t.Fatalf("events %+v, want at-1 then at-5 chained", evs)
	}
}

// Two processes append to one chain: a batch that assumed the head its process left
// last finds it moved by the other and is linked to the real head instead, and a
// retention delete that empties the chain is noticed the same way. The chain stays one
// unbroken list in id order.
func TestBatchHeadMovedByAnotherProcess(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := openStore(t, url), openStore(t, url)
	ctx := t.Context()
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Microsecond)
	issue := func(s *postgres.Store, id string) {
		t.Helper()
		if err := s.IssueTokens(ctx, pipelineIssue(id, 2, now)); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	issue(a, "at-a1")
	issue(b, "at-b1")
	issue(a, "at-a2")
	issue(a, "at-a3")
	if _, err := a.DeleteAuditBefore(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	issue(a, "at-a4")
	issue(b, "at-b2")
	issue(a, "at-a5")
	_, order := chainedEvents(t, a)
	want := []string{"at-a4", "at-a4", "at-b2", "at-b2", "at-a5", "at-a5"}
	if !slices.Equal(order, want) {
		t.Fatalf("events %v, want %v", order, want)
	}
}

// A batch of the writer's largest size, many statements per job, goes through the
// pipeline whole.
func TestBatchLargePipeline(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	ws := make([]*storage.TokenIssue, 256)
	for i := range ws {
		ws[i] = pipelineIssue(fmt.Sprintf("at-%03d", i), 3, now)
	}
	for i, err := range s.RunIssueBatch(ctx, ws) {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3*len(ws) || evs[len(evs)-1].TokenID != "at-255" || evs[len(evs)-1].ID != ws[255].Events[2].ID {
		t.Fatalf("%d events, want %d ending with at-255's", len(evs), 3*len(ws))
	}
}

// A process appending alone links each batch to the head its previous batch left
// without a rolled-back attempt: the events' ids follow one another with no gap (a
// speculation that missed would have spent ids of the sequence).
func TestBatchSpeculationHolds(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	var ids []int64
	for i := range 5 {
		w := pipelineIssue(fmt.Sprintf("at-%d", i), 2, now)
		if err := s.IssueTokens(ctx, w); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.Events[0].ID, w.Events[1].ID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] != ids[i-1]+1 {
			t.Fatalf("event ids %v: a batch was rolled back", ids)
		}
	}
}

// chainedEvents lists the store's audit events, fails the test unless they form one
// chain from its start (conformance.WantChain), and returns them with the token id each
// names.
func chainedEvents(t *testing.T, s *postgres.Store) ([]storage.AuditEvent, []string) {
	t.Helper()
	evs := conformance.WantChain(t, s)
	order := make([]string, len(evs))
	for i, e := range evs {
		order[i] = e.TokenID
	}
	return evs, order
}

// tripTracer records what a store's pool sends: each batch (its statements' SQL) and
// each query sent on its own (a COMMIT, a ROLLBACK).
type tripTracer struct {
	mu      sync.Mutex
	batches [][]string
	queries []string
}

func (tr *tripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = append(tr.queries, d.SQL)
	return ctx
}

func (tr *tripTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr *tripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var sqls []string
	for _, q := range d.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.batches = append(tr.batches, sqls)
	return ctx
}

func (tr *tripTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (tr *tripTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// take returns what was sent since the last call and forgets it.
func (tr *tripTracer) take() (batches [][]string, queries []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	batches, queries = tr.batches, tr.queries
	tr.batches, tr.queries = nil, nil
	return batches, queries
}

// newTracedStore returns a migrated store on a fresh database whose pool reports to the
// returned tracer.
func newTracedStore(t *testing.T) (*postgres.Store, *tripTracer) {
	t.Helper()
	tr := &tripTracer{}
	s, err := postgres.OpenTraced(t.Context(), pgtest.NewDatabase(t), tr)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, tr
}

// A batch goes to the server with its commit in one round trip (one batch, no BEGIN or
// COMMIT of its own, the head checked by the server), a rotation, whose UPDATE must
// match a row, as well as a plain issue.
func TestBatchOneRoundTrip(t *testing.T) {
	s, tr := newTracedStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	// The first batch has no head to assume: it reads it.
	if err := s.IssueTokens(ctx, &storage.TokenIssue{Refresh: pipelineRefresh("rt-1", "f1", now)}); err != nil {
		t.Fatal(err)
	}
	tr.take()
	if err := s.IssueTokens(ctx, pipelineIssue("at-1", 2, now)); err != nil {
		t.Fatal(err)
	}
	batches, queries := tr.take()
	if len(batches) != 1 || len(queries) != 0 {
		t.Fatalf("an unchecked issue sent batches %q and queries %q, want one batch and nothing else", batches, queries)
	}
	if b := batches[0]; len(b) < 2 || !strings.Contains(b[0], "pg_advisory_xact_lock") ||
		!strings.Contains(b[1], "openidp_require_audit_head") || slices.ContainsFunc(b, isTxControl) {
		t.Fatalf("batch %q: want the lock, the head check, the statements, and no BEGIN or COMMIT", b)
	}
	rot := pipelineIssue("at-2", 1, now)
	rot.RotateID, rot.RotatedAt, rot.Refresh = "rt-1", now, pipelineRefresh("rt-1b", "f1", now)
	if err := s.IssueTokens(ctx, rot); err != nil {
		t.Fatal(err)
	}
	batches, queries = tr.take()
	if len(batches) != 1 || len(queries) != 0 || slices.ContainsFunc(batches[0], isTxControl) {
		t.Fatalf("a rotation sent batches %q and queries %q, want one batch and nothing else", batches, queries)
	}
	if rt, err := s.GetRefreshToken(ctx, "rt-1"); err != nil || rt.SuccessorID != "rt-1b" {
		t.Fatalf("rt-1 %+v, %v: want rotated to rt-1b", rt, err)
	}
	if _, order := chainedEvents(t, s); !slices.Equal(order, []string{"at-1", "at-1", "at-2"}) {
		t.Fatalf("events %v, want at-1's two, then at-2's", order)
	}
}

func isTxControl(sql string) bool {
	s := strings.ToLower(strings.TrimSpace(sql))
	return strings.HasPrefix(s, "begin") || strings.HasPrefix(s, "commit") || strings.HasPrefix(s, "rollback")
}

// A batch sent in one round trip is one transaction: when one of its jobs fails on the
// server (an access token id already taken), nothing of the batch commits, and the
// batch runs again job by job, so the failing job fails alone and each other one
// commits exactly once, its events chained.
func TestBatchOneTripJobFailsAlone(t *testing.T) {
	s, tr := newTracedStore(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	if err := s.IssueTokens(ctx, pipelineIssue("at-taken", 1, now)); err != nil {
		t.Fatal(err)
	}
	tr.take()
	a, dup, c := pipelineIssue("at-a", 1, now), pipelineIssue("at-taken", 1, now), pipelineIssue("at-c", 1, now)
	errs := s.RunIssueBatch(ctx, []*storage.TokenIssue{a, dup, c})
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors %v, want [nil error nil]", errs)
	}
	if batches, _ := tr.take(); len(batches) == 0 || !strings.Contains(strings.Join(batches[0], " "), "openidp_require_audit_head") {
		t.Fatalf("first batch sent %q, want the one-round-trip batch", batches)
	}
	evs, order := chainedEvents(t, s)
	if want := []string{"at-taken", "at-a", "at-c"}; !slices.Equal(order, want) {
		t.Fatalf("events %v, want %v", order, want)
	}
	if a.Events[0].ID != evs[1].ID || c.Events[0].ID != evs[2].ID {
		t.Fatalf("jobs were handed event ids %d and %d, stored %d and %d", a.Events[0].ID, c.Events[0].ID, evs[1].ID, evs[2].ID)
	}
}
