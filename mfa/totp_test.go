package mfa

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"image/png"
	"math"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/openidp/idp/storage"
)

// rfc6238Secret is the SHA-1 seed of RFC 6238 Appendix B, "12345678901234567890", in base32.
var rfc6238Secret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

// totpTestUser returns a user that exists only in memory (factors do not reference users).
func totpTestUser(email string) *storage.User {
	return &storage.User{ID: newID(), Email: email}
}

// totpTestFactor stores a confirmed TOTP factor of u with the base32 seed secret.
func totpTestFactor(t *testing.T, env *Env, u *storage.User, secret string) *storage.Factor {
	t.Helper()
	f := &storage.Factor{
		ID:        newID(),
		UserID:    u.ID,
		Kind:      storage.FactorTOTP,
		Name:      "test",
		Confirmed: true,
		CreatedAt: env.now(),
	}
	var err error
	if f.Secret, err = env.Sealer.Seal([]byte(secret), totpAAD(f.ID)); err != nil {
		t.Fatalf("seal: %v", err)
	}
	if err := env.Store.CreateFactor(context.Background(), f); err != nil {
		t.Fatalf("create factor: %v", err)
	}
	return f
}

// totpTestCode computes the code of secret at time at.
func totpTestCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatalf("generate code: %v", err)
	}
	return c
}

func TestTOTPRFC6238Vectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA-1 column; we use the last 6 of the 8 digits.
	tests := []struct {
		unix int64
		code string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			env := newTestEnv(t)
			setTestNow(t, env, time.Unix(tt.unix, 0))
			u := totpTestUser("alice@example.com")
			f := totpTestFactor(t, env, u, rfc6238Secret)
			m := &TOTP{Env: env}
			amr, err := m.Verify(context.Background(), u, f, "", tt.code[2:])
			if err != nil {
				t.Fatalf("Verify(%s at %d) = %v, want success", tt.code[2:], tt.unix, err)
			}
			if len(amr) != 1 || amr[0] != AMROTP {
				t.Errorf("amr = %v, want [%s]", amr, AMROTP)
			}
			got, err := env.Store.GetFactor(context.Background(), f.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.unix / 30; got.LastStep != want {
				t.Errorf("LastStep = %d, want %d", got.LastStep, want)
			}
			// Storage keeps times as int64 unix nanoseconds, which end in 2262: the
			// RFC's last vector (year 2603) checks the code and step only.
			if at := time.Unix(tt.unix, 0); at.Before(time.Unix(0, math.MaxInt64)) && !got.LastUsedAt.Equal(at) {
				t.Errorf("LastUsedAt = %v, want %v", got.LastUsedAt, time.Unix(tt.unix, 0))
			}
		})
	}
}

func TestTOTPDrift(t *testing.T) {
	tests := []struct {
		name  string
		steps int
		ok    bool
	}{
		{"two behind", -2, false},
		{"one behind", -1, true},
		{"current", 0, true},
		{"one ahead", 1, true},
		{"two ahead", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			u := totpTestUser("alice@example.com")
			f := totpTestFactor(t, env, u, rfc6238Secret)
			code := totpTestCode(t, rfc6238Secret, env.now().Add(time.Duration(tt.steps)*30*time.Second))
			_, err := (&TOTP{Env: env}).Verify(context.Background(), u, f, "", code)
			if tt.ok && err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("Verify = %v, want ErrInvalidCode", err)
			}
		})
	}
}

