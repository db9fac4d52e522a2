package conformance

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openidp/idp/storage"
)

func testSecrets(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	v1, v2 := []byte("sealed-1\x00\xff"), []byte("sealed-2")
	got, err := s.GetOrCreateSecret(ctx, "backup-code-key", v1)
	must(t, err)
	equal(t, "first GetOrCreateSecret", got, v1)
	got, err = s.GetOrCreateSecret(ctx, "backup-code-key", v2)
	must(t, err)
	equal(t, "second GetOrCreateSecret returns the stored value", got, v1)
	other := []byte("sealed-other")
	got, err = s.GetOrCreateSecret(ctx, "cookie-key", other)
	must(t, err)
	equal(t, "GetOrCreateSecret of another name", got, other)

	all, err := s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets", all, map[string][]byte{"backup-code-key": v1, "cookie-key": other})

	v3 := []byte("resealed\x00")
	must(t, s.UpdateSecret(ctx, "backup-code-key", v3))
	got, err = s.GetOrCreateSecret(ctx, "backup-code-key", v2)
	must(t, err)
	equal(t, "GetOrCreateSecret after UpdateSecret", got, v3)
	wantErr(t, s.UpdateSecret(ctx, "missing", v3), storage.ErrNotFound)
	all, err = s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets after UpdateSecret", all, map[string][]byte{"backup-code-key": v3, "cookie-key": other})
}

func testSecretConcurrentCreate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	const callers = 10
	got := make([][]byte, callers)
	wins := race(t, callers, nil, func(i int) error {
		v, err := s.GetOrCreateSecret(ctx, "race", []byte(fmt.Sprintf("value-%d", i)))
		got[i] = v
		return err
	})
	if wins != callers {
		t.Fatalf("%d of %d concurrent GetOrCreateSecret calls succeeded", wins, callers)
	}
	first := got[0]
	if !strings.HasPrefix(string(first), "value-") {
		t.Fatalf("GetOrCreateSecret returned %q, want one of the values offered", first)
	}
	for i, v := range got {
		equal(t, fmt.Sprintf("value of caller %d", i), v, first)
	}
	all, err := s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets", all, map[string][]byte{"race": first})
}
