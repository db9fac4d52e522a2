package idp

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// verifiedSignatures bounds the memo of verifiedKeySet: two generations of at most this
// many signatures each (32-byte hash and a key pointer: about 100 bytes an entry).
const verifiedSignatures = 8192

// verifiedKeySet is the key set op verifies access tokens with (introspection, userinfo,
// revocation, the /api bearer tokens): op.OpenIDKeySet — the published keys, read anew for
// every token, the key matched by kid, use and algorithm — in front of a bounded memo of
// the signatures it has already verified. A resource server introspects the same token
// again and again; an ECDSA verification costs about as much CPU as the rest of the
// request.
//
// The memo is keyed by a SHA-256 of the exact bytes jose verifies (the algorithm, the
// signing input as received — base64url header and payload — and the signature) and
// holds the public key they verified under: a hit needs the very same bytes, a key the
// published set still matches for that token, and that key equal to the one that
// verified them. Verification is deterministic, so a hit answers what verifying again
// would; a key withdrawn or rotated out of the published set fails the token as before.
// Only verified signatures enter the memo: an invalid token costs a full verification
// every time, as without the memo. The memo only answers "this signature is valid";
// expiry, issuer and the stored token's revocation are checked on every request.
type verifiedKeySet struct {
	keys op.KeyProvider

	mu        sync.Mutex
	cur, prev map[[sha256.Size]byte]crypto.PublicKey
}

var _ oidc.KeySet = (*verifiedKeySet)(nil)

func newVerifiedKeySet(keys op.KeyProvider) *verifiedKeySet {
	return &verifiedKeySet{keys: keys, cur: make(map[[sha256.Size]byte]crypto.PublicKey)}
}

// VerifySignature implements oidc.KeySet: it returns the payload of jws when its
// signature verifies under the published key it names.
func (v *verifiedKeySet) VerifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	published, err := v.keys.KeySet(ctx)
	if err != nil {
		return nil, fmt.Errorf("error fetching keys: %w", err)
	}
	jwks := make([]jose.JSONWebKey, 0, len(published))
	for _, k := range published {
		jwks = append(jwks, jose.JSONWebKey{Key: k.Key(), KeyID: k.ID(), Algorithm: string(k.Algorithm()), Use: k.Use()})
	}
	keyID, alg := oidc.GetKeyIDAndAlg(jws)
	key, err := oidc.FindMatchingKey(keyID, oidc.KeyUseSignature, alg, jwks...)
	if err != nil {
		return nil, fmt.Errorf("invalid signature: %w", err)
	}
	// First pass: jose hands the probe exactly what it would verify; the probe answers
	// from the memo, or records the hash and declines.
	probe := memoProbe{set: v, key: key.Key}
	if payload, err := jws.Verify(&probe); err == nil && probe.hit {
		return payload, nil
	}
	payload, err := jws.Verify(&key)
	if err != nil {
		return nil, err
	}
	if probe.hashed {
		v.remember(probe.sum, key.Key)
	}
	return payload, nil
}

// lookup reports whether sum is remembered as verified under a key equal to key.
func (v *verifiedKeySet) lookup(sum [sha256.Size]byte, key crypto.PublicKey) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, ok := v.cur[sum]
	if !ok {
		if k, ok = v.prev[sum]; ok {
			v.put(sum, k)
		}
	}
	if !ok {
		return false
	}
	eq, ok := k.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(key)
}

// remember records that sum verified under key.
func (v *verifiedKeySet) remember(sum [sha256.Size]byte, key crypto.PublicKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.put(sum, key)
}

// put stores sum in the current generation, starting a new one when it is full (the
// oldest generation is dropped). v.mu is held.
func (v *verifiedKeySet) put(sum [sha256.Size]byte, key crypto.PublicKey) {
	if len(v.cur) >= verifiedSignatures {
		v.prev, v.cur = v.cur, make(map[[sha256.Size]byte]crypto.PublicKey, verifiedSignatures)
	}
	v.cur[sum] = key
}

// errNotRemembered makes jose's first pass fail when the memo has no answer.
var errNotRemembered = errors.New("signature not remembered")

// memoProbe is the jose.OpaqueVerifier of the first pass: it hashes what jose would
// verify and answers from the memo.
type memoProbe struct {
	set    *verifiedKeySet
	key    crypto.PublicKey
	sum    [sha256.Size]byte
	hashed bool
	hit    bool
}

// VerifyPayload implements jose.OpaqueVerifier.
func (p *memoProbe) VerifyPayload(input, signature []byte, alg jose.SignatureAlgorithm) error {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(alg), input, signature} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	h.Sum(p.sum[:0])
	p.hashed = true
	if p.set.lookup(p.sum, p.key) {
		p.hit = true
		return nil
	}
	return errNotRemembered
}
