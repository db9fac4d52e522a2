package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// errNoLoser is a loser error for race that no call returns: every call must succeed.
var errNoLoser = errors.New("conformance: no call may fail")

// testAuditChain checks the hash chain of the audit trail on one store, in phases that
// build on each other: sequential appends, concurrent appends, then retention.
func testAuditChain(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()

	// appended maps an event id to the event as AppendAudit returned it.
	appended := map[int64]storage.AuditEvent{}
	appendOne := func(t *testing.T, e *storage.AuditEvent) {
		t.Helper()
		must(t, s.AppendAudit(ctx, e))
		if e.Hash == "" {
			t.Fatalf("AppendAudit left Hash empty: %+v", e)
		}
		if want := storage.ChainHash(e.PrevHash, e); e.Hash != want {
			t.Fatalf("AppendAudit set Hash %s, want ChainHash(PrevHash, e) = %s", e.Hash, want)
		}
		appended[e.ID] = *e
	}
	// listChain reads every event and checks that they form one chain from anchor.
	listChain := func(t *testing.T, anchor string) []storage.AuditEvent {
		t.Helper()
		events, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		checkChain(t, events, anchor, appended)
		return events
	}

	var seq []*storage.AuditEvent
	if !t.Run("sequential appends link", func(t *testing.T) {
		for i := range 5 {
			e := &storage.AuditEvent{
				Time:      now.Add(time.Duration(i-10) * time.Hour),
				Type:      "login.password",
				UserID:    fmt.Sprintf("user-%d", i),
				ClientID:  "client-1",
				IP:        "192.0.2.1",
				UserAgent: "ua \"quoted\" ünïcode",
				Result:    "failure",
				Reason:    fmt.Sprintf("attempt %d\nwith newline", i),
			}
			if i == 3 {
				// Nanoseconds the database may drop: the hash covers microseconds only.
				e.Time = e.Time.Add(789 * time.Nanosecond)
			}
			appendOne(t, e)
			if i == 0 && e.PrevHash != "" {
				t.Errorf("first event of an empty store: PrevHash %q, want \"\"", e.PrevHash)
			}
			if i > 0 && e.PrevHash != seq[i-1].Hash {
				t.Errorf("event %d: PrevHash %s, want the previous Hash %s", i, e.PrevHash, seq[i-1].Hash)
			}
			seq = append(seq, e)
		}
		events := listChain(t, "")
		if len(events) != len(seq) {
			t.Fatalf("ListAudit returned %d events, want %d", len(events), len(seq))
		}
		newest, err := s.ListAudit(ctx, storage.AuditFilter{Limit: 1})
		must(t, err)
		if len(newest) != 1 || newest[0].Hash != seq[4].Hash || newest[0].PrevHash != seq[3].Hash {
			t.Errorf("ListAudit(Limit 1) = %+v, want the newest event with its hashes", newest)
		}
		filtered, err := s.ListAudit(ctx, storage.AuditFilter{UserID: "user-2"})
		must(t, err)
		if len(filtered) != 1 || filtered[0].Hash != seq[2].Hash || filtered[0].PrevHash != seq[1].Hash {
			t.Errorf("ListAudit(UserID) = %+v, want event 2 with its hashes", filtered)
		}
	}) {
		return
	}

	if !t.Run("concurrent appends form one chain", func(t *testing.T) {
		results := make([]storage.AuditEvent, concurrency)
		wins := race(t, concurrency, errNoLoser, func(i int) error {
			e := &storage.AuditEvent{
				Time:   now.Add(-time.Hour),
				Type:   "token.issue",
				UserID: fmt.Sprintf("racer-%d", i),
				Result: "success",
			}
			err := s.AppendAudit(ctx, e)
			results[i] = *e
			return err
		})
		if wins != concurrency {
			t.Fatalf("%d of %d concurrent appends succeeded, want all", wins, concurrency)
		}
		for _, e := range results {
			appended[e.ID] = e
		}
		events := listChain(t, "")
		if want := len(seq) + concurrency; len(events) != want {
			t.Fatalf("ListAudit returned %d events, want %d", len(events), want)
		}
	}) {
		return
	}

	t.Run("retention removes only older events", func(t *testing.T) {
		// seq[0] and seq[1] are older than cut; seq[2] is exactly at it and stays.
		cut := seq[2].Time
		n, err := s.DeleteAuditBefore(ctx, cut)
		must(t, err)
		if n != 2 {
			t.Fatalf("DeleteAuditBefore removed %d events, want 2", n)
		}
		events := listChain(t, seq[1].Hash)
		if len(events) != 3+concurrency || events[0].ID != seq[2].ID {
			t.Fatalf("after retention: %d events starting at id %d, want %d starting at %d",
				len(events), events[0].ID, 3+concurrency, seq[2].ID)
		}
		n, err = s.DeleteAuditBefore(ctx, cut)
		must(t, err)
		if n != 0 {
			t.Errorf("DeleteAuditBefore again removed %d events, want 0", n)
		}

		// Everything of the sequential phase, none of the concurrent one.
		n, err = s.DeleteAuditBefore(ctx, now.Add(-2*time.Hour))
		must(t, err)
		if n != 3 {
			t.Fatalf("DeleteAuditBefore removed %d events, want 3", n)
		}
		events = listChain(t, seq[4].Hash)
		if len(events) != concurrency {
			t.Fatalf("after second retention: %d events, want %d", len(events), concurrency)
		}

		// Appends continue the retained chain.
		next := &storage.AuditEvent{Time: now, Type: "audit.retention", Result: "success", Reason: "removed=3"}
		appendOne(t, next)
		if last := events[len(events)-1]; next.PrevHash != last.Hash {
			t.Errorf("append after retention: PrevHash %s, want the newest Hash %s", next.PrevHash, last.Hash)
		}
		listChain(t, seq[4].Hash)

		// Removing everything: the next append starts a new chain.
		n, err = s.DeleteAuditBefore(ctx, now.Add(time.Hour))
		must(t, err)
		if n != int64(concurrency+1) {
			t.Fatalf("DeleteAuditBefore(future) removed %d events, want %d", n, concurrency+1)
		}
		events, err = s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		if len(events) != 0 {
			t.Fatalf("after removing everything ListAudit returned %d events", len(events))
		}
		first := &storage.AuditEvent{Time: now, Type: "logout", Result: "success"}
		appendOne(t, first)
		if first.PrevHash != "" {
			t.Errorf("first event after removing everything: PrevHash %q, want \"\"", first.PrevHash)
		}
		listChain(t, "")
	})
}

