package conformance

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testAccessTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	user := newAccessToken("at-user", "user-a", "", now)
	cc := &storage.AccessToken{ID: "at-cc", ClientID: "client-svc", Audience: []string{"https://api.example"},
		Scopes: []string{"api:read"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, at := range []*storage.AccessToken{user, cc} {
		must(t, s.CreateAccessToken(ctx, at))
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "GetAccessToken("+at.ID+")", got, at)
	}
	runErrCases(t, []errCase{
		{"CreateAccessToken duplicate id", func() error {
			return s.CreateAccessToken(ctx, newAccessToken(user.ID, "user-b", "", now))
		}, storage.ErrAlreadyExists},
		{"GetAccessToken missing", func() error {
			_, err := s.GetAccessToken(ctx, "at-missing")
			return err
		}, storage.ErrNotFound},
	})
	must(t, s.DeleteAccessToken(ctx, user.ID))
	_, err := s.GetAccessToken(ctx, user.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteAccessToken(ctx, user.ID)) // missing is not an error
	_, err = s.GetAccessToken(ctx, cc.ID)
	must(t, err)
}

func testRefreshTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	rt1 := newRefreshToken("rt-1", "user-a", "fam-1", now)
	at1 := newAccessToken("at-1", "user-a", "fam-1", now)
	must(t, s.CreateRefreshToken(ctx, rt1, at1))
	got, err := s.GetRefreshToken(ctx, rt1.ID)
	must(t, err)
	equal(t, "GetRefreshToken", got, rt1)
	got, err = s.GetRefreshTokenByHash(ctx, rt1.TokenHash)
	must(t, err)
	equal(t, "GetRefreshTokenByHash", got, rt1)
	gotAT, err := s.GetAccessToken(ctx, at1.ID)
	must(t, err)
	equal(t, "access token of CreateRefreshToken", gotAT, at1)

	rotatedAt := now.Add(time.Minute)
	rt2 := newRefreshToken("rt-2", "user-a", "fam-1", rotatedAt)
	at2 := newAccessToken("at-2", "user-a", "fam-1", rotatedAt)
	must(t, s.RotateRefreshToken(ctx, rt1.ID, rotatedAt, rt2, at2))
	wantRT1 := *rt1
	wantRT1.RotatedAt = rotatedAt
	wantRT1.SuccessorID = rt2.ID
	got, err = s.GetRefreshTokenByHash(ctx, rt1.TokenHash) // rotated ones are still found
	must(t, err)
	equal(t, "old token after rotation", got, &wantRT1)
	got, err = s.GetRefreshToken(ctx, rt2.ID)
	must(t, err)
	equal(t, "next token", got, rt2)
	gotAT, err = s.GetAccessToken(ctx, at2.ID)
	must(t, err)
	equal(t, "access token of rotation", gotAT, at2)

	// A revoked family for the "revoked" case.
	rtRevoked := newRefreshToken("rt-revoked", "user-a", "fam-revoked", now)
	must(t, s.CreateRefreshToken(ctx, rtRevoked, newAccessToken("at-revoked", "user-a", "fam-revoked", now)))
	_, err = s.RevokeRefreshFamily(ctx, "fam-revoked", now)
	must(t, err)

	// failedNext returns a next token and access token that a failing call must not
	// insert.
	failedNext := func(id string) (*storage.RefreshToken, *storage.AccessToken) {
		return newRefreshToken("rt-"+id, "user-a", "fam-1", now), newAccessToken("at-"+id, "user-a", "fam-1", now)
	}
	cases := []struct {
		name    string
		oldID   string
		wantErr error
	}{
		{"second rotation of the same token", rt1.ID, storage.ErrConflict},
		{"revoked token", rtRevoked.ID, storage.ErrConflict},
		{"unknown token", "rt-missing", storage.ErrNotFound},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, at := failedNext(fmt.Sprintf("failed-%d", i))
			wantErr(t, s.RotateRefreshToken(ctx, tc.oldID, now.Add(time.Hour), next, at), tc.wantErr)
			_, err := s.GetRefreshToken(ctx, next.ID)
			wantErr(t, err, storage.ErrNotFound)
			_, err = s.GetAccessToken(ctx, at.ID)
			wantErr(t, err, storage.ErrNotFound)
		})
	}
	got, err = s.GetRefreshToken(ctx, rt1.ID)
	must(t, err)
	equal(t, "old token after failed rotations", got, &wantRT1)

	runErrCases(t, []errCase{
		{"CreateRefreshToken duplicate id", func() error {
			rt := newRefreshToken(rt1.ID, "user-a", "fam-dup", now)
			rt.TokenHash = "hash-unused"
			return s.CreateRefreshToken(ctx, rt, newAccessToken("at-dup-id", "user-a", "fam-dup", now))
		}, storage.ErrAlreadyExists},
		{"CreateRefreshToken duplicate hash", func() error {
			rt := newRefreshToken("rt-dup-hash", "user-a", "fam-dup", now)
			rt.TokenHash = rt1.TokenHash
			return s.CreateRefreshToken(ctx, rt, newAccessToken("at-dup-hash", "user-a", "fam-dup", now))
		}, storage.ErrAlreadyExists},
		{"access token of failed CreateRefreshToken not inserted", func() error {
			_, err := s.GetAccessToken(ctx, "at-dup-id")
			return err
		}, storage.ErrNotFound},
		{"GetRefreshToken missing", func() error {
			_, err := s.GetRefreshToken(ctx, "rt-missing")
			return err
		}, storage.ErrNotFound},
		{"GetRefreshTokenByHash missing", func() error {
			_, err := s.GetRefreshTokenByHash(ctx, "hash-missing")
			return err
		}, storage.ErrNotFound},
	})
}

