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

// Manager manages token-signing keys: generation, sealing, rotation and loading.
type Manager struct {
	Store  storage.KeyStore
	Sealer *seal.Sealer
	// Retention is how long a retired key stays in the JWKS, so that tokens it signed can
	// still be verified: at least the longest ID/access-token lifetime.
	Retention time.Duration
	Now       func() time.Time

	// parsed caches unsealed private keys by key id. Key material never changes for an
	// id, so the cache cannot go stale; which keys are published or active is still
	// read from the database on every call, so a rotation by any process is seen at once.
	parsed sync.Map // string -> crypto.Signer
}

// Key is a usable signing key.
type Key struct {
	ID        string
	Alg       jose.SignatureAlgorithm
	Private   crypto.Signer
	Public    crypto.PublicKey
	Retired   bool
	CreatedAt time.Time
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

// newSigningKey generates and seals a key pair for alg.
func (k *Manager) newSigningKey(alg string) (*storage.SigningKey, error) {
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
	return &storage.SigningKey{ID: id, Algorithm: alg, PrivateSealed: sealed, PublicJWK: pub, CreatedAt: k.now()}, nil
}

// Rotate adds a new key for every supported algorithm; the keys it replaces stop signing
// at once and stay in the JWKS for Retention.
func (k *Manager) Rotate(ctx context.Context) ([]string, error) {
	var ids []string
	for _, alg := range SupportedAlgs {
		sk, err := k.newSigningKey(alg)
		if err != nil {
			return nil, err
		}
		if err := k.Store.AddSigningKey(ctx, sk, sk.CreatedAt.Add(k.Retention)); err != nil {
			return nil, fmt.Errorf("store %s key: %w", alg, err)
		}
		ids = append(ids, sk.ID)
	}
	return ids, nil
}

// Ensure creates a key for every supported algorithm that has no active key yet (first
// start). Two processes starting together may both create one; both keys are then
// published and the newest signs, which is harmless.
func (k *Manager) Ensure(ctx context.Context) error {
	keys, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	have := map[string]bool{}
	for _, sk := range keys {
		if sk.RetiredAt.IsZero() {
			have[sk.Algorithm] = true
		}
	}
	for _, alg := range SupportedAlgs {
		if have[alg] {
			continue
		}
		sk, err := k.newSigningKey(alg)
		if err != nil {
			return err
		}
		if err := k.Store.AddSigningKey(ctx, sk, sk.CreatedAt.Add(k.Retention)); err != nil {
			return fmt.Errorf("store %s key: %w", alg, err)
		}
	}
	return nil
}

// Published returns the keys currently published (active and retired but unexpired),
// newest first.
func (k *Manager) Published(ctx context.Context) ([]Key, error) {
	stored, err := k.Store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := k.now()
	out := make([]Key, 0, len(stored))
	for _, sk := range stored {
		if !sk.ExpiresAt.IsZero() && !sk.RetiredAt.IsZero() && now.After(sk.ExpiresAt) {
			continue
		}
		signer, err := k.unseal(&sk)
		if err != nil {
			return nil, err
		}
		out = append(out, Key{
			ID: sk.ID, Alg: jose.SignatureAlgorithm(sk.Algorithm), Private: signer,
			Public: signer.Public(), Retired: !sk.RetiredAt.IsZero(), CreatedAt: sk.CreatedAt,
		})
	}
	return out, nil
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

// Active returns the newest active key for alg.
func (k *Manager) Active(ctx context.Context, alg string) (*Key, error) {
	keys, err := k.Published(ctx)
	if err != nil {
		return nil, err
	}
	var best *Key
	for i := range keys {
		kk := &keys[i]
		if kk.Retired || string(kk.Alg) != alg {
			continue
		}
		if best == nil || kk.CreatedAt.After(best.CreatedAt) {
			best = kk
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no active %s signing key", alg)
	}
	return best, nil
}
