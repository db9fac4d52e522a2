package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// Signing algorithms the provider offers. ES256 is the default; RS256 is for clients
// that ask for it.
const (
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

// SupportedAlgs lists the algorithms keys are kept for, default first.
var SupportedAlgs = []string{AlgES256, AlgRS256}

// Default timings of a rotation.
const (
	// DefaultPublishDelay is how long a rotated-in key is published before it signs. It
	// must be at least the max-age of the published key set (idp.Config.JWKSMaxAge,
	// default 10m), so that a verifier that cached the set just before the rotation
	// knows the key before it meets a token signed with it.
	DefaultPublishDelay = time.Hour
	// DefaultRetention is how long a replaced key stays published after it stopped
	// signing: at least the longest ID-token or access-token lifetime.
	DefaultRetention = 24 * time.Hour
)

// Manager manages token-signing keys: generation, sealing, rotation and loading.
//
// A key goes through these states, all decided from the database and the clock (so
// every process agrees without talking to the others):
//
//	pending  published in the JWKS, not signing yet (until ActivatesAt)
//	active   published and signing (the newest activated key of its algorithm)
//	retired  published, no longer signing, until ExpiresAt
//	expired  out of the JWKS, waiting for the expiry sweep to delete it
type Manager struct {
	Store  storage.KeyStore
	Sealer *seal.Sealer
	// Retention is how long a replaced key stays in the JWKS after it stopped signing,
	// so that tokens it signed can still be verified: at least the longest ID/access-
	// token lifetime.
	Retention time.Duration
	// PublishDelay is how long Rotate publishes a new key before it signs: at least the
	// max-age of the published key set. Zero makes new keys sign at once.
	PublishDelay time.Duration
	Now          func() time.Time

	// parsed caches unsealed private keys by key id. Key material never changes for an
	// id, so the cache cannot go stale; which keys are published or active is still
	// read from the database on every call, so a rotation by any process is seen at once.
	parsed sync.Map // string -> crypto.Signer
}

// State is where a key is in its life at a given time.
type State string

// Key states; see Manager.
const (
	StatePending State = "pending"
	StateActive  State = "active"
	StateRetired State = "retired"
	StateExpired State = "expired"
)

// Key is a signing key. Private and Public are nil in the keys List returns.
type Key struct {
	ID          string
	Alg         jose.SignatureAlgorithm
	Private     crypto.Signer
	Public      crypto.PublicKey
	State       State // at the time the key was loaded
	CreatedAt   time.Time
	ActivatesAt time.Time // when it starts signing
	RetiredAt   time.Time // when it stops signing; zero while no newer key replaces it
	ExpiresAt   time.Time // when it leaves the JWKS; zero while not retired
}

// stateAt says what sk is at now.
func stateAt(sk *storage.SigningKey, now time.Time) State {
	switch {
	case !sk.RetiredAt.IsZero() && !sk.ExpiresAt.IsZero() && now.After(sk.ExpiresAt):
		return StateExpired
	case !sk.RetiredAt.IsZero() && !now.Before(sk.RetiredAt):
		return StateRetired // possibly without ever signing, if replaced while pending
	case now.Before(sk.Activation()):
		return StatePending
	default:
		return StateActive
	}
}

func (k *Manager) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
}

// newSigningKey generates and seals a key pair for alg that signs from activates.
func (k *Manager) newSigningKey(alg string, now, activates time.Time) (*storage.SigningKey, error) {
	priv, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	id := secret.NewID()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	sealed, err := k.Sealer.Seal(der, []byte("signing-key:"+id))
	if err != nil {
		return nil, fmt.Errorf("seal private key: %w", err)
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return &storage.SigningKey{ID: id, Algorithm: alg, PrivateSealed: sealed, PublicJWK: pub, CreatedAt: now, ActivatesAt: activates}, nil
}

// Rotate adds a new key for every supported algorithm. The new keys are published at
// once and sign after PublishDelay; the keys they replace sign until then and stay in
// the JWKS for Retention after that. A key with no active key to replace (a database
// without keys) signs at once. It is PrepareRotation then StoreRotation.
func (k *Manager) Rotate(ctx context.Context) ([]string, error) {
	r, err := k.PrepareRotation(ctx)
	if err != nil {
		return nil, err
	}
	if err := k.StoreRotation(ctx, r); err != nil {
		return nil, err
	}
	return r.IDs(), nil
}

// Rotation is the new keys of a rotation, made by PrepareRotation and not stored yet,
// so that their ids can be recorded before any of them is published.
type Rotation struct {
	keys          []*storage.SigningKey
	retiredExpiry []time.Time // when the key each replaces leaves the JWKS
}

// IDs returns the ids of the new keys, one per supported algorithm.
func (r *Rotation) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, sk := range r.keys {
		ids[i] = sk.ID
	}
	return ids
}

// PrepareRotation makes the keys Rotate adds, from the keys stored now, and stores
// nothing.
func (k *Manager) PrepareRotation(ctx context.Context) (*Rotation, error) {
	stored, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	signing := map[string]bool{}
	for _, sk := range stored {
		if stateAt(&sk, now) == StateActive {
			signing[sk.Algorithm] = true
		}
	}
	r := &Rotation{}
	for _, alg := range SupportedAlgs {
		activates := now
		if signing[alg] {
			activates = now.Add(max(k.PublishDelay, 0))
		}
		sk, err := k.newSigningKey(alg, now, activates)
		if err != nil {
			return nil, err
		}
		r.keys = append(r.keys, sk)
		r.retiredExpiry = append(r.retiredExpiry, activates.Add(k.Retention))
	}
	return r, nil
}

