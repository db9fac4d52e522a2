package conformance

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization
// server MUST deny the request and SHOULD revoke (when possible) all tokens previously
// issued based on that authorization code." These tests cover the storage half: the
// CodeGrant that ConsumeAuthCode records, IssueCodeTokens and RevokeCodeGrant.

// redeemCode creates auth request id with a code hashing to codeHash that expires at
// codeExp, and redeems it at now.
func redeemCode(t *testing.T, s storage.Storage, id, codeHash string, now, codeExp time.Time) *storage.AuthRequest {
	t.Helper()
	ctx := t.Context()
	must(t, s.CreateAuthRequest(ctx, newAuthRequest(id, now)))
	must(t, s.SaveAuthCode(ctx, id, codeHash, codeExp))
	r, err := s.ConsumeAuthCode(ctx, codeHash, now)
	must(t, err)
	return r
}

// wantRevoked fails unless the access tokens are gone and the refresh tokens are
// revoked (or were never stored).
func wantRevoked(t *testing.T, s storage.Storage, accessIDs, refreshIDs []string) {
	t.Helper()
	for _, id := range accessIDs {
		_, err := s.GetAccessToken(t.Context(), id)
		wantErr(t, err, storage.ErrNotFound)
	}
	for _, id := range refreshIDs {
		rt, err := s.GetRefreshToken(t.Context(), id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		must(t, err)
		if rt.RevokedAt.IsZero() {
			t.Errorf("refresh token %s not revoked", id)
		}
	}
}

func testCodeReplayRevokes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	codeExp := now.Add(time.Minute)
	r := redeemCode(t, s, "ar-grant", "code-hash-grant", now, codeExp)

	// An unrelated grant and a family-less access token (client_credentials) must
	// survive the replay.
	redeemCode(t, s, "ar-other", "code-hash-other", now, codeExp)
	otherAT, otherRT := newAccessToken("at-other", "user-1", "fam-other", now), newRefreshToken("rt-other", "user-1", "fam-other", now)
	must(t, s.IssueCodeTokens(ctx, "code-hash-other", otherAT, otherRT))
	ccAT := newAccessToken("at-cc", "", "", now)
	must(t, s.CreateAccessToken(ctx, ccAT))

	at, rt := newAccessToken("at-grant", "user-1", "fam-grant", now), newRefreshToken("rt-grant", "user-1", "fam-grant", now)
	runErrCases(t, []errCase{
		{"IssueCodeTokens for a code never redeemed", func() error {
			return s.IssueCodeTokens(ctx, "code-hash-unknown", newAccessToken("at-x", "user-1", "", now), nil)
		}, storage.ErrNotFound},
		{"RevokeCodeGrant for a code never redeemed", func() error {
			_, err := s.RevokeCodeGrant(ctx, "code-hash-unknown", now)
			return err
		}, storage.ErrNotFound},
	})
	must(t, s.IssueCodeTokens(ctx, "code-hash-grant", at, rt))
	gotAT, err := s.GetAccessToken(ctx, at.ID)
	must(t, err)
	equal(t, "access token stored by IssueCodeTokens", gotAT, at)
	gotRT, err := s.GetRefreshToken(ctx, rt.ID)
	must(t, err)
	equal(t, "refresh token stored by IssueCodeTokens", gotRT, rt)

	runErrCases(t, []errCase{
		// One redemption issues once.
		{"IssueCodeTokens twice", func() error {
			return s.IssueCodeTokens(ctx, "code-hash-grant", newAccessToken("at-second", "user-1", "fam-second", now),
				newRefreshToken("rt-second", "user-1", "fam-second", now))
		}, storage.ErrConflict},
		{"second IssueCodeTokens stored no access token", func() error {
			_, err := s.GetAccessToken(ctx, "at-second")
			return err
		}, storage.ErrNotFound},
		{"second IssueCodeTokens stored no refresh token", func() error {
			_, err := s.GetRefreshToken(ctx, "rt-second")
			return err
		}, storage.ErrNotFound},
	})

	// The provider deletes the auth request once the tokens are out; the client then
	// rotates its refresh token. The grant outlives the request and covers the rotation.
	must(t, s.DeleteAuthRequest(ctx, r.ID))
	next, nextAT := newRefreshToken("rt-grant-2", "user-1", "fam-grant", now), newAccessToken("at-grant-2", "user-1", "fam-grant", now)
	must(t, s.RotateRefreshToken(ctx, rt.ID, now.Add(time.Second), next, nextAT))

	// The replay: the code is refused, even when the same hash is saved again …
	must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar-resaved", now)))
	must(t, s.SaveAuthCode(ctx, "ar-resaved", "code-hash-grant", codeExp))
	_, err = s.ConsumeAuthCode(ctx, "code-hash-grant", now)
	wantErr(t, err, storage.ErrNotFound)

	// … and what the first redemption issued is revoked.
	replayed := now.Add(2 * time.Second)
	g, err := s.RevokeCodeGrant(ctx, "code-hash-grant", replayed)
	must(t, err)
	want := &storage.CodeGrant{
		CodeHash: "code-hash-grant", ClientID: r.ClientID, UserID: r.Login.UserID,
		AccessTokenID: at.ID, FamilyID: rt.FamilyID, RedeemedAt: now, ReplayedAt: replayed,
		ExpiresAt: rt.ExpiresAt, // the latest expiry of the code and its tokens
	}
	equal(t, "RevokeCodeGrant", g, want)
	wantRevoked(t, s, []string{at.ID, nextAT.ID}, []string{rt.ID, next.ID})
	for _, id := range []string{rt.ID, next.ID} {
		got, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		if !got.RevokedAt.Equal(replayed) {
			t.Errorf("refresh token %s RevokedAt = %v, want %v", id, got.RevokedAt, replayed)
		}
	}

	// A second replay changes nothing and keeps the time of the first.
	g, err = s.RevokeCodeGrant(ctx, "code-hash-grant", replayed.Add(time.Minute))
	must(t, err)
	equal(t, "RevokeCodeGrant again", g, want)

	t.Run("unrelated tokens kept", func(t *testing.T) {
		for _, id := range []string{otherAT.ID, ccAT.ID} {
			_, err := s.GetAccessToken(ctx, id)
			must(t, err)
		}
		got, err := s.GetRefreshToken(ctx, otherRT.ID)
		must(t, err)
		if !got.RevokedAt.IsZero() {
			t.Errorf("refresh token of another code revoked")
		}
	})
}

