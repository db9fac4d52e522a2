package idp_test

import (
	"bytes"
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// A client that lost the answer of a refresh (the process died after the commit, the
// connection dropped) and retries the token it just rotated gets the same successor
// within the reuse grace window; any other reuse still revokes the family.
func TestRefreshReuseGrace(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e, app := newGraceEnv(t, be.open(t))
			other := e.createClient(admin.NewClient{Name: "Other", SkipConsent: true})
			br := e.newBrowser()
			refresh := func(c testClient, rt string) tokenResponse {
				t.Helper()
				return refreshWith(t, e, c, rt)
			}
			tests := []struct {
				name string
				// retry presents the rotated token rt0 (whose successor r1 was issued) again
				// and returns the answer.
				retry      func(t *testing.T, rt0 string, r1 tokenResponse) tokenResponse
				sameAnswer bool // else: invalid_grant and the family revoked
			}{
				{"same client within the window gets the same successor", func(t *testing.T, rt0 string, r1 tokenResponse) tokenResponse {
					e.clock.Advance(25 * time.Second)
					return refresh(app, rt0)
				}, true},
				{"same client after the window is reuse", func(t *testing.T, rt0 string, r1 tokenResponse) tokenResponse {
					e.clock.Advance(31 * time.Second)
					return refresh(app, rt0)
				}, false},
				{"another client within the window is reuse", func(t *testing.T, rt0 string, r1 tokenResponse) tokenResponse {
					return refresh(other, rt0)
				}, false},
				{"once the successor was used it is reuse", func(t *testing.T, rt0 string, r1 tokenResponse) tokenResponse {
					if r2 := refresh(app, r1.RefreshToken); r2.RefreshToken == "" {
						t.Fatalf("refresh of the successor: %+v", r2)
					}
					return refresh(app, rt0)
				}, false},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					rt0 := loginCode(t, e, br, app, nil).RefreshToken
					r1 := refresh(app, rt0)
					if r1.RefreshToken == "" {
						t.Fatalf("refresh: %+v", r1)
					}
					// The successor is kept on the rotated row sealed, never in plaintext.
					old, err := e.store.GetRefreshTokenByHash(context.Background(), secret.Hash(rt0))
					if err != nil {
						t.Fatal(err)
					}
					if len(old.SuccessorSealed) == 0 || bytes.Contains(old.SuccessorSealed, []byte(r1.RefreshToken)) {
						t.Fatalf("successor stored as %q", old.SuccessorSealed)
					}
					reuses := e.auditCount(audit.EventRefreshReuse, "")
					got := tc.retry(t, rt0, r1)
					if tc.sameAnswer {
						if got.RefreshToken != r1.RefreshToken || got.AccessToken == "" || got.AccessToken == r1.AccessToken || got.IDToken == "" {
							t.Fatalf("retry within the window: %+v, want the same refresh token %q and a new access token", got, r1.RefreshToken)
						}
						info := introspect(t, e, app, got.AccessToken)
						if info["active"] != true {
							t.Fatalf("access token of the retry inactive: %v", info)
						}
						// Its audit event names it.
						evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{TokenID: info["jti"].(string)})
						if err != nil || len(evs) != 1 || evs[0].Type != audit.EventTokenRefresh {
							t.Fatalf("events of the retry's access token: %+v, %v", evs, err)
						}
						// The family lives on: the successor still refreshes.
						if next := refresh(app, r1.RefreshToken); next.RefreshToken == "" {
							t.Fatalf("successor after the retry: %+v", next)
						}
						if n := e.auditCount(audit.EventRefreshReuse, ""); n != reuses {
							t.Fatalf("a retry within the window was audited as reuse")
						}
						return
					}
					if got.Error != "invalid_grant" {
						t.Fatalf("reuse: %+v, want invalid_grant", got)
					}
					if after := refresh(app, r1.RefreshToken); after.Error != "invalid_grant" {
						t.Fatalf("family survived reuse: %+v", after)
					}
					if n := e.auditCount(audit.EventRefreshReuse, ""); n != reuses+1 {
						t.Fatalf("reuse audited %d times, want once", n-reuses)
					}
				})
			}
		})
	}
}

// With the window off (Config.RefreshReuseGrace negative, --refresh-reuse-grace 0), an
// immediate retry is reuse.
func TestRefreshReuseGraceOff(t *testing.T) {
	e := newEnv(t, openSQLite(t), noAuthorizeLimit, func(c *idp.Config) { c.RefreshReuseGrace = -1 })
	e.createUser("alice@example.com", password)
	app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
	rt0 := loginCode(t, e, e.newBrowser(), app, nil).RefreshToken
	r1 := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}})
	if r1.RefreshToken == "" {
		t.Fatalf("refresh: %+v", r1)
	}
	if got := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}}); got.Error != "invalid_grant" {
		t.Fatalf("retry with the window off: %+v, want invalid_grant", got)
	}
	if after := e.tokenRequest(app, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1.RefreshToken}}); after.Error != "invalid_grant" {
		t.Fatalf("family survived reuse: %+v", after)
	}
}

// The sealed successor is kept only for the window: the periodic cleanup leaves it while
// a retry may still come (and the retry still gets the same successor after a cleanup),
// and clears it once the window is over, keeping the rotation itself. A token rotated
// longer ago no longer has its successor at rest under the encryption key of the day.
func TestRefreshSuccessorClearedAfterGrace(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e, app := newGraceEnv(t, be.open(t))
			ctx := context.Background()
			refresh := func(rt string) tokenResponse {
				t.Helper()
				return refreshWith(t, e, app, rt)
			}
			rotated := func(rt string) *storage.RefreshToken {
				t.Helper()
				old, err := e.store.GetRefreshTokenByHash(ctx, secret.Hash(rt))
				if err != nil {
					t.Fatal(err)
				}
				return old
			}
			rt0 := loginCode(t, e, e.newBrowser(), app, nil).RefreshToken
			r1 := refresh(rt0)
			if r1.RefreshToken == "" {
				t.Fatalf("refresh: %+v", r1)
			}

			e.clock.Advance(20 * time.Second)
			e.server.CleanupForTest(ctx)
			if old := rotated(rt0); len(old.SuccessorSealed) == 0 {
				t.Fatal("the cleanup cleared a successor within the window")
			}
			if got := refresh(rt0); got.RefreshToken != r1.RefreshToken {
				t.Fatalf("retry within the window after a cleanup: %+v, want the same successor", got)
			}

			e.clock.Advance(11 * time.Second) // 31 s after the rotation
			e.server.CleanupForTest(ctx)
			old := rotated(rt0)
			if len(old.SuccessorSealed) != 0 || old.SuccessorID == "" || old.RotatedAt.IsZero() {
				t.Fatalf("after the window and a cleanup: successor %q sealed %d bytes, rotated %v; want the id and rotation kept, the value gone",
					old.SuccessorID, len(old.SuccessorSealed), old.RotatedAt)
			}
			// The successor itself is untouched and still refreshes.
			if next := refresh(r1.RefreshToken); next.RefreshToken == "" {
				t.Fatalf("successor after the cleanup: %+v", next)
			}
		})
	}
}

// newGraceEnv is a provider on st with the person alice and the client App, which
// skips consent.
func newGraceEnv(t *testing.T, st storage.Storage) (*env, testClient) {
	t.Helper()
	e := newEnv(t, st, noAuthorizeLimit)
	e.createUser("alice@example.com", password)
	return e, e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
}

// refreshWith redeems the refresh token rt as client c.
func refreshWith(t *testing.T, e *env, c testClient, rt string) tokenResponse {
	t.Helper()
	return e.tokenRequest(c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}
