package mfa

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/openidp/idp/idp/idptest"
	"github.com/openidp/idp/storage"
)

// TestPasskeyBrowser registers a synced passkey in a real Chromium (CDP virtual
// platform authenticator with resident keys and BE/BS set) without naming it, signs in
// with it alone (no user named in advance), and replays the attacks on a passkey
// sign-in: the same assertion twice, an assertion for another challenge (another
// sign-in, or the same sign-in's page reloaded), and an assertion without user
// verification.
func TestPasskeyBrowser(t *testing.T) {
	browser := idptest.NewChrome(t)
	env := newTestEnv(t)
	srv := newCeremonyServer(t)
	bg := context.Background()
	store := testStore(t, env)

	wa, err := NewWebAuthn(env, WebAuthnConfig{RPID: "localhost", RPDisplayName: "Test IdP", RPOrigins: []string{srv.origin}})
	if err != nil {
		t.Fatal(err)
	}
	u := &storage.User{ID: "user-passkey-1", Email: "grace@example.com", Name: "Grace Hopper", CreatedAt: env.now(), UpdatedAt: env.now()}
	if err := store.CreateUser(bg, u); err != nil {
		t.Fatal(err)
	}
	idptest.AddVirtualAuthenticator(t, browser, idptest.VirtualAuthenticator{Transport: "internal", BackupEligible: true, BackupState: true})

	// Registration: a discoverable credential is asked for, with credProps; unnamed, it
	// is named after the browser (the virtual authenticator's AAGUID is no known one).
	enr, err := wa.Enroll(bg, u, EnrollRequest{Device: "Chrome on Linux"})
	if err != nil {
		t.Fatal(err)
	}
	var creation struct {
		Selection struct {
			ResidentKey string `json:"residentKey"`
		} `json:"authenticatorSelection"`
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal(enr.Options, &creation); err != nil {
		t.Fatal(err)
	}
	if creation.Selection.ResidentKey == "" || creation.Selection.ResidentKey == "discouraged" || creation.Extensions["credProps"] != true {
		t.Fatalf("creation options do not ask for a passkey: %s", enr.Options)
	}
	res := srv.run(t, browser, "create", enr.Options, func(ctx context.Context, resp string) ([]string, error) {
		return nil, wa.Confirm(ctx, u, enr.Factor, enr.ChallengeID, resp)
	})
	if res.err != nil {
		t.Fatalf("confirm: %v", res.err)
	}
	if !strings.Contains(res.response, `"credProps":{"rk":true}`) {
		t.Errorf("the browser's credProps output is missing or says not discoverable: %.300s", res.response)
	}
	f, cred := webauthnTestFactor(t, env, enr.Factor.ID)
	if f.Name != "Chrome on Linux" || !cred.Flags.BackupEligible {
		t.Fatalf("registered factor %q BE=%v, want the browser's name and a backup-eligible credential", f.Name, cred.Flags.BackupEligible)
	}

	// signIn runs a passkey ceremony for challenge chID (with options edited by edit, if
	// not nil) and returns the browser's response, and what VerifyPasskey made of it
	// against verifyID.
	var who *storage.User
	signIn := func(t *testing.T, chID, verifyID string, edit func(map[string]any)) ceremonyResult {
		t.Helper()
		opts, err := wa.PasskeyOptions(bg, chID)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			var m map[string]any
			if err := json.Unmarshal(opts, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if opts, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		return srv.run(t, browser, "get", opts, func(ctx context.Context, resp string) ([]string, error) {
			var amr []string
			var err error
			who, amr, err = wa.VerifyPasskey(ctx, verifyID, resp, store.GetUser)
			return amr, err
		})
	}

	res = signIn(t, "passkey:ar-1", "passkey:ar-1", nil)
	if res.err != nil {
		t.Fatalf("passkey sign-in: %v", res.err)
	}
	if who == nil || who.ID != u.ID {
		t.Fatalf("passkey signed in %+v, want %s", who, u.ID)
	}
	if got := slices.Sorted(slices.Values(res.amr)); !slices.Equal(got, []string{AMRMFA, AMRSoftware, AMRUser}) {
		t.Fatalf("amr %v, want mfa swk user", got)
	}
	if userID, err := PasskeyUserID(res.response); err != nil || userID != u.ID {
		t.Fatalf("PasskeyUserID = %q, %v", userID, err)
	}
	good := res.response

	t.Run("replayed assertion", func(t *testing.T) {
		if _, _, err := wa.VerifyPasskey(bg, "passkey:ar-1", good, store.GetUser); !errors.Is(err, ErrExpired) {
			t.Fatalf("replay: %v, want ErrExpired", err)
		}
	})
	t.Run("assertion for the same sign-in's next challenge", func(t *testing.T) {
		// The page is shown again: the sign-in's challenge is replaced.
		if _, err := wa.PasskeyOptions(bg, "passkey:ar-1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := wa.VerifyPasskey(bg, "passkey:ar-1", good, store.GetUser); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("old assertion on the new challenge: %v, want ErrInvalidCode", err)
		}
	})
	t.Run("assertion for another sign-in", func(t *testing.T) {
		if _, err := wa.PasskeyOptions(bg, "passkey:ar-3"); err != nil {
			t.Fatal(err)
		}
		res := signIn(t, "passkey:ar-2", "passkey:ar-3", nil)
		if !errors.Is(res.err, ErrInvalidCode) || !strings.Contains(strings.ToLower(res.err.Error()), "challenge") {
			t.Fatalf("assertion made for ar-2 checked against ar-3: %v, want ErrInvalidCode for the challenge", res.err)
		}
	})
	t.Run("no user verification", func(t *testing.T) {
		// A client that asks the authenticator not to verify the user: the signed
		// authenticator data says UV=0, and the ceremony the server stored requires it.
		res := signIn(t, "passkey:ar-4", "passkey:ar-4", func(pk map[string]any) { pk["userVerification"] = "discouraged" })
		if !errors.Is(res.err, ErrInvalidCode) || !strings.Contains(strings.ToLower(res.err.Error()), "verif") {
			t.Fatalf("assertion without user verification: %v, want ErrInvalidCode for the missing user verification", res.err)
		}
	})
	t.Run("unknown user handle", func(t *testing.T) {
		// Verified against a store that has no such person.
		opts, err := wa.PasskeyOptions(bg, "passkey:ar-5")
		if err != nil {
			t.Fatal(err)
		}
		res := srv.run(t, browser, "get", opts, func(ctx context.Context, resp string) ([]string, error) {
			_, amr, err := wa.VerifyPasskey(ctx, "passkey:ar-5", resp, func(context.Context, string) (*storage.User, error) {
				return nil, storage.ErrNotFound
			})
			return amr, err
		})
		if !errors.Is(res.err, ErrInvalidCode) {
			t.Fatalf("assertion of an unknown person: %v, want ErrInvalidCode", res.err)
		}
	})
	t.Run("a legitimate sign-in still works after the refusals", func(t *testing.T) {
		if res := signIn(t, "passkey:ar-6", "passkey:ar-6", nil); res.err != nil {
			t.Fatalf("passkey sign-in: %v", res.err)
		}
	})
}

// TestCredentialName: a credential is named after a known authenticator, else after the
// browser; a credential the browser says is not discoverable is a security key.
func TestCredentialName(t *testing.T) {
	aaguid := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	yes, no := true, false
	for _, tc := range []struct {
		name   string
		aaguid []byte
		props  *protocol.CredentialPropertiesOutput
		device string
		want   string
	}{
		{"iCloud Keychain", aaguid("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"), &protocol.CredentialPropertiesOutput{RK: &yes}, "Safari on macOS", "iCloud Keychain"},
		{"Google Password Manager", aaguid("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"), nil, "Chrome on Android", "Google Password Manager"},
		{"YubiKey 5", aaguid("cb69481e-8ff7-4039-93ec-0a2729a154a8"), &protocol.CredentialPropertiesOutput{RK: &no}, "Firefox on Linux", "YubiKey 5"},
		{"unknown authenticator: the browser", aaguid("01020304-0506-0708-0102-030405060708"), &protocol.CredentialPropertiesOutput{RK: &yes}, "Chrome on Linux", "Chrome on Linux"},
		{"zero AAGUID (attestation none)", make([]byte, 16), nil, "Edge on Windows", "Edge on Windows"},
		{"not discoverable", nil, &protocol.CredentialPropertiesOutput{RK: &no}, "Chrome on Linux", defaultKeyName},
		{"nothing known", nil, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := credentialName(tc.aaguid, tc.props, tc.device); got != tc.want {
				t.Fatalf("credentialName = %q, want %q", got, tc.want)
			}
		})
	}
}
