package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization
// server MUST deny the request and SHOULD revoke (when possible) all tokens previously
// issued based on that authorization code." The attack: someone who learnt the code
// (from a log, a referrer, a malicious app on the redirect) replays it after the client
// redeemed it. The replay must fail, and must kill what the first redemption issued.

// codeGrant is an authorization code waiting to be exchanged, with its PKCE verifier.
type codeGrant struct{ code, verifier string }

// authorizeCode runs the front channel for c in browser b (logging in and consenting
// as needed) and returns the code the provider sends back.
func authorizeCode(t testing.TB, e *env, b *browser, c testClient, extra url.Values) codeGrant {
	t.Helper()
	verifier, challenge := pkce()
	q := url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	p := b.Get(e.authURL(c, q))
	if p.IsLogin() {
		p = b.Login(p, "alice@example.com", password)
	}
	if p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	code := p.RedirectParams(t).Get("code")
	if code == "" {
		t.Fatalf("no code: %s", p.Location)
	}
	return codeGrant{code: code, verifier: verifier}
}

// exchangeCode presents g at e's token endpoint as client c.
func exchangeCode(t testing.TB, e *env, c testClient, g codeGrant) tokenResponse {
	t.Helper()
	return e.tokenRequest(c, url.Values{"grant_type": {"authorization_code"}, "code": {g.code},
		"redirect_uri": {c.RedirectURI}, "code_verifier": {g.verifier}})
}

// userinfoStatus calls e's userinfo endpoint with the bearer token and returns the status.
func userinfoStatus(t testing.TB, e *env, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wantTokensDead fails unless e refuses tr's access token at userinfo and introspection
// and refuses to refresh with its refresh token (when it has one).
func wantTokensDead(t testing.TB, e *env, c testClient, tr tokenResponse) {
	t.Helper()
	if got := userinfoStatus(t, e, tr.AccessToken); got == http.StatusOK {
		t.Error("userinfo accepts the access token")
	}
	if got := introspect(t, e, c, tr.AccessToken); got["active"] != false {
		t.Errorf("introspection of the access token = %v, want inactive", got)
	}
	if tr.RefreshToken != "" {
		if r := e.tokenRequest(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); r.Error != "invalid_grant" || r.AccessToken != "" {
			t.Errorf("refresh with the refresh token: status %d error %q, want invalid_grant", r.Status, r.Error)
		}
	}
}

// wantTokensLive fails unless e accepts tr's access token at userinfo and introspection.
func wantTokensLive(t testing.TB, e *env, c testClient, tr tokenResponse) {
	t.Helper()
	if got := userinfoStatus(t, e, tr.AccessToken); got != http.StatusOK {
		t.Fatalf("userinfo with a fresh access token: status %d", got)
	}
	if got := introspect(t, e, c, tr.AccessToken); got["active"] != true {
		t.Fatalf("introspection of a fresh access token = %v", got)
	}
}

// wantReplayDenied fails unless tr is the invalid_grant answer without tokens.
func wantReplayDenied(t testing.TB, tr tokenResponse) {
	t.Helper()
	if tr.Error != "invalid_grant" || tr.Status != http.StatusBadRequest || tr.AccessToken != "" || tr.RefreshToken != "" || tr.IDToken != "" {
		t.Fatalf("replayed code: status %d error %q, tokens issued %v; want invalid_grant (400) without tokens",
			tr.Status, tr.Error, tr.AccessToken != "" || tr.RefreshToken != "" || tr.IDToken != "")
	}
}

func TestRFC6749_4_1_2_CodeReplayRevokes(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			user := e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			opaque := e.createClient(admin.NewClient{Name: "Opaque", RedirectURIs: []string{"https://opaque.example.com/cb"},
				SkipConsent: true, AccessTokenFormat: "opaque"})
			b := e.newBrowser()

			tests := []struct {
				name    string
				c       testClient
				scope   string
				refresh bool // the client refreshes once before the code is replayed
			}{
				{"access and refresh token", app, "openid profile email offline_access", false},
				{"tokens of a later refresh too", app, "openid profile email offline_access", true},
				{"access token only", app, "openid profile", false},
				{"opaque access token", opaque, "openid email offline_access", false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					replaysBefore := e.auditCount(audit.EventCodeReplay, audit.ResultFailure)
					g := authorizeCode(t, e, b, tc.c, url.Values{"scope": {tc.scope}})
					first := exchangeCode(t, e, tc.c, g)
					if first.Error != "" || first.AccessToken == "" {
						t.Fatalf("first redemption: %+v", first)
					}
					if wantRT := tc.scope != "openid profile"; (first.RefreshToken != "") != wantRT {
						t.Fatalf("refresh token issued = %v, want %v", first.RefreshToken != "", wantRT)
					}
					wantTokensLive(t, e, tc.c, first)
					live := []tokenResponse{first}
					if tc.refresh {
						next := e.tokenRequest(tc.c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
						if next.Error != "" {
							t.Fatalf("refresh: %+v", next)
						}
						wantTokensLive(t, e, tc.c, next)
						live = []tokenResponse{{AccessToken: first.AccessToken}, next}
					}

					wantReplayDenied(t, exchangeCode(t, e, tc.c, g))

					for _, tr := range live {
						wantTokensDead(t, e, tc.c, tr)
					}
					if got := e.auditCount(audit.EventCodeReplay, audit.ResultFailure) - replaysBefore; got != 1 {
						t.Errorf("%d %s events, want 1", got, audit.EventCodeReplay)
					}
					evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Type: audit.EventCodeReplay})
					if err != nil {
						t.Fatal(err)
					}
					if last := evs[len(evs)-1]; last.UserID != user.ID || last.ClientID != tc.c.ID {
						t.Errorf("replay audited for user %q client %q, want %q and %q", last.UserID, last.ClientID, user.ID, tc.c.ID)
					}
				})
			}

			// A code that was never redeemed is just invalid: nothing is revoked.
			t.Run("unknown code revokes nothing", func(t *testing.T) {
				tr := loginCode(t, e, b, app, nil)
				wantReplayDenied(t, exchangeCode(t, e, app, codeGrant{code: "not-a-code", verifier: randString()}))
				wantTokensLive(t, e, app, tr)
			})
		})
	}
}

