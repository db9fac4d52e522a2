package secret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
)

// Token returns n random bytes, base64url without padding.
func Token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a random 128-bit identifier (base64url, 22 characters). It never
// contains ':' (op splits opaque tokens on it) and never starts with '-', so that
// command-line tools do not take it for a flag.
func NewID() string {
	for {
		if id := Token(16); id[0] != '-' {
			return id
		}
	}
}

// NewClientSecret returns a fresh 256-bit client secret and its SHA-256 digest, which is
// what gets stored. A fast digest is the right hash for a high-entropy secret.
func NewClientSecret() (secret string, hash []byte) {
	secret = Token(32)
	return secret, HashClientSecret(secret)
}

// HashClientSecret returns the SHA-256 digest of a client secret.
func HashClientSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// ClientSecretMatches compares a presented secret with a stored digest in constant time.
func ClientSecretMatches(secret string, hash []byte) bool {
	if len(hash) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(HashClientSecret(secret), hash) == 1
}

// Hash is the hex SHA-256 under which bearer secrets (refresh tokens, session
// cookies, codes) are stored.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// MAC returns base64url(HMAC-SHA256(key, purpose|value)).
func MAC(key [32]byte, purpose, value string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// EqualMAC compares two MACs in constant time.
func EqualMAC(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
