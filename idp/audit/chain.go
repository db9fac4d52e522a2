package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
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
	// ProblemDowngraded: an unkeyed event where only keyed ones may be (after a keyed
	// event, as the newest event, or a keyed chain starting after unkeyed events
	// somewhere other than at an audit.chain_keyed marker): keyed events were rewritten
	// in the unkeyed form, which anyone can compute.
	ProblemDowngraded = "downgraded"
	// ProblemUnknownKey: the event is keyed with a key the verifier does not hold (an
	// encryption key that is no longer configured, or a made-up key id).
	ProblemUnknownKey = "unknown_key"
	// ProblemCheckpointSignature: a checkpoint's signature does not verify.
	ProblemCheckpointSignature = "checkpoint_signature"
	// ProblemCheckpointMismatch: a signed checkpoint names an event the chain no longer
	// holds with that hash: the history was rewritten.
	ProblemCheckpointMismatch = "checkpoint_mismatch"
	// ProblemTruncated: a signed checkpoint names an event newer than the newest one: the
	// newest events were deleted.
	ProblemTruncated = "truncated"
)

// VerifyResult is what VerifyChain found.
type VerifyResult struct {
	// Intact is true when every chained event verified.
	Intact bool `json:"intact"`
	// Checked counts the chained events verified (up to, not including, the broken one).
	Checked int `json:"checked"`
	// Keyed counts the verified events whose hash is keyed (HMAC under the audit chain
	// key); the others were written before the chain was keyed and carry a plain hash.
	Keyed int `json:"keyed"`
	// KeyedFrom is the id of the first keyed event, 0 when none is.
	KeyedFrom int64 `json:"keyed_from,omitempty"`
	// ChainKeys lists the ids of the audit chain keys (encryption-key ids) seen.
	ChainKeys []string `json:"chain_keys,omitempty"`
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
	// Checkpoints is what the signed checkpoints showed, one entry per source checked
	// (see VerifyCheckpoints).
	Checkpoints []CheckpointResult `json:"checkpoints,omitempty"`
	// BrokenID is the id of the first event that failed, 0 when Intact (for a checkpoint
	// problem: the event the checkpoint names).
	BrokenID int64 `json:"broken_id,omitempty"`
	// Problem is the kind of break (ProblemEdited, ProblemDeletedOrInserted, ...).
	Problem string `json:"problem,omitempty"`
	// Reason explains the break in words.
	Reason string `json:"reason,omitempty"`

	// byID holds the verified events by id, for VerifyCheckpoints.
	byID map[int64]string
	// retention is true when the chain holds a successful audit.retention event.
	retention bool
}

// ChainKeys are the audit chain keys a verifier holds, by id.
type ChainKeys map[string][32]byte

// ChainKeysOf derives the audit chain keys from every encryption key sealer holds: the
// current one keys new events, older ones (IDP_ENCRYPTION_KEYS_OLD) verify events keyed
// before a rotation.
func ChainKeysOf(sealer *seal.Sealer) ChainKeys {
	return sealer.DeriveKeys(storage.AuditChainKeyPurpose)
}

// CurrentChainKey is the key new events are keyed with: derived from sealer's current
// encryption key. Give it to the store (storage.AuditChainKeyer) before it appends.
func CurrentChainKey(sealer *seal.Sealer) *storage.AuditChainKey {
	return &storage.AuditChainKey{ID: sealer.CurrentKeyID(), Key: sealer.DeriveKey(storage.AuditChainKeyPurpose)}
}

// KeyStore gives the store its audit chain key from sealer when it takes one
// (storage.AuditChainKeyer), and reports whether it did.
func KeyStore(store any, sealer *seal.Sealer) bool {
	k, ok := store.(storage.AuditChainKeyer)
	if ok {
		k.SetAuditChainKey(CurrentChainKey(sealer))
	}
	return ok
}

// StartKeyedChain appends the audit.chain_keyed marker when the newest event is unkeyed,
// so that the keyed chain starts at the marker (the only place VerifyChain accepts the
// switch). It does nothing on an empty or already keyed trail. The store must hold its
// chain key (KeyStore). Call it at start-up, before the process appends anything else.
func StartKeyedChain(ctx context.Context, store storage.AuditStore, now time.Time) error {
	head, err := store.AuditHead(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start keyed audit chain: %w", err)
	}
	if head.ChainKey != "" {
		return nil
	}
	e := storage.AuditEvent{Time: now, Type: EventChainKeyed, Result: ResultSuccess,
		Reason: fmt.Sprintf("unkeyed_until=%d", head.EventID)}
	if err := store.AppendAudit(ctx, &e); err != nil {
		return fmt.Errorf("start keyed audit chain: %w", err)
	}
	if e.ChainKey == "" {
		return errors.New("start keyed audit chain: the store has no audit chain key")
	}
	return nil
}

