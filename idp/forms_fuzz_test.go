package idp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/pquerna/otp/totp"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Fuzz targets of the HTML forms: the steps of a sign-in (password, second factor,
// consent) and the forms of the account page, logout and recovery links. Each iteration
// gets a fresh auth request and session; the form body and the Cookie header are the
// fuzzer's, with placeholders (fuzzVars) for the values of the running server.
//
// What every answer must be: never a server error; a form without a valid CSRF token is
// refused before anything else (and one that cannot be parsed, too, except on the
// password form: see FuzzLoginForm); and the form's effect
// (signed in, second factor accepted, consent given, session ended, ...) happens exactly
// when the input says so, which the test decides on its own from what the form holds.

// fuzzFormLimit is the body limit of the login-flow and account-page forms.
const fuzzFormLimit = 64 << 10

// FuzzLoginForm posts fuzzed password forms (POST /login) for a live auth request, all
// from one address: after the first few dozen failures the per-address limit answers
// without an argon2id computation, so the target stays fast.
func FuzzLoginForm(f *testing.F) {
	e := newFuzzEnv(f)
	u := e.newUser(f)
	seeds := [][2]string{ // form body, Cookie header
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=+$EMAILUP+&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=wrong+password", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=nobody%40example.com&password=x", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", ""},
		{"id=$AR&csrf=&email=$EMAIL&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&email=$EMAIL&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", "idp_csrf=; $CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", "idp_csrf=\"" + fuzzCSRFValue + "\""},
		{"id=unknown&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=account&csrf=$CSRF&email=$EMAIL&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&csrf=x&email=$EMAIL&email=other%40example.com&password=$PASSWORD", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&email=%zz&password=x", "$CSRFCOOKIE"},
		{"id=$AR;csrf=$CSRF", "$CSRFCOOKIE; idp_session=abc; idp_known=x.y"},
		{"id=$AR&csrf=$CSRF&email=$EMAIL&password=" + strings.Repeat("p", 70<<10), "$CSRFCOOKIE"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, body, cookies string) {
		ar := e.newAuthRequest(t, nil)
		vars := fuzzVars{
			"$AR": ar.ID, "$CSRF": e.csrfToken, "$CSRFCOOKIE": e.cookie(csrfCookie, fuzzCSRFValue),
			"$EMAIL": url.QueryEscape(u.Email), "$EMAILUP": url.QueryEscape(strings.ToUpper(u.Email)),
			"$PASSWORD": url.QueryEscape(fuzzPassword),
		}
		body, cookies = vars.expand(body), vars.expand(cookies)
		rec, logs := e.serveFrom(e.formRequest("/login", body, cookies), "192.0.2.10:40000")
		what := "POST /login " + body + "\nCookie: " + cookies
		fuzzNoServerError(t, what, rec, logs)
		pr, ok := e.parsedForm("/login", body, cookies, fuzzFormLimit)
		switch {
		case !ok:
			if rec.Code != http.StatusBadRequest || e.setsCookie(rec, sessionCookie) {
				fuzzFail(t, what, rec, logs, "an unreadable form is not refused with 400")
			}
			return
		case !e.validCSRF(pr):
			if !fuzzCSRFRefused(rec) {
				fuzzFail(t, what, rec, logs, "a form without a valid CSRF token is not refused")
			}
			return
		case pr.PostFormValue("id") != ar.ID && pr.PostFormValue("id") != accountLoginID:
			if rec.Code != http.StatusBadRequest {
				fuzzFail(t, what, rec, logs, "a form for an unknown auth request is not refused with 400")
			}
			return
		}
		email := strings.ToLower(strings.TrimSpace(pr.PostFormValue("email")))
		right := email == u.Email && pr.PostFormValue("password") == fuzzPassword
		// The account page's sign-in (id=account) gets an auth request of its own.
		loc := rec.Header().Get("Location")
		signedIn := rec.Code == http.StatusSeeOther &&
			(loc == "/login?id="+url.QueryEscape(ar.ID) || pr.PostFormValue("id") == accountLoginID && strings.HasPrefix(loc, "/login?id="))
		switch {
		case signedIn && !right:
			fuzzFail(t, what, rec, logs, "signed in with email %q and a wrong password", email)
		case right && !signedIn && rec.Code != http.StatusTooManyRequests:
			fuzzFail(t, what, rec, logs, "the right password did not sign in")
		case !right && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusTooManyRequests:
			fuzzFail(t, what, rec, logs, "wrong credentials not answered with 401 or 429")
		}
		if e.setsCookie(rec, sessionCookie) != signedIn {
			fuzzFail(t, what, rec, logs, "session cookie set: %v, signed in: %v", e.setsCookie(rec, sessionCookie), signedIn)
		}
	})
}

// fuzzMFAGuesses is how many second-factor forms one person of a fuzz target answers before
// the next person takes over: fewer than any lockout allows, so that every iteration
// reaches the factor's check.
const fuzzMFAGuesses = 4

// fuzzMFAPeople hands out people with second factors, a new one every fuzzMFAGuesses uses.
type fuzzMFAPeople struct {
	e    *fuzzEnv
	u    *fuzzUser
	uses int
	// A sent e-mail challenge of u and its code.
	mailChallenge, mailCode string
}

func (p *fuzzMFAPeople) next(tb testing.TB) *fuzzUser {
	tb.Helper()
	if p.u == nil || p.uses >= fuzzMFAGuesses {
		p.u, p.uses = p.e.newMFAUser(tb), 0
		_, c, err := p.e.s.challenge(p.e.setupCtx(), p.u.User, p.u.factors[storage.FactorEmail])
		if err != nil {
			tb.Fatal(err)
		}
		codes := p.e.mail.sent(p.u.Email)
		p.mailChallenge, p.mailCode = c.ID, codes[len(codes)-1]
	}
	p.uses++
	return p.u
}

// validFactorCode reports whether code is a right answer for u's factor of that kind
// now, by the rules the account page states: TOTP codes ignore white space, backup codes
// case, white space and dashes, e-mail codes spaces and dashes.
func (e *fuzzEnv) validFactorCode(u *fuzzUser, kind storage.FactorKind, code string) bool {
	drop := func(cut func(rune) bool, s string) string {
		return strings.Map(func(r rune) rune {
			if cut(r) {
				return -1
			}
			return r
		}, s)
	}
	switch kind {
	case storage.FactorTOTP:
		ok, _ := totp.ValidateCustom(drop(unicode.IsSpace, code), u.totpSecret, e.s.now(), fuzzTOTPOpts)
		return ok
	case storage.FactorBackup:
		norm := func(s string) string {
			return strings.Map(unicode.ToUpper, drop(func(r rune) bool { return unicode.IsSpace(r) || r == '-' }, s))
		}
		return slices.ContainsFunc(u.backup, func(c string) bool { return norm(c) == norm(code) })
	case storage.FactorEmail:
		got := drop(func(r rune) bool { return r == ' ' || r == '\t' || r == '-' || r == '\u00a0' }, code)
		return slices.Contains(e.mail.sent(u.Email), got)
	}
	return false
}

// kindOf returns the kind of u's factor id, or "".
func (u *fuzzUser) kindOf(id string) storage.FactorKind {
	for k, v := range u.factors {
		if v == id {
			return k
		}
	}
	return ""
}

// FuzzMFAForm posts fuzzed second-factor forms (POST /login/mfa, and /login/mfa/send
// when send is set) for a sign-in whose password step is done. A session records a
// second factor exactly when the answer is a success, and only for a right code; sending
// a code never signs anyone in; a device is remembered only after a verified factor.
func FuzzMFAForm(f *testing.F) {
	e := newFuzzEnv(f)
	// The client lets a browser be remembered: a verified factor may set the cookie.
	e.client.Policy.RememberDevice = 24 * time.Hour
	if err := e.store.UpdateClient(context.Background(), e.client); err != nil {
		f.Fatal(err)
	}
	people := &fuzzMFAPeople{e: e}
	const both = "$CSRFCOOKIE; $SESSIONCOOKIE"
	type seed struct {
		send          bool
		body, cookies string
	}
	seeds := []seed{
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=$CODE", both},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=+$CODE+&remember=1", both},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=000000", both},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96", both},
		{false, "id=$AR&csrf=$CSRF&factor=$BACKUP&code=$BCODE", both},
		{false, "id=$AR&csrf=$CSRF&factor=$BACKUP&code=$BCODE&remember=1", both},
		{false, "id=$AR&csrf=$CSRF&factor=$BACKUP&code=abcd-efgh", both},
		{false, "id=$AR&csrf=$CSRF&factor=$MAIL&challenge=$MAILCH&code=$MAILCODE", both},
		{false, "id=$AR&csrf=$CSRF&factor=$MAIL&challenge=unknown&code=123456", both},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&response=%7B%7D&challenge=x", both},
		{false, "id=$AR&csrf=$CSRF&factor=unknown&code=123456", both},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=$CODE", "$CSRFCOOKIE"},
		{false, "id=$AR&csrf=$CSRF&factor=$TOTP&code=$CODE", "$SESSIONCOOKIE"},
		{false, "id=$AR&factor=$TOTP&code=$CODE", both},
		{true, "id=$AR&csrf=$CSRF&factor=$MAIL", both},
		{true, "id=$AR&csrf=$CSRF&factor=$TOTP", both},
		{true, "id=$AR&csrf=$CSRF&factor=$BACKUP", both},
		{true, "id=$AR&csrf=$CSRF", both},
	}
	for _, s := range seeds {
		f.Add(s.send, s.body, s.cookies)
	}
	f.Fuzz(func(t *testing.T, send bool, body, cookies string) {
		ctx := context.Background()
		u := people.next(t)
		sess, value := e.newSession(t, u, false)
		ar := e.newAuthRequest(t, sess)
		vars := fuzzVars{
			"$AR": ar.ID, "$CSRF": e.csrfToken, "$CSRFCOOKIE": e.cookie(csrfCookie, fuzzCSRFValue),
			"$SESSIONCOOKIE": e.cookie(sessionCookie, value),
			"$TOTP":          u.factors[storage.FactorTOTP], "$MAIL": u.factors[storage.FactorEmail], "$BACKUP": u.factors[storage.FactorBackup],
			"$CODE": fuzzTOTPCode(t, u.totpSecret, e.s.now()), "$BCODE": u.backup[people.uses],
			"$MAILCH": people.mailChallenge, "$MAILCODE": people.mailCode,
		}
		body, cookies = vars.expand(body), vars.expand(cookies)
		path := "/login/mfa"
		if send {
			path += "/send"
		}
		rec, logs := e.serve(e.formRequest(path, body, cookies))
		what := "POST " + path + " " + body + "\nCookie: " + cookies
		fuzzNoServerError(t, what, rec, logs)

		after, err := e.store.GetSession(ctx, sess.ID)
		if err != nil {
			fuzzFail(t, what, rec, logs, "session gone: %v", err)
		}
		upgraded := !after.MFAAt.IsZero()
		success := rec.Code == http.StatusSeeOther && rec.Header().Get("Location") == "/login?id="+url.QueryEscape(ar.ID)
		pr, ok := e.parsedForm(path, body, cookies, fuzzFormLimit)
		switch {
		case !ok:
			if rec.Code != http.StatusBadRequest {
				fuzzFail(t, what, rec, logs, "an unreadable form is not refused with 400")
			}
		case !e.validCSRF(pr):
			if !fuzzCSRFRefused(rec) {
				fuzzFail(t, what, rec, logs, "a form without a valid CSRF token is not refused")
			}
		case pr.PostFormValue("id") != ar.ID:
			if rec.Code != http.StatusBadRequest {
				fuzzFail(t, what, rec, logs, "a form for an unknown auth request is not refused with 400")
			}
		case e.cookieValue(pr, sessionCookie) == value && u.kindOf(pr.PostFormValue("factor")) == "":
			if rec.Code != http.StatusBadRequest {
				fuzzFail(t, what, rec, logs, "a factor that is not the person's is not refused with 400")
			}
		}
		if send && (success || upgraded) {
			fuzzFail(t, what, rec, logs, "sending a code signed in (upgraded: %v)", upgraded)
		}
		if success != upgraded {
			fuzzFail(t, what, rec, logs, "answered success: %v, but the session records a second factor: %v", success, upgraded)
		}
		if success {
			kind := u.kindOf(pr.PostFormValue("factor"))
			if !e.validFactorCode(u, kind, pr.PostFormValue("code")) {
				fuzzFail(t, what, rec, logs, "%s factor accepted the wrong code %q", kind, pr.PostFormValue("code"))
			}
			if e.cookieValue(pr, sessionCookie) != value {
				fuzzFail(t, what, rec, logs, "the session was upgraded by a request without its cookie")
			}
		}
		if e.setsCookie(rec, deviceCookie) && !success {
			fuzzFail(t, what, rec, logs, "a device was remembered without a verified factor")
		}
	})
}