// twoServers starts two providers, each with its own store, on one database: the
// second shares the first's encryption key and clock, as a second process would.
func twoServers(t *testing.T, open func(tb testing.TB) (storage.Storage, storage.Storage)) (*env, *env) {
	t.Helper()
	st1, st2 := open(t)
	first := newEnv(t, st1)
	second := newEnv(t, st2, func(c *idp.Config) { c.Sealer = first.sealer; c.Now = first.clock.Now })
	return first, second
}

// TestRFC6749_4_1_2_CodeReplayRevokesAcrossProcesses: the code is redeemed at one
// process and replayed at another; the tokens die everywhere.
func TestRFC6749_4_1_2_CodeReplayRevokesAcrossProcesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			first, second := twoServers(t, be.open)
			first.createUser("alice@example.com", password)
			app := first.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})

			g := authorizeCode(t, first, first.newBrowser(), app, nil)
			tr := exchangeCode(t, first, app, g)
			if tr.Error != "" {
				t.Fatalf("redemption at the first process: %+v", tr)
			}
			wantTokensLive(t, first, app, tr)

			wantReplayDenied(t, exchangeCode(t, second, app, g))
			wantTokensDead(t, first, app, tr)
		})
	}
}

// TestRFC6749_4_1_2_CodeReplayRevokesConcurrent: many redemptions of one code race,
// spread over two processes. Exactly one redeems it; every other is a replay. Whatever
// the order, at most one gets tokens, and once all have answered none of them works:
// a replay that lands before the winner stored its tokens makes the winner fail, one
// that lands after revokes them.
func TestRFC6749_4_1_2_CodeReplayRevokesConcurrent(t *testing.T) {
	const n = 10
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			first, second := twoServers(t, be.open)
			first.createUser("alice@example.com", password)
			app := first.createClient(admin.NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}, SkipConsent: true})
			b := first.newBrowser()

			for round := range 3 {
				replaysBefore := first.auditCount(audit.EventCodeReplay, audit.ResultFailure)
				invalidBefore := first.auditCount(audit.EventCodeReuse, "")
				g := authorizeCode(t, first, b, app, nil)

				var (
					wg      sync.WaitGroup
					results = make([]tokenResponse, n)
					start   = make(chan struct{})
				)
				for i := range n {
					srv := []*env{first, second}[i%2]
					wg.Go(func() {
						<-start
						results[i] = exchangeCode(t, srv, app, g)
					})
				}
				close(start)
				wg.Wait()

				var won []tokenResponse
				for _, r := range results {
					if r.Error == "" {
						won = append(won, r)
						continue
					}
					wantReplayDenied(t, r)
				}
				if len(won) > 1 {
					t.Fatalf("round %d: %d of %d concurrent redemptions got tokens, want at most 1", round, len(won), n)
				}
				for _, tr := range won {
					wantTokensDead(t, first, app, tr)
					wantTokensDead(t, second, app, tr)
				}
				// Exactly one redemption: every other call was recognised as a replay (none
				// as an unknown code), plus the winner's own failure when a replay beat
				// its tokens.
				if got := first.auditCount(audit.EventCodeReuse, "") - invalidBefore; got != 0 {
					t.Errorf("round %d: %d calls saw an unknown code, want 0", round, got)
				}
				if got, want := first.auditCount(audit.EventCodeReplay, audit.ResultFailure)-replaysBefore, n-len(won); got != want {
					t.Errorf("round %d: %d replay events, want %d (%d got tokens)", round, got, want, len(won))
				}
				t.Logf("round %d: %d of %d got tokens", round, len(won), n)
			}
		})
	}
}
