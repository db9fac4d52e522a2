package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// testKey is a published signing key of the key set under test.
type testKey struct {
	id  string
	pub *ecdsa.PublicKey
}

func (k testKey) ID() string                         { return k.id }
func (k testKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k testKey) Use() string                        { return "sig" }
func (k testKey) Key() any                           { return k.pub }

// testKeys is a key provider whose published set the test changes.
type testKeys struct {
	mu   sync.Mutex
	keys []op.Key
}

func (p *testKeys) KeySet(context.Context) ([]op.Key, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]op.Key(nil), p.keys...), nil
}

func (p *testKeys) publish(keys ...op.Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signCompact returns a compact ES256 JWS of payload with kid.
func signCompact(t *testing.T, key *ecdsa.PrivateKey, kid, payload string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// verifyCompact parses token and verifies it with v.
func verifyCompact(v *verifiedKeySet, token string) (string, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", err
	}
	payload, err := v.VerifySignature(context.Background(), jws)
	return string(payload), err
}

// replacePart returns token with its i-th dot-separated part replaced by part.
func replacePart(token string, i int, part string) string {
	parts := strings.Split(token, ".")
	parts[i] = part
	return strings.Join(parts, ".")
}

// TestVerifiedKeySet: the memo of verified signatures answers only for the very bytes it
// verified, under a key the published set still holds; forgeries fail whether or not the
// genuine token was verified before.
func TestVerifiedKeySet(t *testing.T) {
	k1, k2 := newECKey(t), newECKey(t)
	pub1 := testKey{"k1", &k1.PublicKey}
	provider := &testKeys{}
	provider.publish(pub1)
	v := newVerifiedKeySet(provider)

	const payload = `{"sub":"alice","scope":"api"}`
	token := signCompact(t, k1, "k1", payload)
	for i := range 3 { // the first verification fills the memo, the next ones hit it
		got, err := verifyCompact(v, token)
		if err != nil || got != payload {
			t.Fatalf("verification %d: %q, %v", i, got, err)
		}
	}
	if len(v.cur) != 1 {
		t.Fatalf("memo holds %d signatures, want 1", len(v.cur))
	}

	parts := strings.Split(token, ".")
	otherHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"k1","typ":"JWT"}`))
	forgeries := []struct {
		name, token string
	}{
		{"payload changed", replacePart(token, 1, base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","scope":"api"}`)))},
		{"header changed", replacePart(token, 0, otherHeader)},
		{"signature of another key", replacePart(token, 2, strings.Split(signCompact(t, k2, "k1", payload), ".")[2])},
		{"signature truncated", replacePart(token, 2, parts[2][:len(parts[2])-4])},
		{"signed by an unpublished key", signCompact(t, k2, "k1", payload)},
	}
	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			if got, err := verifyCompact(v, f.token); err == nil {
				t.Fatalf("forgery verified: %q", got)
			}
		})
	}
	if len(v.cur) != 1 {
		t.Fatalf("memo holds %d signatures after forgeries, want 1 (only verified ones enter)", len(v.cur))
	}

	// The key is replaced under the same kid: the remembered signature no longer counts.
	provider.publish(testKey{"k1", &k2.PublicKey})
	if _, err := verifyCompact(v, token); err == nil {
		t.Fatal("a remembered token verified under a different key with its kid")
	}
	// The key is withdrawn from the published set.
	provider.publish(testKey{"k2", &k2.PublicKey})
	if _, err := verifyCompact(v, token); err == nil {
		t.Fatal("a remembered token verified after its key was withdrawn")
	}
	// Published again: valid again.
	provider.publish(pub1, testKey{"k2", &k2.PublicKey})
	if got, err := verifyCompact(v, token); err != nil || got != payload {
		t.Fatalf("republished key: %q, %v", got, err)
	}
}

// TestVerifiedKeySetBounded: the memo keeps at most two generations.
func TestVerifiedKeySetBounded(t *testing.T) {
	k := newECKey(t)
	v := newVerifiedKeySet(&testKeys{keys: []op.Key{testKey{"k", &k.PublicKey}}})
	var sum [32]byte
	for i := range 3*verifiedSignatures + 5 {
		sum[0], sum[1], sum[2] = byte(i), byte(i>>8), byte(i>>16)
		v.remember(sum, &k.PublicKey)
	}
	if n := len(v.cur) + len(v.prev); n > 2*verifiedSignatures {
		t.Fatalf("memo holds %d signatures, bound %d", n, 2*verifiedSignatures)
	}
	if !v.lookup(sum, &k.PublicKey) {
		t.Fatal("the newest signature was dropped")
	}
}
