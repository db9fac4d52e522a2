package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testDeleteExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)

	arOld, arLive := newAuthRequest("ar-old", now.Add(-time.Hour)), newAuthRequest("ar-live", now)
	arOld.ExpiresAt, arLive.ExpiresAt = past, future
	sOld, sLive := newSession("sess-old", "user-a", now.Add(-48*time.Hour)), newSession("sess-live", "user-a", now)
	sOld.ExpiresAt = past
	atOld, atLive := newAccessToken("at-old", "user-a", "", now), newAccessToken("at-live", "user-a", "", now)
	atOld.ExpiresAt, atLive.ExpiresAt = past, future
	rtOld, rtLive := newRefreshToken("rt-old", "user-a", "fam-old", now), newRefreshToken("rt-live", "user-a", "fam-live", now)
	rtOld.ExpiresAt, rtLive.ExpiresAt = past, future
	atRtOld, atRtLive := newAccessToken("at-rt-old", "user-a", "fam-old", now), newAccessToken("at-rt-live", "user-a", "fam-live", now)
	atRtOld.ExpiresAt, atRtLive.ExpiresAt = past, future

	must(t, s.CreateAuthRequest(ctx, arOld))
	must(t, s.CreateAuthRequest(ctx, arLive))
	must(t, s.CreateSession(ctx, sOld))
	must(t, s.CreateSession(ctx, sLive))
	must(t, s.CreateAccessToken(ctx, atOld))
	must(t, s.CreateAccessToken(ctx, atLive))
	must(t, s.CreateRefreshToken(ctx, rtOld, atRtOld))
	must(t, s.CreateRefreshToken(ctx, rtLive, atRtLive))
	// A one-minute window opened two days ago, and one opened just now.
	_, err := s.HitRateLimit(ctx, "rl-old", time.Minute, now.Add(-48*time.Hour))
	must(t, err)
	_, err = s.HitRateLimit(ctx, "rl-live", time.Minute, now.Add(-10*time.Second))
	must(t, err)
	// es-old retired with an expiry in the past; es-mid retired, not yet expired;
	// es-new and rs-1 are signing (no expiry).
	mk := func(id, alg string, created time.Time) *storage.SigningKey {
		return &storage.SigningKey{ID: id, Algorithm: alg, PrivateSealed: []byte("p" + id), PublicJWK: []byte("{}"), CreatedAt: created}
	}
	must(t, s.AddSigningKey(ctx, mk("es-old", "ES256", now.Add(-72*time.Hour)), time.Time{}))
	must(t, s.AddSigningKey(ctx, mk("rs-1", "RS256", now.Add(-72*time.Hour)), time.Time{}))
	must(t, s.AddSigningKey(ctx, mk("es-mid", "ES256", now.Add(-48*time.Hour)), now.Add(-24*time.Hour)))
	must(t, s.AddSigningKey(ctx, mk("es-new", "ES256", now.Add(-time.Hour)), now.Add(24*time.Hour)))

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	// ar-old, sess-old, at-old, at-rt-old, rt-old, rl-old, es-old.
	if n != 7 {
		t.Errorf("DeleteExpired = %d, want 7", n)
	}

	gone := []errCase{
		{"auth request", func() error { _, err := s.GetAuthRequest(ctx, arOld.ID); return err }, storage.ErrNotFound},
		{"session", func() error { _, err := s.GetSession(ctx, sOld.ID); return err }, storage.ErrNotFound},
		{"access token", func() error { _, err := s.GetAccessToken(ctx, atOld.ID); return err }, storage.ErrNotFound},
		{"refresh token", func() error { _, err := s.GetRefreshToken(ctx, rtOld.ID); return err }, storage.ErrNotFound},
		{"access token of refresh token", func() error { _, err := s.GetAccessToken(ctx, atRtOld.ID); return err }, storage.ErrNotFound},
	}
	t.Run("expired rows gone", func(t *testing.T) { runErrCases(t, gone) })

	t.Run("live rows kept", func(t *testing.T) {
		_, err := s.GetAuthRequest(ctx, arLive.ID)
		must(t, err)
		_, err = s.GetSession(ctx, sLive.ID)
		must(t, err)
		for _, id := range []string{atLive.ID, atRtLive.ID} {
			_, err = s.GetAccessToken(ctx, id)
			must(t, err)
		}
		_, err = s.GetRefreshToken(ctx, rtLive.ID)
		must(t, err)
		c, err := s.RateLimitCount(ctx, "rl-live", time.Minute, now)
		must(t, err)
		if c != 1 {
			t.Errorf("rl-live count = %d, want 1", c)
		}
		keys, err := s.ListSigningKeys(ctx)
		must(t, err)
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		equal(t, "signing keys left", ids, []string{"es-new", "es-mid", "rs-1"})
	})

	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteExpired = %d, want 0", n)
	}
}