func TestTOTPReplay(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")

	t.Run("same code twice", func(t *testing.T) {
		f := totpTestFactor(t, env, u, rfc6238Secret)
		code := totpTestCode(t, rfc6238Secret, env.now())
		if _, err := m.Verify(ctx, u, f, "", code); err != nil {
			t.Fatalf("first Verify = %v", err)
		}
		// Still within the window, even a few seconds later.
		advanceTestNow(t, env, 10*time.Second)
		if _, err := m.Verify(ctx, u, f, "", code); !errors.Is(err, ErrReplay) {
			t.Fatalf("second Verify = %v, want ErrReplay", err)
		}
	})
	t.Run("older step after newer", func(t *testing.T) {
		f := totpTestFactor(t, env, u, rfc6238Secret)
		now := env.now()
		if _, err := m.Verify(ctx, u, f, "", totpTestCode(t, rfc6238Secret, now.Add(30*time.Second))); err != nil {
			t.Fatalf("Verify(next step) = %v", err)
		}
		if _, err := m.Verify(ctx, u, f, "", totpTestCode(t, rfc6238Secret, now)); !errors.Is(err, ErrReplay) {
			t.Fatalf("Verify(current step) = %v, want ErrReplay", err)
		}
	})
	t.Run("next step accepted", func(t *testing.T) {
		f := totpTestFactor(t, env, u, rfc6238Secret)
		if _, err := m.Verify(ctx, u, f, "", totpTestCode(t, rfc6238Secret, env.now())); err != nil {
			t.Fatalf("Verify = %v", err)
		}
		advanceTestNow(t, env, 30*time.Second)
		if _, err := m.Verify(ctx, u, f, "", totpTestCode(t, rfc6238Secret, env.now())); err != nil {
			t.Fatalf("Verify(next step) = %v, want success", err)
		}
	})
	t.Run("another store handle", func(t *testing.T) {
		// The step is recorded in the database, not in the Factor passed in: a second
		// process holding a stale copy of the factor is refused too.
		f := totpTestFactor(t, env, u, rfc6238Secret)
		stale := *f
		code := totpTestCode(t, rfc6238Secret, env.now())
		if _, err := m.Verify(ctx, u, f, "", code); err != nil {
			t.Fatalf("Verify = %v", err)
		}
		if _, err := (&TOTP{Env: env}).Verify(ctx, u, &stale, "", code); !errors.Is(err, ErrReplay) {
			t.Fatalf("Verify(stale copy) = %v, want ErrReplay", err)
		}
	})
	for _, ev := range testAuditEvents(t, env) {
		if ev.Type != "mfa.totp.replay" || ev.Result != "failure" || ev.UserID != u.ID {
			t.Errorf("unexpected audit event %+v", ev)
		}
	}
	if n := len(testAuditEvents(t, env)); n != 3 {
		t.Errorf("%d audit events, want 3 (one per replay)", n)
	}
}

func TestTOTPConcurrentReplay(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")
	f := totpTestFactor(t, env, u, rfc6238Secret)
	code := totpTestCode(t, rfc6238Secret, env.now())

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		fi := *f
		wg.Go(func() { _, errs[i] = m.Verify(ctx, u, &fi, "", code) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrReplay):
			t.Errorf("Verify = %v, want nil or ErrReplay", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent Verify calls succeeded, want exactly 1", ok, n)
	}
}

func TestTOTPInputs(t *testing.T) {
	code := func(t *testing.T, env *Env) string { return totpTestCode(t, rfc6238Secret, env.now()) }
	fixed := func(s string) func(*testing.T, *Env) string { return func(*testing.T, *Env) string { return s } }
	tests := []struct {
		name  string
		input func(t *testing.T, env *Env) string
		ok    bool
	}{
		{"exact", code, true},
		{"spaced", func(t *testing.T, env *Env) string { c := code(t, env); return " " + c[:3] + " " + c[3:] + "\t" }, true},
		{"empty", fixed(""), false},
		{"spaces only", fixed("   "), false},
		{"five digits", func(t *testing.T, env *Env) string { return code(t, env)[:5] }, false},
		{"seven digits", func(t *testing.T, env *Env) string { return code(t, env) + "0" }, false},
		{"letters", fixed("abcdef"), false},
		{"digits and a letter", func(t *testing.T, env *Env) string { return code(t, env)[:5] + "x" }, false},
		{"dashed", func(t *testing.T, env *Env) string { c := code(t, env); return c[:3] + "-" + c[3:] }, false},
		{"full-width digits", fixed("１２３４５６"), false},
		{"wrong code", func(t *testing.T, env *Env) string {
			c := []byte(code(t, env))
			c[0] = '0' + (c[0]-'0'+1)%10
			return string(c)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			u := totpTestUser("alice@example.com")
			f := totpTestFactor(t, env, u, rfc6238Secret)
			_, err := (&TOTP{Env: env}).Verify(context.Background(), u, f, "", tt.input(t, env))
			if tt.ok && err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("Verify = %v, want ErrInvalidCode", err)
			}
		})
	}
}

