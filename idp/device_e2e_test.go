package idp_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
)

// RFC 8628, the device authorization grant, end to end: a TV or CLI asks for a device
// code, polls the token endpoint, and a person approves it from a browser on another
// device, through the same sign-in, second factor, policy and consent as a browser
// sign-in.

type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
	Error                   string `json:"error"`
	Status                  int    `json:"-"`
}

// deviceAuthorize posts a device authorization request (RFC 8628 §3.1) as client c.
func deviceAuthorize(t *testing.T, e *env, c testClient, scope string) deviceAuthResponse {
	t.Helper()
	form := url.Values{"scope": {scope}}
	if c.Secret == "" {
		form.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/device_authorization", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out deviceAuthResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	out.Status = resp.StatusCode
	return out
}

// poll is one poll of the token endpoint with the device code (RFC 8628 §3.4).
func poll(t *testing.T, e *env, c testClient, deviceCode string) tokenResponse {
	t.Helper()
	return e.tokenRequest(c, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}})
}

func wantPollError(t *testing.T, tr tokenResponse, want string) {
	t.Helper()
	if tr.Error != want || tr.AccessToken != "" {
		t.Fatalf("poll: status %d error %q (%s), want %s", tr.Status, tr.Error, tr.ErrorDesc, want)
	}
}

// enterUserCode opens the verification URI in b and submits code; it returns the page
// the form led to.
func enterUserCode(t *testing.T, e *env, b *browser, uri, code string) page {
	t.Helper()
	p := b.Get(uri)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/device"`) {
		t.Fatalf("device page: status %d:\n%.600s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("user_code", code)
	return b.Post(e.issuer+"/device", f)
}

func deviceClient(e *env, public bool) testClient {
	return e.createClient(admin.NewClient{Name: "Living-room TV", Public: public,
		GrantTypes: []string{admin.GrantDeviceCode, admin.GrantRefreshToken}, Scopes: []string{"openid", "profile", "offline_access"}})
}

// TestRFC8628_DeviceGrantWithSecondFactor: pending, slow_down, the person's sign-in with
// password + TOTP and consent on a second device, tokens with acr mfa exactly once.
func TestRFC8628_DeviceGrantWithSecondFactor(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			email := "tv@example.com"
			e.createUser(email, password)
			owner := e.newBrowser()
			key := enrolTOTP(t, e, owner, accountPage(t, e, owner, email, nil))
			tv := deviceClient(e, true)
			e.setPolicy(tv, storage.MFAPolicy{MFA: "required"})

			var disc map[string]any
			getJSON(t, e.issuer+"/.well-known/openid-configuration", &disc)
			if disc["device_authorization_endpoint"] != e.issuer+"/device_authorization" ||
				!slices.Contains(disc["grant_types_supported"].([]any), any("urn:ietf:params:oauth:grant-type:device_code")) {
				t.Fatalf("discovery does not advertise the device grant: %v %v", disc["device_authorization_endpoint"], disc["grant_types_supported"])
			}

			da := deviceAuthorize(t, e, tv, "openid profile offline_access")
			if da.Status != http.StatusOK || da.DeviceCode == "" || len(da.UserCode) != 9 || da.VerificationURI != e.issuer+"/device" ||
				da.Interval != 5 || da.ExpiresIn != 600 || !strings.HasPrefix(da.VerificationURIComplete, e.issuer+"/device?user_code=") {
				t.Fatalf("device authorization: %+v", da)
			}
			wantPollError(t, poll(t, e, tv, da.DeviceCode), "authorization_pending")
			wantPollError(t, poll(t, e, tv, da.DeviceCode), "slow_down")

			// The person, on their phone: the code, password, TOTP, consent.
			b := e.newBrowser()
			p := enterUserCode(t, e, b, da.VerificationURIComplete, strings.ToLower(da.UserCode))
			p = b.Login(p, email, password)
			if !isMFA(p) {
				t.Fatalf("no second-factor page after the password:\n%.600s", p.Body)
			}
			e.clock.Advance(30 * time.Second)
			p = answerMFA(b, e, p, rfc6238(key, e.clock.Now(), 6))
			if !p.IsConsent() || !strings.Contains(p.Body, "Living-room TV") {
				t.Fatalf("no consent page naming the device's client:\n%.600s", p.Body)
			}
			p = b.Consent(p, "allow")
			if p.Status != http.StatusOK || !strings.Contains(p.Body, "You can return to your device") {
				t.Fatalf("after consent: status %d:\n%.600s", p.Status, p.Body)
			}
			if e.auditCount(audit.EventDeviceApprove, audit.ResultSuccess) != 1 {
				t.Fatal("approval not audited")
			}

			tr := poll(t, e, tv, da.DeviceCode)
			if tr.AccessToken == "" || tr.IDToken == "" || tr.RefreshToken == "" {
				t.Fatalf("approved poll: %+v", tr)
			}
			claims := verifyWithJWKS(t, e, tr.IDToken, tv.ID)
			wantAuth(t, claims, []string{"mfa", "otp", "pwd"}, consent.ACRMFA)
			if claims["sub"] != e.userID(email) || claims["auth_time"] == nil || claims["sid"] == nil {
				t.Fatalf("ID token claims: %v", claims)
			}
			// The refresh token works, and keeps acr.
			rt := e.tokenRequest(tv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
			if rt.AccessToken == "" || verifyWithJWKS(t, e, rt.IDToken, tv.ID)["acr"] != consent.ACRMFA {
				t.Fatalf("refresh: %+v", rt)
			}

			// Single use: the next poll is refused.
			e.clock.Advance(5 * time.Second)
			wantPollError(t, poll(t, e, tv, da.DeviceCode), "invalid_grant")
			// The code cannot be entered again either.
			e.clock.Advance(time.Second)
			if p := enterUserCode(t, e, e.newBrowser(), da.VerificationURI, da.UserCode); p.Status != http.StatusBadRequest {
				t.Fatalf("used user code entered again: status %d", p.Status)
			}
		})
	}
}

