package idp_test

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// currentSignedInWithRE finds the "Signed in with" line of the session showing the page.
var currentSignedInWithRE = regexp.MustCompile(`<tr class="current">[\s\S]*?<span class="muted signed-in-with">Signed in with ([^<]*)</span>`)

// TestSignedInWithListsOnlyTheSignIn checks the account page's "Signed in with" and the
// session record behind it (storage.Session.SignIn), on every backend: it lists what the
// sign-in used (the password, the second factor verified, a remembered device standing
// in) and not a factor enrolled afterwards, which the session used to list as if it had
// been used to sign in.
func TestSignedInWithListsOnlyTheSignIn(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			ctx := t.Context()
			email := "signedin@example.com"
			u := e.createUser(email, password)
			sessionOf := func(sid string) *storage.Session {
				t.Helper()
				s, err := e.store.GetSession(ctx, sid)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			currentLine := func(p page) string {
				t.Helper()
				m := currentSignedInWithRE.FindStringSubmatch(p.Body)
				if m == nil {
					t.Fatalf("no \"Signed in with\" for this session:\n%.1500s", p.Body)
				}
				return m[1]
			}
			currentSID := func(p page) string {
				t.Helper()
				ids := matches(currentSessionRE, p.Body)
				if len(ids) != 1 {
					t.Fatalf("current session ids %v", ids)
				}
				return ids[0]
			}

			// Password only, then an authenticator app enrolled on the account page: the
			// sign-in used the password only.
			b := e.newBrowser()
			p := accountPage(t, e, b, email, nil)
			if got := currentLine(p); got != "Password" {
				t.Fatalf("after a password sign-in: Signed in with %q", got)
			}
			key := enrolTOTP(t, e, b, p)
			p = accountPage(t, e, b, email, nil)
			if got := currentLine(p); got != "Password" {
				t.Fatalf("after enrolling an app: Signed in with %q, want only Password (enrolling is not signing in)", got)
			}
			sess := sessionOf(currentSID(p))
			if !slices.Equal(sess.SignIn, []string{storage.SignInPassword}) || !slices.Contains(sess.Factors, storage.FactorTOTP) {
				t.Fatalf("session after enrolment: SignIn %v Factors %v", sess.SignIn, sess.Factors)
			}

			// Password and the app in a new browser.
			totp := func(b *browser, p page, remember bool) page {
				e.clock.Advance(30 * time.Second)
				f := p.Hidden()
				f.Set("code", rfc6238(key, e.clock.Now(), 6))
				if remember {
					f.Set("remember", "1")
				}
				return b.Post(e.issuer+"/login/mfa", f)
			}
			b2 := e.newBrowser()
			p = accountPage(t, e, b2, email, func(p page) page { return totp(b2, p, false) })
			if got := currentLine(p); got != "Password, Authenticator app" {
				t.Fatalf("after password and app: Signed in with %q", got)
			}
			if got := sessionOf(currentSID(p)).SignIn; !slices.Equal(got, []string{storage.SignInPassword, string(storage.FactorTOTP)}) {
				t.Fatalf("session SignIn %v", got)
			}

			// A remembered device standing in for the app.
			app := e.createClient(admin.NewClient{Name: "Remember app", RedirectURIs: []string{"https://remember.example.com/cb"}, SkipConsent: true})
			c, err := e.store.GetClient(ctx, app.ID)
			if err != nil {
				t.Fatal(err)
			}
			c.Policy.RememberDevice = 24 * time.Hour
			if err := e.store.UpdateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			startLogin := func(b *browser) page {
				_, ch := pkce()
				return b.Login(b.Get(e.authURL(app, url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}})), email, password)
			}
			d := e.newBrowser()
			if p = startLogin(d); !isMFA(p) {
				t.Fatalf("no second factor asked (status %d)", p.Status)
			}
			if p = totp(d, p, true); p.RedirectParams(t).Get("code") == "" {
				t.Fatalf("sign-in with remember: %s", p.Location)
			}
			e.server.EndUserSessions(ctx, u.ID, "test")
			if p = startLogin(d); isMFA(p) || p.RedirectParams(t).Get("code") == "" {
				t.Fatalf("the remembered device did not stand in (status %d)", p.Status)
			}
			sessions, err := e.store.ListUserSessions(ctx, u.ID)
			if err != nil || len(sessions) != 1 {
				t.Fatalf("sessions %d, %v", len(sessions), err)
			}
			if got := sessions[0].SignIn; !slices.Equal(got, []string{storage.SignInPassword, storage.SignInRememberedDevice}) {
				t.Fatalf("device sign-in recorded %v, want password and remembered device", got)
			}
			// Another browser's account page shows that session as such.
			b3 := e.newBrowser()
			p = accountPage(t, e, b3, email, func(p page) page { return totp(b3, p, false) })
			if !strings.Contains(p.Body, "Signed in with Password, Remembered device") {
				t.Fatalf("the device session's line is missing:\n%.2000s", p.Body)
			}
		})
	}
}
