package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// testSessionTokenRotation: UpdateSessionAuth with a TokenHash replaces the cookie hash
// (the old cookie no longer finds the session, the new one does); without one it keeps it.
func testSessionTokenRotation(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	ss := newSession("sess-rot", "user-a", now)
	must(t, s.CreateSession(ctx, ss))
	oldHash := ss.TokenHash

	auth := storage.SessionAuth{AuthTime: now, PasswordAt: now, AMR: []string{"pwd"}, ACR: "pwd"}
	must(t, s.UpdateSessionAuth(ctx, ss.ID, auth))
	got, err := s.GetSessionByTokenHash(ctx, oldHash)
	must(t, err)
	equal(t, "cookie hash kept without TokenHash", got.ID, ss.ID)

	auth.MFAAt, auth.AMR, auth.ACR, auth.TokenHash = now.Add(time.Second), []string{"mfa", "otp", "pwd"}, "mfa", "rotated-hash"
	must(t, s.UpdateSessionAuth(ctx, ss.ID, auth))
	_, err = s.GetSessionByTokenHash(ctx, oldHash)
	wantErr(t, err, storage.ErrNotFound)
	got, err = s.GetSessionByTokenHash(ctx, "rotated-hash")
	must(t, err)
	equal(t, "session found by the new cookie", got.ACR, "mfa")
	equal(t, "token hash", got.TokenHash, "rotated-hash")
}