func testRefreshConcurrentRotate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	old := newRefreshToken("rt-race", "user-a", "fam-race", now)
	must(t, s.CreateRefreshToken(ctx, old, newAccessToken("at-race", "user-a", "fam-race", now)))

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner = -1
		wins   int
		start  = make(chan struct{})
	)
	for i := range concurrency {
		wg.Go(func() {
			next := newRefreshToken(fmt.Sprintf("rt-race-%d", i), "user-a", "fam-race", now)
			at := newAccessToken(fmt.Sprintf("at-race-%d", i), "user-a", "fam-race", now)
			<-start
			err := s.RotateRefreshToken(ctx, old.ID, now, next, at)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				winner = i
				mu.Unlock()
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("RotateRefreshToken: %v, want nil or ErrConflict", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent rotations won, want exactly 1", wins, concurrency)
	}
	for i := range concurrency {
		_, rtErr := s.GetRefreshToken(ctx, fmt.Sprintf("rt-race-%d", i))
		_, atErr := s.GetAccessToken(ctx, fmt.Sprintf("at-race-%d", i))
		if i == winner {
			must(t, rtErr)
			must(t, atErr)
			continue
		}
		wantErr(t, rtErr, storage.ErrNotFound)
		wantErr(t, atErr, storage.ErrNotFound)
	}
}

func testRevokeRefreshFamily(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	// Family fam-1: rt-1 -> rt-2 -> rt-3, each with its access token.
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-1", "user-a", "fam-1", now), newAccessToken("at-1", "user-a", "fam-1", now)))
	for i, at := range []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute)} {
		old, id := fmt.Sprintf("rt-%d", i+1), fmt.Sprintf("%d", i+2)
		must(t, s.RotateRefreshToken(ctx, old, at, newRefreshToken("rt-"+id, "user-a", "fam-1", at), newAccessToken("at-"+id, "user-a", "fam-1", at)))
	}
	// Untouched: another family of the same user, and an access token without family.
	otherRT := newRefreshToken("rt-other", "user-a", "fam-2", now)
	otherAT := newAccessToken("at-other", "user-a", "fam-2", now)
	plainAT := newAccessToken("at-plain", "user-a", "", now)
	must(t, s.CreateRefreshToken(ctx, otherRT, otherAT))
	must(t, s.CreateAccessToken(ctx, plainAT))

	before := map[string]*storage.RefreshToken{}
	for _, id := range []string{"rt-1", "rt-2", "rt-3"} {
		rt, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		before[id] = rt
	}
	revokedAt := now.Add(time.Hour)
	n, err := s.RevokeRefreshFamily(ctx, "fam-1", revokedAt)
	must(t, err)
	if n != 3 {
		t.Errorf("RevokeRefreshFamily = %d, want 3", n)
	}
	for id, b := range before {
		want := *b
		want.RevokedAt = revokedAt // RotatedAt stays as it was
		got, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		equal(t, "revoked "+id, got, &want)
	}
	for _, id := range []string{"at-1", "at-2", "at-3"} {
		_, err := s.GetAccessToken(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err := s.GetRefreshToken(ctx, otherRT.ID)
	must(t, err)
	equal(t, "other family", got, otherRT)
	for _, at := range []*storage.AccessToken{otherAT, plainAT} {
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "untouched access token "+at.ID, got, at)
	}

	// Revoking again changes nothing, not even the revocation time.
	n, err = s.RevokeRefreshFamily(ctx, "fam-1", revokedAt.Add(time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("second RevokeRefreshFamily = %d, want 0", n)
	}
	got, err = s.GetRefreshToken(ctx, "rt-3")
	must(t, err)
	if !got.RevokedAt.Equal(revokedAt) {
		t.Errorf("RevokedAt after second revocation = %v, want %v", got.RevokedAt, revokedAt)
	}
	n, err = s.RevokeRefreshFamily(ctx, "fam-missing", now)
	must(t, err)
	if n != 0 {
		t.Errorf("RevokeRefreshFamily of unknown family = %d, want 0", n)
	}
}

func testRevokeUserTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	// user-a: two families (one rotated once) and an access token without family.
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-a1", "user-a", "fam-a1", now), newAccessToken("at-a1", "user-a", "fam-a1", now)))
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-a2", "user-a", "fam-a2", now), newAccessToken("at-a2", "user-a", "fam-a2", now)))
	must(t, s.RotateRefreshToken(ctx, "rt-a2", now.Add(time.Minute), newRefreshToken("rt-a2b", "user-a", "fam-a2", now), newAccessToken("at-a2b", "user-a", "fam-a2", now)))
	must(t, s.CreateAccessToken(ctx, newAccessToken("at-a-plain", "user-a", "", now)))
	// user-b and a client_credentials token stay.
	rtB := newRefreshToken("rt-b", "user-b", "fam-b", now)
	atB := newAccessToken("at-b", "user-b", "fam-b", now)
	must(t, s.CreateRefreshToken(ctx, rtB, atB))
	atCC := &storage.AccessToken{ID: "at-cc", ClientID: "client-svc", Scopes: []string{"api"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	must(t, s.CreateAccessToken(ctx, atCC))

	revokedAt := now.Add(time.Hour)
	must(t, s.RevokeUserTokens(ctx, "user-a", revokedAt))
	for _, id := range []string{"rt-a1", "rt-a2", "rt-a2b"} {
		got, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		if !got.RevokedAt.Equal(revokedAt) {
			t.Errorf("%s RevokedAt = %v, want %v", id, got.RevokedAt, revokedAt)
		}
	}
	for _, id := range []string{"at-a1", "at-a2", "at-a2b", "at-a-plain"} {
		_, err := s.GetAccessToken(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err := s.GetRefreshToken(ctx, rtB.ID)
	must(t, err)
	equal(t, "other user's refresh token", got, rtB)
	for _, at := range []*storage.AccessToken{atB, atCC} {
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "untouched access token "+at.ID, got, at)
	}
}

// auditCount returns how many audit events the store holds.
func auditCount(t *testing.T, s storage.Storage) int {
	t.Helper()
	evs, err := s.ListAudit(t.Context(), storage.AuditFilter{})
	must(t, err)
	return len(evs)
}

// WantChain checks that the stored events form one unbroken chain from its start: each
// links to the one before and its hash covers it. It returns them in chain order. For
// the suite and for a backend's own tests.
func WantChain(t *testing.T, s storage.Storage) []storage.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(t.Context(), storage.AuditFilter{})
	must(t, err)
	prev := ""
	for i := range evs {
		e := &evs[i]
		if e.PrevHash != prev {
			t.Fatalf("event %d (%s) links to %q, want %q", e.ID, e.Type, e.PrevHash, prev)
		}
		if want := storage.ChainHash(e.PrevHash, e); e.Hash != want {
			t.Fatalf("event %d (%s) hash %q, want %q", e.ID, e.Type, e.Hash, want)
		}
		prev = e.Hash
	}
	return evs
}

func testIssueTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	event := func(typ, tokenID, familyID string) *storage.AuditEvent {
		return &storage.AuditEvent{Time: now, Type: typ, UserID: "user-a", ClientID: "client-1", Result: "success",
			TokenID: tokenID, FamilyID: familyID, SessionID: "session-1"}
	}

	// A new family: both tokens and both events, chained in order, the ids stored.
	rt1, at1 := newRefreshToken("rt-1", "user-a", "fam-1", now), newAccessToken("at-1", "user-a", "fam-1", now)
	e1, e2 := event("token.issue", "at-1", "fam-1"), event("test.second", "rt-1", "fam-1")
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{Refresh: rt1, Access: at1, Events: []*storage.AuditEvent{e1, e2}}))
	if e1.ID == 0 || e2.ID <= e1.ID || e2.PrevHash != e1.Hash || e1.Hash != storage.ChainHash(e1.PrevHash, e1) {
		t.Fatalf("events not chained in order: %+v %+v", e1, e2)
	}
	got, err := s.ListAudit(ctx, storage.AuditFilter{TokenID: "at-1"})
	must(t, err)
	equal(t, "events of at-1", got, []storage.AuditEvent{*e1})
	gotAT, err := s.GetAccessToken(ctx, at1.ID)
	must(t, err)
	equal(t, "access token", gotAT, at1)

	// An issue may delete the auth request whose code it exchanges.
	ar := newAuthRequest("ar-issue", now)
	must(t, s.CreateAuthRequest(ctx, ar))
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{DeleteAuthRequest: ar.ID, Access: newAccessToken("at-ar", "user-a", "", now)}))
	_, err = s.GetAuthRequest(ctx, ar.ID)
	wantErr(t, err, storage.ErrNotFound)
	kept := newAuthRequest("ar-kept", now)
	must(t, s.CreateAuthRequest(ctx, kept))

	// A rotation keeps the successor, sealed by the caller, on the rotated token.
	rotatedAt := now.Add(time.Minute)
	rt2, at2 := newRefreshToken("rt-2", "user-a", "fam-1", rotatedAt), newAccessToken("at-2", "user-a", "fam-1", rotatedAt)
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{RotateID: rt1.ID, RotatedAt: rotatedAt, SuccessorSealed: []byte("sealed rt-2"),
		Refresh: rt2, Access: at2, Events: []*storage.AuditEvent{event("token.refresh", "at-2", "fam-1")}}))
	old, err := s.GetRefreshTokenByHash(ctx, rt1.TokenHash)
	must(t, err)
	want := *rt1
	want.RotatedAt, want.SuccessorID, want.SuccessorSealed = rotatedAt, rt2.ID, []byte("sealed rt-2")
	equal(t, "rotated token", old, &want)

	// An access token beside a current refresh token (a retry in the grace window).
	at3 := newAccessToken("at-3", "user-a", "fam-1", rotatedAt)
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{RequireCurrent: rt2.ID, Access: at3,
		Events: []*storage.AuditEvent{event("token.refresh", "at-3", "fam-1")}}))
	_, err = s.GetAccessToken(ctx, at3.ID)
	must(t, err)

	// Failed issues store neither their tokens nor their events.
	before := auditCount(t, s)
	cases := []struct {
		name string
		w    *storage.TokenIssue
		want error
	}{
		{"rotation of a rotated token", &storage.TokenIssue{RotateID: rt1.ID, RotatedAt: rotatedAt,
			Refresh: newRefreshToken("rt-x1", "user-a", "fam-1", now), Access: newAccessToken("at-x1", "user-a", "fam-1", now)}, storage.ErrConflict},
		{"rotation of a missing token", &storage.TokenIssue{RotateID: "rt-missing", RotatedAt: rotatedAt, DeleteAuthRequest: kept.ID,
			Refresh: newRefreshToken("rt-x2", "user-a", "fam-1", now), Access: newAccessToken("at-x2", "user-a", "fam-1", now)}, storage.ErrNotFound},
		{"beside a rotated token", &storage.TokenIssue{RequireCurrent: rt1.ID, Access: newAccessToken("at-x3", "user-a", "fam-1", now)}, storage.ErrConflict},
		{"beside a missing token", &storage.TokenIssue{RequireCurrent: "rt-missing", Access: newAccessToken("at-x4", "user-a", "fam-1", now)}, storage.ErrNotFound},
		{"for a code without a grant", &storage.TokenIssue{CodeHash: "code-missing", Access: newAccessToken("at-x5", "user-a", "fam-9", now),
			Refresh: newRefreshToken("rt-x5", "user-a", "fam-9", now)}, storage.ErrNotFound},
		{"duplicate access token id", &storage.TokenIssue{Access: newAccessToken(at1.ID, "user-a", "", now),
			Refresh: newRefreshToken("rt-x6", "user-a", "fam-6", now)}, storage.ErrAlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.Events = []*storage.AuditEvent{event("token.failed", "", "")}
			wantErr(t, s.IssueTokens(ctx, tc.w), tc.want)
			if tc.w.Refresh != nil {
				_, err := s.GetRefreshToken(ctx, tc.w.Refresh.ID)
				wantErr(t, err, storage.ErrNotFound)
			}
			if tc.w.Access != nil && tc.w.Access.ID != at1.ID {
				_, err := s.GetAccessToken(ctx, tc.w.Access.ID)
				wantErr(t, err, storage.ErrNotFound)
			}
			if n := auditCount(t, s); n != before {
				t.Fatalf("failed issue wrote %d audit events", n-before)
			}
		})
	}
	if _, err := s.GetAuthRequest(ctx, kept.ID); err != nil {
		t.Fatalf("a failed issue deleted its auth request: %v", err)
	}

	// An access token revoked with its event.
	atGone := newAccessToken("at-gone", "user-a", "", now)
	must(t, s.CreateAccessToken(ctx, atGone))
	must(t, s.IssueTokens(ctx, &storage.TokenIssue{DeleteAccessToken: atGone.ID, Events: []*storage.AuditEvent{event("token.revoke", atGone.ID, "")}}))
	_, err = s.GetAccessToken(ctx, atGone.ID)
	wantErr(t, err, storage.ErrNotFound)

	// A detected reuse revokes the family with its event.
	reuse := event("token.refresh.reuse", rt1.ID, "fam-1")
	w := &storage.TokenIssue{RevokeFamily: "fam-1", RevokedAt: rotatedAt, Events: []*storage.AuditEvent{reuse}}
	must(t, s.IssueTokens(ctx, w))
	if w.Revoked != 2 || reuse.ID == 0 {
		t.Fatalf("revoked %d refresh tokens (event id %d), want 2", w.Revoked, reuse.ID)
	}
	for _, id := range []string{rt1.ID, rt2.ID} {
		rt, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		if !rt.RevokedAt.Equal(rotatedAt) {
			t.Fatalf("%s revoked at %v, want %v", id, rt.RevokedAt, rotatedAt)
		}
	}
	for _, id := range []string{at1.ID, at2.ID, at3.ID} {
		_, err := s.GetAccessToken(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	WantChain(t, s)
}

// testIssueTokensWhileWriting: an issue's WhileWriting runs once, an issue that fails
// returns its own error whatever WhileWriting returned and stores nothing, and a
// WhileWriting error is IssueTokens' error with the issue stored and audited.
func testIssueTokensWhileWriting(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	errSign := errors.New("sign failed")
	tests := []struct {
		name      string
		current   string // RequireCurrent: "" or a missing token (the issue fails)
		signErr   error
		want      error
		wantCalls int // -1: either (a backend may run it before the issue fails)
		stored    bool
	}{
		{"issued", "", nil, nil, 1, true},
		{"WhileWriting fails", "", errSign, errSign, 1, true},
		{"the issue fails", "rt-missing", errSign, storage.ErrNotFound, -1, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := newAccessToken(fmt.Sprintf("at-while-%d", i), "user-a", "", now)
			before := auditCount(t, s)
			var calls atomic.Int32
			err := s.IssueTokens(ctx, &storage.TokenIssue{RequireCurrent: tc.current, Access: at,
				Events:       []*storage.AuditEvent{{Time: now, Type: "token.issue", Result: "success", TokenID: at.ID}},
				WhileWriting: func() error { calls.Add(1); return tc.signErr }})
			wantErr(t, err, tc.want)
			if n := int(calls.Load()); tc.wantCalls >= 0 && n != tc.wantCalls || n > 1 {
				t.Fatalf("WhileWriting ran %d times, want %d", n, tc.wantCalls)
			}
			_, err = s.GetAccessToken(ctx, at.ID)
			events := auditCount(t, s) - before
			if tc.stored && (err != nil || events != 1) {
				t.Fatalf("issue not stored whole: token %v, %d events", err, events)
			}
			if !tc.stored && (!errors.Is(err, storage.ErrNotFound) || events != 0) {
				t.Fatalf("failed issue stored something: token %v, %d events", err, events)
			}
		})
	}
	WantChain(t, s)
}

