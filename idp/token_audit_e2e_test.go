package idp_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// rawDB runs SQL on the test's database beside the store.
type rawDB struct {
	exec  func(t *testing.T, q string)
	count func(t *testing.T, table string) int
}

// unwritableAudit is how each backend makes the audit table refuse every insert, and
// undoes it.
var unwritableAudit = map[string][2]string{
	"sqlite": {`CREATE TRIGGER audit_unwritable BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit unwritable'); END`,
		`DROP TRIGGER audit_unwritable`},
	"postgres": {`CREATE OR REPLACE FUNCTION audit_unwritable() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'audit unwritable'; END$$;
		CREATE TRIGGER audit_unwritable BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_unwritable()`,
		`DROP TRIGGER audit_unwritable ON audit_events`},
}

func openRaw(t *testing.T, backend string) (storage.Storage, rawDB) {
	t.Helper()
	ctx := context.Background()
	if backend == "sqlite" {
		path := filepath.Join(t.TempDir(), "idp.db")
		st := openSQLiteAt(t, path)
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return st, rawDB{
			exec: func(t *testing.T, q string) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			},
			count: func(t *testing.T, table string) (n int) {
				t.Helper()
				if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			},
		}
	}
	dsn := pgtest.NewDatabase(t)
	st := openPostgresAt(t, dsn)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return st, rawDB{
		exec: func(t *testing.T, q string) {
			t.Helper()
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		},
		count: func(t *testing.T, table string) (n int) {
			t.Helper()
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	}
}

// When the audit event of a token cannot be written, the token is not issued: the
// token endpoint answers server_error and stores nothing, and a refresh token whose
// rotation failed so is still current (its retry is not reuse). Every token issued
// has its event, found by the token's id.
func TestNoTokenWithoutAuditEvent(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st, db := openRaw(t, be.name)
			e := newEnv(t, st, noAuthorizeLimit)
			e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
			svc := e.createClient(admin.NewClient{Name: "Svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})
			br := e.newBrowser()
			rt0 := loginCode(t, e, br, app, nil).RefreshToken
			cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}}
			g := authorizeCode(t, e, br, app, nil)
			exchange := url.Values{"grant_type": {"authorization_code"}, "code": {g.code},
				"redirect_uri": {app.RedirectURI}, "code_verifier": {g.verifier}}

			kept := e.tokenRequest(svc, cc).AccessToken // revoked below, once events can be written
			accessTokens, refreshTokens := db.count(t, "access_tokens"), db.count(t, "refresh_tokens")
			db.exec(t, unwritableAudit[be.name][0])
			// A revocation that cannot be audited does not happen either.
			if r := postAPI(t, e, "/revoke", url.Values{"token": {kept}}, &svc); r.status < 500 {
				t.Fatalf("revocation with the audit table unwritable: status %d", r.status)
			}
			for _, tc := range []struct {
				name   string
				client testClient
				form   url.Values
			}{
				{"client_credentials", svc, cc},
				{"refresh", app, refresh},
				{"code exchange", app, exchange},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tr := e.tokenRequest(tc.client, tc.form)
					if tr.Error != "server_error" || tr.AccessToken != "" || tr.RefreshToken != "" {
						t.Fatalf("token request with the audit table unwritable: %+v, want server_error", tr)
					}
				})
			}
			if a, r := db.count(t, "access_tokens"), db.count(t, "refresh_tokens"); a != accessTokens || r != refreshTokens {
				t.Fatalf("tokens stored without their events: access %d→%d, refresh %d→%d", accessTokens, a, refreshTokens, r)
			}
			old, err := e.store.GetRefreshTokenByHash(context.Background(), secret.Hash(rt0))
			if err != nil || !old.RotatedAt.IsZero() || !old.RevokedAt.IsZero() {
				t.Fatalf("refresh token after a failed rotation: %+v, %v", old, err)
			}

			db.exec(t, unwritableAudit[be.name][1])
			for _, tc := range []struct {
				name   string
				client testClient
				form   url.Values
			}{
				{"client_credentials", svc, cc},
				{"refresh", app, refresh},
			} {
				tr := e.tokenRequest(tc.client, tc.form)
				if tr.AccessToken == "" {
					t.Fatalf("%s once the audit table is writable: %+v", tc.name, tr)
				}
				jti, _ := introspect(t, e, tc.client, tr.AccessToken)["jti"].(string)
				evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{TokenID: jti})
				if err != nil || jti == "" || len(evs) != 1 || evs[0].ClientID != tc.client.ID || evs[0].Result != audit.ResultSuccess {
					t.Fatalf("%s: events of token %q: %+v, %v", tc.name, jti, evs, err)
				}
			}
			if n := e.auditCount(audit.EventRefreshReuse, ""); n != 0 {
				t.Fatalf("the retry of a refresh that failed was audited as reuse %d times", n)
			}
			if introspect(t, e, svc, kept)["active"] != true {
				t.Fatal("an unaudited revocation revoked the token")
			}
			if r := postAPI(t, e, "/revoke", url.Values{"token": {kept}}, &svc); r.status != 200 {
				t.Fatalf("revocation: status %d", r.status)
			}
			info := introspect(t, e, svc, kept)
			if info["active"] != false {
				t.Fatal("revoked token still active")
			}
			if n := e.auditCount(audit.EventTokenRevoke, audit.ResultSuccess); n != 1 {
				t.Fatalf("%d token.revoke events, want 1", n)
			}
		})
	}
}

