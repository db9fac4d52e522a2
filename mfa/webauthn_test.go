package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// ceremonyTimeout bounds one browser ceremony: page load, authenticator, form post.
const ceremonyTimeout = 20 * time.Second

// ceremonyPageTmpl is the page of one step: the options, the real webauthn.js and a
// form that posts the response to /finish. The CSP allows no inline script.
var ceremonyPageTmpl = template.Must(template.New("ceremony").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>WebAuthn test</title>
<script src="/static/webauthn.js" defer></script></head>
<body>
<script type="application/json" id="webauthn-options">{{.Options}}</script>
<form id="webauthn-form" method="post" action="/finish" data-webauthn-mode="{{.Mode}}" data-autostart>
<input type="hidden" name="response">
<button type="button" id="webauthn-start">Use your security key</button>
</form>
</body></html>`))

// ceremonyResult is what /finish saw and what Confirm or Verify said.
type ceremonyResult struct {
	response string
	amr      []string
	err      error
}

// ceremonyServer serves one ceremony at a time to the browser.
type ceremonyServer struct {
	*httptest.Server
	origin string // http://localhost:PORT

	mu      sync.Mutex
	mode    string
	options json.RawMessage
	finish  func(ctx context.Context, response string) ([]string, error)
	results chan ceremonyResult
}

func newCeremonyServer(t *testing.T) *ceremonyServer {
	t.Helper()
	s := &ceremonyServer{results: make(chan ceremonyResult, 1)}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", web.Static())
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /ceremony", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		data := struct {
			Mode    string
			Options template.JS // JSON from json.Marshal: <, > and & are escaped
		}{s.mode, template.JS(s.options)}
		s.mu.Unlock()
		w.Header().Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'")
		w.Header().Set("Cache-Control", "no-store")
		if err := ceremonyPageTmpl.Execute(w, data); err != nil {
			t.Errorf("render ceremony page: %v", err)
		}
	})
	mux.HandleFunc("POST /finish", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		finish := s.finish
		s.mu.Unlock()
		res := ceremonyResult{response: r.PostFormValue("response")}
		res.amr, res.err = finish(r.Context(), res.response)
		s.results <- res
		_, _ = w.Write([]byte(`<!doctype html><title>done</title><p id="done">done</p>`))
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	// WebAuthn needs a secure context and an RP ID the origin belongs to: localhost is
	// both, 127.0.0.1 is not a valid domain for RP ID "localhost".
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.origin = "http://localhost:" + u.Port()
	return s
}

// run shows the browser a page running the ceremony with options and returns what
// finish made of the response.
func (s *ceremonyServer) run(t *testing.T, ctx context.Context, mode string, options json.RawMessage,
	finish func(ctx context.Context, response string) ([]string, error)) ceremonyResult {
	t.Helper()
	s.mu.Lock()
	s.mode, s.options, s.finish = mode, options, finish
	s.mu.Unlock()

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, ceremonyTimeout)
	defer cancel()
	if err := chromedp.Do(cctx, chromedp.Navigate(s.origin+"/ceremony")); err != nil {
		t.Fatalf("load ceremony page: %v", err)
	}
	select {
	case res := <-s.results:
		if err := chromedp.Do(cctx, chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
			t.Fatalf("result page: %v", err)
		}
		t.Logf("%s ceremony: %v", mode, time.Since(start).Round(time.Millisecond))
		return res
	case <-cctx.Done():
		// Tell why: the script shows the browser's error on the page.
		ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
		defer ecancel()
		msg, err := chromedp.Run(ectx, chromedp.Evaluate[string](
			`(document.getElementById("webauthn-error") || {}).textContent || ""`))
		t.Fatalf("%s ceremony did not finish within %v: page error %q (%v)", mode, ceremonyTimeout, msg, err)
		return ceremonyResult{}
	}
}

// webauthnTestFactor reads back factor id and its credential.
func webauthnTestFactor(t *testing.T, env *Env, id string) (*storage.Factor, gowebauthn.Credential) {
	t.Helper()
	f, err := env.Store.GetFactor(context.Background(), id)
	if err != nil {
		t.Fatalf("get factor: %v", err)
	}
	raw, err := env.Sealer.Open(f.Secret, []byte("factor:"+f.ID))
	if err != nil {
		t.Fatalf("open credential: %v", err)
	}
	var cred gowebauthn.Credential
	if err := json.Unmarshal(raw, &cred); err != nil {
		t.Fatalf("decode credential: %v", err)
	}
	return f, cred
}

// TestWebAuthnBrowser registers a USB security key and a platform passkey in a real
// Chromium with CDP virtual authenticators, signs in with each, and checks that
// assertions for another origin, replays and signature-counter regressions are refused.
func TestWebAuthnBrowser(t *testing.T) {
	browser := idptest.NewChrome(t)
	env := newTestEnv(t)
	srv := newCeremonyServer(t)
	bg := context.Background()

	wa, err := NewWebAuthn(env, WebAuthnConfig{RPID: "localhost", RPDisplayName: "Test IdP", RPOrigins: []string{srv.origin}})
	if err != nil {
		t.Fatal(err)
	}
	u := &storage.User{ID: "user-webauthn-1", Email: "ada@example.com", Name: "Ada Lovelace", CreatedAt: env.now(), UpdatedAt: env.now()}
	if err := testStore(t, env).CreateUser(bg, u); err != nil {
		t.Fatal(err)
	}

	// A security key (device-bound), a passkey (backup eligible, i.e. syncable) and a
	// plain key that can neither verify the user nor keep discoverable credentials
	// (Chromium will not make a discoverable credential on a key without PIN or UV).
	keys := []struct {
		name          string
		auth          idptest.VirtualAuthenticator
		wantAMR       []string
		authenticator string
		factor        *storage.Factor
	}{
		{name: "YubiKey", auth: idptest.VirtualAuthenticator{Transport: "usb"}, wantAMR: []string{AMRHardware, AMRUser}},
		{name: "Laptop passkey", auth: idptest.VirtualAuthenticator{Transport: "internal", BackupEligible: true, BackupState: true}, wantAMR: []string{AMRSoftware, AMRUser}},
		{name: "Old key", auth: idptest.VirtualAuthenticator{Transport: "usb", NoUserVerification: true, NoResidentKey: true}, wantAMR: []string{AMRHardware}},
	}
	for i := range keys {
		keys[i].authenticator = idptest.AddVirtualAuthenticator(t, browser, keys[i].auth)
	}
	// use makes only key i answer the next ceremony.
	use := func(i int) {
		for j := range keys {
			idptest.SetUserPresence(t, browser, keys[j].authenticator, j == i)
		}
	}

	for i, k := range keys {
		use(i)
		enr, err := wa.Enroll(bg, u, EnrollRequest{Name: k.name})
		if err != nil {
			t.Fatalf("enroll %s: %v", k.name, err)
		}
		if enr.Factor.Confirmed || enr.ChallengeID == "" {
			t.Fatalf("enroll %s: factor confirmed=%v challenge=%q", k.name, enr.Factor.Confirmed, enr.ChallengeID)
		}
		res := srv.run(t, browser, "create", enr.Options, func(ctx context.Context, resp string) ([]string, error) {
			return nil, wa.Confirm(ctx, u, enr.Factor, enr.ChallengeID, resp)
		})
		if res.err != nil {
			t.Fatalf("confirm %s: %v", k.name, res.err)
		}
		f, cred := webauthnTestFactor(t, env, enr.Factor.ID)
		if !f.Confirmed || f.Name != k.name || f.Kind != storage.FactorWebAuthn {
			t.Fatalf("factor after confirm: %+v", f)
		}
		if cred.Flags.BackupEligible != k.auth.BackupEligible {
			t.Errorf("%s: stored BE flag %v, the virtual authenticator was set to %v", k.name, cred.Flags.BackupEligible, k.auth.BackupEligible)
		}
		keys[i].factor = f
	}

	// A further enrolment excludes every registered credential.
	enr, err := wa.Enroll(bg, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if enr.Factor.Name != "" {
		t.Errorf("an unnamed key is named at Confirm, not at Enroll: %q", enr.Factor.Name)
	}
	var creation struct {
		Exclude []struct{ ID string } `json:"excludeCredentials"`
	}
	if err := json.Unmarshal(enr.Options, &creation); err != nil || len(creation.Exclude) != len(keys) {
		t.Errorf("creation options exclude %d credentials (%v), want %d: %s", len(creation.Exclude), err, len(keys), enr.Options)
	}

	// signIn runs a sign-in ceremony with key i against rp and returns the result.
	signIn := func(t *testing.T, i int, rp *WebAuthn) (ceremonyResult, string) {
		t.Helper()
		use(i)
		ch, err := rp.Challenge(bg, u, keys[i].factor)
		if err != nil {
			t.Fatalf("challenge: %v", err)
		}
		return srv.run(t, browser, "get", ch.Options, func(ctx context.Context, resp string) ([]string, error) {
			return rp.Verify(ctx, u, keys[0].factor, ch.ID, resp) // the key used need not be f
		}), ch.ID
	}

	var captured ceremonyResult
	var capturedID string
	for i, k := range keys {
		t.Run("signin/"+k.name, func(t *testing.T) {
			before, _ := webauthnTestFactor(t, env, k.factor.ID)
			advanceTestNow(t, env, time.Minute)
			res, chID := signIn(t, i, wa)
			if res.err != nil {
				t.Fatalf("verify: %v", res.err)
			}
			_, cred := webauthnTestFactor(t, env, k.factor.ID)
			want := []string{AMRHardware}
			if cred.Flags.BackupEligible {
				want[0] = AMRSoftware
			}
			if !k.auth.NoUserVerification {
				want = append(want, AMRUser)
			}
			if !slices.Equal(res.amr, want) || !slices.Equal(res.amr, k.wantAMR) {
				t.Errorf("AMR %v, want %v (BE=%v)", res.amr, k.wantAMR, cred.Flags.BackupEligible)
			}
			after, cred := webauthnTestFactor(t, env, k.factor.ID)
			if !after.LastUsedAt.After(before.LastUsedAt) {
				t.Errorf("LastUsedAt not updated: %v -> %v", before.LastUsedAt, after.LastUsedAt)
			}
			vc := idptest.VirtualCredentials(t, browser, keys[i].authenticator)
			if len(vc) != 1 || uint32(vc[0].SignCount) != cred.Authenticator.SignCount {
				t.Errorf("stored sign count %d, authenticator has %+v", cred.Authenticator.SignCount, vc)
			}
			if i == 0 {
				captured, capturedID = res, chID
			}
		})
	}
	if captured.response == "" {
		t.Fatal("no assertion captured")
	}

	t.Run("replay", func(t *testing.T) {
		// The same response again: its challenge is consumed.
		_, err := wa.Verify(bg, u, keys[0].factor, capturedID, captured.response)
		if !errors.Is(err, ErrExpired) {
			t.Errorf("replayed assertion: %v, want ErrExpired", err)
		}
		// The same response for a fresh challenge: the challenge does not match.
		ch, err := wa.Challenge(bg, u, keys[0].factor)
		if err != nil {
			t.Fatal(err)
		}
		_, err = wa.Verify(bg, u, keys[0].factor, ch.ID, captured.response)
		if !errors.Is(err, ErrInvalidCode) {
			t.Errorf("assertion for another challenge: %v, want ErrInvalidCode", err)
		}
	})

	t.Run("other origin", func(t *testing.T) {
		// The page is served from srv.origin; this relying party expects another port.
		port, _ := strconv.Atoi(strings.TrimPrefix(srv.origin, "http://localhost:"))
		other, err := NewWebAuthn(env, WebAuthnConfig{RPID: "localhost", RPDisplayName: "Test IdP",
			RPOrigins: []string{"http://localhost:" + strconv.Itoa(port+1)}})
		if err != nil {
			t.Fatal(err)
		}
		before, _ := webauthnTestFactor(t, env, keys[0].factor.ID)
		res, _ := signIn(t, 0, other)
		if !errors.Is(res.err, ErrInvalidCode) {
			t.Fatalf("assertion from another origin: %v, want ErrInvalidCode", res.err)
		}
		t.Logf("refused as expected: %v", res.err)
		after, _ := webauthnTestFactor(t, env, keys[0].factor.ID)
		if !after.LastUsedAt.Equal(before.LastUsedAt) {
			t.Error("refused assertion updated the factor")
		}
	})

	t.Run("sign count regression", func(t *testing.T) {
		// Pretend the server has seen a higher counter than the authenticator's: a clone.
		f, cred := webauthnTestFactor(t, env, keys[0].factor.ID)
		cred.Authenticator.SignCount = 1000
		raw, err := json.Marshal(cred)
		if err != nil {
			t.Fatal(err)
		}
		if f.Secret, err = env.Sealer.Seal(raw, []byte("factor:"+f.ID)); err != nil {
			t.Fatal(err)
		}
		if err := env.Store.UpdateFactor(bg, f); err != nil {
			t.Fatal(err)
		}
		advanceTestNow(t, env, time.Minute)
		res, _ := signIn(t, 0, wa)
		if !errors.Is(res.err, ErrSignCount) {
			t.Fatalf("regressed counter: %v, want ErrSignCount", res.err)
		}
		var found bool
		for _, ev := range testAuditEvents(t, env) {
			if ev.Type == "mfa.webauthn.signcount" && ev.Result == "failure" && ev.UserID == u.ID && ev.Reason != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("no mfa.webauthn.signcount audit event in %+v", testAuditEvents(t, env))
		}
		after, cred := webauthnTestFactor(t, env, f.ID)
		if cred.Authenticator.SignCount != 1000 || !after.LastUsedAt.Equal(f.LastUsedAt) {
			t.Errorf("factor updated after a regression: count %d, last used %v -> %v",
				cred.Authenticator.SignCount, f.LastUsedAt, after.LastUsedAt)
		}
	})
}

// TestWebAuthnRefusals checks the refusals that need no browser.
func TestWebAuthnRefusals(t *testing.T) {
	if _, err := NewWebAuthn(&Env{}, WebAuthnConfig{RPOrigins: []string{"https://a.example"}}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("no RP ID: %v, want ErrNotConfigured", err)
	}
	if _, err := NewWebAuthn(&Env{}, WebAuthnConfig{RPID: "a.example"}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("no origins: %v, want ErrNotConfigured", err)
	}

	env := newTestEnv(t)
	ctx := context.Background()
	wa, err := NewWebAuthn(env, WebAuthnConfig{RPID: "login.example", RPOrigins: []string{"https://login.example"}})
	if err != nil {
		t.Fatal(err)
	}
	var users []*storage.User
	for _, id := range []string{"u1", "u2"} {
		u := &storage.User{ID: id, Email: id + "@example.com", CreatedAt: env.now(), UpdatedAt: env.now()}
		if err := testStore(t, env).CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	u, mallory := users[0], users[1]
	enroll := func() *Enrollment {
		t.Helper()
		enr, err := wa.Enroll(ctx, u, EnrollRequest{Name: "  Key  "})
		if err != nil {
			t.Fatal(err)
		}
		return enr
	}

	enr := enroll()
	if enr.Factor.Name != "Key" {
		t.Errorf("name %q, want trimmed", enr.Factor.Name)
	}
	var creation struct {
		RP                     struct{ ID string }
		User                   struct{ ID, Name, DisplayName string }
		Challenge, Attestation string
		AuthenticatorSelection struct{ ResidentKey, UserVerification string }
	}
	if err := json.Unmarshal(enr.Options, &creation); err != nil {
		t.Fatal(err)
	}
	if creation.RP.ID != "login.example" || creation.User.Name != u.Email || creation.User.DisplayName != u.Email ||
		creation.Challenge == "" || creation.Attestation != "none" ||
		creation.AuthenticatorSelection.ResidentKey != "preferred" || creation.AuthenticatorSelection.UserVerification != "preferred" {
		t.Errorf("creation options: %s", enr.Options)
	}

	// A malformed attestation counts as an attempt; the fourth finds the ceremony gone.
	for i := range 3 {
		if err := wa.Confirm(ctx, u, enr.Factor, enr.ChallengeID, `{"id":"x"}`); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("malformed attestation %d: %v, want ErrInvalidCode", i, err)
		}
	}
	if err := wa.Confirm(ctx, u, enr.Factor, enr.ChallengeID, `{}`); !errors.Is(err, ErrExpired) {
		t.Errorf("fourth attempt: %v, want ErrExpired", err)
	}

	stale := enroll()
	advanceTestNow(t, env, webauthnTTL+time.Second)
	enr = enroll()
	other := enroll()
	totp := &storage.Factor{ID: "totp1", UserID: u.ID, Kind: storage.FactorTOTP}
	tests := []struct {
		name string
		user *storage.User
		f    *storage.Factor
		ch   string
		want error
	}{
		{"unknown challenge", u, enr.Factor, "nope", ErrExpired},
		{"expired challenge", u, stale.Factor, stale.ChallengeID, ErrExpired},
		{"another user's factor", mallory, enr.Factor, enr.ChallengeID, ErrInvalidCode},
		{"not a webauthn factor", u, totp, enr.ChallengeID, ErrInvalidCode},
		{"challenge of another factor", u, other.Factor, enr.ChallengeID, ErrInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := wa.Confirm(ctx, tt.user, tt.f, tt.ch, `{}`); !errors.Is(err, tt.want) {
				t.Errorf("Confirm: %v, want %v", err, tt.want)
			}
		})
	}

	// No confirmed credential yet: nothing to sign in with.
	if _, err := wa.Challenge(ctx, u, enr.Factor); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("challenge without credentials: %v, want ErrInvalidCode", err)
	}
	// A challenge belongs to its user.
	if _, err := wa.Verify(ctx, mallory, &storage.Factor{ID: "f", UserID: mallory.ID, Kind: storage.FactorWebAuthn}, enr.ChallengeID, `{}`); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("verify another user's challenge: %v, want ErrInvalidCode", err)
	}
}