func TestTOTPRefusesOtherFactors(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	alice := totpTestUser("alice@example.com")
	bob := totpTestUser("bob@example.com")
	aliceFactor := totpTestFactor(t, env, alice, rfc6238Secret)
	unconfirmed := totpTestFactor(t, env, alice, rfc6238Secret)
	unconfirmed.Confirmed = false
	if err := env.Store.UpdateFactor(ctx, unconfirmed); err != nil {
		t.Fatal(err)
	}
	otherKind := *totpTestFactor(t, env, alice, rfc6238Secret)
	otherKind.Kind = storage.FactorBackup

	tests := []struct {
		name string
		u    *storage.User
		f    *storage.Factor
	}{
		{"another user's factor", bob, aliceFactor},
		{"unconfirmed factor", alice, unconfirmed},
		{"factor of another kind", alice, &otherKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := totpTestCode(t, rfc6238Secret, env.now())
			if _, err := m.Verify(ctx, tt.u, tt.f, "", code); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("Verify = %v, want ErrInvalidCode", err)
			}
		})
	}
	// None of the refusals spent the step: the owner can still use this code.
	if _, err := m.Verify(ctx, alice, aliceFactor, "", totpTestCode(t, rfc6238Secret, env.now())); err != nil {
		t.Fatalf("Verify by owner = %v", err)
	}
}

func TestTOTPSecretBoundToFactor(t *testing.T) {
	// A sealed seed copied into another factor record does not open.
	ctx := context.Background()
	env := newTestEnv(t)
	u := totpTestUser("alice@example.com")
	a := totpTestFactor(t, env, u, rfc6238Secret)
	b := totpTestFactor(t, env, u, "JBSWY3DPEHPK3PXP")
	b.Secret = a.Secret
	_, err := (&TOTP{Env: env}).Verify(ctx, u, b, "", totpTestCode(t, rfc6238Secret, env.now()))
	if err == nil || errors.Is(err, ErrInvalidCode) {
		t.Fatalf("Verify with a moved secret = %v, want an open error", err)
	}
}

func TestTOTPEnroll(t *testing.T) {
	tests := []struct {
		name       string
		issuer     string
		req        EnrollRequest
		wantIssuer string
		wantName   string
	}{
		{"defaults", "", EnrollRequest{}, "openidp", "Authenticator app"},
		{"issuer and name", "Example Corp", EnrollRequest{Name: "Work phone"}, "Example Corp", "Work phone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			env := newTestEnv(t)
			env.Issuer = tt.issuer
			u := totpTestUser("alice@example.com")
			e, err := (&TOTP{Env: env}).Enroll(ctx, u, tt.req)
			if err != nil {
				t.Fatalf("Enroll: %v", err)
			}

			if len(e.Secret) != 32 {
				t.Errorf("secret is %d characters, want 32", len(e.Secret))
			}
			raw, err := base32.StdEncoding.DecodeString(e.Secret)
			if err != nil || len(raw) != 20 {
				t.Errorf("secret decodes to %d bytes (%v), want 20", len(raw), err)
			}

			uri, err := url.Parse(e.URI)
			if err != nil {
				t.Fatalf("parse URI: %v", err)
			}
			if uri.Scheme != "otpauth" || uri.Host != "totp" {
				t.Errorf("URI %q is not otpauth://totp/", e.URI)
			}
			if want := "/" + tt.wantIssuer + ":" + u.Email; uri.Path != want {
				t.Errorf("URI path = %q, want %q", uri.Path, want)
			}
			q := uri.Query()
			for k, want := range map[string]string{
				"secret": e.Secret, "issuer": tt.wantIssuer, "algorithm": "SHA1", "digits": "6", "period": "30",
			} {
				if got := q.Get(k); got != want {
					t.Errorf("URI %s = %q, want %q", k, got, want)
				}
			}

			img, err := png.Decode(bytes.NewReader(e.QRPNG))
			if err != nil {
				t.Fatalf("QR code is not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
				t.Errorf("QR code is %dx%d, want 256x256", b.Dx(), b.Dy())
			}

			got, err := env.Store.GetFactor(ctx, e.Factor.ID)
			if err != nil {
				t.Fatalf("GetFactor: %v", err)
			}
			if got.Confirmed || got.Kind != "totp" || got.UserID != u.ID || got.Name != tt.wantName {
				t.Errorf("stored factor = %+v, want an unconfirmed totp factor %q of the user", got, tt.wantName)
			}
			if bytes.Contains(got.Secret, []byte(e.Secret)) || bytes.Contains(got.Secret, raw) {
				t.Error("stored factor holds the seed in clear")
			}
			opened, err := env.Sealer.Open(got.Secret, []byte("factor:"+got.ID))
			if err != nil || string(opened) != e.Secret {
				t.Errorf("sealed secret opens to %q (%v), want the enrolment secret", opened, err)
			}
		})
	}
}

