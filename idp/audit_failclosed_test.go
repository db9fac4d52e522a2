package idp_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// An action whose audit event cannot be written does not happen. For each action a
// person takes (consent, adding and removing sign-in methods, new backup codes, removing
// the password, remembering a device, a grace sign-in, approving a device, asking for a
// reset link), TestUnauditedActions makes exactly
// that action's success event unwritable (auditSwitchStore with failType) and shows the
// change was not made; then, with the event writable again, the same action by another
// person succeeds and its event is in the trail, so the first half is not vacuous.

// failClosedEnv is one provider per backend shared by every case: an mfaEnv (SMTP and
// SMS fakes) on an audit switch, with raw SQL on its database, and a grace period for
// the grace case.
type failClosedEnv struct {
	*mfaEnv
	st *auditSwitchStore
	db rawDB
}

// attempt is one run of a case: refused says the case's event is unwritable during act.
type attempt struct {
	*failClosedEnv
	event   string
	refused bool
}

// act runs the action, with the attempt's event unwritable when refused.
func (a *attempt) act(fn func()) {
	if a.refused {
		a.st.failType.Store(a.event)
		a.st.failAudit.Store(true)
		defer func() {
			a.st.failAudit.Store(false)
			a.st.failType.Store("")
		}()
	}
	fn()
}

// email is a fresh address for this attempt's person.
func (a *attempt) email(base string) string {
	if a.refused {
		return base + "-refused@example.com"
	}
	return base + "-allowed@example.com"
}

// signedIn creates a person and signs a browser in to the account page.
func (a *attempt) signedIn(t *testing.T, base string) (*storage.User, *browser, page) {
	t.Helper()
	email := a.email(base)
	u := a.createUser(email, password)
	b := a.newBrowser()
	return u, b, accountPage(t, a.env, b, email, nil)
}

// withTOTP is signedIn plus a confirmed authenticator app (the session then has a
// fresh second factor); it returns the account page again and the app's key.
func (a *attempt) withTOTP(t *testing.T, base string) (*storage.User, *browser, page, []byte) {
	t.Helper()
	u, b, p := a.signedIn(t, base)
	key := enrolTOTP(t, a.env, b, p)
	return u, b, accountPage(t, a.env, b, u.Email, nil), key
}

// wantFailed checks that the answer to a refused action is an error (status ≥ 400) and
// does not carry the confirmation the action's success shows. It reports and goes on,
// so that what was stored is checked too.
func wantFailed(t *testing.T, p page, success string) {
	t.Helper()
	if p.Status < http.StatusBadRequest || success != "" && strings.Contains(p.Body, success) {
		t.Errorf("an action whose event is unwritable answered %d (location %q):\n%.600s", p.Status, p.Location, p.Body)
	}
}

// codeOf returns the authorization code of a redirect to the relying party, or "".
func codeOf(p page) string {
	if p.Location == "" {
		return ""
	}
	u, err := url.Parse(p.Location)
	if err != nil {
		return ""
	}
	return u.Query().Get("code")
}

// factorsOf returns the kinds of u's factors, confirmed or not, as "kind" or "kind?".
func factorsOf(t *testing.T, e *env, userID string) []string {
	t.Helper()
	fs, err := e.store.ListFactors(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		k := string(f.Kind)
		if !f.Confirmed {
			k += "?"
		}
		out = append(out, k)
	}
	return out
}

// mailsTo counts the messages received from the from-th on (1-based) sent to addr; the
// caller has waited for the sender (Server.WaitPasswordResets).
func mailsTo(t *testing.T, m *mfaEnv, from int, addr string) int {
	t.Helper()
	n := 0
	for i := from; i <= m.smtp.Count(); i++ {
		if slices.Contains(m.smtp.Last(t, i).To, addr) {
			n++
		}
	}
	return n
}

