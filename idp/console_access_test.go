package idp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// newLocalhostEnvWith is newEnv on a localhost issuer (where WebAuthn is offered) with
// the given sealer and a change to the configuration.
func newLocalhostEnvWith(tb testing.TB, st storage.Storage, sealer *seal.Sealer, mutate func(*idp.Config)) *env {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	_, port, _ := strings.Cut(ts.Listener.Addr().String(), "127.0.0.1:")
	clk := &clock{}
	cfg := idp.Config{Issuer: "http://localhost:" + port, Sealer: sealer, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	mutate(&cfg)
	srv, err := idp.New(context.Background(), st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	tb.Cleanup(ts.Close)
	e := &env{t: tb, store: st, server: srv, issuer: cfg.Issuer, clock: clk, sealer: sealer}
	e.admin = &admin.Admin{Store: st, Audit: srv.Auditor(), Keys: srv.Keys(), Now: clk.Now}
	return e
}

// consolePosts are the console's change routes, with a form that would otherwise be
// accepted (confirmed, with a reason).
func consolePosts(clientID, userID, sessionID string) []string {
	return []string{
		"/admin/clients", "/admin/clients/" + clientID, "/admin/clients/" + clientID + "/policy",
		"/admin/clients/" + clientID + "/secret", "/admin/clients/" + clientID + "/delete",
		"/admin/clients/" + clientID + "/sessions/end", "/admin/policies", "/admin/people",
		"/admin/people/" + userID + "/disable", "/admin/people/" + userID + "/enable",
		"/admin/people/" + userID + "/account", "/admin/people/" + userID + "/reset-mfa",
		"/admin/people/" + userID + "/recovery-link", "/admin/people/" + userID + "/sessions/end",
		"/admin/sessions/" + sessionID + "/end", "/admin/keys/rotate",
	}
}

var consoleGets = []string{"/admin/clients", "/admin/clients/new", "/admin/people", "/admin/policies", "/admin/audit", "/admin/keys", "/admin/audit/export"}

// signInToConsole signs b in to the console as email, answering the second factor with key.
func signInToConsole(t *testing.T, e *env, b *browser, email string, key []byte) page {
	t.Helper()
	p := b.Get(e.issuer + "/admin")
	p = b.Login(p, email, password)
	if !isMFA(p) {
		t.Fatalf("no second-factor step for the console (status %d at %s):\n%.600s", p.Status, p.URL, p.Body)
	}
	e.clock.Advance(31 * time.Second)
	return answerMFA(b, e, p, rfc6238(key, e.clock.Now(), 6))
}

// TestAdminConsoleAccess checks who may use the console and that no change happens
// without the CSRF token: anonymous visitors are sent to sign in, other accounts get
// 403 on every page, every change route refuses a POST without a valid token (and
// writes nothing, not even an audit event), the phishing-resistant setting refuses an
// administrator with only TOTP, and a console switched off is not there.
func TestAdminConsoleAccess(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { runConsoleAccess(t, be.open(t)) })
	}
}