// testCodeReplayAccessOnly: a code exchanged without offline_access issues one access
// token and no family; the replay deletes exactly that token.
func testCodeReplayAccessOnly(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	redeemCode(t, s, "ar-at", "code-hash-at", now, now.Add(time.Minute))
	at := newAccessToken("at-only", "user-1", "", now)
	keep := newAccessToken("at-keep", "user-1", "", now)
	must(t, s.CreateAccessToken(ctx, keep))
	must(t, s.IssueCodeTokens(ctx, "code-hash-at", at, nil))

	g, err := s.RevokeCodeGrant(ctx, "code-hash-at", now)
	must(t, err)
	if g.AccessTokenID != at.ID || g.FamilyID != "" || !g.ExpiresAt.Equal(at.ExpiresAt) {
		t.Errorf("grant = %+v, want access token %s, no family, expiry %v", g, at.ID, at.ExpiresAt)
	}
	wantRevoked(t, s, []string{at.ID}, nil)
	_, err = s.GetAccessToken(ctx, keep.ID)
	must(t, err)
}

// testCodeReplayBeforeIssue: the replay lands between the winner's redemption and the
// storing of its tokens. The tokens are then never stored.
func testCodeReplayBeforeIssue(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	redeemCode(t, s, "ar-early", "code-hash-early", now, now.Add(time.Minute))

	g, err := s.RevokeCodeGrant(ctx, "code-hash-early", now)
	must(t, err)
	if g.AccessTokenID != "" || g.FamilyID != "" || !g.ReplayedAt.Equal(now) {
		t.Errorf("grant before issue = %+v, want no tokens, replayed at %v", g, now)
	}
	at, rt := newAccessToken("at-late", "user-1", "fam-late", now), newRefreshToken("rt-late", "user-1", "fam-late", now)
	wantErr(t, s.IssueCodeTokens(ctx, "code-hash-early", at, rt), storage.ErrConflict)
	runErrCases(t, []errCase{
		{"access token not stored", func() error { _, err := s.GetAccessToken(ctx, at.ID); return err }, storage.ErrNotFound},
		{"refresh token not stored", func() error { _, err := s.GetRefreshToken(ctx, rt.ID); return err }, storage.ErrNotFound},
	})
}

