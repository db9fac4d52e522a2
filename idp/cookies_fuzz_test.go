package idp

import (
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
)

// fuzzCookieTargets are the pages FuzzCookies requests with a fuzzed Cookie header.
var fuzzCookieTargets = []string{"/login", "/account/security", "/demo/callback", "/authorize/callback", "/logout"}

var fuzzCSRFFieldRE = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]*)">`)

var fuzzLogoutRedirectRE = regexp.MustCompile(`<input type="hidden" name="post_logout_redirect_uri" value="([^"]*)">`)

// FuzzCookies requests the pages that read cookies (the SSO session, the CSRF cookie,
// remembered and known devices, the pending sign-in of forced enrolment, the demo's state
// and PKCE cookies) with fuzzed Cookie headers and queries. The test works out what the
// cookies prove the way net/http parses them, and checks that the page asks for exactly
// that: the password without a live session, the second factor unless the session or
// this person's remembered device has it, the account page only with a second factor.
// Every form rendered carries a CSRF token that the next POST of this browser passes.
func FuzzCookies(f *testing.F) {
	ctx := context.Background()
	e := newFuzzEnv(f, func(e *fuzzEnv, cfg *Config) {
		a := &admin.Admin{Store: e.store, Audit: &audit.Auditor{Store: e.store, Logger: slog.New(slog.DiscardHandler)}}
		seed, err := a.SeedDemo(ctx, e.issuer)
		if err != nil {
			f.Fatal(err)
		}
		cfg.Demo = &seed.Client
	})
	e.client.Policy.RememberDevice = 24 * time.Hour
	if err := e.store.UpdateClient(ctx, e.client); err != nil {
		f.Fatal(err)
	}
	u, other := e.newMFAUser(f), e.newMFAUser(f)
	// The browsers' cookies: sessions and remembered devices of u and of other, made
	// again every half hour so that they stay live however long the fuzzing runs.
	var passwordOnly, withMFA, device, otherDevice, otherSession string
	var made time.Time
	cookiesFor := func(tb testing.TB) {
		_, passwordOnly = e.newSession(tb, u, false)
		_, withMFA = e.newSession(tb, u, true)
		_, device = e.newDevice(tb, u)
		_, otherDevice = e.newDevice(tb, other)
		_, otherSession = e.newSession(tb, other, false)
		made = time.Now()
	}
	cookiesFor(f)
	knownID := "known-device-1"
	known := knownID + "." + secret.MAC(e.s.csrfKey, "known-device", knownID+"|"+u.ID)

	// The demo's state and PKCE cookies, from the start of a real demo sign-in.
	rec, _ := e.serve(httptest.NewRequest(http.MethodGet, "/demo/login", nil))
	var demoCookies []string
	for _, c := range rec.Result().Cookies() {
		demoCookies = append(demoCookies, c.Name+"="+c.Value)
	}
	start, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || len(demoCookies) == 0 {
		f.Fatalf("demo login: status %d, Location %q, cookies %v", rec.Code, rec.Header().Get("Location"), demoCookies)
	}
	logoutTarget := "https://app.example.com/logged-out"

	type seed struct {
		target         uint8
		cookies, query string
	}
	seeds := []seed{
		{0, "", "id=$AR"},
		{0, "$SESSION", "id=$AR"},
		{0, "$MFASESSION", "id=$AR"},
		{0, "$SESSION; $DEVICE", "id=$AR"},
		{0, "$SESSION; $OTHERDEVICE", "id=$AR"},
		{0, "$OTHERSESSION; $DEVICE", "id=$AR"},
		{0, "$OTHERSESSION; $OTHERDEVICE", "id=$AR"},
		{0, "idp_session=; $SESSION", "id=$AR"},
		{0, "$SESSION; idp_session=nope", "id=$AR&factor=x"},
		{0, "idp_session=\"$SESSIONVALUE\"", "id=$AR"},
		{0, "idp_csrf=short; $SESSION", "id=$AR"},
		{0, "idp_csrf=" + strings.Repeat("c", 30), "id=$AR"},
		{0, "idp_csrf=" + strings.Repeat("c", 30) + "\x00", "id=$AR"},
		{0, "$KNOWN; $SESSION", "id=$AR"},
		{0, "idp_known=a.b.c; idp_device=; ;;; =x; idp_session", "id=$AR"},
		{0, "__Host-idp_session=$SESSIONVALUE", "id=$AR"},
		{1, "$MFASESSION", ""},
		{1, "$MFASESSION; idp_continue=$AR", "required=1"},
		{1, "$SESSION", "recovered=1"},
		{1, "$OTHERSESSION", ""},
		{1, "", ""},
		{2, "$DEMO", "code=abc&state=$STATE"},
		{2, "$DEMO", "error=access_denied&error_description=no&state=$STATE"},
		{2, "", "code=abc&state=x"},
		{2, "state=garbage; pkce=garbage", "code=abc&state=garbage"},
		{3, "$MFASESSION", "id=$AR"},
		{3, "$SESSION", "id=nope"},
		{4, "$SESSION", "post_logout_redirect_uri=" + url.QueryEscape(logoutTarget) + "&sig=$SIG&client_id=x"},
		{4, "", "post_logout_redirect_uri=https%3A%2F%2Fevil.example&sig=$SIG"},
		{4, "idp_csrf=x", "post_logout_redirect_uri=&sig="},
	}
	for _, s := range seeds {
		f.Add(s.target, s.cookies, s.query)
	}
	f.Fuzz(func(t *testing.T, target uint8, cookies, query string) {
		if time.Since(made) > 30*time.Minute {
			cookiesFor(t)
		}
		ar := e.newAuthRequest(t, nil)
		vars := fuzzVars{
			"$AR": ar.ID, "$SESSIONVALUE": passwordOnly,
			"$SESSION": e.cookie(sessionCookie, passwordOnly), "$MFASESSION": e.cookie(sessionCookie, withMFA),
			"$OTHERSESSION": e.cookie(sessionCookie, otherSession),
			"$DEVICE":       e.cookie(deviceCookie, device), "$OTHERDEVICE": e.cookie(deviceCookie, otherDevice),
			"$KNOWN": e.cookie(knownDeviceCookie, known), "$DEMO": strings.Join(demoCookies, "; "),
			"$STATE": start.Query().Get("state"), "$SIG": secret.MAC(e.s.csrfKey, "logout", logoutTarget),
		}
		cookies, query = vars.expand(cookies), vars.expand(query)
		path := fuzzCookieTargets[int(target)%len(fuzzCookieTargets)]
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.URL.RawQuery = query
		if cookies != "" {
			r.Header.Set("Cookie", cookies)
		}
		parsed := r.Clone(ctx) // what the server reads, parsed by net/http as the server does
		rec, logs := e.serve(r)
		what := "GET " + path + "?" + query + "\nCookie: " + cookies
		fuzzNoServerError(t, what, rec, logs)
		body := rec.Body.String()
		q := parsed.URL.Query()
		sess := e.cookieValue(parsed, sessionCookie)

		switch path {
		case "/login":
			if q.Get("id") != ar.ID {
				break
			}
			// Whose remembered device the browser holds matters: only its owner's
			// password-only session may skip the second factor with it.
			dev := e.cookieValue(parsed, deviceCookie)
			want := `action="/login"`
			switch {
			case sess == withMFA:
				want = `action="/consent"`
			case sess == passwordOnly && dev == device, sess == otherSession && dev == otherDevice:
				want = `action="/consent"`
			case sess == passwordOnly, sess == otherSession:
				want = `action="/login/mfa"`
			}
			if rec.Code != http.StatusOK || !strings.Contains(body, want) {
				fuzzFail(t, what, rec, logs, "want the page with %s", want)
			}
		case "/account/security":
			if (rec.Code == http.StatusOK) != (sess == withMFA) {
				fuzzFail(t, what, rec, logs, "account page shown: %v, but the session with a second factor sent: %v", rec.Code == http.StatusOK, sess == withMFA)
			}
			if rec.Code != http.StatusOK && !strings.HasPrefix(rec.Header().Get("Location"), "/login?id=") {
				fuzzFail(t, what, rec, logs, "not sent to sign in")
			}
			if strings.Contains(body, ar.ID) {
				fuzzFail(t, what, rec, logs, "offers to continue a sign-in of no session of this browser")
			}
		case "/demo/callback":
			if strings.Contains(body, "/end_session?") {
				fuzzFail(t, what, rec, logs, "demo signed in without a code")
			}
		case "/authorize/callback":
			if strings.HasPrefix(rec.Header().Get("Location"), fuzzRedirectURI) {
				fuzzFail(t, what, rec, logs, "a sign-in that was never completed went back to the client")
			}
		case "/logout":
			if m := fuzzLogoutRedirectRE.FindStringSubmatch(body); m != nil && m[1] != "" {
				v := html.UnescapeString(m[1])
				if v != q.Get("post_logout_redirect_uri") || q.Get("sig") != secret.MAC(e.s.csrfKey, "logout", v) {
					fuzzFail(t, what, rec, logs, "logout page offers to redirect to %q without its signature", v)
				}
			}
		}

		// The known-device cookie names a device only with its signature, and only for
		// the person it was made for.
		if v := e.cookieValue(parsed, knownDeviceCookie); v != "" && len(v) < 256 {
			kctx := context.WithValue(ctx, knownDeviceKey{}, v)
			for _, p := range []*fuzzUser{u, other} {
				if id := e.s.knownDevice(kctx, p.ID); id != "" && v != id+"."+secret.MAC(e.s.csrfKey, "known-device", id+"|"+p.ID) {
					t.Fatalf("%s\nknown-device cookie %q accepted for %s as device %q", what, v, p.Email, id)
				}
			}
			if e.s.knownDevice(kctx, other.ID) != "" {
				t.Fatalf("%s\nknown-device cookie %q of %s accepted for %s", what, v, u.Email, other.Email)
			}
		}

		// A form's CSRF token passes the check of the browser's next POST.
		m := fuzzCSRFFieldRE.FindStringSubmatch(body)
		if m == nil {
			return
		}
		next := cookies
		for _, c := range rec.Result().Cookies() {
			if c.Name == e.s.cookieName(csrfCookie) && c.Value != "" {
				next = c.Name + "=" + c.Value + "; " + next // the browser replaces its cookie
			}
		}
		form := url.Values{"csrf": {html.UnescapeString(m[1])}, "id": {"no-such-request"}}
		post, postLogs := e.serve(e.formRequest("/login", form.Encode(), next))
		if fuzzCSRFRefused(post) {
			fuzzFail(t, what, post, postLogs, "the CSRF token of the page (%s) is refused by the next POST with Cookie: %s", m[1], next)
		}
	})
}