func testDeleteExpiredMFA(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	mk := func(id string, expires time.Time, consume bool) *storage.Challenge {
		c := newChallenge(id, now.Add(-time.Hour))
		c.ExpiresAt = expires
		must(t, s.CreateChallenge(ctx, c))
		if consume {
			must(t, s.ConsumeChallenge(ctx, id, now.Add(-30*time.Minute)))
		}
		return c
	}
	expired := mk("ch-expired", past, false)
	expiredConsumed := mk("ch-expired-consumed", past, true)
	live := mk("ch-live", future, false)
	liveConsumed := mk("ch-live-consumed", future, true)

	// Nothing else of the MFA store expires, whatever its times say.
	f := newFactor("totp-old", "user-a", "totp", now.Add(-72*time.Hour))
	f.LastUsedAt = now.Add(-48 * time.Hour)
	must(t, s.CreateFactor(ctx, f))
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"h1", "h2"}, now.Add(-72*time.Hour)))
	_, err := s.IncrementFailures(ctx, "acct:alice", now.Add(-72*time.Hour))
	must(t, err)
	must(t, s.SetLockedUntil(ctx, "acct:alice", now.Add(-48*time.Hour)))
	_, err = s.GetOrCreateSecret(ctx, "backup-code-key", []byte("sealed"))
	must(t, err)

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpired = %d, want 2 (the expired challenges)", n)
	}

	// An id can be reused only once its challenge is gone.
	t.Run("expired challenges gone", func(t *testing.T) {
		for _, c := range []*storage.Challenge{expired, expiredConsumed} {
			must(t, s.CreateChallenge(ctx, newChallenge(c.ID, now)))
		}
	})
	t.Run("live challenges kept", func(t *testing.T) {
		got, err := s.AttemptChallenge(ctx, live.ID, now, 5)
		must(t, err)
		want := *live
		want.Attempts = 1
		equal(t, "live challenge", got, &want)
		wantErr(t, s.CreateChallenge(ctx, newChallenge(liveConsumed.ID, now)), storage.ErrAlreadyExists)
	})
	t.Run("factors, codes, counters and secrets kept", func(t *testing.T) {
		got, err := s.GetFactor(ctx, f.ID)
		must(t, err)
		equal(t, "factor", got, f)
		wantBackupCodes(t, s, "user-a", 2)
		failures, lockedUntil, err := s.GetFailures(ctx, "acct:alice")
		must(t, err)
		if failures != 1 || !lockedUntil.Equal(now.Add(-48*time.Hour)) {
			t.Errorf("GetFailures = %d, %v; want 1, %v", failures, lockedUntil, now.Add(-48*time.Hour))
		}
		all, err := s.ListSecrets(ctx)
		must(t, err)
		equal(t, "secrets", all, map[string][]byte{"backup-code-key": []byte("sealed")})
	})

	n, err = s.DeleteExpired(ctx, now.Add(-2*time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("DeleteExpired before every expiry = %d, want 0", n)
	}
}

func testDeleteExpiredDevices(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	old := newDevice("dev-old", "user-a", now.Add(-31*24*time.Hour))
	old.ExpiresAt = now.Add(-time.Minute)
	live := newDevice("dev-live", "user-a", now.Add(-time.Hour))
	for _, d := range []*storage.Device{old, live} {
		must(t, s.CreateDevice(ctx, d))
	}

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpired = %d, want 1 (the expired device)", n)
	}
	_, err = s.GetDeviceByTokenHash(ctx, old.TokenHash)
	wantErr(t, err, storage.ErrNotFound)
	list, err := s.ListUserDevices(ctx, "user-a")
	must(t, err)
	equal(t, "devices left", list, []storage.Device{*live})

	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteExpired = %d, want 0", n)
	}
}
