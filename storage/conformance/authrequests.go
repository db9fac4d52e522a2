package conformance

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testAuthRequests(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	full := newAuthRequest("ar-full", now)
	bare := &storage.AuthRequest{ID: "ar-bare", ClientID: "client-1", RedirectURI: "https://c/cb",
		Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	zeroAge := newAuthRequest("ar-zero-age", now)
	zeroAge.MaxAge = ptr(int64(0))
	zeroAge.Login = storage.AuthLogin{}
	for _, r := range []*storage.AuthRequest{full, bare, zeroAge} {
		must(t, s.CreateAuthRequest(ctx, r))
		got, err := s.GetAuthRequest(ctx, r.ID)
		must(t, err)
		equal(t, "GetAuthRequest("+r.ID+")", got, r)
	}
	got, err := s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	if got.MaxAge != nil {
		t.Errorf("MaxAge = %d, want nil", *got.MaxAge)
	}
	got, err = s.GetAuthRequest(ctx, zeroAge.ID)
	must(t, err)
	if got.MaxAge == nil || *got.MaxAge != 0 {
		t.Errorf("MaxAge = %v, want pointer to 0", got.MaxAge)
	}

	runErrCases(t, []errCase{
		{"CreateAuthRequest duplicate id", func() error {
			return s.CreateAuthRequest(ctx, newAuthRequest(full.ID, now))
		}, storage.ErrAlreadyExists},
		{"GetAuthRequest missing", func() error {
			_, err := s.GetAuthRequest(ctx, "ar-missing")
			return err
		}, storage.ErrNotFound},
		{"SetAuthRequestLogin missing", func() error {
			return s.SetAuthRequestLogin(ctx, "ar-missing", storage.AuthLogin{UserID: "u"})
		}, storage.ErrNotFound},
		{"SaveAuthCode missing", func() error {
			return s.SaveAuthCode(ctx, "ar-missing", "code-hash", now.Add(time.Minute))
		}, storage.ErrNotFound},
	})

	login := storage.AuthLogin{UserID: "user-2", SessionID: "session-2", AuthTime: now,
		AMR: []string{"pwd", "webauthn"}, ACR: "urn:acr:phr", Done: true, Grace: true}
	must(t, s.SetAuthRequestLogin(ctx, bare.ID, login))
	want := *bare
	want.Login = login
	got, err = s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	equal(t, "request after SetAuthRequestLogin", got, &want)

	// Replacing the Login part may also clear it.
	must(t, s.SetAuthRequestLogin(ctx, full.ID, storage.AuthLogin{}))
	wantFull := *full
	wantFull.Login = storage.AuthLogin{}
	got, err = s.GetAuthRequest(ctx, full.ID)
	must(t, err)
	equal(t, "request after clearing Login", got, &wantFull)

	codeExp := now.Add(time.Minute)
	must(t, s.SaveAuthCode(ctx, bare.ID, "code-hash-1", codeExp))
	want.CodeHash, want.CodeExpiresAt = "code-hash-1", codeExp
	got, err = s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	equal(t, "request after SaveAuthCode", got, &want)

	must(t, s.DeleteAuthRequest(ctx, zeroAge.ID))
	_, err = s.GetAuthRequest(ctx, zeroAge.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteAuthRequest(ctx, zeroAge.ID)) // missing is not an error
}

func testAuthCodes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	exp := now.Add(time.Minute)
	r := newAuthRequest("ar-code", now)
	must(t, s.CreateAuthRequest(ctx, r))
	must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar-without-code", now)))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-1", exp))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-2", exp)) // replaces code-hash-1
	want := *r
	want.CodeHash, want.CodeExpiresAt = "code-hash-2", exp

	// The steps run in order against one store.
	steps := []struct {
		name    string
		hash    string
		at      time.Time
		wantErr error
	}{
		{"replaced code", "code-hash-1", now, storage.ErrNotFound},
		{"unknown code", "code-hash-unknown", now, storage.ErrNotFound},
		{"empty hash matches no request without code", "", now, storage.ErrNotFound},
		{"expired code", "code-hash-2", exp.Add(time.Second), storage.ErrNotFound},
		{"valid code", "code-hash-2", exp.Add(-time.Second), nil},
		{"second redemption", "code-hash-2", now, storage.ErrNotFound},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.ConsumeAuthCode(ctx, st.hash, st.at)
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
				return
			}
			must(t, err)
			equal(t, "ConsumeAuthCode", got, &want)
		})
	}

	// A new code for the same request is redeemable once more.
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-3", exp))
	_, err := s.ConsumeAuthCode(ctx, "code-hash-3", now)
	must(t, err)
	_, err = s.ConsumeAuthCode(ctx, "code-hash-3", now)
	wantErr(t, err, storage.ErrNotFound)
}