// StoreRotation stores the keys of r, each retiring the key of its algorithm it
// replaces (storage.KeyStore.AddSigningKey). When one fails, those before it stay.
func (k *Manager) StoreRotation(ctx context.Context, r *Rotation) error {
	for i, sk := range r.keys {
		if err := k.Store.AddSigningKey(ctx, sk, r.retiredExpiry[i]); err != nil {
			return fmt.Errorf("store %s key (%d of %d stored): %w", sk.Algorithm, i, len(r.keys), err)
		}
	}
	return nil
}

// Ensure creates a key for every supported algorithm that has no key signing now or
// later (first start); such a key signs at once, as there is nothing else to sign with.
// Two processes starting together may both create one; both keys are then published
// and the newest signs, which is harmless.
func (k *Manager) Ensure(ctx context.Context) error {
	keys, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	have := map[string]bool{}
	for _, sk := range keys {
		if st := stateAt(&sk, now); st == StatePending || st == StateActive {
			have[sk.Algorithm] = true
		}
	}
	for _, alg := range SupportedAlgs {
		if have[alg] {
			continue
		}
		sk, err := k.newSigningKey(alg, now, now)
		if err != nil {
			return err
		}
		if err := k.Store.AddSigningKey(ctx, sk, sk.CreatedAt.Add(k.Retention)); err != nil {
			return fmt.Errorf("store %s key: %w", alg, err)
		}
	}
	return nil
}

// Published returns the keys currently published (pending, active, and retired but
// unexpired), newest first.
func (k *Manager) Published(ctx context.Context) ([]Key, error) {
	stored, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	out := make([]Key, 0, len(stored))
	for _, sk := range stored {
		key := keyAt(&sk, now)
		if key.State == StateExpired {
			continue
		}
		signer, err := k.unseal(&sk)
		if err != nil {
			return nil, err
		}
		key.Private, key.Public = signer, signer.Public()
		out = append(out, key)
	}
	return out, nil
}

// List returns every stored key with its state, newest first, expired ones included,
// without opening the private keys (it needs no Sealer).
func (k *Manager) List(ctx context.Context) ([]Key, error) {
	stored, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	out := make([]Key, 0, len(stored))
	for _, sk := range stored {
		out = append(out, keyAt(&sk, now))
	}
	return out, nil
}

// keyAt describes sk at now, without its key material.
func keyAt(sk *storage.SigningKey, now time.Time) Key {
	return Key{
		ID: sk.ID, Alg: jose.SignatureAlgorithm(sk.Algorithm), State: stateAt(sk, now),
		CreatedAt: sk.CreatedAt, ActivatesAt: sk.Activation(), RetiredAt: sk.RetiredAt, ExpiresAt: sk.ExpiresAt,
	}
}

// unseal returns the private key of sk, from the cache when it was opened before.
func (k *Manager) unseal(sk *storage.SigningKey) (crypto.Signer, error) {
	if v, ok := k.parsed.Load(sk.ID); ok {
		return v.(crypto.Signer), nil
	}
	der, err := k.Sealer.Open(sk.PrivateSealed, []byte("signing-key:"+sk.ID))
	if err != nil {
		return nil, fmt.Errorf("open signing key %s: %w", sk.ID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse signing key %s: %w", sk.ID, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signer", sk.ID)
	}
	k.parsed.Store(sk.ID, signer)
	return signer, nil
}

// Active returns the key that signs for alg now: of the active keys, the one activated
// last (the newest, if two processes created one together). A pending key never signs,
// however new: verifiers may not know it yet.
//
// It runs for every token signed, so it opens only the key it returns, and reads the
// key list without copying it when the store can hand it out shared (the cache).
func (k *Manager) Active(ctx context.Context, alg string) (*Key, error) {
	stored, err := k.listShared(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	var best *storage.SigningKey
	for i := range stored {
		sk := &stored[i]
		if sk.Algorithm != alg || stateAt(sk, now) != StateActive {
			continue
		}
		if best == nil || sk.Activation().After(best.Activation()) ||
			(sk.Activation().Equal(best.Activation()) && sk.CreatedAt.After(best.CreatedAt)) {
			best = sk
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no active %s signing key", alg)
	}
	key := keyAt(best, now)
	signer, err := k.unseal(best)
	if err != nil {
		return nil, err
	}
	key.Private, key.Public = signer, signer.Public()
	return &key, nil
}

// SharedKeyLister is a key store that can list its keys without copying them: the
// caller only reads the slice and the keys' bytes, and never keeps or modifies them.
// The cache (storage/cache) is one.
type SharedKeyLister interface {
	ListSigningKeysShared(ctx context.Context) ([]storage.SigningKey, error)
}

// listShared lists the stored keys, shared with the store when it allows it.
func (k *Manager) listShared(ctx context.Context) ([]storage.SigningKey, error) {
	if l, ok := k.Store.(SharedKeyLister); ok {
		return l.ListSigningKeysShared(ctx)
	}
	return k.Store.ListSigningKeys(ctx)
}
