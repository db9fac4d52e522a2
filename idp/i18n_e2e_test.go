package idp_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
)

// acceptLanguage sends an Accept-Language header with every request, as a browser
// set to that language does.
type acceptLanguage struct {
	value string
	next  http.RoundTripper
}

func (a acceptLanguage) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", a.value)
	return a.next.RoundTrip(r)
}

// browserIn returns a browser whose Accept-Language is lang ("" sends none).
func browserIn(e *env, lang string) *browser {
	b := e.newBrowser()
	if lang != "" {
		b.Client.Transport = acceptLanguage{value: lang, next: http.DefaultTransport}
	}
	return b
}

// TestPageLanguages signs in with ui_locales and Accept-Language and checks each page's
// language and <html lang>, on every backend (ui_locales travels with the stored auth
// request): ui_locales first, then Accept-Language, then English; texts the Go code puts
// on a page (a wrong password, an error page) are translated too; the discovery document
// names the languages.
func TestPageLanguages(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			email := "sprache@example.com"
			e.createUser(email, password)
			app := e.createClient(admin.NewClient{Name: "Sprach-App", RedirectURIs: []string{"https://lang.example.com/cb"}})
			auth := func(b *browser, uiLocales string) page {
				t.Helper()
				_, ch := pkce()
				q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
				if uiLocales != "" {
					q.Set("ui_locales", uiLocales)
				}
				return b.Get(e.authURL(app, q))
			}
			german := []string{`<html lang="de">`, "<h1>Anmelden</h1>", "<title>Anmelden", ">Passwort</label>", "weiter zu"}
			english := []string{`<html lang="en">`, "<h1>Sign in</h1>", ">Password</label>", "to continue to"}
			want := func(what string, p page, in, notIn []string) {
				t.Helper()
				for _, s := range in {
					if !strings.Contains(p.Body, s) {
						t.Errorf("%s: %q missing (status %d):\n%.1200s", what, s, p.Status, p.Body)
					}
				}
				for _, s := range notIn {
					if strings.Contains(p.Body, s) {
						t.Errorf("%s: %q present", what, s)
					}
				}
			}

			t.Run("ui_locales=de", func(t *testing.T) {
				b := browserIn(e, "")
				p := auth(b, "de")
				if !p.IsLogin() {
					t.Fatalf("no login page: %d", p.Status)
				}
				want("login page", p, german, []string{"<h1>Sign in</h1>"})
				// A message from Go code, on the page of the same sign-in.
				p = b.Login(p, email, "wrong password")
				want("wrong password", p, []string{`<html lang="de">`, "E-Mail-Adresse oder Passwort ist falsch."}, []string{"Incorrect email or password."})
				p = b.Login(p, email, password)
				if !p.IsConsent() {
					t.Fatalf("no consent page: %d\n%.600s", p.Status, p.Body)
				}
				want("consent page", p, []string{`<html lang="de">`, "Zugriff erlauben?", "Sie anmelden und wissen, wer Sie sind", ">Ablehnen</button>"}, []string{"Allow access?"})
			})
			t.Run("ui_locales before Accept-Language", func(t *testing.T) {
				want("ui_locales=en, Accept-Language de", auth(browserIn(e, "de-DE,de;q=0.9"), "en"), english, german)
				want("ui_locales=fr-CA de-CH, Accept-Language en", auth(browserIn(e, "en"), "fr-CA de-CH"), german, nil)
			})
			t.Run("Accept-Language", func(t *testing.T) {
				b := browserIn(e, "de-AT,de;q=0.9,en;q=0.5")
				want("login page", auth(b, ""), german, nil)
				p := b.Get(e.issuer + "/no-such-page")
				if p.Status != http.StatusNotFound {
					t.Fatalf("status %d", p.Status)
				}
				want("404 page", p, []string{`<html lang="de">`, "Seite nicht gefunden"}, []string{"Page not found"})
			})
			t.Run("unsupported falls back to English", func(t *testing.T) {
				want("ui_locales=ja, Accept-Language zh", auth(browserIn(e, "zh-CN,zh;q=0.9"), "ja"), english, german)
				want("nothing asked", auth(browserIn(e, ""), ""), english, german)
			})
			t.Run("forced enrolment keeps the sign-in's language", func(t *testing.T) {
				strict := e.createClient(admin.NewClient{Name: "Lohn", RedirectURIs: []string{"https://lohn.example.com/cb"}, SkipConsent: true})
				e.setPolicy(strict, storage.MFAPolicy{MFA: "required"})
				b := browserIn(e, "en")
				_, ch := pkce()
				p := b.Get(e.authURL(strict, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}, "ui_locales": {"de"}}))
				p = b.Login(p, email, password)
				want("account page of a forced enrolment", p, []string{`<html lang="de">`, "Kontosicherheit",
					"Lohn verlangt eine zweite Anmeldemethode.", "Authenticator-App hinzufügen"}, []string{"Account security"})
			})
			t.Run("discovery", func(t *testing.T) {
				var doc struct {
					UILocales []string `json:"ui_locales_supported"`
				}
				idptest.GetJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
				if !slices.Contains(doc.UILocales, "en") || !slices.Contains(doc.UILocales, "de") {
					t.Fatalf("ui_locales_supported = %v, want en and de", doc.UILocales)
				}
			})
		})
	}
}