// testIssueTokensConcurrent issues from many goroutines at once, so that a backend that
// commits them together puts several in one transaction: issues that lose a race fail
// alone, every other one is stored with its event, and the chain stays one chain.
func testIssueTokensConcurrent(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-race", "user-a", "fam-race", now), nil))
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			at := newAccessToken(fmt.Sprintf("at-%d", i), "user-a", "fam-race", now)
			w := &storage.TokenIssue{Access: at, Events: []*storage.AuditEvent{{Time: now, Type: "token.issue", Result: "success", TokenID: at.ID}}}
			if i%2 == 0 { // every other one rotates the same token: one of them wins
				w.RotateID, w.RotatedAt = "rt-race", now
				w.Refresh = newRefreshToken(fmt.Sprintf("rt-%d", i), "user-a", "fam-race", now)
			}
			<-start
			errs[i] = s.IssueTokens(ctx, w)
		})
	}
	close(start)
	wg.Wait()
	rotations := 0
	for i, err := range errs {
		switch {
		case i%2 == 1 || err == nil && rotations == 0:
			must(t, err)
			if i%2 == 0 {
				rotations++
			}
		default:
			if err == nil {
				t.Fatalf("a second rotation of the same token succeeded (issue %d)", i)
			}
			wantErr(t, err, storage.ErrConflict)
		}
	}
	if rotations != 1 {
		t.Fatalf("%d rotations won, want 1", rotations)
	}
	for i, err := range errs {
		id := fmt.Sprintf("at-%d", i)
		_, getErr := s.GetAccessToken(ctx, id)
		evs, listErr := s.ListAudit(ctx, storage.AuditFilter{TokenID: id})
		must(t, listErr)
		if err == nil && (getErr != nil || len(evs) != 1) || err != nil && (getErr == nil || len(evs) != 0) {
			t.Fatalf("issue %d (err %v): token lookup %v, %d events", i, err, getErr, len(evs))
		}
	}
	if evs := WantChain(t, s); len(evs) != n/2+1 {
		t.Fatalf("%d events, want %d", len(evs), n/2+1)
	}
}
