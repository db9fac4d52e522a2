package audit_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// newSealer returns a sealer over fresh encryption keys: the first is current.
func newSealer(t *testing.T, older ...[]byte) (*seal.Sealer, []byte) {
	t.Helper()
	k := seal.NewKey()
	s, err := seal.New(k, older...)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// keyedStore opens a backend whose appends are keyed with sealer's audit chain key.
func keyedStore(t *testing.T, open func(t *testing.T) (storage.Storage, auditRawDB), sealer *seal.Sealer) (storage.Storage, auditRawDB) {
	t.Helper()
	st, raw := open(t)
	if !audit.KeyStore(st, sealer) {
		t.Fatalf("%T takes no audit chain key", st)
	}
	return st, raw
}

func verifyKeyed(t *testing.T, st storage.Storage, ck audit.ChainKeys) audit.VerifyResult {
	t.Helper()
	res, err := audit.VerifyChain(t.Context(), st, ck)
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	return res
}

// rewriteChain plays an attacker with write access to the database: it deletes the
// event with id drop (0: none) and recomputes the links of every event from the one with
// id from onwards with link, which returns the new hash and chain key of e after prev.
func rewriteChain(t *testing.T, st storage.Storage, raw auditRawDB, drop, from int64,
	link func(prev string, e *storage.AuditEvent) (hash, chainKey string)) {
	t.Helper()
	if drop != 0 {
		raw.run(t, `DELETE FROM audit_events WHERE id = ?`, `DELETE FROM audit_events WHERE id = $1`, drop)
	}
	events, err := st.ListAudit(t.Context(), storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, e := range events {
		if e.ID >= from {
			e.PrevHash = prev
			e.Hash, e.ChainKey = link(prev, &e)
			raw.run(t, `UPDATE audit_events SET prev_hash = ?, hash = ?, chain_key = ? WHERE id = ?`,
				`UPDATE audit_events SET prev_hash = $1, hash = $2, chain_key = $3 WHERE id = $4`,
				e.PrevHash, e.Hash, e.ChainKey, e.ID)
		}
		prev = e.Hash
	}
}

// unkeyedLink recomputes a link the way anyone can: the unkeyed hash.
func unkeyedLink(prev string, e *storage.AuditEvent) (string, string) {
	e.ChainKey = ""
	return storage.ChainHash(prev, e), ""
}

// TestKeyedChainAttacks replays what someone with write access to the database (and no
// encryption key) can do to the trail, and what a key rotation does, on both backends.
func TestKeyedChainAttacks(t *testing.T) {
	for _, b := range auditChainBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("delete and recompute the unkeyed chain", func(t *testing.T) {
				sealer, _ := newSealer(t)
				st, raw := keyedStore(t, b.open, sealer)
				evs := appendAuditEvents(t, st, 6)
				if res := verifyKeyed(t, st, audit.ChainKeysOf(sealer)); !res.Intact || res.Keyed != 6 || res.KeyedFrom != evs[0].ID {
					t.Fatalf("before the attack: %+v", res)
				}
				// The whole history, rewritten as the chain was before it was keyed.
				rewriteChain(t, st, raw, evs[2].ID, 0, unkeyedLink)
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), evs[5].ID, audit.ProblemDowngraded, 5)
				// The provider appends its next event, keyed: the switch is not at a marker.
				next := appendAuditEvents(t, st, 1)[0]
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), next.ID, audit.ProblemDowngraded, 5)
			})

			t.Run("delete and recompute the tail unkeyed", func(t *testing.T) {
				sealer, _ := newSealer(t)
				st, raw := keyedStore(t, b.open, sealer)
				evs := appendAuditEvents(t, st, 6)
				rewriteChain(t, st, raw, evs[2].ID, evs[3].ID, unkeyedLink)
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), evs[3].ID, audit.ProblemDowngraded, 2)
			})

			t.Run("without the key the hashes cannot be recomputed", func(t *testing.T) {
				sealer, _ := newSealer(t)
				st, raw := keyedStore(t, b.open, sealer)
				evs := appendAuditEvents(t, st, 6)
				var guess [32]byte // the attacker's best guess at the key
				copy(guess[:], "not the audit chain key, a guess")
				rewriteChain(t, st, raw, evs[2].ID, evs[3].ID, func(prev string, e *storage.AuditEvent) (string, string) {
					return storage.KeyedChainHash(guess[:], prev, e), e.ChainKey
				})
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), evs[3].ID, audit.ProblemEdited, 2)
			})

			t.Run("a made-up key id", func(t *testing.T) {
				sealer, _ := newSealer(t)
				st, raw := keyedStore(t, b.open, sealer)
				evs := appendAuditEvents(t, st, 4)
				var own [32]byte
				rewriteChain(t, st, raw, evs[1].ID, evs[2].ID, func(prev string, e *storage.AuditEvent) (string, string) {
					e.ChainKey = "attacker"
					return storage.KeyedChainHash(own[:], prev, e), "attacker"
				})
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), evs[2].ID, audit.ProblemUnknownKey, 1)
			})

			t.Run("unkeyed events before the switch still verify", func(t *testing.T) {
				st, _ := b.open(t)
				old := appendAuditEvents(t, st, 3) // written by the version before the keyed chain
				sealer, _ := newSealer(t)
				audit.KeyStore(st, sealer)
				if err := audit.StartKeyedChain(t.Context(), st, time.Now()); err != nil {
					t.Fatal(err)
				}
				if err := audit.StartKeyedChain(t.Context(), st, time.Now()); err != nil { // a no-op now
					t.Fatal(err)
				}
				appendAuditEvents(t, st, 2)
				res := verifyKeyed(t, st, audit.ChainKeysOf(sealer))
				if !res.Intact || res.Checked != 6 || res.Keyed != 3 || res.KeyedFrom != old[2].ID+1 {
					t.Fatalf("unkeyed then keyed: %+v, want intact, 6 checked, 3 keyed from the marker %d", res, old[2].ID+1)
				}
				marker, err := st.ListAudit(t.Context(), storage.AuditFilter{Type: audit.EventChainKeyed})
				if err != nil || len(marker) != 1 || marker[0].ChainKey != sealer.CurrentKeyID() {
					t.Fatalf("markers %+v, %v: want one, keyed", marker, err)
				}
			})

			t.Run("a switch to keyed without the marker", func(t *testing.T) {
				st, _ := b.open(t)
				old := appendAuditEvents(t, st, 2)
				sealer, _ := newSealer(t)
				audit.KeyStore(st, sealer)
				appendAuditEvents(t, st, 1)
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(sealer)), old[1].ID+1, audit.ProblemDowngraded, 2)
			})

			t.Run("an unkeyed trail verified with the key", func(t *testing.T) {
				st, _ := b.open(t)
				evs := appendAuditEvents(t, st, 2)
				sealer, _ := newSealer(t)
				res := verifyKeyed(t, st, audit.ChainKeysOf(sealer))
				wantBroken(t, res, evs[1].ID, audit.ProblemDowngraded, 2)
				if !strings.Contains(res.Reason, "idp audit checkpoint") {
					t.Errorf("reason %q does not say how to start the keyed chain", res.Reason)
				}
			})

			t.Run("encryption-key rotation", func(t *testing.T) {
				sealerA, keyA := newSealer(t)
				st, _ := keyedStore(t, b.open, sealerA)
				first := appendAuditEvents(t, st, 2)
				keyB := seal.NewKey()
				sealerB, err := seal.New(keyB, keyA) // B current, A kept as an old key
				if err != nil {
					t.Fatal(err)
				}
				audit.KeyStore(st, sealerB)
				appendAuditEvents(t, st, 2)
				res := verifyKeyed(t, st, audit.ChainKeysOf(sealerB))
				want := []string{sealerA.CurrentKeyID(), sealerB.CurrentKeyID()}
				if !res.Intact || res.Keyed != 4 || !slices.Equal(res.ChainKeys, want) {
					t.Fatalf("after rotation: %+v, want intact, 4 keyed with keys %v", res, want)
				}
				// Dropping the old key makes the events it keyed unverifiable: reported, not passed.
				onlyB, err := seal.New(keyB)
				if err != nil {
					t.Fatal(err)
				}
				wantBroken(t, verifyKeyed(t, st, audit.ChainKeysOf(onlyB)), first[0].ID, audit.ProblemUnknownKey, 0)
			})
		})
	}
}