// A sign-in whose audit event cannot be written does not happen: the password step
// answers 500 and leaves no session, the second-factor step answers 500 and leaves the
// session without the factor. Once events can be written, the same steps succeed and
// their events name the session and the factor.
func TestSignInNotAuditedFails(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st, db := openRaw(t, be.name)
			e := newEnv(t, st, noAuthorizeLimit)
			u := e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true})
			ctx := context.Background()
			sessions := func() []storage.Session {
				t.Helper()
				ss, err := e.store.ListUserSessions(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				return ss
			}

			// Password.
			db.exec(t, unwritableAudit[be.name][0])
			br := e.newBrowser()
			if p := br.Login(br.Get(e.authURL(app, nil)), u.Email, password); p.Status != 500 {
				t.Fatalf("password sign-in with the audit table unwritable: status %d", p.Status)
			}
			if ss := sessions(); len(ss) != 0 {
				t.Fatalf("unaudited sign-in left %d sessions", len(ss))
			}
			db.exec(t, unwritableAudit[be.name][1])
			if p := br.Login(br.Get(e.authURL(app, nil)), u.Email, password); p.Status == 500 || p.RedirectParams(t).Get("code") == "" {
				t.Fatalf("password sign-in: status %d", p.Status)
			}
			ss := sessions()
			evs, err := e.store.ListAudit(ctx, storage.AuditFilter{Type: audit.EventLoginPassword})
			if err != nil || len(ss) != 1 || len(evs) == 0 || evs[len(evs)-1].SessionID != ss[0].ID {
				t.Fatalf("sign-in event %+v, sessions %+v (%v)", evs, ss, err)
			}

			// Second factor.
			key := enrolTOTP(t, e, br, accountPage(t, e, br, u.Email, nil))
			br = e.newBrowser()
			e.clock.Advance(30 * time.Second)
			mfaPage := br.Login(br.Get(e.authURL(app, nil)), u.Email, password)
			f := mfaPage.Hidden()
			f.Set("code", rfc6238(key, e.clock.Now(), 6))
			db.exec(t, unwritableAudit[be.name][0])
			if p := br.Post(e.issuer+"/login/mfa", f); p.Status != 500 {
				t.Fatalf("second factor with the audit table unwritable: status %d", p.Status)
			}
			db.exec(t, unwritableAudit[be.name][1])
			// The newest session is this browser's (the older one enrolled the factor).
			if s := sessions()[0]; !s.MFAAt.IsZero() {
				t.Fatalf("an unaudited second factor upgraded session %s", s.ID)
			}
			e.clock.Advance(30 * time.Second)
			f.Set("code", rfc6238(key, e.clock.Now(), 6))
			if p := br.Post(e.issuer+"/login/mfa", f); p.Status == 500 || p.RedirectParams(t).Get("code") == "" {
				t.Fatalf("second factor: status %d", p.Status)
			}
			factors, err := e.store.ListFactors(ctx, u.ID)
			if err != nil || len(factors) == 0 {
				t.Fatal(factors, err)
			}
			evs, err = e.store.ListAudit(ctx, storage.AuditFilter{Type: audit.EventMFAVerify})
			if err != nil || len(evs) == 0 || evs[len(evs)-1].FactorID != factors[0].ID || evs[len(evs)-1].Result != audit.ResultSuccess {
				t.Fatalf("second-factor event %+v (%v)", evs, err)
			}
		})
	}
}