func TestTOTPConfirm(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")
	e, err := m.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f := e.Factor

	// Not usable for sign-in before it is confirmed.
	code := totpTestCode(t, e.Secret, env.now())
	if _, err := m.Verify(ctx, u, f, "", code); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("Verify before Confirm = %v, want ErrInvalidCode", err)
	}
	if err := m.Confirm(ctx, totpTestUser("bob@example.com"), f, "", code); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("Confirm by another user = %v, want ErrInvalidCode", err)
	}
	wrong := totpTestCode(t, e.Secret, env.now().Add(5*30*time.Second))
	if err := m.Confirm(ctx, u, f, "", wrong); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("Confirm(bad code) = %v, want ErrInvalidCode", err)
	}
	if err := m.Confirm(ctx, u, f, "", code); err != nil {
		t.Fatalf("Confirm = %v", err)
	}
	got, err := env.Store.GetFactor(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Confirmed {
		t.Fatal("factor not confirmed after Confirm")
	}
	if err := m.Confirm(ctx, u, got, "", code); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("second Confirm = %v, want ErrInvalidCode", err)
	}

	// The confirming code cannot sign in.
	if _, err := m.Verify(ctx, u, got, "", code); !errors.Is(err, ErrReplay) {
		t.Fatalf("Verify(confirming code) = %v, want ErrReplay", err)
	}
	advanceTestNow(t, env, 30*time.Second)
	if _, err := m.Verify(ctx, u, got, "", totpTestCode(t, e.Secret, env.now())); err != nil {
		t.Fatalf("Verify(next code) = %v", err)
	}
}

func TestTOTPNeverAuditsSecrets(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")
	e, err := m.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	code := totpTestCode(t, e.Secret, env.now())
	_ = m.Confirm(ctx, u, e.Factor, "", code)
	_, _ = m.Verify(ctx, u, e.Factor, "", code) // replay
	_, _ = m.Verify(ctx, u, e.Factor, "", "123456")
	events := testAuditEvents(t, env)
	if len(events) == 0 {
		t.Fatal("no audit event for the replay")
	}
	for _, ev := range events {
		s := strings.Join([]string{ev.Type, ev.Reason, ev.Result}, " ")
		if strings.Contains(s, code) || strings.Contains(s, e.Secret) {
			t.Errorf("audit event %+v contains the code or seed", ev)
		}
	}
}

// TestTOTPOathtool checks our codes against an independent implementation, oathtool
// from the OATH Toolkit.
func TestTOTPOathtool(t *testing.T) {
	path, err := exec.LookPath("oathtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("oathtool not found; CI must install oath-toolkit (Debian package oathtool)")
		}
		t.Skip("oathtool not found; install oath-toolkit (Debian package oathtool) to run")
	}
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")
	e, err := m.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "--totp", "-b", e.Secret).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	setTestNow(t, env, time.Now())
	code := strings.TrimSpace(string(out))
	if err := m.Confirm(ctx, u, e.Factor, "", code); err != nil {
		t.Fatalf("Confirm(oathtool's code %s) = %v", code, err)
	}

	// And at the RFC's fixed times, 6 digits.
	for _, unix := range []int64{59, 1111111109, 1234567890, 2000000000} {
		out, err := exec.Command(path, "--totp", "-b", "-N", "@"+strconv.FormatInt(unix, 10), rfc6238Secret).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		env := newTestEnv(t)
		setTestNow(t, env, time.Unix(unix, 0))
		f := totpTestFactor(t, env, u, rfc6238Secret)
		if _, err := (&TOTP{Env: env}).Verify(ctx, u, f, "", strings.TrimSpace(string(out))); err != nil {
			t.Errorf("Verify(oathtool's code at %d) = %v", unix, err)
		}
	}
}

// TestTOTPPending checks that an unconfirmed factor's enrolment can be shown again, the
// same seed, URI and QR code, and a confirmed or someone else's factor's cannot.
func TestTOTPPending(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	m := &TOTP{Env: env}
	u := totpTestUser("alice@example.com")
	e, err := m.Enroll(ctx, u, EnrollRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := env.Store.GetFactor(ctx, e.Factor.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Pending(u, f)
	if err != nil {
		t.Fatal(err)
	}
	if p.Secret != e.Secret || p.URI != e.URI || !bytes.Equal(p.QRPNG, e.QRPNG) || p.Factor.ID != f.ID {
		t.Errorf("Pending = %+v, want the enrolment %+v", p, e)
	}
	if _, err := m.Pending(totpTestUser("bob@example.com"), f); err == nil {
		t.Error("Pending for another user succeeded")
	}
	if err := m.Confirm(ctx, u, f, "", totpTestCode(t, e.Secret, env.now())); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pending(u, f); err == nil {
		t.Error("Pending of a confirmed factor succeeded")
	}
}
