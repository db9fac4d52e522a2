package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
)

// CheckpointType is the "typ" header of a checkpoint JWS.
const CheckpointType = "audit-checkpoint+jwt"

// CheckpointSubject is the "sub" claim of every checkpoint.
const CheckpointSubject = "audit-checkpoint"

// ErrEmptyTrail is returned by Checkpointer.Checkpoint when there is no event to sign.
var ErrEmptyTrail = errors.New("the audit trail is empty: nothing to checkpoint")

// CheckpointClaims is the payload of a checkpoint: the provider states, signed with its
// token-signing key, that at IssuedAt the audit chain's newest event was EventID with
// hash Hash, and that Count events were stored up to it.
type CheckpointClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	IssuedAt int64  `json:"iat"`
	EventID  int64  `json:"event_id"`
	Hash     string `json:"hash"`
	ChainKey string `json:"chain_key"`
	Count    int64  `json:"count"`
}

// CheckpointLine is one checkpoint as `idp audit checkpoints export` and the checkpoint
// hook write it (one JSON object per line). JWK is the public key that signed it, so an
// exported copy can be checked after the key has left the database; VerifyCheckpoints
// prefers the key in the database when it is still there.
type CheckpointLine struct {
	EventID   int64           `json:"event_id"`
	Hash      string          `json:"hash"`
	CreatedAt time.Time       `json:"created_at"`
	JWS       string          `json:"jws"`
	JWK       json.RawMessage `json:"jwk,omitempty"`
}

// Signers gives the checkpointer the key that signs now; *keys.Manager implements it.
type Signers interface {
	Active(ctx context.Context, alg string) (*keys.Key, error)
}

// Checkpointer signs and stores checkpoints of the audit chain's head.
type Checkpointer struct {
	Store  storage.AuditStore
	Keys   Signers
	Issuer string
	// Hook, when set, receives each new checkpoint as a CheckpointLine (a file opened
	// for appending, or standard output), so a copy lives outside the database.
	Hook   io.Writer
	Logger *slog.Logger
	Now    func() time.Time

	mu sync.Mutex // serialises writes to Hook
}

func (c *Checkpointer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Checkpoint signs the chain's newest event and stores the checkpoint (and writes it to
// Hook). It starts the keyed chain first if the newest event is unkeyed
// (StartKeyedChain), so that what it signs is keyed. ErrEmptyTrail when there is no event.
func (c *Checkpointer) Checkpoint(ctx context.Context) (CheckpointLine, error) {
	now := c.now()
	if err := StartKeyedChain(ctx, c.Store, now); err != nil {
		return CheckpointLine{}, err
	}
	head, err := c.Store.AuditHead(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return CheckpointLine{}, ErrEmptyTrail
	}
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	var key *keys.Key
	for _, alg := range keys.SupportedAlgs {
		if key, err = c.Keys.Active(ctx, alg); err == nil {
			break
		}
	}
	if key == nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: no signing key: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.Alg, Key: jose.JSONWebKey{Key: key.Private, KeyID: key.ID}},
		(&jose.SignerOptions{}).WithType(CheckpointType))
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	payload, err := json.Marshal(CheckpointClaims{Issuer: c.Issuer, Subject: CheckpointSubject, IssuedAt: now.Unix(),
		EventID: head.EventID, Hash: head.Hash, ChainKey: head.ChainKey, Count: head.Count})
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: sign: %w", err)
	}
	jws, err := sig.CompactSerialize()
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	cp := storage.AuditCheckpoint{EventID: head.EventID, Hash: head.Hash, CreatedAt: now.UTC().Truncate(time.Microsecond), JWS: jws}
	if err := c.Store.AddAuditCheckpoint(ctx, &cp); err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	jwk, err := jose.JSONWebKey{Key: key.Public, KeyID: key.ID, Algorithm: string(key.Alg), Use: "sig"}.MarshalJSON()
	if err != nil {
		return CheckpointLine{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	line := CheckpointLine{EventID: cp.EventID, Hash: cp.Hash, CreatedAt: cp.CreatedAt, JWS: jws, JWK: jwk}
	if c.Hook != nil {
		b, _ := json.Marshal(line)
		c.mu.Lock()
		_, err := c.Hook.Write(append(b, '\n'))
		c.mu.Unlock()
		if err != nil {
			return line, fmt.Errorf("audit checkpoint %d stored, but writing it to the hook failed: %w", cp.ID, err)
		}
	}
	return line, nil
}

// Run takes a checkpoint every interval until ctx ends, skipping it when the head has
// not moved since the newest checkpoint. Failures are logged and retried next time.
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.checkpointIfMoved(ctx); err != nil && ctx.Err() == nil && c.Logger != nil {
			c.Logger.ErrorContext(ctx, "audit checkpoint", "err", err)
		}
	}
}

