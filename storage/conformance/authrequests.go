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
