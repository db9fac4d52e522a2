package idp_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// FinishAuthRequest fails like AppendAudit does while the switch is on: the events of
// an SSO sign-in are written by it, with the request (storage.FinishAuthRequest).
func (s *auditSwitchStore) FinishAuthRequest(ctx context.Context, f *storage.AuthRequestFinish) error {
	t, _ := s.failType.Load().(string)
	for _, e := range f.Events {
		if s.failAudit.Load() && (t == "" || t == e.Type) {
			return errors.New("audit unwritable")
		}
	}
	return s.Storage.FinishAuthRequest(ctx, f)
}

// TestSSOFinishAudited: an SSO sign-in answered within /authorize stores its request
// and code, the session's new client and its login.sso event together. While the event
// cannot be written, the client gets an error instead of a code and the session records
// no client; once it can, the same sign-in gets its code, the client and the event.
func TestSSOFinishAudited(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			st := &auditSwitchStore{Storage: be.open(t)}
			e := newEnv(t, st)
			e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "One", RedirectURIs: []string{"https://one.example.com/cb"}, SkipConsent: true})
			two := e.createClient(admin.NewClient{Name: "Two", RedirectURIs: []string{"https://two.example.com/cb"}, SkipConsent: true})
			b := e.newBrowser()
			loginCode(t, e, b, app, nil) // password sign-in: the browser has a session
			sessionsOf := func(c string) int {
				t.Helper()
				ss, err := st.ListClientSessions(ctx, c)
				if err != nil {
					t.Fatal(err)
				}
				return len(ss)
			}
			if sessionsOf(app.ID) != 1 || sessionsOf(two.ID) != 0 {
				t.Fatalf("after the first sign-in: %d sessions with One, %d with Two; want 1, 0", sessionsOf(app.ID), sessionsOf(two.ID))
			}
			before := e.auditCount(audit.EventLoginSSO, audit.ResultSuccess)

			st.failType.Store(audit.EventLoginSSO)
			st.failAudit.Store(true)
			verifier, challenge := pkce()
			authURL := e.authURL(two, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
			q := b.Get(authURL).RedirectParams(t)
			if q.Get("code") != "" || q.Get("error") != "server_error" {
				t.Fatalf("SSO with its event unwritable answered %v; want error=server_error and no code", q)
			}
			if n := sessionsOf(two.ID); n != 0 {
				t.Fatalf("the unaudited SSO sign-in recorded the client with %d sessions", n)
			}

			st.failAudit.Store(false)
			q = b.Get(authURL).RedirectParams(t)
			if q.Get("code") == "" {
				t.Fatalf("SSO answered %v; want a code", q)
			}
			tr := e.tokenRequest(two, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
				"redirect_uri": {two.RedirectURI}, "code_verifier": {verifier}})
			if tr.Error != "" || tr.AccessToken == "" {
				t.Fatalf("code exchange: %+v", tr)
			}
			if n := sessionsOf(two.ID); n != 1 {
				t.Fatalf("the SSO sign-in recorded the client with %d sessions, want 1", n)
			}
			if got := e.auditCount(audit.EventLoginSSO, audit.ResultSuccess); got != before+1 {
				t.Fatalf("%d login.sso events after the sign-in, want %d", got, before+1)
			}
		})
	}
}