// checkpointIfMoved takes a checkpoint unless the newest one already covers the head.
func (c *Checkpointer) checkpointIfMoved(ctx context.Context) error {
	head, err := c.Store.AuditHead(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cps, err := c.Store.ListAuditCheckpoints(ctx)
	if err != nil {
		return err
	}
	if n := len(cps); n > 0 && cps[n-1].EventID == head.EventID && cps[n-1].Hash == head.Hash {
		return nil
	}
	_, err = c.Checkpoint(ctx)
	return err
}

// CheckpointResult is what VerifyCheckpoints found.
type CheckpointResult struct {
	// Checked counts the checkpoints whose event the chain holds with the signed hash.
	Checked int `json:"checked"`
	// Pruned counts the checkpoints of events removed by retention (not checkable).
	Pruned int `json:"pruned"`
	// SignatureUnchecked counts the checkpoints signed by a key no longer in the
	// database and given without its public key (an exported copy carries it).
	SignatureUnchecked int `json:"signature_unchecked"`
	// NewestEventID is the newest event a checkpoint covers, and NewestAt when it was
	// signed: events after it are protected only by the keyed chain.
	NewestEventID int64     `json:"newest_event_id,omitempty"`
	NewestAt      time.Time `json:"newest_at,omitzero"`
	// Source says where the checkpoints came from: "database" or a file name.
	Source string `json:"source,omitempty"`
}

// VerifyCheckpoints checks checkpoints against res, the result of VerifyChain over an
// intact chain: each must carry a valid signature by one of signingKeys (the provider's
// keys in the database: pending, active, retired or expired-but-not-deleted), or by the
// JWK it carries when its key is no longer in the database; and the chain must still
// hold the event it names with the hash it signed. A checkpoint of an event older than
// the retained chain passes only when retention removed it (a recorded anchor). A
// checkpoint of an event newer than the newest one means the newest events were deleted.
//
// It records the first failure in res (Intact false) and appends the counts to
// res.Checkpoints.
// A res that is already broken is left alone.
func VerifyCheckpoints(res *VerifyResult, source string, lines []CheckpointLine, signingKeys []storage.SigningKey) {
	if !res.Intact {
		return
	}
	known := map[string]*jose.JSONWebKey{}
	for _, sk := range signingKeys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(sk.PublicJWK); err == nil {
			known[sk.ID] = &k
		}
	}
	cr := CheckpointResult{Source: source}
	fail := func(eventID int64, problem, reason string) {
		res.Intact, res.BrokenID, res.Problem, res.Reason = false, eventID, problem, reason
		res.Checkpoints = append(res.Checkpoints, cr)
	}
	for n, l := range lines {
		where := fmt.Sprintf("checkpoint %d of %s", n+1, source)
		jws, err := jose.ParseSignedCompact(l.JWS, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
		if err != nil || len(jws.Signatures) != 1 {
			fail(l.EventID, ProblemCheckpointSignature, fmt.Sprintf("%s (event %d) is not a valid JWS: %v", where, l.EventID, err))
			return
		}
		kid := jws.Signatures[0].Header.KeyID
		pub := known[kid]
		if pub == nil && len(l.JWK) > 0 && source != "database" {
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON(l.JWK); err == nil && k.KeyID == kid && k.IsPublic() {
				pub = &k
			}
		}
		var claims CheckpointClaims
		if pub == nil {
			cr.SignatureUnchecked++
			if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
				fail(l.EventID, ProblemCheckpointSignature, fmt.Sprintf("%s: unreadable claims: %v", where, err))
				return
			}
		} else {
			payload, err := jws.Verify(pub.Key)
			if err != nil {
				fail(l.EventID, ProblemCheckpointSignature, fmt.Sprintf(
					"%s (event %d) does not carry a valid signature of key %s: it was forged or altered", where, l.EventID, kid))
				return
			}
			if err := json.Unmarshal(payload, &claims); err != nil {
				fail(l.EventID, ProblemCheckpointSignature, fmt.Sprintf("%s: unreadable claims: %v", where, err))
				return
			}
		}
		if claims.Subject != CheckpointSubject || claims.EventID != l.EventID || claims.Hash != l.Hash {
			fail(l.EventID, ProblemCheckpointMismatch, fmt.Sprintf(
				"%s says event %d hash %s, but its signed claims say event %d hash %s: the record was altered",
				where, l.EventID, auditShortHash(l.Hash), claims.EventID, auditShortHash(claims.Hash)))
			return
		}
		signedAt := time.Unix(claims.IssuedAt, 0).UTC()
		switch hash, ok := res.byID[claims.EventID]; {
		case ok && hash == claims.Hash:
			cr.Checked++
		case ok:
			fail(claims.EventID, ProblemCheckpointMismatch, fmt.Sprintf(
				"event %d has hash %s, but %s, signed at %s, says %s: the history up to event %d was rewritten",
				claims.EventID, auditShortHash(hash), where, signedAt.Format(time.RFC3339), auditShortHash(claims.Hash), claims.EventID))
			return
		case res.Checked > 0 && claims.EventID > res.LastID:
			fail(claims.EventID, ProblemTruncated, fmt.Sprintf(
				"the trail ends at event %d, but %s, signed at %s, covers event %d: the newest events were deleted",
				res.LastID, where, signedAt.Format(time.RFC3339), claims.EventID))
			return
		case claims.Hash == res.Anchor && res.Anchor != "" && (res.Checked == 0 || claims.EventID < res.FirstID):
			cr.Checked++ // the newest event removed by retention, named by the anchor
		case (res.Checked == 0 || claims.EventID < res.FirstID) && res.AnchorRecorded && res.retention:
			cr.Pruned++
		default:
			fail(claims.EventID, ProblemCheckpointMismatch, fmt.Sprintf(
				"%s, signed at %s, covers event %d with hash %s, which the chain no longer holds: it was deleted and the chain recomputed",
				where, signedAt.Format(time.RFC3339), claims.EventID, auditShortHash(claims.Hash)))
			return
		}
		if claims.EventID >= cr.NewestEventID {
			cr.NewestEventID, cr.NewestAt = claims.EventID, signedAt
		}
	}
	res.Checkpoints = append(res.Checkpoints, cr)
}

