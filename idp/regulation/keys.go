package regulation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/openidp/idp/storage"
)

// Counter keys. The server names its counters "u:<user>:..." for an account, "e:<e-mail>:..."
// for an e-mail address without an account and "ip:<address>:..." for an address;
// KeyPart keeps each part bounded.

// KeyPart keeps a counter key bounded: long or odd values (an e-mail address as typed)
// are replaced by their hash.
func KeyPart(v string) string {
	if len(v) <= 96 && !strings.ContainsAny(v, " \t\r\n") {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "h" + hex.EncodeToString(sum[:16])
}

// UserPrefix is the prefix of every counter of one account; an administrator's
// unlock clears them all.
func UserPrefix(userID string) string { return "u:" + KeyPart(userID) + ":" }

// UnlockUser clears every guessing counter of the account (an administrator's unlock,
// part of an MFA reset).
func UnlockUser(ctx context.Context, store storage.AttemptStore, userID string) error {
	_, err := store.ResetAttemptsPrefix(ctx, UserPrefix(userID))
	return err
}
