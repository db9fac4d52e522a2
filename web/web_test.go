package web

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/audit"
)

func TestEveryPageRenders(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		page string
		data any
		want string
	}{
		{PageLogin, LoginPage{AuthRequestID: "ar1", CSRF: "tok", Error: "Incorrect email or password."}, `name="csrf" value="tok"`},
		{PageConsent, ConsentPage{ClientName: "<App>", Scopes: []Scope{{Name: "email", Description: "your email"}}}, "&lt;App&gt;"},
		{PageError, ErrorPage{Title: "Expired", Message: "start again"}, "start again"},
		{PageLogout, LogoutPage{CSRF: "c"}, `action="/logout"`},
		{PageLoggedOut, nil, "signed out"},
		{PageDemo, DemoPage{SignedIn: true, Claims: []Claim{{"amr", `["pwd"]`}}}, "amr"},
		{PageLogin, LoginPage{AuthRequestID: "ar1", ResetURL: "/password/forgot?id=ar1"}, `<a href="/password/forgot?id=ar1">Forgot your password?</a>`},
		{PageMFA, MFAPage{Kind: "totp", Action: "/password/reset/mfa"}, `action="/password/reset/mfa"`},
		{PageMFA, MFAPage{Kind: "email", NeedSend: true}, `action="/login/mfa/send"`},
		{PageResetRequest, ResetRequestPage{CSRF: "c", AuthRequestID: "a&b"}, `href="/login?id=a%26b"`},
		{PageResetSent, ResetSentPage{LoginURL: "/login?id=ar1"}, "expires in 15 minutes"},
		{PageResetPassword, ResetPasswordPage{CSRF: "c", Token: "tok", MinLength: 8}, "At least 8 characters."},
		{PageResetDone, ResetDonePage{ContinueURL: "/account/security"}, `href="/account/security"`},
	}
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := r.Render(rec, English, 200, tt.page, tt.data); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("page %s lacks %q:\n%s", tt.page, tt.want, rec.Body.String())
			}
			if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Frame-Options") != "DENY" {
				t.Fatalf("missing security headers: %v", rec.Header())
			}
		})
	}
	if err := r.Render(httptest.NewRecorder(), English, 200, "nope.html", nil); err == nil {
		t.Fatal("unknown page rendered")
	}
}

// The console's page data (package idp/console, which imports web) mirrored here with the
// field names its templates use: a template that uses a field these lack fails the test
// below, and the console's own tests render the real types.
type (
	tcBase struct {
		CSRF, Admin, Section, Message, Error string
	}
	tcOption struct {
		Value, Label string
		Checked      bool
	}
	tcPolicy struct {
		Prefix                 string
		Modes, Factors         []tcOption
		PhishingResistant      bool
		MaxAge, RememberDevice string
	}
	tcSession struct {
		ID, UserID, User, Created, LastSeen, IP, Device, SignedInWith string
	}
	tcPerson struct {
		ID, Email, Name, Type, Groups string
		Disabled, Passwordless        bool
	}
	tcClientsPage struct {
		tcBase
		Clients []struct {
			ID, Name, Kind, Grants, Policy string
			Builtin                        bool
		}
	}
	tcClientPage struct {
		tcBase
		New, Builtin, HasSecret bool
		ID                      string
		Form                    struct {
			Name, RedirectURIs, PostLogoutRedirectURIs, Scopes, BackchannelLogoutURI string
			AccessTokenLifetime, IDTokenLifetime, RefreshTokenLifetime               string
			SkipConsent, Public                                                      bool
			Grants                                                                   []tcOption
		}
		FormError, PolicyError, ExplainFor, ExplainError string
		Policy                                           tcPolicy
		Explain                                          *struct {
			User, AccountType, Outcome, Unsatisfiable, Mode, ACR, MaxAge string
			PhishingResistant, DeviceCanSkip                             bool
			Enrolled, Usable, Kinds                                      string
			Reasons                                                      []string
		}
		Sessions []tcSession
	}
	tcSecretPage struct {
		tcBase
		ClientID, ClientName, Secret string
		Created                      bool
	}
	tcConfirmPage struct {
		tcBase
		Title, Text, Subject, Action, Button, Cancel string
		Fields                                       []struct{ Name, Value string }
		Reason, ReasonRequired                       bool
		ReasonValue, ReasonError                     string
	}
	tcPeoplePage struct {
		tcBase
		Query     string
		People    []tcPerson
		More      bool
		FormError string
		New       struct{ Email, Name, Type, Groups string }
	}
	tcPersonPage struct {
		tcBase
		Person  tcPerson
		Created string
		Factors []struct {
			Label, Name, Target, Added, LastUsed string
			Confirmed                            bool
		}
		Sessions                             []tcSession
		RecoveryLink, LinkExpires, FormError string
		EnrolmentLink                        string
		EnrolmentMailed                      bool
	}
	tcPoliciesPage struct {
		tcBase
		Types []struct {
			Type   string
			Policy tcPolicy
			Text   string
		}
		New                tcPolicy
		NewType, FormError string
	}
	tcAuditPage struct {
		tcBase
		Person, Client, Type, Since, Until string
		Types                              []string
		Events                             []struct {
			ID                                                             int64
			Time, Type, Result, User, Client, IP, Reason, UserID, ClientID string
			Failure                                                        bool
		}
		Older               string
		Newer               bool
		Export, FilterError string
		Verified            bool
		Verify              audit.VerifyResult
	}
	tcKeysPage struct {
		tcBase
		Keys []struct{ ID, Alg, State, Created, Activates, Retired, Expires string }
	}
)

