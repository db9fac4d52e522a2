package idp_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
)

// issueRecoveryLink resets the MFA of email and returns the recovery link.
func issueRecoveryLink(t *testing.T, e *env, email string) string {
	t.Helper()
	res, err := e.admin.ResetMFA(context.Background(), "test", email, "lost phone",
		admin.ResetOptions{RemoveFactors: true, RecoveryLink: true, Issuer: e.issuer})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.RecoveryLink, e.issuer+"/recovery?") || res.RecoveryExpiresAt.Sub(e.clock.Now()) > 24*time.Hour {
		t.Fatalf("recovery link %q expiring %s", res.RecoveryLink, res.RecoveryExpiresAt)
	}
	return res.RecoveryLink
}

// useRecoveryLink opens link in b and submits its form with pw, or with the link's
// fields replaced by override.
func useRecoveryLink(t *testing.T, e *env, b *browser, link, pw string, override url.Values) page {
	t.Helper()
	p := b.Get(link)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/recovery"`) {
		t.Fatalf("GET recovery link: status %d\n%.500s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("password", pw)
	for k, v := range override {
		f[k] = v
	}
	return b.Post(e.issuer+"/recovery", f)
}

func isRecoveryRefused(p page) bool {
	return p.Status == http.StatusBadRequest && strings.Contains(p.Body, "Recovery link not valid")
}

// TestRecoveryLink: an administrator's recovery link signs the person in, with their
// password, exactly once and only within 24 hours.
func TestRecoveryLink(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			ctx := context.Background()
			email := "recover@example.com"
			u := e.createUser(email, password)

			t.Run("reason required", func(t *testing.T) {
				_, err := e.admin.ResetMFA(ctx, "test", email, "  ", admin.ResetOptions{RecoveryLink: true, Issuer: e.issuer})
				var in *admin.InvalidInputError
				if !errors.As(err, &in) {
					t.Fatalf("reset without a reason: %v", err)
				}
			})

			t.Run("works once, with the password", func(t *testing.T) {
				old := e.newBrowserLoggedIn(t, email)
				link := issueRecoveryLink(t, e, email)
				if sessions, _ := e.store.ListUserSessions(ctx, u.ID); len(sessions) != 0 {
					t.Fatalf("%d sessions survived the reset", len(sessions))
				}
				if p := old.Get(e.issuer + "/account/security"); !p.IsLogin() {
					t.Fatal("the browser signed in before the reset is still signed in")
				}

				b := e.newBrowser()
				b.Get(link) // a link scanner's GET does not use it up
				if p := useRecoveryLink(t, e, b, link, "wrong password", nil); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Incorrect password") {
					t.Fatalf("wrong password: status %d\n%.500s", p.Status, p.Body)
				}
				p := useRecoveryLink(t, e, b, link, password, nil)
				if !strings.Contains(p.Body, "Account security") || !strings.Contains(p.Body, "recovery link") {
					t.Fatalf("not on the account page after recovery (status %d):\n%.800s", p.Status, p.Body)
				}
				sessions, _ := e.store.ListUserSessions(ctx, u.ID)
				if len(sessions) != 1 || !slices.Equal(sessions[0].AMR, []string{"pwd"}) || sessions[0].ACR != consent.ACRPassword {
					t.Fatalf("sessions after recovery = %+v", sessions)
				}

				if p := useRecoveryLink(t, e, e.newBrowser(), link, password, nil); !isRecoveryRefused(p) {
					t.Fatalf("second use: status %d\n%.500s", p.Status, p.Body)
				}
				if n := e.auditCount(audit.EventMFARecovery, audit.ResultSuccess); n != 1 {
					t.Fatalf("%d successful recovery events, want 1", n)
				}
			})

			t.Run("expires after 24 hours", func(t *testing.T) {
				link := issueRecoveryLink(t, e, email)
				e.clock.Advance(24*time.Hour + time.Minute)
				if p := useRecoveryLink(t, e, e.newBrowser(), link, password, nil); !isRecoveryRefused(p) {
					t.Fatalf("expired link: status %d\n%.500s", p.Status, p.Body)
				}
			})

			t.Run("three tries", func(t *testing.T) {
				link := issueRecoveryLink(t, e, email)
				b := e.newBrowser()
				for i := 0; i < 3; i++ {
					if p := useRecoveryLink(t, e, b, link, password, url.Values{"token": {"guessed"}}); !isRecoveryRefused(p) {
						t.Fatalf("wrong secret %d: status %d", i, p.Status)
					}
				}
				if p := useRecoveryLink(t, e, b, link, password, nil); !isRecoveryRefused(p) {
					t.Fatalf("right secret after three wrong ones: status %d", p.Status)
				}
			})

			t.Run("form needs the CSRF token", func(t *testing.T) {
				link := issueRecoveryLink(t, e, email)
				if p := useRecoveryLink(t, e, e.newBrowser(), link, password, url.Values{"csrf": {"forged"}}); p.Status != http.StatusForbidden {
					t.Fatalf("forged CSRF token: status %d", p.Status)
				}
			})

			t.Run("link without parameters", func(t *testing.T) {
				if p := e.newBrowser().Get(e.issuer + "/recovery"); !isRecoveryRefused(p) {
					t.Fatalf("bare /recovery: status %d", p.Status)
				}
			})
		})
	}
}