// checkpointEnv is a keyed store with signing keys and a checkpointer.
type checkpointEnv struct {
	st     storage.Storage
	raw    auditRawDB
	sealer *seal.Sealer
	cp     *audit.Checkpointer
}

func newCheckpointEnv(t *testing.T, open func(t *testing.T) (storage.Storage, auditRawDB)) *checkpointEnv {
	t.Helper()
	sealer, _ := newSealer(t)
	st, raw := keyedStore(t, open, sealer)
	km := &keys.Manager{Store: st, Sealer: sealer}
	if err := km.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &checkpointEnv{st: st, raw: raw, sealer: sealer,
		cp: &audit.Checkpointer{Store: st, Keys: km, Issuer: "https://idp.example"}}
}

func (e *checkpointEnv) checkpoint(t *testing.T) audit.CheckpointLine {
	t.Helper()
	l, err := e.cp.Checkpoint(t.Context())
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	return l
}

// export returns the stored checkpoints as `idp audit checkpoints export` writes them.
func (e *checkpointEnv) export(t *testing.T) []audit.CheckpointLine {
	t.Helper()
	lines, err := audit.StoredCheckpoints(t.Context(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	signing, err := e.st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.AttachSignerKeys(lines, signing); err != nil {
		t.Fatal(err)
	}
	// Through JSON, as the file is.
	b, err := json.Marshal(lines)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.CheckpointLine
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// verify runs what `idp audit verify [--checkpoints file]` runs: the chain, the stored
// checkpoints and, when file is not nil, the exported ones.
func (e *checkpointEnv) verify(t *testing.T, file []audit.CheckpointLine) audit.VerifyResult {
	t.Helper()
	res := verifyKeyed(t, e.st, audit.ChainKeysOf(e.sealer))
	signing, err := e.st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := audit.StoredCheckpoints(t.Context(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	audit.VerifyCheckpoints(&res, "database", stored, signing)
	if file != nil {
		audit.VerifyCheckpoints(&res, "export.jsonl", file, signing)
	}
	return res
}

// wantProblem checks that res is broken with problem at event id.
func wantProblem(t *testing.T, res audit.VerifyResult, id int64, problem string) {
	t.Helper()
	if res.Intact || res.BrokenID != id || res.Problem != problem || res.Reason == "" {
		t.Errorf("result %+v, want %s at event %d", res, problem, id)
	}
}

// TestCheckpoints replays rewrites that the keyed chain alone cannot see (by someone who
// has the encryption key, or who deletes the newest events) and forged checkpoints.
func TestCheckpoints(t *testing.T) {
	for _, b := range auditChainBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("checkpoint signs the head", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				if _, err := e.cp.Checkpoint(t.Context()); err != audit.ErrEmptyTrail {
					t.Fatalf("Checkpoint of an empty trail: %v, want ErrEmptyTrail", err)
				}
				evs := appendAuditEvents(t, e.st, 3)
				l := e.checkpoint(t)
				if l.EventID != evs[2].ID || l.Hash != evs[2].Hash || len(l.JWK) == 0 {
					t.Fatalf("checkpoint %+v, want event %d hash %s with its key", l, evs[2].ID, evs[2].Hash)
				}
				jws, err := jose.ParseSignedCompact(l.JWS, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
				if err != nil {
					t.Fatal(err)
				}
				var claims audit.CheckpointClaims
				if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
					t.Fatal(err)
				}
				if claims.Issuer != "https://idp.example" || claims.EventID != evs[2].ID || claims.Hash != evs[2].Hash ||
					claims.Count != 3 || claims.ChainKey != e.sealer.CurrentKeyID() || claims.IssuedAt == 0 {
					t.Errorf("claims %+v", claims)
				}
				res := e.verify(t, e.export(t))
				if !res.Intact || len(res.Checkpoints) != 2 || res.Checkpoints[0].Checked != 1 || res.Checkpoints[1].Checked != 1 ||
					res.Checkpoints[1].NewestEventID != evs[2].ID {
					t.Errorf("verify with checkpoints: %+v", res)
				}
			})

			t.Run("a rewrite with the key after an exported checkpoint", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				evs := appendAuditEvents(t, e.st, 5)
				cp := e.checkpoint(t)
				exported := e.export(t)
				appendAuditEvents(t, e.st, 2)
				// The attacker holds the encryption key: delete event 3, recompute the keyed
				// chain, and remove the checkpoints from the database.
				key := audit.CurrentChainKey(e.sealer)
				rewriteChain(t, e.st, e.raw, evs[2].ID, evs[3].ID, func(prev string, ev *storage.AuditEvent) (string, string) {
					return storage.KeyedChainHash(key.Key[:], prev, ev), ev.ChainKey
				})
				e.raw.run(t, `DELETE FROM audit_checkpoints WHERE id > 0`, `DELETE FROM audit_checkpoints WHERE id > 0`)
				if res := e.verify(t, nil); !res.Intact {
					t.Fatalf("the database alone should not see this rewrite (else the test proves nothing): %+v", res)
				}
				wantProblem(t, e.verify(t, exported), cp.EventID, audit.ProblemCheckpointMismatch)
			})

			t.Run("a rewrite that keeps the stored checkpoints", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				evs := appendAuditEvents(t, e.st, 4)
				cp := e.checkpoint(t)
				key := audit.CurrentChainKey(e.sealer)
				rewriteChain(t, e.st, e.raw, evs[1].ID, evs[2].ID, func(prev string, ev *storage.AuditEvent) (string, string) {
					return storage.KeyedChainHash(key.Key[:], prev, ev), ev.ChainKey
				})
				wantProblem(t, e.verify(t, nil), cp.EventID, audit.ProblemCheckpointMismatch)
			})

			t.Run("the newest events deleted after a checkpoint", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				evs := appendAuditEvents(t, e.st, 4)
				e.checkpoint(t)
				exported := e.export(t)
				e.raw.run(t, `DELETE FROM audit_events WHERE id >= ?`, `DELETE FROM audit_events WHERE id >= $1`, evs[2].ID)
				wantProblem(t, e.verify(t, nil), evs[3].ID, audit.ProblemTruncated)
				e.raw.run(t, `DELETE FROM audit_checkpoints WHERE id > 0`, `DELETE FROM audit_checkpoints WHERE id > 0`)
				wantProblem(t, e.verify(t, exported), evs[3].ID, audit.ProblemTruncated)
			})

			t.Run("forged checkpoints", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				evs := appendAuditEvents(t, e.st, 3)
				real := e.checkpoint(t)
				kid := mustKid(t, real.JWS)
				// Signed by the attacker's key under the provider's key id.
				attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: attacker, KeyID: kid}},
					(&jose.SignerOptions{}).WithType(audit.CheckpointType))
				if err != nil {
					t.Fatal(err)
				}
				payload, _ := json.Marshal(audit.CheckpointClaims{Issuer: "https://idp.example", Subject: audit.CheckpointSubject,
					IssuedAt: time.Now().Unix(), EventID: evs[1].ID, Hash: evs[1].Hash})
				sig, err := signer.Sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				forged, _ := sig.CompactSerialize()
				// The real signature over an altered payload.
				parts := strings.Split(real.JWS, ".")
				altered, _ := json.Marshal(audit.CheckpointClaims{Subject: audit.CheckpointSubject, EventID: evs[1].ID, Hash: evs[1].Hash})
				spliced := parts[0] + "." + base64.RawURLEncoding.EncodeToString(altered) + "." + parts[2]
				for name, jws := range map[string]string{"other key": forged, "altered payload": spliced} {
					t.Run(name, func(t *testing.T) {
						line := audit.CheckpointLine{EventID: evs[1].ID, Hash: evs[1].Hash, JWS: jws}
						res := verifyKeyed(t, e.st, audit.ChainKeysOf(e.sealer))
						signing, _ := e.st.ListSigningKeys(t.Context())
						audit.VerifyCheckpoints(&res, "database", []audit.CheckpointLine{line}, signing)
						wantProblem(t, res, evs[1].ID, audit.ProblemCheckpointSignature)
					})
				}
				// Stored in the database, the forgery is caught the same way.
				if err := e.st.AddAuditCheckpoint(t.Context(), &storage.AuditCheckpoint{EventID: evs[1].ID, Hash: evs[1].Hash,
					CreatedAt: time.Now(), JWS: forged}); err != nil {
					t.Fatal(err)
				}
				wantProblem(t, e.verify(t, nil), evs[1].ID, audit.ProblemCheckpointSignature)
			})

			t.Run("retention removes checkpoints with their events", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				base := time.Now().Add(-10 * time.Hour)
				var evs []storage.AuditEvent
				add := func(n int) {
					for range n {
						ev := storage.AuditEvent{Time: base.Add(time.Duration(len(evs)) * time.Hour), Type: audit.EventLoginPassword,
							Result: audit.ResultSuccess}
						if err := e.st.AppendAudit(t.Context(), &ev); err != nil {
							t.Fatal(err)
						}
						evs = append(evs, ev)
					}
				}
				add(2)
				e.checkpoint(t) // of evs[1]
				exported := e.export(t)
				add(4)
				e.checkpoint(t) // of evs[5]
				res, err := audit.Prune(t.Context(), e.st, "test", evs[3].Time, time.Now())
				if err != nil || res.Removed != 3 {
					t.Fatalf("Prune: %+v, %v; want 3 removed", res, err)
				}
				stored, err := e.st.ListAuditCheckpoints(t.Context())
				if err != nil || len(stored) != 1 || stored[0].EventID != evs[5].ID {
					t.Fatalf("checkpoints after prune: %+v, %v; want only the one of event %d", stored, err, evs[5].ID)
				}
				v := e.verify(t, exported)
				if !v.Intact || v.Checkpoints[0].Checked != 1 || v.Checkpoints[1].Pruned != 1 {
					t.Errorf("after prune: %+v, want intact, the stored checkpoint checked and the exported one pruned", v)
				}
			})

			t.Run("a signing key gone from the database", func(t *testing.T) {
				e := newCheckpointEnv(t, b.open)
				appendAuditEvents(t, e.st, 2)
				e.checkpoint(t)
				exported := e.export(t)
				e.raw.run(t, `DELETE FROM signing_keys WHERE id = ?`, `DELETE FROM signing_keys WHERE id = $1`, mustKid(t, exported[0].JWS))
				res := e.verify(t, exported)
				if !res.Intact || res.Checkpoints[0].SignatureUnchecked != 1 || res.Checkpoints[0].Checked != 1 ||
					res.Checkpoints[1].SignatureUnchecked != 0 || res.Checkpoints[1].Checked != 1 {
					t.Errorf("after the key left: %+v, want the stored checkpoint unchecked, the exported one checked by its JWK", res)
				}
			})
		})
	}
}

// mustKid returns the key id in the header of a compact JWS.
func mustKid(t *testing.T, compact string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		t.Fatalf("parse JWS: %v", err)
	}
	return jws.Signatures[0].Header.KeyID
}
