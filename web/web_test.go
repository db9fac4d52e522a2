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
			if err := r.Render(rec, 200, tt.page, tt.data); err != nil {
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
	if err := r.Render(httptest.NewRecorder(), 200, "nope.html", nil); err == nil {
		t.Fatal("unknown page rendered")
	}
}