// VerifyChain reads every audit event, oldest first, and recomputes the hash chain:
// each event must hash to its stored Hash (keyed events with the key named by their
// ChainKey, unkeyed ones with storage.ChainHash), and its PrevHash must be the Hash of
// the event before it. The first chained event's PrevHash is taken as the anchor, since
// retention may have removed the events before it. Leading events without a hash
// (written before the chain existed) are counted and skipped.
//
// Unkeyed events are accepted only as a prefix that ends at an audit.chain_keyed marker
// (or ends the trail, when keys is empty): an unkeyed event after a keyed one, a keyed
// chain starting after unkeyed events anywhere but at the marker, or, when the verifier
// holds keys, an unkeyed newest event, is a downgrade.
//
// It stops at the first break and reports it in the result; the error is only for a
// failure to read the trail.
func VerifyChain(ctx context.Context, store storage.AuditStore, keys ChainKeys) (VerifyResult, error) {
	events, err := store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	// The chain is in append order, which is id order; do not rely on the backend's.
	slices.SortStableFunc(events, func(a, b storage.AuditEvent) int { return cmp.Compare(a.ID, b.ID) })

	res := VerifyResult{Intact: true, AnchorRecorded: true, byID: map[int64]string{}}
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
		if e.Type == EventRetention && e.Result == ResultSuccess {
			res.retention = true
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
	seenKeys := map[string]bool{}
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
		case e.ChainKey == "" && res.Keyed > 0:
			return auditBroken(res, e, ProblemDowngraded, fmt.Sprintf(
				"event %d is not keyed although keyed events precede it (from event %d): it was rewritten in the unkeyed form, which anyone can compute",
				e.ID, res.KeyedFrom)), nil
		case e.ChainKey != "" && res.Keyed == 0 && k > 0 && e.Type != EventChainKeyed:
			return auditBroken(res, e, ProblemDowngraded, fmt.Sprintf(
				"event %d is the first keyed event after unkeyed ones but not an %s marker: keyed events before it were rewritten in the unkeyed form",
				e.ID, EventChainKeyed)), nil
		}
		want := storage.ChainHash(e.PrevHash, &e)
		if e.ChainKey != "" {
			key, ok := keys[e.ChainKey]
			if !ok {
				return auditBroken(res, e, ProblemUnknownKey, fmt.Sprintf(
					"event %d is keyed with audit chain key %s, which this verifier does not hold: configure the encryption key with that id (in IDP_ENCRYPTION_KEYS_OLD after a rotation), or the key id was made up",
					e.ID, e.ChainKey)), nil
			}
			want = storage.KeyedChainHash(key[:], e.PrevHash, &e)
		}
		if e.Hash != want {
			return auditBroken(res, e, ProblemEdited, fmt.Sprintf(
				"event %d does not hash to its stored hash %s (recomputed %s): the row was edited, or its hash was computed without the audit chain key",
				e.ID, auditShortHash(e.Hash), auditShortHash(want))), nil
		}
		if e.ChainKey != "" {
			if res.Keyed == 0 {
				res.KeyedFrom = e.ID
			}
			res.Keyed++
			if !seenKeys[e.ChainKey] {
				seenKeys[e.ChainKey] = true
				res.ChainKeys = append(res.ChainKeys, e.ChainKey)
			}
		}
		res.Checked++
		if res.FirstID == 0 {
			res.FirstID = e.ID
		}
		res.LastID, res.Head = e.ID, e.Hash
		res.byID[e.ID] = e.Hash
		prev = e.Hash
	}
	if last := chain[len(chain)-1]; len(keys) > 0 && last.ChainKey == "" {
		return auditBroken(res, last, ProblemDowngraded, fmt.Sprintf(
			"event %d, the newest, is not keyed: the keyed events were rewritten in the unkeyed form, or no event was written since the upgrade to the keyed chain (then start the server or run \"idp audit checkpoint\" once, which starts it)",
			last.ID)), nil
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
		var firstKept int64
		switch {
		case len(kept) > 0:
			res.NewestRemovedHash, firstKept = kept[0].PrevHash, kept[0].ID
		case len(newest) > 0:
			res.NewestRemovedHash, firstKept = newest[0].Hash, newest[0].ID+1 // everything went
		}
		// The checkpoints of removed events can no longer be checked against the chain;
		// exported copies still can (VerifyCheckpoints counts them as pruned).
		if _, err := store.DeleteAuditCheckpointsBefore(ctx, firstKept); err != nil {
			return res, fmt.Errorf("prune audit: removed %d events but not their checkpoints: %w", res.Removed, err)
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