// StoredCheckpoints returns the checkpoints in the database as lines.
func StoredCheckpoints(ctx context.Context, store storage.AuditStore) ([]CheckpointLine, error) {
	cps, err := store.ListAuditCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	out := make([]CheckpointLine, 0, len(cps))
	for _, c := range cps {
		out = append(out, CheckpointLine{EventID: c.EventID, Hash: c.Hash, CreatedAt: c.CreatedAt, JWS: c.JWS})
	}
	return out, nil
}

// AttachSignerKeys sets the JWK of each line to the public key that signed it, from
// signingKeys; lines signed by a key no longer there keep their JWK (none when read
// from the database).
func AttachSignerKeys(lines []CheckpointLine, signingKeys []storage.SigningKey) error {
	pub := map[string][]byte{}
	for _, sk := range signingKeys {
		pub[sk.ID] = sk.PublicJWK
	}
	for i := range lines {
		jws, err := jose.ParseSignedCompact(lines[i].JWS, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
		if err != nil || len(jws.Signatures) != 1 {
			return fmt.Errorf("checkpoint of event %d is not a valid JWS", lines[i].EventID)
		}
		if k, ok := pub[jws.Signatures[0].Header.KeyID]; ok {
			lines[i].JWK = k
		}
	}
	return nil
}
