package mfa

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// The WebAuthn fuzz targets send fuzzed attestations (Confirm) and assertions (Verify)
// for real ceremonies. The fuzzer's input is the browser's side of the ceremony: the
// client data (with "$CHALLENGE" and "$ORIGIN" standing for the ceremony's challenge and
// the relying party's origin), the authenticator data and the credential id; the target
// signs with a test authenticator's key when the input says so, so that the fuzzer
// reaches the checks behind the signature. An input may also be a whole raw response.
//
// What must hold: every refusal is an ErrInvalidCode, ErrExpired or ErrSignCount (the
// errors the idp package answers as a wrong response; anything else would be a server
// error), and an accepted response is one the WebAuthn rules accept, checked here on
// their own: the type, challenge and origin of the client data, the RP ID hash and the
// user-present flag of the authenticator data, the signature, the signature counter;
// and a ceremony is never accepted twice.

const (
	fuzzRPID   = "login.example"
	fuzzOrigin = "https://login.example"
)

var fuzzRPIDHash = sha256.Sum256([]byte(fuzzRPID))

// webauthnFuzzEnv is an Env on a fresh SQLite database with a WebAuthn relying party.
func webauthnFuzzEnv(f *testing.F) (*Env, *WebAuthn, *storage.User) {
	f.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "idp.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	env := &Env{Store: store, Sealer: sealer, Now: time.Now, Logger: slog.New(slog.DiscardHandler), Issuer: "Fuzz IdP",
		Audit: func(context.Context, storage.AuditEvent) {}}
	wa, err := NewWebAuthn(env, WebAuthnConfig{RPID: fuzzRPID, RPOrigins: []string{fuzzOrigin}})
	if err != nil {
		f.Fatal(err)
	}
	u := &storage.User{ID: "fuzz-user-1", Email: "fuzz@example.com", CreatedAt: now, UpdatedAt: now}
	if err := store.CreateUser(ctx, u); err != nil {
		f.Fatal(err)
	}
	return env, wa, u
}

// fuzzKey is a test authenticator's P-256 key.
type fuzzKey struct {
	priv *ecdsa.PrivateKey
	cose []byte // the public key, COSE_Key
}

func newFuzzKey(tb testing.TB) *fuzzKey {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	point, err := priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		tb.Fatal(err)
	}
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256), XCoord: point[1:33], YCoord: point[33:],
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &fuzzKey{priv: priv, cose: cose}
}

