package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
)

// RetentionAnchorKey is the key, in the Reason of an EventRetention event, of the
// hash of the newest event that retention removed.
const RetentionAnchorKey = "newest_removed_hash"

// Kinds of chain break, in VerifyResult.Problem.
const (
	// ProblemEdited: the event does not hash to its stored hash: the row was edited.
	ProblemEdited = "edited"
	// ProblemDeletedOrInserted: the event's PrevHash is not the Hash of the event before it:
	// an event between them was deleted, or this one was inserted.
	ProblemDeletedOrInserted = "deleted_or_inserted"
	// ProblemUnchained: the event has no hash although chained events precede it: it was
	// written around the chain, or its hashes were erased.
	ProblemUnchained = "unchained"
)

// VerifyResult is what VerifyChain found.
type VerifyResult struct {
	// Intact is true when every chained event verified.
	Intact bool `json:"intact"`
	// Checked counts the chained events verified (up to, not including, the broken one).
	Checked int `json:"checked"`
	// Unchained counts the leading events written before the chain existed (before
	// migration 0004): they carry no hash and cannot be verified.
	Unchained int `json:"unchained"`
	// FirstID and LastID are the ids of the first and last chained events verified.
	FirstID int64 `json:"first_id,omitempty"`
	LastID  int64 `json:"last_id,omitempty"`
	// Anchor is the PrevHash of the first chained event: "" when the chain starts there,
	// otherwise the Hash of the newest event removed by retention.
	Anchor string `json:"anchor"`
	// AnchorRecorded is true when Anchor is "" or an audit.retention event in the chain
	// records it as the newest event it removed. False means events before the chain's
	// start were removed without `idp audit prune` recording it.
	AnchorRecorded bool `json:"anchor_recorded"`
	// Head is the Hash of the newest verified event; keep it outside the database (or
	// export the trail to a SIEM) to detect a rewrite of the whole chain.
	Head string `json:"head,omitempty"`
	// BrokenID is the id of the first event that failed, 0 when Intact.
	BrokenID int64 `json:"broken_id,omitempty"`
	// Problem is the kind of break (ProblemEdited, ProblemDeletedOrInserted, ProblemUnchained).
	Problem string `json:"problem,omitempty"`
	// Reason explains the break in words.
	Reason string `json:"reason,omitempty"`
}

// VerifyChain reads every audit event, oldest first, and recomputes the hash chain:
// each event must hash (storage.ChainHash) to its stored Hash, and its PrevHash must be
// the Hash of the event before it. The first chained event's PrevHash is taken as the
// anchor, since retention may have removed the events before it. Leading events without
// a hash (written before the chain existed) are counted and skipped.
//
// It stops at the first break and reports it in the result; the error is only for a
// failure to read the trail.
func VerifyChain(ctx context.Context, store storage.AuditStore) (VerifyResult, error) {
	events, err := store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	// The chain is in append order, which is id order; do not rely on the backend's.
	slices.SortStableFunc(events, func(a, b storage.AuditEvent) int { return cmp.Compare(a.ID, b.ID) })

	res := VerifyResult{Intact: true, AnchorRecorded: true}
	i := 0
	for ; i < len(events) && events[i].Hash == "" && events[i].PrevHash == ""; i++ {
		res.Unchained++
	}
	if i == len(events) {
		return res, nil
	}
	chain := events[i:]
	res.Anchor = chain[0].PrevHash
	recorded := map[string]bool{}
	for _, e := range chain {
		if e.Type == EventRetention {
			if h := retentionAnchor(e.Reason); h != "" {
				recorded[h] = true
			}
		}
	}
	res.AnchorRecorded = res.Anchor == "" || recorded[res.Anchor]
	if res.Unchained > 0 && res.Anchor != "" {
		// Retention removes a prefix: with unchained rows still present, nothing of the
		// chain can have been removed before its first event.
		return auditBroken(res, chain[0], ProblemDeletedOrInserted, fmt.Sprintf(
			"event %d is the first with a hash but its prev_hash is %s, not empty, although the events before it predate the chain: chained events before it were deleted",
			chain[0].ID, auditShortHash(res.Anchor))), nil
	}

	prev := res.Anchor
	for k, e := range chain {
		switch {
		case e.Hash == "":
			return auditBroken(res, e, ProblemUnchained, fmt.Sprintf(
				"event %d has no hash although chained events precede it: it was written around the chain or its hashes were erased",
				e.ID)), nil
		case k > 0 && e.PrevHash != prev:
			return auditBroken(res, e, ProblemDeletedOrInserted, fmt.Sprintf(
				"event %d has prev_hash %s but the event before it (id %d) has hash %s: an event between them was deleted, or event %d was inserted",
				e.ID, auditShortHash(e.PrevHash), chain[k-1].ID, auditShortHash(prev), e.ID)), nil
		}
		if want := storage.ChainHash(e.PrevHash, &e); e.Hash != want {
			return auditBroken(res, e, ProblemEdited, fmt.Sprintf(
				"event %d does not hash to its stored hash %s (recomputed %s): the row was edited",
				e.ID, auditShortHash(e.Hash), auditShortHash(want))), nil
		}
		res.Checked++
		if res.FirstID == 0 {
			res.FirstID = e.ID
		}
		res.LastID, res.Head = e.ID, e.Hash
		prev = e.Hash
	}
	return res, nil
}

