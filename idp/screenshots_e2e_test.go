package idp_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/idptest"
)

// The pictures of docs/user-guide.md. They are regenerated with
//
//	IDP_SCREENSHOTS=$PWD/docs/images go test ./idp -run Screenshot -count=1
//
// Without IDP_SCREENSHOTS the test still walks every page and checks it.

const (
	screenshotEmail = "ada@example.com"
	// screenshotWidth × screenshotHeight is the browser window of the pictures: small
	// enough for the docs, wide enough for the page's card.
	screenshotWidth, screenshotHeight = 1000, 800
)

// TestScreenshotsSignIn walks, in Chromium, what a person sees: the sign-in page (in
// English and German), adding an authenticator app (its QR code), the account page,
// the second-factor page, the consent page and an error page; it checks each page and
// saves its picture (saveScreenshot).
func TestScreenshotsSignIn(t *testing.T) {
	st := openSQLite(t)
	e := newLocalhostEnv(t, st, nil, nil, nil)
	browser := idptest.NewChrome(t)
	w := &webauthnEnv{env: e, browser: browser}
	w.app = e.createClient(admin.NewClient{Name: "Example App", RedirectURIs: []string{appOrigin + "/cb"}})
	w.callbacks = catchCallbacks(t, browser, appOrigin)
	e.createUser(screenshotEmail, password)
	w.do(t, "set the window size", chromedp.EmulateViewport(screenshotWidth, screenshotHeight))

	shot := func(name, h1, lang string) {
		t.Helper()
		w.waitFor(t, "the page "+name, `document.readyState === "complete" && document.querySelector("h1")?.textContent === `+jsString(h1))
		if got := w.eval(t, `document.documentElement.lang`); got != lang {
			t.Fatalf("%s: <html lang=%q>, want %q", name, got, lang)
		}
		saveScreenshot(browser, t, name)
	}
	authURL := func(extra url.Values) string {
		_, ch := pkce()
		q := url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}}
		for k, v := range extra {
			q[k] = v
		}
		return w.authURL(w.app, q)
	}
	typePassword := func() {
		t.Helper()
		w.do(t, "sign in with the password",
			chromedp.SendKeys(chromedp.CSS("#email"), screenshotEmail),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
		)
	}

	// The sign-in page, in English and as ui_locales=de asks.
	w.do(t, "open the sign-in page", chromedp.Navigate(authURL(nil)))
	shot("signin", "Sign in", "en")
	w.do(t, "open the German sign-in page", chromedp.Navigate(authURL(url.Values{"ui_locales": {"de"}})))
	shot("signin-de", "Anmelden", "de")

	// Adding an authenticator app on the account page.
	w.freshBrowser(t)
	w.do(t, "open the account page", chromedp.Navigate(w.issuer+"/account/security"))
	w.waitFor(t, "the sign-in form", `document.querySelector("form[action='/login'] #password") !== null`)
	typePassword()
	w.waitFor(t, "the account page", `document.querySelector("h1")?.textContent === "Account security"`)
	w.do(t, "add an authenticator app",
		chromedp.Click(chromedp.CSS(`form.enroll:has(input[name="kind"][value="totp"]) button[type="submit"]`)))
	w.waitFor(t, "the QR code", `document.querySelector("img[src^='data:image/png']")?.complete === true`)
	shot("enrol-totp", "Add Authenticator app", "en")
	key := totpKey(t, w.eval(t, `document.getElementById("totp-secret").textContent`))
	w.do(t, "confirm the app",
		chromedp.SendKeys(chromedp.CSS("#code"), rfc6238(key, e.clock.Now(), 6)),
		chromedp.Click(chromedp.CSS(`form[action="/account/security/confirm"] button[type="submit"]`)))
	w.waitFor(t, "the confirmation", `document.querySelector(".success")?.textContent === "Sign-in method added."`)
	if listed := w.eval(t, `document.querySelector("table.factors")?.innerText ?? ""`); !strings.Contains(listed, "Authenticator app") {
		t.Fatalf("the app is not listed: %q", listed)
	}
	shot("account", "Account security", "en")

	// A relying party's sign-in: password, the app's code, consent.
	w.freshBrowser(t)
	e.clock.Advance(30 * time.Second) // a new code: the enrolment's is used
	w.do(t, "open the authorization URL", chromedp.Navigate(authURL(nil)))
	w.waitFor(t, "the sign-in form", `document.querySelector("form[action='/login'] #password") !== null`)
	typePassword()
	shot("mfa-totp", "Verify it's you", "en")
	w.do(t, "enter the code",
		chromedp.SendKeys(chromedp.CSS("#code"), rfc6238(key, e.clock.Now(), 6)),
		chromedp.Click(chromedp.CSS(`form[action="/login/mfa"] button[type="submit"]`)))
	shot("consent", "Allow access?", "en")
	w.do(t, "allow", chromedp.Click(chromedp.CSS(`button[value="allow"]`)))
	if q := w.waitCallback(t); q.Get("code") == "" {
		t.Fatalf("callback without a code: %v", q)
	}

	// An error page: an application the provider does not know.
	w.do(t, "open an authorization URL of an unknown client",
		chromedp.Navigate(w.issuer+"/authorize?client_id=unknown-app&response_type=code&scope=openid&redirect_uri="+url.QueryEscape(appOrigin+"/cb")))
	shot("error-page", "This sign-in request cannot be completed", "en")
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
