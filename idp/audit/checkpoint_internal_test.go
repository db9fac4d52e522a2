package audit

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// TestCheckpointerSkipsAnUnmovedHead checks what each tick of Checkpointer.Run does: a
// checkpoint when the head moved (written to the hook too), nothing when it did not, and
// the audit.chain_keyed marker first on a trail of unkeyed events.
func TestCheckpointerSkipsAnUnmovedHead(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	km := &keys.Manager{Store: st, Sealer: sealer}
	if err := km.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	var hook bytes.Buffer
	cp := &Checkpointer{Store: st, Keys: km, Issuer: "https://idp.example", Hook: &hook}
	count := func() int {
		t.Helper()
		cps, err := st.ListAuditCheckpoints(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return len(cps)
	}

	if err := cp.checkpointIfMoved(t.Context()); err != nil || count() != 0 {
		t.Fatalf("empty trail: %v, %d checkpoints; want none", err, count())
	}
	// An event written before the chain was keyed.
	old := storage.AuditEvent{Time: time.Now(), Type: EventLoginPassword, Result: ResultSuccess}
	if err := st.AppendAudit(t.Context(), &old); err != nil || old.ChainKey != "" {
		t.Fatalf("unkeyed append: %v, %+v", err, old)
	}
	KeyStore(st, sealer)
	if err := cp.checkpointIfMoved(t.Context()); err != nil || count() != 1 {
		t.Fatalf("first tick: %v, %d checkpoints; want 1", err, count())
	}
	head, err := st.AuditHead(t.Context())
	if err != nil || head.EventID == old.ID || head.ChainKey != sealer.CurrentKeyID() {
		t.Fatalf("head %+v, %v: want the keyed marker after event %d", head, err, old.ID)
	}
	var line CheckpointLine
	if err := json.Unmarshal(bytes.TrimSpace(hook.Bytes()), &line); err != nil || line.EventID != head.EventID || len(line.JWK) == 0 {
		t.Fatalf("hook got %q (%v), want the checkpoint of event %d with its key", hook.String(), err, head.EventID)
	}
	if err := cp.checkpointIfMoved(t.Context()); err != nil || count() != 1 || strings.Count(hook.String(), "\n") != 1 {
		t.Fatalf("tick with an unmoved head: %v, %d checkpoints, hook %q; want no new one", err, count(), hook.String())
	}
	e := storage.AuditEvent{Time: time.Now(), Type: EventLoginPassword, Result: ResultSuccess}
	if err := st.AppendAudit(t.Context(), &e); err != nil {
		t.Fatal(err)
	}
	if err := cp.checkpointIfMoved(t.Context()); err != nil || count() != 2 || strings.Count(hook.String(), "\n") != 2 {
		t.Fatalf("tick after an append: %v, %d checkpoints; want 2", err, count())
	}
	res, err := VerifyChain(t.Context(), st, ChainKeysOf(sealer))
	if err != nil {
		t.Fatal(err)
	}
	signing, err := st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stored, err := StoredCheckpoints(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	VerifyCheckpoints(&res, "database", stored, signing)
	if !res.Intact || res.Checked != 3 || res.Keyed != 2 || res.Checkpoints[0].Checked != 2 {
		t.Errorf("verify: %+v, want intact with 1 unkeyed, 2 keyed events and 2 checkpoints", res)
	}
}