func TestUnauditedActions(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			start := time.Now()
			raw, db := openRaw(t, be.name)
			st := &auditSwitchStore{Storage: raw}
			m := newMFAEnv(t, st, noAuthorizeLimit, func(c *idp.Config) { c.MFA.Grace = idp.GracePeriod{Logins: 3} })
			f := &failClosedEnv{mfaEnv: m, st: st, db: db}
			for _, c := range unauditedCases(f) {
				t.Run(c.name, func(t *testing.T) {
					before := f.auditCount(c.event, audit.ResultSuccess)
					t.Run("unwritable", func(t *testing.T) { c.try(t, &attempt{failClosedEnv: f, event: c.event, refused: true}) })
					if n := f.auditCount(c.event, audit.ResultSuccess); n != before {
						t.Fatalf("%d %s events written while the type was unwritable", n-before, c.event)
					}
					t.Run("writable", func(t *testing.T) { c.try(t, &attempt{failClosedEnv: f, event: c.event}) })
					if n := f.auditCount(c.event, audit.ResultSuccess); n != before+1 {
						t.Errorf("%d successful %s events after the writable attempt, want 1", n-before, c.event)
					}
				})
			}
			t.Logf("%s: %v", be.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

type unauditedCase struct {
	name, event string
	// try sets up a fresh person, does the action through a.act and checks: when
	// a.refused, that the action did not happen; otherwise that it did.
	try func(t *testing.T, a *attempt)
}

func unauditedCases(f *failClosedEnv) []unauditedCase {
	calendar := f.createClient(admin.NewClient{Name: "Calendar", RedirectURIs: []string{"https://cal.example.com/cb"}})
	mail := f.createClient(admin.NewClient{Name: "Mail", RedirectURIs: []string{"https://mail.example.com/cb"}, SkipConsent: true})
	f.setPolicy(mail, storage.MFAPolicy{MFA: "required", RememberDevice: 720 * time.Hour})
	payroll := f.createClient(admin.NewClient{Name: "Payroll", RedirectURIs: []string{"https://pay.example.com/cb"}, SkipConsent: true})
	f.setPolicy(payroll, storage.MFAPolicy{MFA: "required"})
	tv := deviceClient(f.env, true)

	return []unauditedCase{
		{"consent", audit.EventConsentGrant, func(t *testing.T, a *attempt) {
			email := a.email("consent")
			u := a.createUser(email, password)
			b := a.newBrowser()
			p, v := flow(t, a.env, b, calendar, nil)
			if p = b.Login(p, email, password); !p.IsConsent() {
				t.Fatalf("no consent page (status %d):\n%.600s", p.Status, p.Body)
			}
			a.act(func() { p = b.Consent(p, "allow") })
			_, err := a.store.GetConsent(t.Context(), u.ID, calendar.ID)
			if a.refused {
				if p.Status < http.StatusInternalServerError || codeOf(p) != "" {
					t.Errorf("unaudited consent answered %d, code issued %v; want an error page and no code", p.Status, codeOf(p) != "")
				}
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("unaudited consent stored: GetConsent %v", err)
				}
				return
			}
			finishFlow(t, a.env, calendar, p, v)
			if err != nil {
				t.Fatalf("consent not stored: %v", err)
			}
		}},

		{"totp enrolment", audit.EventMFAEnroll, func(t *testing.T, a *attempt) {
			u, b, p := a.signedIn(t, "enrol")
			p = enroll(b, a.env, p, "totp", nil)
			sm := secretRE.FindStringSubmatch(p.Body)
			if sm == nil {
				t.Fatalf("no TOTP secret on the enrolment page:\n%.600s", p.Body)
			}
			a.act(func() { p = confirm(b, a.env, p, rfc6238(totpKey(t, sm[1]), a.clock.Now(), 6)) })
			confirmed := slices.Contains(factorsOf(t, a.env, u.ID), "totp")
			if a.refused {
				wantFailed(t, p, "Sign-in method added")
				// The app passed its check but was not stored as confirmed: it waits for a
				// new code.
				if fs := factorsOf(t, a.env, u.ID); confirmed || !slices.Contains(fs, "totp?") {
					t.Errorf("unaudited enrolment: factors %v, want the app unconfirmed", fs)
				}
				return
			}
			if !strings.Contains(p.Body, "Sign-in method added") || !confirmed {
				t.Fatalf("enrolment: status %d, factors %v\n%.600s", p.Status, factorsOf(t, a.env, u.ID), p.Body)
			}
		}},

		{"backup codes", audit.EventMFARegenerate, func(t *testing.T, a *attempt) {
			u, b, p, _ := a.withTOTP(t, "backup")
			a.act(func() {
				p = b.Post(a.issuer+"/account/security/backup-codes", url.Values{"csrf": {p.Hidden().Get("csrf")}})
			})
			codes := len(backupRE.FindAllStringSubmatch(p.Body, -1))
			stored := slices.Contains(factorsOf(t, a.env, u.ID), "backup")
			if a.refused {
				wantFailed(t, p, "")
				if codes != 0 || stored {
					t.Errorf("unaudited regeneration showed %d codes; factors %v", codes, factorsOf(t, a.env, u.ID))
				}
				return
			}
			if codes != 10 || !stored {
				t.Fatalf("regeneration showed %d codes (status %d); factors %v", codes, p.Status, factorsOf(t, a.env, u.ID))
			}
		}},

		{"factor removal", audit.EventMFARemove, func(t *testing.T, a *attempt) {
			u, b, p, _ := a.withTOTP(t, "remove")
			fs, err := a.store.ListFactors(t.Context(), u.ID)
			if err != nil || len(fs) != 1 {
				t.Fatalf("factors %+v, %v", fs, err)
			}
			a.act(func() {
				p = b.Post(a.issuer+"/account/security/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}, "factor": {fs[0].ID}})
			})
			_, err = a.store.GetFactor(t.Context(), fs[0].ID)
			if a.refused {
				wantFailed(t, p, "Sign-in method removed")
				if err != nil {
					t.Errorf("unaudited removal deleted the factor: %v", err)
				}
				return
			}
			if !strings.Contains(p.Body, "Sign-in method removed") || !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("removal: status %d, GetFactor %v\n%.600s", p.Status, err, p.Body)
			}
		}},

		// The passkey is stored directly (a confirmed WebAuthn factor is what makes the
		// password removable); TestPasskeyScreenshot registers a real one in Chromium.
		{"password removal", audit.EventPasswordRemove, func(t *testing.T, a *attempt) {
			u, b, _, _ := a.withTOTP(t, "nopassword")
			now := a.clock.Now()
			if err := a.store.CreateFactor(t.Context(), &storage.Factor{ID: secret.NewID(), UserID: u.ID, Kind: storage.FactorWebAuthn,
				Name: "Passkey", Secret: []byte("{}"), Confirmed: true, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			p := accountPage(t, a.env, b, u.Email, nil)
			if !strings.Contains(p.Body, `id="remove-password"`) {
				t.Fatalf("the account page offers no password removal:\n%.800s", p.Body)
			}
			a.act(func() {
				p = b.Post(a.issuer+"/account/security/password/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}})
			})
			got, err := a.store.GetUser(t.Context(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a.refused {
				wantFailed(t, p, "Password removed")
				if got.PasswordHash == "" {
					t.Error("unaudited password removal removed the password")
				}
				return
			}
			if !strings.Contains(p.Body, "Password removed") || got.PasswordHash != "" {
				t.Fatalf("password removal: status %d, hash kept %v\n%.600s", p.Status, got.PasswordHash != "", p.Body)
			}
		}},

		{"remember device", audit.EventDeviceRemember, func(t *testing.T, a *attempt) {
			u, _, _, key := a.withTOTP(t, "remember")
			b := a.newBrowser()
			p, v := flow(t, a.env, b, mail, nil)
			if p = b.Login(p, u.Email, password); !isMFA(p) || !strings.Contains(p.Body, `name="remember"`) {
				t.Fatalf("no second-factor page offering to remember the device (status %d):\n%.600s", p.Status, p.Body)
			}
			form := p.Hidden()
			a.clock.Advance(30 * time.Second) // a code the enrolment did not use
			form.Set("code", rfc6238(key, a.clock.Now(), 6))
			form.Set("remember", "1")
			a.act(func() { p = b.Post(a.issuer+"/login/mfa", form) })
			ds, err := a.store.ListUserDevices(t.Context(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			cookie := deviceCookie(t, a.env, b)
			if a.refused {
				// The sign-in itself may complete; the browser is not remembered.
				if len(ds) != 0 || cookie != "" {
					t.Errorf("unaudited remembering stored %d devices, cookie set %v", len(ds), cookie != "")
				}
				return
			}
			finishFlow(t, a.env, mail, p, v)
			if len(ds) != 1 || cookie == "" || ds[0].TokenHash != secret.Hash(cookie) {
				t.Fatalf("remembering stored %d devices, cookie set %v", len(ds), cookie != "")
			}
		}},

		{"grace sign-in", audit.EventMFAGrace, func(t *testing.T, a *attempt) {
			email := a.email("grace")
			u := a.createUser(email, password)
			b := a.newBrowser()
			p, v := flow(t, a.env, b, payroll, nil)
			a.act(func() { p = b.Login(p, email, password) })
			got, err := a.store.GetUser(t.Context(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a.refused {
				if codeOf(p) != "" || got.MFAGraceLogins != u.MFAGraceLogins {
					t.Errorf("unaudited grace sign-in: code issued %v, grace logins %d → %d", codeOf(p) != "", u.MFAGraceLogins, got.MFAGraceLogins)
				}
				return
			}
			finishFlow(t, a.env, payroll, p, v)
			if got.MFAGraceLogins != u.MFAGraceLogins+1 {
				t.Fatalf("grace logins %d → %d, want one used", u.MFAGraceLogins, got.MFAGraceLogins)
			}
		}},

		{"device approval", audit.EventDeviceApprove, func(t *testing.T, a *attempt) {
			email := a.email("tv")
			a.createUser(email, password)
			da := deviceAuthorize(t, a.env, tv, "openid profile")
			if da.Status != http.StatusOK {
				t.Fatalf("device authorization: %+v", da)
			}
			b := a.newBrowser()
			p := b.Login(enterUserCode(t, a.env, b, da.VerificationURIComplete, da.UserCode), email, password)
			if !p.IsConsent() {
				t.Fatalf("no consent page (status %d):\n%.600s", p.Status, p.Body)
			}
			a.act(func() { p = b.Consent(p, "allow") })
			tr := poll(t, a.env, tv, da.DeviceCode)
			if a.refused {
				wantFailed(t, p, "You can return to your device")
				if tr.AccessToken != "" || tr.Error == "" {
					t.Errorf("the device of an unaudited approval got access token %v, error %q", tr.AccessToken != "", tr.Error)
				}
				return
			}
			if p.Status != http.StatusOK || !strings.Contains(p.Body, "You can return to your device") || tr.AccessToken == "" {
				t.Fatalf("approval: status %d, poll: access token %v, error %q\n%.600s", p.Status, tr.AccessToken != "", tr.Error, p.Body)
			}
		}},

		// A sign-in by an existing session that needs a page (here consent) stores its
		// request first: its login.sso event is written ahead of the consent page.
		{"sso to a stored request", audit.EventLoginSSO, func(t *testing.T, a *attempt) {
			email := a.email("sso")
			a.createUser(email, password)
			b := a.newBrowser()
			p, _ := flow(t, a.env, b, calendar, nil)
			if p = b.Login(p, email, password); !p.IsConsent() { // the browser now has a session
				t.Fatalf("no consent page after the password (status %d):\n%.600s", p.Status, p.Body)
			}
			a.act(func() { p, _ = flow(t, a.env, b, calendar, nil) })
			if a.refused {
				if p.IsConsent() || p.Status < http.StatusInternalServerError {
					t.Errorf("an SSO sign-in whose event is unwritable answered %d (consent page %v)", p.Status, p.IsConsent())
				}
				return
			}
			if !p.IsConsent() {
				t.Fatalf("no consent page for the SSO sign-in (status %d, location %q):\n%.600s", p.Status, p.Location, p.Body)
			}
		}},

		{"reset link", audit.EventPasswordResetRequest, func(t *testing.T, a *attempt) {
			email := a.email("reset")
			u := a.createUser(email, password)
			addVerifiedAddress(t, a.env, u.ID, email)
			n, links := a.smtp.Count(), a.db.count(t, "password_resets")
			// The answer is the same whatever happens (no account enumeration): only the
			// mail and the stored links tell.
			a.act(func() {
				forgot(t, a.mfaEnv, a.newBrowser(), email)
				a.server.WaitPasswordResets()
			})
			stored := a.db.count(t, "password_resets") - links
			if a.refused {
				if got := mailsTo(t, a.mfaEnv, n+1, email); got != 0 || stored != 0 {
					t.Errorf("unaudited reset request: %d mails, %d links stored", got, stored)
				}
				return
			}
			resetLinkIn(t, a.mfaEnv, n+1, email)
			if stored != 1 {
				t.Fatalf("%d reset links stored, want 1", stored)
			}
		}},
	}
}

// factorDeleteFailStore is a store whose DeleteFactor fails while failDelete is set.
type factorDeleteFailStore struct {
	storage.Storage
	failDelete atomic.Bool
}

func (s *factorDeleteFailStore) DeleteFactor(ctx context.Context, userID, id string) error {
	if s.failDelete.Load() {
		return errors.New("factors unwritable")
	}
	return s.Storage.DeleteFactor(ctx, userID, id)
}

// TestWriteAheadChangeFails: when a change whose event was written ahead then fails, a
// failure event of the same type and factor follows it ("not saved: ..."), the change
// is not made, and the person sees an error.
func TestWriteAheadChangeFails(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := &factorDeleteFailStore{Storage: be.open(t)}
			m := newMFAEnv(t, st, noAuthorizeLimit)
			u := m.createUser("wa@example.com", password)
			b := m.newBrowser()
			p := accountPage(t, m.env, b, u.Email, nil)
			enrolTOTP(t, m.env, b, p)
			p = accountPage(t, m.env, b, u.Email, nil)
			fs, err := m.store.ListFactors(t.Context(), u.ID)
			if err != nil || len(fs) != 1 {
				t.Fatalf("factors %+v, %v", fs, err)
			}
			st.failDelete.Store(true)
			p = b.Post(m.issuer+"/account/security/remove", url.Values{"csrf": {p.Hidden().Get("csrf")}, "factor": {fs[0].ID}})
			st.failDelete.Store(false)
			if p.Status < http.StatusBadRequest {
				t.Errorf("a removal that was not saved answered %d", p.Status)
			}
			if _, err := m.store.GetFactor(t.Context(), fs[0].ID); err != nil {
				t.Fatalf("the factor is gone: %v", err)
			}
			evs, err := m.store.ListAudit(t.Context(), storage.AuditFilter{Type: audit.EventMFARemove})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				if e.UserID == u.ID && e.FactorID == fs[0].ID {
					got = append(got, e.Result+" "+strings.SplitN(e.Reason, ":", 2)[0])
				}
			}
			if want := []string{"success kind=totp factor=" + fs[0].ID, "failure not saved"}; !slices.Equal(got, want) {
				t.Errorf("mfa.remove events %q, want %q", got, want)
			}
		})
	}
}
