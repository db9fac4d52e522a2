package idp_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// TestAdminConsoleLanguage signs an administrator in to the console with a browser set to
// German and checks that every console page, and the texts the console's Go code puts on
// them (a done message, a policy summary, factor names, a form error, a confirmation, an
// error page), are German with lang="de"; the same session with Accept-Language: en gets
// English: the language follows each request's header.
func TestAdminConsoleLanguage(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { runConsoleLanguage(t, be.open(t)) })
	}
}

func runConsoleLanguage(t *testing.T, st storage.Storage) {
	ctx := context.Background()
	e := newEnv(t, st)
	const adminEmail = "chefin@example.com"
	adm, err := e.admin.CreateUserOfType(ctx, "test", admin.NewUser{Email: adminEmail, Password: password}, "admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	hb := e.newBrowser()
	key := enrolTOTP(t, e, hb, accountPage(t, e, hb, adminEmail, nil))
	staff := e.createUser("mitarbeiter@example.com", password)
	c := e.createClient(admin.NewClient{Name: "Sprach-App"})
	if _, err := e.admin.SetClientPolicy(ctx, "test", c.ID, storage.MFAPolicy{MFA: "required", Factors: []storage.FactorKind{storage.FactorTOTP}}); err != nil {
		t.Fatal(err)
	}

	b := browserIn(e, "de-DE,de;q=0.9,en;q=0.5")
	if p := signInToConsole(t, e, b, adminEmail, key); !strings.Contains(p.Body, `<html lang="de">`) || !strings.Contains(p.Body, "Client registrieren") {
		t.Fatalf("the console after a German sign-in is not German (status %d at %s):\n%.800s", p.Status, p.URL, p.Body)
	}

	// English texts of the console that must not be left on a German page.
	english := []string{"Admin console", "Signed in as", "Your account", "Register a client", "Account types", "Signing keys"}
	check := func(what string, p page, status int, want ...string) {
		t.Helper()
		if p.Status != status {
			t.Errorf("%s: status %d, want %d\n%.600s", what, p.Status, status, p.Body)
		}
		if !strings.Contains(p.Body, `<html lang="de">`) {
			t.Errorf("%s: not lang=\"de\":\n%.300s", what, p.Body)
		}
		for _, w := range want {
			if !strings.Contains(p.Body, w) {
				t.Errorf("%s: lacks %q:\n%s", what, w, p.Body)
			}
		}
		for _, en := range english {
			if strings.Contains(p.Body, en) {
				t.Errorf("%s: English %q left on the German page", what, en)
			}
		}
	}

	pages := []struct{ path, want string }{
		{"/admin/clients", "erforderlich (Authenticator-App)"}, // the policy summary, built in Go
		{"/admin/clients/new", "Authorization Code (Anmeldung im Browser)"},
		{"/admin/clients/" + c.ID + "?explain=" + url.QueryEscape(adminEmail), "Hier verwendbar"},
		{"/admin/people", "Person anlegen"},
		{"/admin/people/" + adm.ID, "<td>Authenticator-App</td>"}, // a factor's kind, named in Go
		{"/admin/policies", "Richtlinien der Kontotypen"},
		{"/admin/audit", "<td>erfolgreich</td>"}, // an event's result
		{"/admin/audit?verify=1", "Die Kette ist intakt"},
		{"/admin/keys", "<td>aktiv</td>"}, // a key's state
	}
	for _, pg := range pages {
		check("GET "+pg.path, b.Get(e.issuer+pg.path), http.StatusOK, "– Admin-Konsole", "Angemeldet als "+adminEmail, pg.want)
	}

	// Texts made in Go: a form error, a done message, a confirmation, an error page.
	cp := b.Get(e.issuer + "/admin/clients/" + c.ID)
	csrf := cp.Hidden().Get("csrf")
	check("a duration the console cannot read",
		b.Post(e.issuer+"/admin/clients/"+c.ID+"/policy", url.Values{"csrf": {csrf}, "mfa": {"required"}, "max_age": {"bald"}}),
		http.StatusBadRequest, "Erneut prüfen nach: Geben Sie eine Dauer wie 15m, 12h oder 720h an")
	check("the done message after saving a person",
		b.Post(e.issuer+"/admin/people/"+staff.ID+"/account", url.Values{"csrf": {csrf}, "type": {"staff"}}),
		http.StatusOK, `id="done">Gespeichert.</p>`)
	check("the confirmation before deleting a client",
		b.Post(e.issuer+"/admin/clients/"+c.ID+"/delete", url.Values{"csrf": {csrf}}),
		http.StatusOK, "<h1>Diesen Client löschen?</h1>", "Das Löschen von Sprach-App beendet jede Anmeldung", ">Client löschen</button>")
	check("a reason left out",
		b.Post(e.issuer+"/admin/people/"+staff.ID+"/reset-mfa", url.Values{"csrf": {csrf}, "confirm": {"yes"}}),
		http.StatusBadRequest, "Ein Grund ist erforderlich")
	check("an unknown event type", b.Get(e.issuer+"/admin/audit?type=nonsense"), http.StatusBadRequest, "Unbekannter Ereignistyp &#34;nonsense&#34;.")
	ep := b.Get(e.issuer + "/admin/nowhere")
	if ep.Status != http.StatusNotFound || !strings.Contains(ep.Body, `<html lang="de">`) || !strings.Contains(ep.Body, "Unter dieser Adresse gibt es keine Seite der Konsole.") {
		t.Errorf("console 404 in German: status %d:\n%.600s", ep.Status, ep.Body)
	}
	if _, err := e.store.GetClient(ctx, c.ID); err != nil {
		t.Errorf("the client is gone after an unconfirmed delete: %v", err)
	}

	// The same session asking for English gets English.
	b.Client.Transport = acceptLanguage{value: "en", next: http.DefaultTransport}
	if p := b.Get(e.issuer + "/admin/clients"); !strings.Contains(p.Body, `<html lang="en">`) || !strings.Contains(p.Body, "Admin console") ||
		!strings.Contains(p.Body, "required (Authenticator app)") {
		t.Errorf("the console with Accept-Language: en is not English (status %d):\n%.800s", p.Status, p.Body)
	}
}