// sign signs an assertion: authData || SHA-256(clientDataJSON).
func (k *fuzzKey) sign(tb testing.TB, authData []byte, clientData string) []byte {
	tb.Helper()
	cdHash := sha256.Sum256([]byte(clientData))
	digest := sha256.Sum256(append(slices.Clone(authData), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

func (k *fuzzKey) verify(authData []byte, clientData string, sig []byte) bool {
	cdHash := sha256.Sum256([]byte(clientData))
	digest := sha256.Sum256(append(slices.Clone(authData), cdHash[:]...))
	return ecdsa.VerifyASN1(&k.priv.PublicKey, digest[:], sig)
}

// fuzzAuthData builds authenticator data for rpID with flags and counter, and attested
// credential data when credID is not nil.
func fuzzAuthData(rpID string, flags byte, counter uint32, credID, cose []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	if credID != nil {
		out = append(out, make([]byte, 16)...) // AAGUID
		out = binary.BigEndian.AppendUint16(out, uint16(len(credID)))
		out = append(out, credID...)
		out = append(out, cose...)
	}
	return out
}

// Authenticator data flags.
const (
	waFlagUP = 0x01
	waFlagUV = 0x04
	waFlagBE = 0x08
	waFlagAT = 0x40
)

func fuzzB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// fuzzCeremonyChallenge returns the challenge of creation or request options.
func fuzzCeremonyChallenge(tb testing.TB, options []byte) string {
	tb.Helper()
	var o struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.Challenge == "" {
		tb.Fatalf("options %s: %v", options, err)
	}
	return o.Challenge
}

// fuzzCeremonyError fails unless err is one of the errors of a wrong response.
func fuzzCeremonyError(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrSignCount) {
		t.Fatalf("%s: error %v is not ErrInvalidCode, ErrExpired or ErrSignCount", what, err)
	}
}

// fuzzClientData is what the test requires of accepted client data.
func fuzzClientData(t *testing.T, what, clientData, typ, challenge string) {
	t.Helper()
	var cd struct{ Type, Challenge, Origin string }
	if err := json.Unmarshal([]byte(clientData), &cd); err != nil {
		t.Fatalf("%s: accepted client data that is not JSON: %v", what, err)
	}
	if cd.Type != typ || cd.Challenge != challenge || cd.Origin != fuzzOrigin {
		t.Fatalf("%s: accepted client data of type %q, challenge %q, origin %q; want %q, %q, %q",
			what, cd.Type, cd.Challenge, cd.Origin, typ, challenge, fuzzOrigin)
	}
}

// FuzzWebAuthnConfirm registers credentials with fuzzed attestations ("none" format
// unless the input names another).
func FuzzWebAuthnConfirm(f *testing.F) {
	env, wa, u := webauthnFuzzEnv(f)
	ctx := context.Background()
	key := newFuzzKey(f)
	credID := []byte("fuzz-credential-1")
	good := `{"type":"webauthn.create","challenge":"$CHALLENGE","origin":"$ORIGIN","crossOrigin":false}`
	authData := fuzzAuthData(fuzzRPID, waFlagUP|waFlagUV|waFlagAT, 0, credID, key.cose)
	type seed struct {
		raw, clientData string
		authData        []byte
		format          string
		id              []byte
	}
	seeds := []seed{
		{"", good, authData, "none", credID},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUP|waFlagAT, 7, credID, key.cose), "none", credID},
		{"", good, authData, "packed", credID},
		{"", good, authData, "none", []byte("another-id")},
		{"", strings.Replace(good, "webauthn.create", "webauthn.get", 1), authData, "none", credID},
		{"", strings.Replace(good, "$ORIGIN", "https://evil.example", 1), authData, "none", credID},
		{"", strings.Replace(good, "$CHALLENGE", "AAAA", 1), authData, "none", credID},
		{"", good, fuzzAuthData("evil.example", waFlagUP|waFlagUV|waFlagAT, 0, credID, key.cose), "none", credID},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUV|waFlagAT, 0, credID, key.cose), "none", credID},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUP|waFlagUV, 0, nil, nil), "none", credID},
		{"", good, authData[:40], "none", credID},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUP|waFlagUV|waFlagAT, 0, credID, []byte{0xa1, 0x01, 0x02}), "none", credID},
		{"", "not json", authData, "none", credID},
		{"", good, authData, "", nil},
		{`{}`, "", nil, "", nil},
		{`{"id":"x"}`, "", nil, "", nil},
		{`{"id":"eA","rawId":"eA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`, "", nil, "", nil},
		{`[`, "", nil, "", nil},
	}
	for _, s := range seeds {
		f.Add(s.raw, s.clientData, s.authData, s.format, s.id)
	}
	f.Fuzz(func(t *testing.T, raw, clientData string, authData []byte, format string, id []byte) {
		enr, err := wa.Enroll(ctx, u, EnrollRequest{Name: "Key"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = env.Store.DeleteFactor(ctx, u.ID, enr.Factor.ID) }()
		challenge := fuzzCeremonyChallenge(t, enr.Options)
		clientData = strings.NewReplacer("$CHALLENGE", challenge, "$ORIGIN", fuzzOrigin).Replace(clientData)
		response := raw
		if raw == "" {
			att, err := webauthncbor.Marshal(map[string]any{"fmt": format, "attStmt": map[string]any{}, "authData": authData})
			if err != nil {
				t.Fatal(err)
			}
			response = fuzzJSON(t, map[string]any{
				"id": fuzzB64(id), "rawId": fuzzB64(id), "type": "public-key",
				"response": map[string]any{"clientDataJSON": fuzzB64([]byte(clientData)), "attestationObject": fuzzB64(att)},
			})
		} else {
			response = strings.ReplaceAll(raw, "$CHALLENGE", challenge)
		}
		what := "attestation " + response
		err = wa.Confirm(ctx, u, enr.Factor, enr.ChallengeID, response)
		if err != nil {
			fuzzCeremonyError(t, what, err)
			return
		}
		if raw != "" {
			t.Fatalf("%s: a raw response the test did not build was accepted", what)
		}
		fuzzClientData(t, what, clientData, "webauthn.create", challenge)
		if len(authData) < 37 || !bytes.Equal(authData[:32], fuzzRPIDHash[:]) || authData[32]&waFlagUP == 0 || authData[32]&waFlagAT == 0 {
			t.Fatalf("%s: accepted authenticator data %x (RP ID hash, UP and AT flags)", what, authData)
		}
		stored, err := env.Store.GetFactor(ctx, enr.Factor.ID)
		if err != nil || !stored.Confirmed {
			t.Fatalf("%s: accepted, but the factor is not confirmed (%v)", what, err)
		}
		if err := wa.Confirm(ctx, u, stored, enr.ChallengeID, response); err == nil {
			t.Fatalf("%s: the same registration was accepted twice", what)
		}
	})
}

