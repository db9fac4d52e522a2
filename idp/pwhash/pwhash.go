package pwhash

import (
	"fmt"

	"github.com/alexedwards/argon2id"
)

// Params are the argon2id parameters for new hashes: OWASP's recommendation of
// 19 MiB memory, 2 iterations, 1 degree of parallelism.
var Params = &argon2id.Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// MinLength is the shortest password accepted (NIST SP 800-63B: at least 8).
const MinLength = 8

// Hash returns the argon2id PHC string for password.
func Hash(password string) (string, error) {
	if len(password) < MinLength {
		return "", fmt.Errorf("password must be at least %d characters", MinLength)
	}
	h, err := argon2id.CreateHash(password, Params)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// dummyHash is compared against when the account does not exist, so that a missing
// account costs the same time as a wrong password.
var dummyHash, _ = argon2id.CreateHash("not-a-real-password", Params)

// Verify reports whether password matches hash (in constant time), and whether
// the hash should be replaced because its parameters differ from Params.
func Verify(password, hash string) (ok, needsRehash bool) {
	if hash == "" {
		hash = dummyHash
		_, _, _ = argon2id.CheckHash(password, hash)
		return false, false
	}
	match, params, err := argon2id.CheckHash(password, hash)
	if err != nil || !match {
		return false, false
	}
	return true, *params != *Params
}