func runConsoleAccess(t *testing.T, st storage.Storage) {
	ctx := context.Background()
	e := newEnv(t, st)
	const adminEmail, staffEmail = "admin@example.com", "staff@example.com"
	if _, err := e.admin.CreateUserOfType(ctx, "test", admin.NewUser{Email: adminEmail, Password: password}, "admin", nil); err != nil {
		t.Fatal(err)
	}
	hb := e.newBrowser()
	key := enrolTOTP(t, e, hb, accountPage(t, e, hb, adminEmail, nil))
	staff := e.createUser(staffEmail, password)
	c := e.createClient(admin.NewClient{Name: "App"})

	t.Run("anonymous: sign in first", func(t *testing.T) {
		for _, path := range consoleGets {
			if p := e.newBrowser().Get(e.issuer + path); !p.IsLogin() {
				t.Errorf("GET %s anonymously: status %d at %s, want the sign-in form", path, p.Status, p.URL)
			}
		}
	})

	t.Run("not an administrator: 403", func(t *testing.T) {
		b := e.newBrowser()
		accountPage(t, e, b, staffEmail, nil)
		for _, path := range consoleGets {
			if p := b.Get(e.issuer + path); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Not allowed") {
				t.Errorf("GET %s as staff: status %d, want 403", path, p.Status)
			}
		}
	})

	t.Run("not an administrator, signing in at /admin: refused after the password", func(t *testing.T) {
		b := e.newBrowser()
		p := b.Login(b.Get(e.issuer+"/admin"), staffEmail, password)
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "only for accounts of type admin") {
			t.Errorf("staff signing in to the console: status %d at %s:\n%.400s", p.Status, p.URL, p.Body)
		}
		if fs, _ := e.store.ListFactors(ctx, staff.ID); len(fs) != 0 {
			t.Errorf("staff was made to enrol %d factors", len(fs))
		}
	})

	t.Run("no change without the CSRF token", func(t *testing.T) {
		b := e.newBrowser()
		if p := signInToConsole(t, e, b, adminEmail, key); !strings.Contains(p.Body, "<h1>Clients</h1>") {
			t.Fatalf("not the console after sign-in (status %d at %s):\n%.600s", p.Status, p.URL, p.Body)
		}
		sessions, _ := e.store.ListUserSessions(ctx, staff.ID)
		if len(sessions) == 0 {
			t.Fatal("staff has no session")
		}
		before, _ := e.store.ListAudit(ctx, storage.AuditFilter{})
		form := url.Values{"confirm": {"yes"}, "reason": {"test"}, "name": {"X"}, "email": {"x@example.com"},
			"password": {"long enough password"}, "type": {"staff"}, "mfa": {"required"}, "redirect_uris": {"https://x.example/cb"}}
		for _, path := range consolePosts(c.ID, staff.ID, sessions[0].ID) {
			for _, token := range []string{"", "forged"} {
				f := url.Values{}
				for k, v := range form {
					f[k] = v
				}
				if token != "" {
					f.Set("csrf", token)
				}
				if p := b.Post(e.issuer+path, f); p.Status != http.StatusForbidden {
					t.Errorf("POST %s with csrf %q: status %d, want 403", path, token, p.Status)
				}
			}
		}
		if after, _ := e.store.ListAudit(ctx, storage.AuditFilter{}); len(after) != len(before) {
			t.Errorf("refused posts wrote %d audit events", len(after)-len(before))
		}
		if _, err := e.store.GetClient(ctx, c.ID); err != nil {
			t.Errorf("client after refused delete: %v", err)
		}
		if u, _ := e.store.GetUser(ctx, staff.ID); u.Disabled || u.Type != "" {
			t.Errorf("staff changed by refused posts: %+v", u)
		}

		// The same session with the page's token does change things.
		p := b.Get(e.issuer + "/admin/people/" + staff.ID)
		f := url.Values{"csrf": {p.Hidden().Get("csrf")}, "type": {"staff"}, "groups": {"ops"}}
		if p = b.Post(e.issuer+"/admin/people/"+staff.ID+"/account", f); p.Status != http.StatusOK {
			t.Fatalf("POST with the token: status %d", p.Status)
		}
		if u, _ := e.store.GetUser(ctx, staff.ID); u.Type != "staff" {
			t.Errorf("type after a valid post: %q", u.Type)
		}
	})

	t.Run("phishing-resistant console refuses TOTP", func(t *testing.T) {
		// Without WebAuthn (an IP-address issuer) nobody could get in: start-up refuses.
		_, err := idp.New(ctx, e.store, idp.Config{Issuer: e.issuer, Sealer: e.sealer, Console: idp.ConsoleConfig{PhishingResistant: true},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !strings.Contains(err.Error(), "WebAuthn") {
			t.Errorf("phishing-resistant console without WebAuthn: New = %v, want a refusal", err)
		}
		pe := newLocalhostEnvWith(t, e.store, e.sealer, func(cfg *idp.Config) { cfg.Console.PhishingResistant = true })
		b := pe.newBrowser()
		p := b.Get(pe.issuer + "/admin")
		p = b.Login(p, adminEmail, password)
		// TOTP does not count: the administrator is sent to the account page to add a
		// security key (which first asks for the factor they have).
		if strings.Contains(p.Body, "<h1>Clients</h1>") {
			t.Fatalf("TOTP was accepted for a phishing-resistant console (status %d at %s):\n%.1500s", p.Status, p.URL, p.Body)
		}
		if !strings.Contains(p.Body, "Account security") {
			t.Errorf("want the account page to add a security key, got status %d at %s:\n%.400s", p.Status, p.URL, p.Body)
		}
	})

	t.Run("an unsatisfiable console sign-in ends on an error page", func(t *testing.T) {
		// The admin type accepts only TOTP, the console only WebAuthn: no sign-in can do both.
		if _, err := e.admin.SetTypePolicy(ctx, "test", "admin", storage.MFAPolicy{MFA: "required", Factors: []storage.FactorKind{storage.FactorTOTP}}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.store.DeleteTypePolicy(ctx, "admin") }()
		pe := newLocalhostEnvWith(t, e.store, e.sealer, func(cfg *idp.Config) { cfg.Console.PhishingResistant = true })
		b := pe.newBrowser()
		p := b.Login(b.Get(pe.issuer+"/admin"), adminEmail, password)
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Cannot open the admin console") {
			t.Errorf("unsatisfiable console sign-in: status %d at %s:\n%.400s", p.Status, p.URL, p.Body)
		}
	})

	t.Run("switched off", func(t *testing.T) {
		oe := newEnv(t, e.store, func(cfg *idp.Config) { cfg.Sealer, cfg.Console.Disabled = e.sealer, true })
		for _, path := range []string{"/admin", "/admin/clients"} {
			if p := oe.newBrowser().Get(oe.issuer + path); p.Status != http.StatusNotFound {
				t.Errorf("GET %s with the console off: status %d, want 404", path, p.Status)
			}
		}
	})
}
