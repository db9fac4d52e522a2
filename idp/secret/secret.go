package secret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"time"
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

// sortableEncoding is base32 with the "extended hex" alphabet, lower-case: its
// characters sort in the order of the values they encode.
var sortableEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewSortableID returns a 128-bit identifier that sorts by creation time: the
// millisecond it was made (48 bits, big-endian) and 80 random bits, in base32 with a
// sorted alphabet (26 characters of 0-9 and a-v). Rows keyed by such ids, and indexes
// on them, grow at their end instead of at a random page: for token ids, which are
// written on every token request. It tells when it was made, which a token's iat tells
// anyway; it is an identifier, never a secret.
func NewSortableID() string {
	var b [16]byte
	_, _ = rand.Read(b[6:]) // crypto/rand never fails on supported platforms
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	return sortableEncoding.EncodeToString(b[:])
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