// TestRFC8628_UserCodeGuessesLimited: one address gets 10 wrong user codes per 15
// minutes; the 11th entry is refused without being checked, even when it is right.
func TestRFC8628_UserCodeGuessesLimited(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			tv := deviceClient(e, true)
			da := deviceAuthorize(t, e, tv, "openid")
			b := e.newBrowser()
			for i := range idp.DeviceCodeGuessesPerAddress {
				p := enterUserCode(t, e, b, e.issuer+"/device", "BBBB-BBB"+string(rune('B'+i)))
				if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") {
					t.Fatalf("wrong code %d: status %d", i+1, p.Status)
				}
			}
			p := enterUserCode(t, e, b, e.issuer+"/device", da.UserCode)
			if p.Status != http.StatusTooManyRequests || p.IsLogin() {
				t.Fatalf("11th code from one address: status %d, want 429 without checking", p.Status)
			}
			if e.auditCount(audit.EventDeviceCode, audit.ResultFailure) != idp.DeviceCodeGuessesPerAddress+1 {
				t.Fatal("guesses not audited")
			}
			// After the window a right code is accepted (the first one has expired by then).
			e.clock.Advance(idp.DeviceCodeWindow)
			da = deviceAuthorize(t, e, tv, "openid")
			if p := enterUserCode(t, e, b, e.issuer+"/device", da.UserCode); !p.IsLogin() {
				t.Fatalf("right code after the window: status %d", p.Status)
			}
		})
	}
}

// TestRFC8628_ExpiredDeviceCode: after expires_in the device gets expired_token and the
// user code is no longer accepted.
func TestRFC8628_ExpiredDeviceCode(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			tv := deviceClient(e, false)
			da := deviceAuthorize(t, e, tv, "openid")
			if da.Status != http.StatusOK {
				t.Fatalf("confidential device authorization: %+v", da)
			}
			e.clock.Advance(idp.DeviceCodeLifetime + time.Second)
			if p := enterUserCode(t, e, e.newBrowser(), da.VerificationURI, da.UserCode); p.Status != http.StatusBadRequest {
				t.Fatalf("expired user code: status %d", p.Status)
			}
			wantPollError(t, poll(t, e, tv, da.DeviceCode), "expired_token")
		})
	}
}

// TestRFC8628_DeniedAndClientAuth: a confidential client must authenticate; denying
// consent answers the device access_denied.
func TestRFC8628_DeniedAndClientAuth(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			email := "deny@example.com"
			e.createUser(email, password)
			tv := deviceClient(e, false)
			if da := deviceAuthorize(t, e, testClient{ID: tv.ID}, "openid"); da.Status != http.StatusUnauthorized && da.Error != "invalid_client" {
				t.Fatalf("unauthenticated confidential client: %+v", da)
			}
			if da := deviceAuthorize(t, e, tv, "openid email"); da.Error != "invalid_scope" {
				t.Fatalf("scope not registered for the client: %+v", da)
			}
			web := e.createClient(admin.NewClient{Name: "Web"})
			if da := deviceAuthorize(t, e, web, "openid"); da.Error != "unauthorized_client" {
				t.Fatalf("client without the device grant: %+v", da)
			}

			da := deviceAuthorize(t, e, tv, "openid")
			wantPollError(t, poll(t, e, testClient{ID: tv.ID}, da.DeviceCode), "invalid_client")
			b := e.newBrowser()
			p := b.Login(enterUserCode(t, e, b, da.VerificationURIComplete, da.UserCode), email, password)
			p = b.Consent(p, "deny")
			if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "Access denied") {
				t.Fatalf("after deny: status %d:\n%.600s", p.Status, p.Body)
			}
			wantPollError(t, poll(t, e, tv, da.DeviceCode), "access_denied")
		})
	}
}

// TestRFC8628_TokensOnceAcrossProcesses: an approved device code polled at once through
// two provider processes on one database yields tokens exactly once.
func TestRFC8628_TokensOnceAcrossProcesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			st1, st2 := be.open(t)
			e := newEnv(t, st1)
			second := newEnv(t, st2, func(c *idp.Config) { c.Sealer = e.sealer; c.Now = e.clock.Now })
			email := "race@example.com"
			e.createUser(email, password)
			tv := deviceClient(e, false)
			da := deviceAuthorize(t, e, tv, "openid offline_access")
			b := e.newBrowser()
			p := b.Login(enterUserCode(t, e, b, da.VerificationURIComplete, da.UserCode), email, password)
			if p = b.Consent(p, "allow"); !strings.Contains(p.Body, "You can return to your device") {
				t.Fatalf("not approved:\n%.600s", p.Body)
			}
			var (
				mu   sync.Mutex
				wins int
				wg   sync.WaitGroup
			)
			start := make(chan struct{})
			for i := range 8 {
				srv := e
				if i%2 == 1 {
					srv = second
				}
				wg.Go(func() {
					<-start
					tr := poll(t, srv, tv, da.DeviceCode)
					if tr.AccessToken != "" {
						mu.Lock()
						wins++
						mu.Unlock()
					} else if tr.Error != "invalid_grant" && tr.Error != "slow_down" {
						t.Errorf("losing poll: %q", tr.Error)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 {
				t.Fatalf("%d polls got tokens, want exactly 1", wins)
			}
		})
	}
}
