// Package seal encrypts secrets at rest (signing keys, later OTP seeds) with AES-256-GCM
// under the provider's encryption key. Each ciphertext carries the id of the key that
// sealed it, so keys can be rotated: a Sealer holds one current key that seals and any
// number of older keys that still open.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length in bytes of an encryption key.
const KeySize = 32

// ErrUnknownKey means the ciphertext was sealed with a key this Sealer does not hold.
var ErrUnknownKey = errors.New("seal: ciphertext sealed with an unknown key")

// Sealer seals and opens byte strings.
type Sealer struct {
	current string
	master  []byte
	aeads   map[string]cipher.AEAD
	keys    map[string][]byte // every key held, by id, for DeriveKeys
}

// KeyID returns the public identifier of a key: the first 8 bytes of its SHA-256, in hex.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("encryption key must be %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("encryption key is not valid base64")
}

// NewKey returns a fresh random key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return k
}

// New returns a Sealer that seals with current and opens with current or any of older.
func New(current []byte, older ...[]byte) (*Sealer, error) {
	s := &Sealer{aeads: map[string]cipher.AEAD{}, keys: map[string][]byte{}, master: bytes.Clone(current)}
	for i, k := range append([][]byte{current}, older...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("encryption key %d: want %d bytes, got %d", i, KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("aes: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("gcm: %w", err)
		}
		id := KeyID(k)
		if i == 0 {
			s.current = id
		}
		s.aeads[id] = aead
		s.keys[id] = bytes.Clone(k)
	}
	return s, nil
}

// CurrentKeyID is the id of the key that seals.
func (s *Sealer) CurrentKeyID() string { return s.current }

// Seal encrypts plaintext, binding it to aad (which must be given again to Open).
// The result is "<key id>.<base64url(nonce|ciphertext)>".
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := s.aeads[s.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	ct := aead.Seal(nonce, nonce, plaintext, aad)
	out := make([]byte, 0, len(s.current)+1+base64.RawURLEncoding.EncodedLen(len(ct)))
	out = append(out, s.current...)
	out = append(out, '.')
	return base64.RawURLEncoding.AppendEncode(out, ct), nil
}

// Open decrypts what Seal produced with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	id, body, ok := bytes.Cut(sealed, []byte("."))
	if !ok {
		return nil, errors.New("seal: malformed ciphertext")
	}
	aead, ok := s.aeads[string(id)]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownKey, id)
	}
	ct, err := base64.RawURLEncoding.DecodeString(string(body))
	if err != nil {
		return nil, fmt.Errorf("seal: malformed ciphertext: %w", err)
	}
	if len(ct) < aead.NonceSize() {
		return nil, errors.New("seal: ciphertext too short")
	}
	pt, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("seal: open: %w", err)
	}
	return pt, nil
}

// DeriveKey derives a purpose-bound 32-byte subkey from the current key with HKDF-SHA256,
// for uses that need a symmetric key of their own (the OIDC code/opaque-token key, CSRF
// and cookie MACs). Every process with the same encryption key derives the same subkey.
func (s *Sealer) DeriveKey(purpose string) [32]byte {
	k, err := hkdf.Key(sha256.New, s.master, nil, "openidp "+purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("hkdf: %v", err))
	}
	var out [32]byte
	copy(out[:], k)
	return out
}

// DeriveKeys derives the purpose-bound subkey of DeriveKey from every key the Sealer
// holds (the current one and the older ones), by key id: for data keyed under an older
// key that must still be checked, such as audit events chained before a key rotation.
func (s *Sealer) DeriveKeys(purpose string) map[string][32]byte {
	out := make(map[string][32]byte, len(s.keys))
	for id, k := range s.keys {
		d, err := hkdf.Key(sha256.New, k, nil, "openidp "+purpose, 32)
		if err != nil {
			panic(fmt.Sprintf("hkdf: %v", err))
		}
		var key [32]byte
		copy(key[:], d)
		out[id] = key
	}
	return out
}
