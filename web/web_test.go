package web

import (
	"net/http/httptest"
	"strings"
	"testing"
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
		PageLogin:       LoginPage{ClientName: "App", Error: "Incorrect email or password."},
		PageConsent:     ConsentPage{ClientName: "App", UserEmail: "a@example.com", Scopes: []Scope{{Name: "openid", Description: "sign you in and know who you are"}}},
		PageError:       ErrorPage{Title: "Page not found", Message: "The form could not be read.", Code: "invalid_request"},
		PageLogout:      LogoutPage{UserEmail: "a@example.com"},
		PageLoggedOut:   nil,
		PageDemo:        DemoPage{SignedIn: true, SignedInAs: "Ada", APIStatus: "200"},
		PageMFA:         MFAPage{Kind: "totp", Label: "Authenticator app", CanRemember: true, Others: []FactorChoice{{Label: "Backup code", URL: "/x"}}},
		PageAccount:     AccountPage{Email: "a@example.com", Factors: []FactorView{{Label: "Authenticator app", Added: "2026-01-01"}}, HasBackup: true, Kinds: []string{"totp", "webauthn", "sms", "email"}, Message: "Session ended.", RequiredBy: "App", ContinueURL: "/login?id=x", ContinueClient: "App", Sessions: []SessionView{{Device: "Firefox on Linux", Current: true, Factors: "Password"}}, Devices: []DeviceView{{Name: "Firefox on Linux"}}},
		PageEnroll:      EnrollPage{Kind: "totp", Label: "Authenticator app", QRDataURI: "data:image/png;base64,AA", Secret: "ABC"},
		PageBackupCodes: BackupCodesPage{Codes: []string{"AAAA-BBBB"}},
		PageRecovery:    RecoveryPage{Error: "Incorrect password."},
		PageDevice:      DevicePage{Error: "That code is not valid. Check the code on your device and try again."},
		PageDeviceDone:  DeviceDonePage{ClientName: "TV"},
		PageEnrolLink:   EnrolLinkPage{Error: "That passkey could not be used. Try again, or sign in with your email and password."},
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
				for _, en := range []string{"Incorrect email or password.", "Page not found", "Session ended.", "Authenticator app", "Your backup codes", "Connect a device"} {
					if strings.Contains(body, en) {
						t.Errorf("English %q left on the %s page", en, lang)
					}
				}
			})
		}
	}
}