// checkChain checks that events (oldest first) form one unbroken chain: the first
// event's PrevHash is anchor, every later PrevHash is the Hash before it (so no two
// events share a PrevHash), every Hash is ChainHash recomputed from the stored row, ids
// increase, and each event reads back with the hashes AppendAudit returned for it.
func checkChain(t *testing.T, events []storage.AuditEvent, anchor string, appended map[int64]storage.AuditEvent) {
	t.Helper()
	prev := anchor
	seen := map[string]int64{}
	for i, e := range events {
		if i > 0 && e.ID <= events[i-1].ID {
			t.Errorf("event %d: id %d not above the previous id %d", i, e.ID, events[i-1].ID)
		}
		if e.PrevHash != prev {
			t.Errorf("event %d (id %d): PrevHash %q, want %q", i, e.ID, e.PrevHash, prev)
		}
		if other, dup := seen[e.PrevHash]; dup {
			t.Errorf("events %d and %d share PrevHash %q: the chain forked", other, e.ID, e.PrevHash)
		}
		seen[e.PrevHash] = e.ID
		if want := storage.ChainHash(e.PrevHash, &e); e.Hash != want {
			t.Errorf("event %d (id %d): stored Hash %s, recomputed %s", i, e.ID, e.Hash, want)
		}
		if a, ok := appended[e.ID]; !ok {
			t.Errorf("event %d: id %d was never returned by AppendAudit", i, e.ID)
		} else if a.Hash != e.Hash || a.PrevHash != e.PrevHash {
			t.Errorf("event %d (id %d): stored hashes (%s, %s), AppendAudit returned (%s, %s)",
				i, e.ID, e.PrevHash, e.Hash, a.PrevHash, a.Hash)
		}
		prev = e.Hash
	}
}

