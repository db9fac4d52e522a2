package secret

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// ServerKey returns the 32-byte server secret called name, creating it on first use. It
// is stored sealed, so it survives restarts, is shared by every process, and an
// encryption-key rotation re-seals it without changing it.
func ServerKey(ctx context.Context, store storage.SecretStore, sealer *seal.Sealer, name string) ([32]byte, error) {
	var key [32]byte
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return key, fmt.Errorf("random: %w", err)
	}
	aad := []byte("server-secret:" + name)
	sealed, err := sealer.Seal(fresh, aad)
	if err != nil {
		return key, err
	}
	stored, err := store.GetOrCreateSecret(ctx, name, sealed)
	if err != nil {
		return key, fmt.Errorf("server secret %s: %w", name, err)
	}
	plain, err := sealer.Open(stored, aad)
	if err != nil {
		return key, fmt.Errorf("open server secret %s: %w", name, err)
	}
	if len(plain) != 32 {
		return key, fmt.Errorf("server secret %s has %d bytes", name, len(plain))
	}
	copy(key[:], plain)
	return key, nil
}
