package conformance

import (
	"slices"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testSessions(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	s1 := newSession("sess-1", "user-a", now.Add(-3*time.Hour))
	s2 := newSession("sess-2", "user-a", now.Add(-2*time.Hour))
	s3 := newSession("sess-3", "user-a", now.Add(-time.Hour))
	other := newSession("sess-other", "user-b", now)
	for _, ss := range []*storage.Session{s1, s3, s2, other} {
		must(t, s.CreateSession(ctx, ss))
	}
	got, err := s.GetSession(ctx, s1.ID)
	must(t, err)
	equal(t, "GetSession", got, s1)
	got, err = s.GetSessionByTokenHash(ctx, s1.TokenHash)
	must(t, err)
	equal(t, "GetSessionByTokenHash", got, s1)

	runErrCases(t, []errCase{
		{"CreateSession duplicate id", func() error {
			ss := newSession(s1.ID, "user-a", now)
			ss.TokenHash = "hash-unused"
			return s.CreateSession(ctx, ss)
		}, storage.ErrAlreadyExists},
		{"CreateSession duplicate token hash", func() error {
			ss := newSession("sess-new", "user-a", now)
			ss.TokenHash = s1.TokenHash
			return s.CreateSession(ctx, ss)
		}, storage.ErrAlreadyExists},
		{"GetSession missing", func() error {
			_, err := s.GetSession(ctx, "sess-missing")
			return err
		}, storage.ErrNotFound},
		{"GetSessionByTokenHash missing", func() error {
			_, err := s.GetSessionByTokenHash(ctx, "hash-missing")
			return err
		}, storage.ErrNotFound},
		{"UpdateSessionAuth missing", func() error {
			return s.UpdateSessionAuth(ctx, "sess-missing", storage.SessionAuth{AuthTime: now})
		}, storage.ErrNotFound},
	})

	seen := now.Add(5 * time.Minute)
	must(t, s.TouchSession(ctx, s1.ID, seen))
	authTime := now.Add(10 * time.Minute)
	auth := storage.SessionAuth{
		AuthTime: authTime, PasswordAt: now.Add(-time.Minute), MFAAt: authTime,
		Factors: []storage.FactorKind{"totp", "webauthn"}, AMR: []string{"pwd", "otp"}, ACR: "urn:acr:mfa",
		SignIn: []string{storage.SignInPassword, "webauthn", storage.SignInRememberedDevice},
	}
	must(t, s.UpdateSessionAuth(ctx, s1.ID, auth))
	want := *s1
	want.LastSeenAt, want.AuthTime, want.PasswordAt, want.MFAAt = seen, auth.AuthTime, auth.PasswordAt, auth.MFAAt
	want.AMR, want.ACR, want.Factors, want.SignIn = auth.AMR, auth.ACR, auth.Factors, auth.SignIn
	got, err = s.GetSession(ctx, s1.ID)
	must(t, err)
	equal(t, "session after TouchSession and UpdateSessionAuth", got, &want)

	// A password-only authentication with MFAAt zero clears the stored MFA time, and an
	// empty SignIn the stored one.
	pwdOnly := storage.SessionAuth{AuthTime: now.Add(20 * time.Minute), PasswordAt: now.Add(20 * time.Minute),
		AMR: []string{"pwd"}, ACR: "urn:acr:password"}
	must(t, s.UpdateSessionAuth(ctx, s2.ID, pwdOnly))
	want2 := *s2
	want2.AuthTime, want2.PasswordAt, want2.MFAAt = pwdOnly.AuthTime, pwdOnly.PasswordAt, time.Time{}
	want2.AMR, want2.ACR, want2.Factors, want2.SignIn = pwdOnly.AMR, pwdOnly.ACR, nil, nil
	got, err = s.GetSession(ctx, s2.ID)
	must(t, err)
	equal(t, "session after password-only UpdateSessionAuth", got, &want2)

	list, err := s.ListUserSessions(ctx, "user-a")
	must(t, err)
	equal(t, "ListUserSessions newest first", list, []storage.Session{*s3, want2, want})
	list, err = s.ListUserSessions(ctx, "user-nobody")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListUserSessions of unknown user = %d sessions, want 0", len(list))
	}

	must(t, s.DeleteSession(ctx, s2.ID))
	_, err = s.GetSession(ctx, s2.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteSession(ctx, s2.ID)) // missing is not an error

	n, err := s.DeleteUserSessions(ctx, "user-a")
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteUserSessions = %d, want 2", n)
	}
	for _, id := range []string{s1.ID, s3.ID} {
		_, err = s.GetSession(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err = s.GetSession(ctx, other.ID)
	must(t, err)
	equal(t, "other user's session", got, other)
	n, err = s.DeleteUserSessions(ctx, "user-a")
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteUserSessions = %d, want 0", n)
	}
}