// testAuditChainKeyed checks the keyed chain on one store: with a key every append is
// keyed (KeyedChainHash, ChainKey = the key's id) and links to the event before it,
// keyed or not; after a keyed event an append without a key is refused
// (ErrAuditKeyRequired) and writes nothing; a second key (an encryption-key rotation)
// continues the chain; AuditHead names the newest event and counts the events.
func testAuditChainKeyed(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	keyer, ok := s.(storage.AuditChainKeyer)
	if !ok {
		t.Fatalf("%T does not implement storage.AuditChainKeyer", s)
	}
	keyA := &storage.AuditChainKey{ID: "key-a"}
	keyB := &storage.AuditChainKey{ID: "key-b"}
	for i := range keyA.Key {
		keyA.Key[i], keyB.Key[i] = byte(i), byte(255-i)
	}
	if _, err := s.AuditHead(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("AuditHead of an empty trail: %v, want ErrNotFound", err)
	}

	appendAs := func(t *testing.T, key *storage.AuditChainKey, typ string) storage.AuditEvent {
		t.Helper()
		keyer.SetAuditChainKey(key)
		e := storage.AuditEvent{Time: now, Type: typ, UserID: "u", Result: "success", Reason: "r"}
		must(t, s.AppendAudit(ctx, &e))
		return e
	}
	unkeyed := appendAs(t, nil, "login.password")
	if unkeyed.ChainKey != "" || unkeyed.Hash != storage.ChainHash("", &unkeyed) {
		t.Fatalf("unkeyed append: %+v, want ChainKey \"\" and the unkeyed hash", unkeyed)
	}
	a1 := appendAs(t, keyA, "audit.chain_keyed")
	a2 := appendAs(t, keyA, "token.issue")
	for _, e := range []storage.AuditEvent{a1, a2} {
		if e.ChainKey != keyA.ID || e.Hash != storage.KeyedChainHash(keyA.Key[:], e.PrevHash, &e) {
			t.Errorf("keyed append %d: ChainKey %q hash %s, want %q and the HMAC under key A", e.ID, e.ChainKey, e.Hash, keyA.ID)
		}
		if e.Hash == storage.ChainHash(e.PrevHash, &e) || e.Hash == storage.KeyedChainHash(keyB.Key[:], e.PrevHash, &e) {
			t.Errorf("keyed append %d: hash computable without key A", e.ID)
		}
	}
	if a1.PrevHash != unkeyed.Hash || a2.PrevHash != a1.Hash {
		t.Errorf("keyed appends do not link: %s→%s, %s→%s", unkeyed.Hash, a1.PrevHash, a1.Hash, a2.PrevHash)
	}

	t.Run("no key after a keyed event is refused", func(t *testing.T) {
		keyer.SetAuditChainKey(nil)
		e := storage.AuditEvent{Time: now, Type: "token.issue", Result: "success"}
		if err := s.AppendAudit(ctx, &e); !errors.Is(err, storage.ErrAuditKeyRequired) {
			t.Fatalf("unkeyed append after a keyed event: %v, want ErrAuditKeyRequired", err)
		}
		head, err := s.AuditHead(ctx)
		must(t, err)
		if head.EventID != a2.ID || head.Hash != a2.Hash || head.ChainKey != keyA.ID || head.Count != 3 {
			t.Errorf("AuditHead after the refused append = %+v, want event %d (count 3)", head, a2.ID)
		}
	})

	t.Run("a new key continues the chain", func(t *testing.T) {
		b1 := appendAs(t, keyB, "token.issue")
		if b1.PrevHash != a2.Hash || b1.ChainKey != keyB.ID || b1.Hash != storage.KeyedChainHash(keyB.Key[:], b1.PrevHash, &b1) {
			t.Fatalf("append under key B: %+v", b1)
		}
		events, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		want := []string{"", keyA.ID, keyA.ID, keyB.ID}
		if len(events) != len(want) {
			t.Fatalf("ListAudit: %d events, want %d", len(events), len(want))
		}
		for i, e := range events {
			if e.ChainKey != want[i] {
				t.Errorf("event %d reads back with ChainKey %q, want %q", e.ID, e.ChainKey, want[i])
			}
		}
		head, err := s.AuditHead(ctx)
		must(t, err)
		if head.EventID != b1.ID || head.Hash != b1.Hash || head.ChainKey != keyB.ID || head.Count != 4 {
			t.Errorf("AuditHead = %+v, want event %d, key B, count 4", head, b1.ID)
		}
	})
}

// testAuditCheckpoints checks storing, listing and pruning the signed checkpoints.
func testAuditCheckpoints(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	cps, err := s.ListAuditCheckpoints(ctx)
	must(t, err)
	if len(cps) != 0 {
		t.Fatalf("fresh store has %d checkpoints", len(cps))
	}
	var added []storage.AuditCheckpoint
	for i, ev := range []int64{3, 7, 7, 12} {
		c := storage.AuditCheckpoint{EventID: ev, Hash: fmt.Sprintf("hash-%d", i), CreatedAt: now.Add(time.Duration(i) * time.Minute),
			JWS: fmt.Sprintf("header.payload-%d.signature", i)}
		must(t, s.AddAuditCheckpoint(ctx, &c))
		if c.ID == 0 || (i > 0 && c.ID <= added[i-1].ID) {
			t.Fatalf("checkpoint %d: id %d not assigned increasing", i, c.ID)
		}
		added = append(added, c)
	}
	cps, err = s.ListAuditCheckpoints(ctx)
	must(t, err)
	if len(cps) != len(added) {
		t.Fatalf("ListAuditCheckpoints: %d, want %d", len(cps), len(added))
	}
	for i, c := range cps {
		if c != added[i] && !(c.ID == added[i].ID && c.EventID == added[i].EventID && c.Hash == added[i].Hash &&
			c.JWS == added[i].JWS && c.CreatedAt.Equal(added[i].CreatedAt)) {
			t.Errorf("checkpoint %d reads back as %+v, want %+v", i, c, added[i])
		}
	}
	n, err := s.DeleteAuditCheckpointsBefore(ctx, 7)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteAuditCheckpointsBefore(7) removed %d, want 1 (only the one of event 3)", n)
	}
	cps, err = s.ListAuditCheckpoints(ctx)
	must(t, err)
	if len(cps) != 3 || cps[0].EventID != 7 || cps[2].EventID != 12 {
		t.Errorf("after DeleteAuditCheckpointsBefore(7): %+v, want the checkpoints of events 7, 7, 12", cps)
	}
}