// FuzzConsentForm posts fuzzed consent answers (POST /consent) for a sign-in whose
// earlier steps are done: allow finishes the sign-in, deny sends access_denied back to
// the client, and nothing else does either.
func FuzzConsentForm(f *testing.F) {
	e := newFuzzEnv(f)
	u := e.newUser(f) // no second factor: consent is the step left
	other := e.newUser(f)
	_, otherValue := e.newSession(f, other, false)
	const both = "$CSRFCOOKIE; $SESSIONCOOKIE"
	seeds := [][2]string{
		{"id=$AR&csrf=$CSRF&action=allow", both},
		{"id=$AR&csrf=$CSRF&action=deny", both},
		{"id=$AR&csrf=$CSRF&action=Allow", both},
		{"id=$AR&csrf=$CSRF&action=allow&action=deny", both},
		{"id=$AR&csrf=$CSRF", both},
		{"id=$AR&csrf=$CSRF&action=allow", "$CSRFCOOKIE"},
		{"id=$AR&csrf=$CSRF&action=allow", "$SESSIONCOOKIE"},
		{"id=$AR&csrf=$CSRF&action=allow", "$CSRFCOOKIE; $OTHERCOOKIE"},
		{"id=$AR&csrf=$CSRF&action=allow", "$CSRFCOOKIE; $OTHERCOOKIE; $SESSIONCOOKIE"},
		{"id=&csrf=$CSRF&action=allow", both},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, body, cookies string) {
		sess, value := e.newSession(t, u, false)
		ar := e.newAuthRequest(t, sess)
		vars := fuzzVars{
			"$AR": ar.ID, "$CSRF": e.csrfToken, "$CSRFCOOKIE": e.cookie(csrfCookie, fuzzCSRFValue),
			"$SESSIONCOOKIE": e.cookie(sessionCookie, value), "$OTHERCOOKIE": e.cookie(sessionCookie, otherValue),
		}
		body, cookies = vars.expand(body), vars.expand(cookies)
		rec, logs := e.serve(e.formRequest("/consent", body, cookies))
		what := "POST /consent " + body + "\nCookie: " + cookies
		fuzzNoServerError(t, what, rec, logs)

		loc := rec.Header().Get("Location")
		finished := rec.Code == http.StatusSeeOther && loc == e.issuer+"/authorize/callback?id="+url.QueryEscape(ar.ID)
		denied := strings.HasPrefix(loc, fuzzRedirectURI)
		if denied {
			q := fuzzQuery(t, loc)
			if q.Get("error") != "access_denied" || q.Get("state") != ar.State {
				fuzzFail(t, what, rec, logs, "refusal sent back as %s", loc)
			}
		}
		pr, ok := e.parsedForm("/consent", body, cookies, fuzzFormLimit)
		var want string
		switch {
		case !ok:
			want = "400"
		case !e.validCSRF(pr):
			want = "csrf"
		case pr.PostFormValue("id") != ar.ID:
			want = "400"
		case e.cookieValue(pr, sessionCookie) != value:
			want = "neither" // another browser: the answer does not count
		case pr.PostFormValue("action") == "allow":
			want = "finished"
		case pr.PostFormValue("action") == "deny":
			want = "denied"
		default:
			want = "400"
		}
		switch {
		case want == "csrf" && !fuzzCSRFRefused(rec):
			fuzzFail(t, what, rec, logs, "a form without a valid CSRF token is not refused")
		case want == "400" && rec.Code != http.StatusBadRequest:
			fuzzFail(t, what, rec, logs, "want 400")
		case finished != (want == "finished"):
			fuzzFail(t, what, rec, logs, "sign-in finished: %v, want %s", finished, want)
		case denied != (want == "denied"):
			fuzzFail(t, what, rec, logs, "sign-in refused: %v, want %s", denied, want)
		}
	})
}

