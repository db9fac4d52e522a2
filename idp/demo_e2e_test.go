package idp_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
)

// newDemoEnv is a provider on SQLite serving the dev-mode demo app, seeded as
// `idp serve --dev` seeds it.
func newDemoEnv(t *testing.T) (*env, *admin.DemoSeed) {
	t.Helper()
	st := openSQLite(t)
	var seed *admin.DemoSeed
	e := newEnv(t, st, func(c *idp.Config) {
		a := &admin.Admin{Store: st, Audit: &audit.Auditor{Store: st, Logger: slog.New(slog.DiscardHandler)}}
		var err error
		if seed, err = a.SeedDemo(context.Background(), c.Issuer); err != nil {
			t.Fatal(err)
		}
		c.Demo = &seed.Client
	})
	return e, seed
}

// TestDemoSession checks the demo app's own session: reloading its callback page shows
// the signed-in page rather than the library's "named cookie not present", the start
// page shows who is signed in, and signing out forgets it.
func TestDemoSession(t *testing.T) {
	e, seed := newDemoEnv(t)
	b := e.newBrowser()
	if p := b.Get(e.issuer + "/"); !strings.Contains(p.Body, `id="signin"`) || strings.Contains(p.Body, "Signed in as") {
		t.Fatalf("start page before signing in:\n%.800s", p.Body)
	}
	p := b.Login(b.Get(e.issuer+"/demo/login"), seed.Email, seed.Password)
	if p.IsConsent() {
		p = b.Consent(p, "allow")
	}
	if p.URL.Path != "/demo/callback" || !strings.Contains(p.Body, "Signed in as") {
		t.Fatalf("demo sign-in: status %d at %s\n%.800s", p.Status, p.URL, p.Body)
	}
	callback := p.URL.String()

	signedIn := func(t *testing.T, what string, p page) {
		t.Helper()
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `id="signed-in-as"`) || !strings.Contains(p.Body, `id="call-api"`) ||
			!strings.Contains(p.Body, seed.Email) || strings.Contains(p.Body, `id="signin"`) || strings.Contains(p.Body, "cookie") {
			t.Errorf("%s: status %d\n%.1200s", what, p.Status, p.Body)
		}
	}
	signedIn(t, "reloaded callback", b.Get(callback))
	signedIn(t, "start page", b.Get(e.issuer+"/"))

	// Another browser opening the used link is asked to sign in, in words.
	other := e.newBrowser().Get(callback)
	if !strings.Contains(other.Body, "already been used") || !strings.Contains(other.Body, `id="signin"`) || strings.Contains(other.Body, "named cookie") {
		t.Errorf("used callback in another browser: status %d\n%.1200s", other.Status, other.Body)
	}

	b.Get(e.issuer + "/demo/logout")
	if p := b.Get(e.issuer + "/"); !strings.Contains(p.Body, `id="signin"`) || strings.Contains(p.Body, `id="signed-in-as"`) {
		t.Errorf("start page after signing out:\n%.800s", p.Body)
	}
}