func testAuthCodeConcurrentConsume(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	r := newAuthRequest("ar-race", now)
	must(t, s.CreateAuthRequest(ctx, r))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-race", now.Add(time.Minute)))

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		start = make(chan struct{})
	)
	for range concurrency {
		wg.Go(func() {
			<-start
			got, err := s.ConsumeAuthCode(ctx, "code-hash-race", now)
			switch {
			case err == nil:
				if got.ID != r.ID {
					t.Errorf("ConsumeAuthCode returned request %q, want %q", got.ID, r.ID)
				}
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, storage.ErrNotFound):
				t.Errorf("ConsumeAuthCode: %v, want nil or ErrNotFound", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeAuthCode calls won, want exactly 1", wins, concurrency)
	}
}

// testFinishAuthRequest: FinishAuthRequest stores the request, the session's client and
// the events together, links the events into the chain, records nothing for a session
// signed out meanwhile, and stores nothing at all when any part fails.
func testFinishAuthRequest(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	sess := newSession("sess-finish", "user-1", now)
	must(t, s.CreateSession(ctx, sess))
	must(t, s.AppendAudit(ctx, &storage.AuditEvent{Time: now, Type: "login.password", UserID: "user-1", Result: "success"}))

	ar := newAuthRequest("ar-finish", now)
	ar.Login.SessionID, ar.CodeHash, ar.CodeExpiresAt = sess.ID, "code-finish", now.Add(time.Minute)
	events := []*storage.AuditEvent{
		{Time: now, Type: "login.sso", UserID: "user-1", ClientID: ar.ClientID, Result: "success", Reason: "existing session"},
		{Time: now, Type: "login.device", UserID: "user-1", ClientID: ar.ClientID, Result: "success"},
	}
	must(t, s.FinishAuthRequest(ctx, &storage.AuthRequestFinish{Request: ar, SessionClient: ar.ClientID, Events: events}))
	got, err := s.GetAuthRequest(ctx, ar.ID)
	must(t, err)
	equal(t, "GetAuthRequest", got, ar)
	wantSessionClients(t, s, sess.ID, ar.ClientID)
	all, err := s.ListAudit(ctx, storage.AuditFilter{})
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("%d events stored, want 3", len(all))
	}
	for i, e := range events {
		stored := all[i+1]
		if e.ID == 0 || e.ID != stored.ID || e.Hash != stored.Hash || stored.Type != e.Type {
			t.Errorf("event %d: returned id %d hash %s, stored %+v", i, e.ID, e.Hash, stored)
		}
		if stored.PrevHash != all[i].Hash {
			t.Errorf("event %d does not link to the one before it", i)
		}
	}

	// A session signed out meanwhile: the request and events are stored, no client.
	gone := newAuthRequest("ar-finish-gone", now)
	gone.Login.SessionID = "sess-missing"
	must(t, s.FinishAuthRequest(ctx, &storage.AuthRequestFinish{Request: gone, SessionClient: gone.ClientID,
		Events: []*storage.AuditEvent{{Time: now, Type: "login.sso", Result: "success"}}}))
	if _, err := s.GetAuthRequest(ctx, gone.ID); err != nil {
		t.Errorf("request of a signed-out session: %v", err)
	}
	wantSessionClients(t, s, "sess-missing")

	// A part fails (the request exists already): nothing of it is stored.
	other := newSession("sess-finish-2", "user-2", now)
	must(t, s.CreateSession(ctx, other))
	dup := newAuthRequest(ar.ID, now)
	dup.Login.SessionID = other.ID
	err = s.FinishAuthRequest(ctx, &storage.AuthRequestFinish{Request: dup, SessionClient: "client-dup",
		Events: []*storage.AuditEvent{{Time: now, Type: "login.sso", UserID: "user-2", Result: "success"}}})
	wantErr(t, err, storage.ErrAlreadyExists)
	wantSessionClients(t, s, other.ID)
	after, err := s.ListAudit(ctx, storage.AuditFilter{})
	must(t, err)
	if len(after) != 4 {
		t.Errorf("%d events after a failed finish, want 4 (none of it stored)", len(after))
	}
}