// consoleTestData is full data for every console page, with the texts the console's Go
// code sets as message ids (a done message, option labels, a confirmation).
func consoleTestData() map[string]any {
	base := func(section string) tcBase {
		return tcBase{CSRF: "tok", Admin: "admin@example.com", Section: section, Message: "Saved."}
	}
	policy := tcPolicy{Prefix: "p-", Modes: []tcOption{{Value: "off", Label: "Off: never ask for a second factor"}, {Value: "required", Label: "Required: always; people without one must enrol", Checked: true}},
		Factors: []tcOption{{Value: "totp", Label: "Authenticator app", Checked: true}}, PhishingResistant: true, MaxAge: "12h", RememberDevice: "720h"}
	session := tcSession{ID: "s1", UserID: "u1", User: "a@example.com", Created: "2026-01-01 10:00 UTC", LastSeen: "2026-01-01 11:00 UTC", IP: "192.0.2.1", Device: "Firefox on Linux", SignedInWith: "(translated in Go)"}
	person := tcPerson{ID: "u1", Email: "a@example.com", Name: "Ada", Type: "staff", Groups: "ops"}

	clients := tcClientsPage{tcBase: base("clients")}
	clients.Clients = append(clients.Clients, struct {
		ID, Name, Kind, Grants, Policy string
		Builtin                        bool
	}{ID: "app", Name: "App", Kind: "Confidential", Grants: "authorization_code", Policy: "erforderlich", Builtin: true})

	client := tcClientPage{tcBase: base("clients"), HasSecret: true, ID: "app", FormError: "x", PolicyError: "y", ExplainFor: "a@example.com", ExplainError: "z",
		Policy: policy, Sessions: []tcSession{session}}
	client.Form.Name, client.Form.RedirectURIs, client.Form.Scopes = "App", "https://app.example/cb", "openid email"
	client.Form.Grants = []tcOption{{Value: "authorization_code", Label: "Authorization code (sign-in in a browser)", Checked: true}, {Value: "refresh_token", Label: "Refresh token"}}
	client.Explain = &struct {
		User, AccountType, Outcome, Unsatisfiable, Mode, ACR, MaxAge string
		PhishingResistant, DeviceCanSkip                             bool
		Enrolled, Usable, Kinds                                      string
		Reasons                                                      []string
	}{User: "a@example.com", AccountType: "staff", Outcome: "password only", Mode: "optional", ACR: "pwd", PhishingResistant: true, Reasons: []string{"a reason"}}

	confirm := tcConfirmPage{tcBase: base("clients"), Title: "Delete this client?", Text: "Deleting %s stops every sign-in and token of this application. This cannot be undone.",
		Subject: "App", Action: "/admin/clients/app/delete", Button: "Delete the client", Cancel: "/admin/clients/app",
		Fields: []struct{ Name, Value string }{{"x", "y"}}, Reason: true, ReasonRequired: true, ReasonError: "A reason is required: it is recorded in the audit trail."}

	people := tcPeoplePage{tcBase: base("people"), Query: "a", People: []tcPerson{person, {ID: "u2", Email: "b@example.com", Disabled: true}}, More: true, FormError: "x"}

	personPage := tcPersonPage{tcBase: base("people"), Person: person, Created: "2026-01-01 10:00 UTC", Sessions: []tcSession{session},
		RecoveryLink: "https://idp.example/recover?t=x", LinkExpires: "2026-01-02 10:00 UTC", FormError: "x"}
	personPage.Factors = append(personPage.Factors, struct {
		Label, Name, Target, Added, LastUsed string
		Confirmed                            bool
	}{Label: "Security key or passkey", Name: "YubiKey", Added: "2026-01-01 10:00 UTC", Confirmed: true}, struct {
		Label, Name, Target, Added, LastUsed string
		Confirmed                            bool
	}{Label: "Text message", Target: "+49 151 23456789"})

	policies := tcPoliciesPage{tcBase: base("policies"), New: policy, NewType: "staff", FormError: "x"}
	policies.Types = append(policies.Types, struct {
		Type   string
		Policy tcPolicy
		Text   string
	}{Type: "admin", Policy: policy, Text: "erforderlich"})

	auditPage := tcAuditPage{tcBase: base("audit"), Type: "login", Types: []string{"login", "logout"}, Older: "/admin/audit?before=1", Newer: true, Export: "/admin/audit/export?",
		Verified: true, Verify: audit.VerifyResult{Intact: true, Checked: 2, FirstID: 1, LastID: 2, Head: "abc"}}
	auditPage.Events = append(auditPage.Events, struct {
		ID                                                             int64
		Time, Type, Result, User, Client, IP, Reason, UserID, ClientID string
		Failure                                                        bool
	}{ID: 1, Time: "2026-01-01 10:00:00", Type: "login", Result: "failure", User: "a@example.com", UserID: "u1", ClientID: "app", Client: "App", Failure: true})

	keys := tcKeysPage{tcBase: base("keys")}
	keys.Keys = append(keys.Keys, struct{ ID, Alg, State, Created, Activates, Retired, Expires string }{ID: "k1", Alg: "RS256", State: "active"})

	return map[string]any{
		PageConsoleClients: clients, PageConsoleClient: client, PageConsoleSecret: tcSecretPage{tcBase: base("clients"), ClientID: "app", ClientName: "App", Secret: "s3cret", Created: true},
		PageConsoleConfirm: confirm, PageConsolePeople: people, PageConsolePerson: personPage, PageConsolePolicies: policies,
		PageConsoleAudit: auditPage, PageConsoleKeys: keys,
	}
}