// testCodeReplayConcurrent races, for several codes, one redemption and its issue
// against replays, the way the provider's token endpoint calls storage: exactly one
// caller redeems each code, and once every call has returned nothing it issued is live.
func testCodeReplayConcurrent(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const codes = 5
	for c := range codes {
		id, hash := fmt.Sprintf("ar-race-%d", c), fmt.Sprintf("code-hash-race-%d", c)
		must(t, s.CreateAuthRequest(ctx, newAuthRequest(id, now)))
		must(t, s.SaveAuthCode(ctx, id, hash, now.Add(time.Minute)))

		var (
			wg                    sync.WaitGroup
			mu                    sync.Mutex
			redeemed, issued      int
			accessIDs, refreshIDs []string
			start                 = make(chan struct{})
		)
		for i := range concurrency {
			wg.Go(func() {
				<-start
				_, err := s.ConsumeAuthCode(ctx, hash, now)
				if errors.Is(err, storage.ErrNotFound) {
					if _, err := s.RevokeCodeGrant(ctx, hash, now); err != nil {
						t.Errorf("RevokeCodeGrant after a lost redemption: %v", err)
					}
					return
				}
				if err != nil {
					t.Errorf("ConsumeAuthCode: %v", err)
					return
				}
				fam := fmt.Sprintf("fam-race-%d-%d", c, i)
				at := newAccessToken("at-"+fam, "user-1", fam, now)
				rt := newRefreshToken("rt-"+fam, "user-1", fam, now)
				err = s.IssueCodeTokens(ctx, hash, at, rt)
				mu.Lock()
				defer mu.Unlock()
				redeemed++
				accessIDs, refreshIDs = append(accessIDs, at.ID), append(refreshIDs, rt.ID)
				switch {
				case err == nil:
					issued++
				case !errors.Is(err, storage.ErrConflict):
					t.Errorf("IssueCodeTokens: %v, want nil or ErrConflict", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if redeemed != 1 || issued > 1 {
			t.Fatalf("code %d: %d redemptions and %d issues, want exactly 1 and at most 1", c, redeemed, issued)
		}
		// Whichever order the calls took, nothing from this code is live.
		wantRevoked(t, s, accessIDs, refreshIDs)
	}
}

// testCodeGrantExpiry: DeleteExpired keeps a grant while the code or the tokens first
// issued with it live, and removes it after.
func testCodeGrantExpiry(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	codeExp := now.Add(time.Minute)

	// Never given tokens: lives as long as the code.
	redeemCode(t, s, "ar-bare", "code-hash-bare", now, codeExp)
	// Given an access token (5 min) and a refresh token (30 days).
	redeemCode(t, s, "ar-long", "code-hash-long", now, codeExp)
	at, rt := newAccessToken("at-long", "user-1", "fam-long", now), newRefreshToken("rt-long", "user-1", "fam-long", now)
	must(t, s.IssueCodeTokens(ctx, "code-hash-long", at, rt))

	revoke := func(hash string) error {
		_, err := s.RevokeCodeGrant(ctx, hash, now)
		return err
	}

	_, err := s.DeleteExpired(ctx, codeExp.Add(-time.Second))
	must(t, err)
	must(t, revoke("code-hash-bare"))

	// Past the code and the access token, before the refresh token.
	_, err = s.DeleteExpired(ctx, at.ExpiresAt.Add(time.Second))
	must(t, err)
	wantErr(t, revoke("code-hash-bare"), storage.ErrNotFound)
	must(t, revoke("code-hash-long"))

	_, err = s.DeleteExpired(ctx, rt.ExpiresAt.Add(time.Second))
	must(t, err)
	wantErr(t, revoke("code-hash-long"), storage.ErrNotFound)
}

// testCodeReplay runs the code-replay tests in order on one store (their ids do not
// collide); GrantExpiry goes last because its DeleteExpired sweeps the others' rows.
func testCodeReplay(t *testing.T, s storage.Storage) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s storage.Storage)
	}{
		{"Revokes", testCodeReplayRevokes},
		{"AccessOnly", testCodeReplayAccessOnly},
		{"BeforeIssue", testCodeReplayBeforeIssue},
		{"Concurrent", testCodeReplayConcurrent},
		{"GrantExpiry", testCodeGrantExpiry},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, s) })
	}
}