// wantSessionClients fails the test unless session id has exactly the clients want (in
// any order).
func wantSessionClients(t *testing.T, s storage.Storage, id string, want ...string) {
	t.Helper()
	got, err := s.ListSessionClients(t.Context(), id)
	must(t, err)
	got = slices.Clone(got)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	equal(t, "ListSessionClients("+id+")", got, want)
}

func testSessionClients(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	s1 := newSession("sess-1", "user-a", now.Add(-2*time.Hour))
	s2 := newSession("sess-2", "user-a", now.Add(-time.Hour))
	other := newSession("sess-other", "user-b", now)
	for _, ss := range []*storage.Session{s1, s2, other} {
		must(t, s.CreateSession(ctx, ss))
	}

	wantSessionClients(t, s, s1.ID)
	must(t, s.AddSessionClient(ctx, s1.ID, "client-b"))
	must(t, s.AddSessionClient(ctx, s1.ID, "client-a"))
	must(t, s.AddSessionClient(ctx, s1.ID, "client-b")) // the same pair again is not an error
	must(t, s.AddSessionClient(ctx, s2.ID, "client-a"))
	must(t, s.AddSessionClient(ctx, other.ID, "client-c"))
	wantSessionClients(t, s, s1.ID, "client-a", "client-b")
	wantSessionClients(t, s, s2.ID, "client-a")
	wantSessionClients(t, s, other.ID, "client-c")
	wantSessionClients(t, s, "sess-missing")
	wantClientSessions := func(clientID string, want ...string) {
		t.Helper()
		got, err := s.ListClientSessions(ctx, clientID)
		must(t, err)
		var ids []string
		for _, ss := range got {
			ids = append(ids, ss.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("ListClientSessions(%s) = %v, want %v (newest first)", clientID, ids, want)
		}
	}
	wantClientSessions("client-a", s2.ID, s1.ID)
	wantClientSessions("client-c", other.ID)
	wantClientSessions("client-none")

	// The contract leaves the error for a missing session open; either way nothing may
	// be recorded for it.
	t.Run("missing session", func(t *testing.T) {
		if err := s.AddSessionClient(ctx, "sess-missing", "client-a"); err != nil {
			wantErr(t, err, storage.ErrNotFound)
		}
		must(t, s.CreateSession(ctx, newSession("sess-missing", "user-c", now)))
		wantSessionClients(t, s, "sess-missing")
	})

	// A session's clients go with it: a new session under the same id starts with none.
	recreate := func(ss *storage.Session) {
		t.Helper()
		must(t, s.CreateSession(ctx, ss))
		wantSessionClients(t, s, ss.ID)
	}
	t.Run("DeleteSession", func(t *testing.T) {
		must(t, s.DeleteSession(ctx, s1.ID))
		wantSessionClients(t, s, s1.ID)
		wantSessionClients(t, s, s2.ID, "client-a")
		recreate(s1)
	})
	t.Run("DeleteUserSessions", func(t *testing.T) {
		must(t, s.AddSessionClient(ctx, s1.ID, "client-d"))
		n, err := s.DeleteUserSessions(ctx, "user-a")
		must(t, err)
		if n != 2 {
			t.Errorf("DeleteUserSessions = %d, want 2 (session clients are not counted)", n)
		}
		wantSessionClients(t, s, s1.ID)
		wantSessionClients(t, s, s2.ID)
		wantSessionClients(t, s, other.ID, "client-c")
		recreate(s1)
		recreate(s2)
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		old := newSession("sess-old", "user-b", now.Add(-48*time.Hour))
		old.ExpiresAt = now.Add(-time.Minute)
		must(t, s.CreateSession(ctx, old))
		must(t, s.AddSessionClient(ctx, old.ID, "client-a"))
		must(t, s.AddSessionClient(ctx, old.ID, "client-c"))
		n, err := s.DeleteExpired(ctx, now)
		must(t, err)
		if n != 1 {
			t.Errorf("DeleteExpired = %d, want 1 (the session; its clients are not counted)", n)
		}
		wantSessionClients(t, s, old.ID)
		wantSessionClients(t, s, other.ID, "client-c")
		old.ExpiresAt = now.Add(time.Hour)
		recreate(old)
	})
}