// TestEveryPageInEveryLanguage renders each page with full data in each language: it
// executes (no template error in any branch), names its language in <html lang> and
// Content-Language, and a translated page has no untranslated English left of the
// texts checked (its title and a message from Go).
func TestEveryPageInEveryLanguage(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{
		PageLogin:         LoginPage{ClientName: "App", Error: "Incorrect email or password."},
		PageConsent:       ConsentPage{ClientName: "App", UserEmail: "a@example.com", Scopes: []Scope{{Name: "openid", Description: "sign you in and know who you are"}}},
		PageError:         ErrorPage{Title: "Page not found", Message: "The form could not be read.", Code: "invalid_request"},
		PageLogout:        LogoutPage{UserEmail: "a@example.com"},
		PageLoggedOut:     nil,
		PageDemo:          DemoPage{SignedIn: true, SignedInAs: "Ada", APIStatus: "200"},
		PageMFA:           MFAPage{Kind: "totp", Label: "Authenticator app", CanRemember: true, Others: []FactorChoice{{Label: "Backup code", URL: "/x"}}},
		PageAccount:       AccountPage{Email: "a@example.com", Factors: []FactorView{{Label: "Authenticator app", Added: "2026-01-01"}}, HasBackup: true, Kinds: []string{"totp", "webauthn", "sms", "email"}, Message: "Session ended.", RequiredBy: "App", ContinueURL: "/login?id=x", ContinueClient: "App", Sessions: []SessionView{{Device: "Firefox on Linux", Current: true, Factors: "Password"}}, Devices: []DeviceView{{Name: "Firefox on Linux"}}},
		PageEnroll:        EnrollPage{Kind: "totp", Label: "Authenticator app", QRDataURI: "data:image/png;base64,AA", Secret: "ABC"},
		PageBackupCodes:   BackupCodesPage{Codes: []string{"AAAA-BBBB"}},
		PageRecovery:      RecoveryPage{Error: "Incorrect password."},
		PageDevice:        DevicePage{Error: "That code is not valid. Check the code on your device and try again."},
		PageDeviceDone:    DeviceDonePage{ClientName: "TV"},
		PageEnrolLink:     EnrolLinkPage{Error: "That passkey could not be used. Try again, or sign in with your email and password."},
		PageResetRequest:  ResetRequestPage{AuthRequestID: "ar1", Email: "a@example.com", Error: "Too many reset requests. Try again later."},
		PageResetSent:     ResetSentPage{LoginURL: "/login?id=ar1"},
		PageResetPassword: ResetPasswordPage{Token: "tok", MinLength: 8, Error: "The two passwords are not the same."},
		PageResetDone:     ResetDonePage{ContinueURL: "/account/security"},
	}
	for page, d := range consoleTestData() {
		data[page] = d
	}
	for _, p := range pages {
		if _, ok := data[p]; !ok {
			t.Errorf("no test data for page %s", p)
		}
	}
	for _, lang := range Languages() {
		for page, d := range data {
			t.Run(lang.String()+"/"+page, func(t *testing.T) {
				rec := httptest.NewRecorder()
				if err := r.Render(rec, lang, 200, page, d); err != nil {
					t.Fatal(err)
				}
				body := rec.Body.String()
				if !strings.Contains(body, `<html lang="`+lang.String()+`">`) || rec.Header().Get("Content-Language") != lang.String() {
					t.Fatalf("language not named: header %q\n%.300s", rec.Header().Get("Content-Language"), body)
				}
				if strings.Contains(body, "%!") {
					t.Fatalf("a format error: %s", body)
				}
				if lang == English {
					return
				}
				for _, en := range []string{"Incorrect email or password.", "Page not found", "Session ended.", "Authenticator app", "Your backup codes", "Connect a device",
					"Admin console", "Saved.", "Your account", "Signing keys", "Off: never", "Security key or passkey", "Text message", "Deleting App", "A reason is required", "Refresh token"} {
					if strings.Contains(body, en) {
						t.Errorf("English %q left on the %s page", en, lang)
					}
				}
			})
		}
	}
}