// FuzzWebAuthnVerify signs in with fuzzed assertions for a registered credential.
func FuzzWebAuthnVerify(f *testing.F) {
	env, wa, u := webauthnFuzzEnv(f)
	ctx := context.Background()
	key := newFuzzKey(f)
	credID := []byte("fuzz-credential-1")
	cred := gowebauthn.Credential{
		ID: credID, PublicKey: key.cose, AttestationType: "none",
		Flags:         gowebauthn.CredentialFlags{UserPresent: true, UserVerified: true},
		Authenticator: gowebauthn.Authenticator{AAGUID: make([]byte, 16)},
	}
	factor := &storage.Factor{ID: "fuzz-factor-1", UserID: u.ID, Kind: storage.FactorWebAuthn, Name: "Key", Confirmed: true, CreatedAt: time.Now()}
	var err error
	if factor.Secret, err = wa.sealCredential(factor.ID, &cred); err != nil {
		f.Fatal(err)
	}
	if err := env.Store.CreateFactor(ctx, factor); err != nil {
		f.Fatal(err)
	}
	good := `{"type":"webauthn.get","challenge":"$CHALLENGE","origin":"$ORIGIN","crossOrigin":false}`
	authData := fuzzAuthData(fuzzRPID, waFlagUP|waFlagUV, 0, nil, nil)
	type seed struct {
		raw, clientData string
		authData, sig   []byte
		sign            bool
		id, userHandle  []byte
	}
	seeds := []seed{
		{"", good, authData, nil, true, nil, nil},
		{"", good, authData, nil, true, nil, []byte(u.ID)},
		{"", good, authData, nil, true, nil, []byte("someone-else")},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUP, 5, nil, nil), nil, true, nil, nil},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUP|waFlagUV|waFlagBE, 9, nil, nil), nil, true, nil, nil},
		{"", good, fuzzAuthData(fuzzRPID, waFlagUV, 0, nil, nil), nil, true, nil, nil},
		{"", good, fuzzAuthData("evil.example", waFlagUP|waFlagUV, 0, nil, nil), nil, true, nil, nil},
		{"", strings.Replace(good, "webauthn.get", "webauthn.create", 1), authData, nil, true, nil, nil},
		{"", strings.Replace(good, "$ORIGIN", "https://evil.example", 1), authData, nil, true, nil, nil},
		{"", strings.Replace(good, "$CHALLENGE", "AAAA", 1), authData, nil, true, nil, nil},
		{"", good, authData, []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, false, nil, nil},
		{"", good, authData, nil, true, []byte("another-credential"), nil},
		{"", good, authData[:20], nil, true, nil, nil},
		{"", "{", authData, nil, true, nil, nil},
		{`{}`, "", nil, nil, false, nil, nil},
		{`{"id":"ZnV6ei1jcmVkZW50aWFsLTE","rawId":"ZnV6ei1jcmVkZW50aWFsLTE","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`, "", nil, nil, false, nil, nil},
		{`null`, "", nil, nil, false, nil, nil},
	}
	for _, s := range seeds {
		f.Add(s.raw, s.clientData, s.authData, s.sig, s.sign, s.id, s.userHandle)
	}
	var storedCount uint32 // the credential's signature counter, as the test expects it
	f.Fuzz(func(t *testing.T, raw, clientData string, authData, sig []byte, sign bool, id, userHandle []byte) {
		ch, err := wa.Challenge(ctx, u, factor)
		if err != nil {
			t.Fatal(err)
		}
		challenge := fuzzCeremonyChallenge(t, ch.Options)
		clientData = strings.NewReplacer("$CHALLENGE", challenge, "$ORIGIN", fuzzOrigin).Replace(clientData)
		if len(id) == 0 {
			id = credID
		}
		if sign {
			sig = key.sign(t, authData, clientData)
		}
		response := strings.ReplaceAll(raw, "$CHALLENGE", challenge)
		if raw == "" {
			resp := map[string]any{"clientDataJSON": fuzzB64([]byte(clientData)), "authenticatorData": fuzzB64(authData), "signature": fuzzB64(sig)}
			if len(userHandle) > 0 {
				resp["userHandle"] = fuzzB64(userHandle)
			}
			response = fuzzJSON(t, map[string]any{"id": fuzzB64(id), "rawId": fuzzB64(id), "type": "public-key", "response": resp})
		}
		what := "assertion " + response
		amr, err := wa.Verify(ctx, u, factor, ch.ID, response)
		if err != nil {
			fuzzCeremonyError(t, what, err)
			return
		}
		if raw != "" {
			t.Fatalf("%s: a raw response the test did not build was accepted", what)
		}
		fuzzClientData(t, what, clientData, "webauthn.get", challenge)
		if len(authData) < 37 || !bytes.Equal(authData[:32], fuzzRPIDHash[:]) || authData[32]&waFlagUP == 0 {
			t.Fatalf("%s: accepted authenticator data %x (RP ID hash, UP flag)", what, authData)
		}
		if !bytes.Equal(id, credID) || !key.verify(authData, clientData, sig) {
			t.Fatalf("%s: accepted credential %q with signature %x", what, id, sig)
		}
		counter := binary.BigEndian.Uint32(authData[33:37])
		if storedCount != 0 && counter <= storedCount {
			t.Fatalf("%s: accepted signature counter %d after %d", what, counter, storedCount)
		}
		storedCount = max(storedCount, counter)
		if !slices.Contains(amr, AMRHardware) && !slices.Contains(amr, AMRSoftware) || slices.Contains(amr, AMRUser) != (authData[32]&waFlagUV != 0) {
			t.Fatalf("%s: amr %v for flags %08b", what, amr, authData[32])
		}
		if _, err := wa.Verify(ctx, u, factor, ch.ID, response); !errors.Is(err, ErrExpired) {
			t.Fatalf("%s: replayed assertion: %v, want ErrExpired", what, err)
		}
	})
}

func fuzzJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