func fuzzQuery(t *testing.T, loc string) url.Values {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.Query()
}

// fuzzAccountFormPaths are the forms FuzzAccountForms posts to, by the fuzzer's choice.
var fuzzAccountFormPaths = []string{
	"/account/security/enroll", "/account/security/confirm", "/account/security/remove",
	"/account/security/backup-codes", "/account/security/sessions/end", "/account/security/devices/forget",
	"/logout", "/recovery",
}

// FuzzAccountForms posts fuzzed forms of the account page, the logout confirmation and
// recovery links, as a person signed in with a second factor. None of them may touch
// another person's sessions, remembered devices or factors; redirects stay on this site
// except the signed post-logout redirect; a recovery link signs in only with its secret
// and the password.
func FuzzAccountForms(f *testing.F) {
	e := newFuzzEnv(f)
	ctx := context.Background()
	people := &fuzzMFAPeople{e: e}
	other := e.newMFAUser(f)
	otherSess, _ := e.newSession(f, other, true)
	otherDevice, _ := e.newDevice(f, other)
	victim := e.newUser(f)
	reset, err := e.admin.ResetMFA(ctx, "fuzz", victim.ID, "fuzz", admin.ResetOptions{RecoveryLink: true})
	if err != nil {
		f.Fatal(err)
	}
	linkURL, err := url.Parse(reset.RecoveryLink)
	if err != nil {
		f.Fatal(err)
	}
	link := linkURL.Query()
	const logoutTarget = "https://app.example.com/logged-out"
	const both = "$CSRFCOOKIE; $SESSIONCOOKIE"
	type seed struct {
		path          uint8
		body, cookies string
	}
	seeds := []seed{
		{0, "csrf=$CSRF&kind=totp&name=Phone", both},
		{0, "csrf=$CSRF&kind=email&email=someone%40example.com", both},
		{0, "csrf=$CSRF&kind=sms&phone=%2B44+7400+123456", both},
		{0, "csrf=$CSRF&kind=webauthn&name=Key", both},
		{0, "csrf=$CSRF&kind=backup", both},
		{0, "csrf=$CSRF&kind=", both},
		{1, "csrf=$CSRF&factor=$TOTP&code=123456", both},
		{1, "csrf=$CSRF&factor=$OTHERTOTP&code=123456", both},
		{1, "csrf=$CSRF&factor=$TOTP&challenge=x&response=%7B%22id%22%3A%22x%22%7D", both},
		{2, "csrf=$CSRF&factor=$MAIL", both},
		{2, "csrf=$CSRF&factor=$OTHERTOTP", both},
		{3, "csrf=$CSRF", both},
		{4, "csrf=$CSRF&session=$OTHERSESS", both},
		{4, "csrf=$CSRF&session=$SESS", both},
		{5, "csrf=$CSRF&device=$DEVICE", both + "; $DEVICECOOKIE"},
		{5, "csrf=$CSRF&device=$OTHERDEVICE", both},
		{6, "csrf=$CSRF&post_logout_redirect_uri=" + url.QueryEscape(logoutTarget) + "&sig=$SIG&client_id=x", both},
		{6, "csrf=$CSRF&post_logout_redirect_uri=https%3A%2F%2Fevil.example&sig=$SIG", both},
		{6, "csrf=$CSRF&post_logout_redirect_uri=%2F%2Fevil.example&sig=", "$CSRFCOOKIE"},
		{7, "csrf=$CSRF&id=$RECID&token=$RECTOKEN&password=$PASSWORD", "$CSRFCOOKIE"},
		{7, "csrf=$CSRF&id=$RECID&token=wrong&password=$PASSWORD", "$CSRFCOOKIE"},
		{7, "csrf=$CSRF&id=unknown&token=x&password=y", "$CSRFCOOKIE"},
		{2, "factor=$MAIL", both},
		{0, "csrf=$CSRF&kind=totp", "$CSRFCOOKIE"},
		{3, "csrf=$CSRF%zz", both},
	}
	for _, s := range seeds {
		f.Add(s.path, s.body, s.cookies)
	}
	otherFactors := func(tb testing.TB) int {
		fs, err := e.store.ListFactors(ctx, other.ID)
		if err != nil {
			tb.Fatal(err)
		}
		return len(fs)
	}
	nOther := otherFactors(f)
	f.Fuzz(func(t *testing.T, which uint8, body, cookies string) {
		path := fuzzAccountFormPaths[int(which)%len(fuzzAccountFormPaths)]
		u := people.next(t)
		sess, value := e.newSession(t, u, true)
		device, deviceValue := e.newDevice(t, u)
		vars := fuzzVars{
			"$CSRF": e.csrfToken, "$CSRFCOOKIE": e.cookie(csrfCookie, fuzzCSRFValue),
			"$SESSIONCOOKIE": e.cookie(sessionCookie, value), "$DEVICECOOKIE": e.cookie(deviceCookie, deviceValue),
			"$SESS": sess.ID, "$OTHERSESS": otherSess.ID, "$DEVICE": device.ID, "$OTHERDEVICE": otherDevice.ID,
			"$TOTP": u.factors[storage.FactorTOTP], "$MAIL": u.factors[storage.FactorEmail], "$OTHERTOTP": other.factors[storage.FactorTOTP],
			"$SIG": secret.MAC(e.s.csrfKey, "logout", logoutTarget), "$RECID": link.Get("id"), "$RECTOKEN": link.Get("token"),
			"$PASSWORD": url.QueryEscape(fuzzPassword),
		}
		body, cookies = vars.expand(body), vars.expand(cookies)
		rec, logs := e.serve(e.formRequest(path, body, cookies))
		what := "POST " + path + " " + body + "\nCookie: " + cookies
		fuzzNoServerError(t, what, rec, logs)

		limit := int64(fuzzFormLimit)
		if path == "/logout" || path == "/recovery" {
			limit = 16 << 10
		}
		pr, ok := e.parsedForm(path, body, cookies, limit)
		if (!ok || !e.validCSRF(pr)) && !fuzzCSRFRefused(rec) {
			fuzzFail(t, what, rec, logs, "a form that cannot be read or lacks a valid CSRF token is not refused")
		}
		if _, err := e.store.GetSession(ctx, otherSess.ID); err != nil {
			fuzzFail(t, what, rec, logs, "another person's session ended: %v", err)
		}
		if ds, err := e.store.ListUserDevices(ctx, other.ID); err != nil || !slices.ContainsFunc(ds, func(d storage.Device) bool { return d.ID == otherDevice.ID }) {
			fuzzFail(t, what, rec, logs, "another person's remembered device was forgotten (%v)", err)
		}
		if n := otherFactors(t); n != nOther {
			fuzzFail(t, what, rec, logs, "another person's factors changed: %d, were %d", n, nOther)
		}
		loc := rec.Header().Get("Location")
		switch {
		case loc == "":
		case path == "/logout":
			v := pr.PostFormValue("post_logout_redirect_uri")
			if loc != e.issuer+"/logged-out" && !(loc == v && pr.PostFormValue("sig") == secret.MAC(e.s.csrfKey, "logout", v)) {
				fuzzFail(t, what, rec, logs, "logout redirects to %q, which is neither the logged-out page nor a signed target", loc)
			}
		case !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\"):
			fuzzFail(t, what, rec, logs, "redirect off the site to %q", loc)
		}
		if path == "/recovery" && rec.Code == http.StatusSeeOther {
			right := pr.PostFormValue("id") == link.Get("id") && pr.PostFormValue("token") == link.Get("token") && pr.PostFormValue("password") == fuzzPassword
			if !right {
				fuzzFail(t, what, rec, logs, "a recovery link signed in without its secret and the password")
			}
		}
	})
}