// auditBroken marks res broken at event e.
func auditBroken(res VerifyResult, e storage.AuditEvent, problem, reason string) VerifyResult {
	res.Intact = false
	res.BrokenID = e.ID
	res.Problem = problem
	res.Reason = reason
	return res
}

// retentionAnchor returns the RetentionAnchorKey value in the Reason of a retention event.
func retentionAnchor(reason string) string {
	for _, f := range strings.Fields(reason) {
		if v, ok := strings.CutPrefix(f, RetentionAnchorKey+"="); ok {
			return v
		}
	}
	return ""
}

// auditShortHash abbreviates a hash for messages; "" shows as (none).
func auditShortHash(h string) string {
	switch {
	case h == "":
		return "(none)"
	case len(h) > 16:
		return h[:16] + "…"
	}
	return h
}

// PruneResult is what Prune did.
type PruneResult struct {
	// Removed counts the events deleted.
	Removed int64 `json:"removed"`
	// Before is the cut-off: events older than it were removed.
	Before time.Time `json:"before"`
	// NewestRemovedHash is the Hash of the newest removed event, the PrevHash of the
	// oldest retained one: the anchor VerifyChain starts from. Empty when nothing
	// was removed.
	NewestRemovedHash string `json:"newest_removed_hash,omitempty"`
	// EventID is the id of the EventRetention event that records the removal.
	EventID int64 `json:"event_id"`
}

// Prune applies audit retention: it deletes the events older than before and then
// appends an EventRetention event naming actor, how many were removed and the hash
// of the newest removed one, so the verifier's anchor is documented inside the chain. A
// failed delete is recorded as a failed retention event (best effort) and returned.
func Prune(ctx context.Context, store storage.AuditStore, actor string, before, now time.Time) (PruneResult, error) {
	if actor == "" {
		actor = "unknown"
	}
	res := PruneResult{Before: before.UTC()}
	newest, err := store.ListAudit(ctx, storage.AuditFilter{Limit: 1})
	if err != nil {
		return res, fmt.Errorf("prune audit: %w", err)
	}
	detail := fmt.Sprintf("actor=%s before=%s", actor, res.Before.Format(time.RFC3339Nano))
	res.Removed, err = store.DeleteAuditBefore(ctx, before)
	if err != nil {
		fail := storage.AuditEvent{Time: now, Type: EventRetention, Result: ResultFailure,
			Reason: fmt.Sprintf("%s err=%v", detail, err)}
		_ = store.AppendAudit(ctx, &fail)
		return res, fmt.Errorf("prune audit: %w", err)
	}
	if res.Removed > 0 {
		// Retention removes a prefix of the chain: the oldest retained event (the first at
		// or after the cut-off) names the newest removed one as its predecessor.
		kept, err := store.ListAudit(ctx, storage.AuditFilter{Since: before})
		if err != nil {
			return res, fmt.Errorf("prune audit: removed %d events but could not read the retained ones: %w", res.Removed, err)
		}
		switch {
		case len(kept) > 0:
			res.NewestRemovedHash = kept[0].PrevHash
		case len(newest) > 0:
			res.NewestRemovedHash = newest[0].Hash // everything went
		}
	}
	reason := fmt.Sprintf("%s removed=%d", detail, res.Removed)
	if res.NewestRemovedHash != "" {
		reason += " " + RetentionAnchorKey + "=" + res.NewestRemovedHash
	}
	e := storage.AuditEvent{Time: now, Type: EventRetention, Result: ResultSuccess, Reason: reason}
	if err := store.AppendAudit(ctx, &e); err != nil {
		return res, fmt.Errorf("prune audit: removed %d events but could not record it: %w", res.Removed, err)
	}
	res.EventID = e.ID
	return res, nil
}
