package conformance

import (
	"errors"
	"go/token"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openidp/idp/storage"
)

// concurrency is how many goroutines race for one single-use secret.
const concurrency = 20

// clock returns the current time as the suite uses it: UTC, microsecond precision.
func clock() time.Time {
	return time.Now().Truncate(time.Microsecond).UTC()
}

func ptr[T any](v T) *T { return &v }

// must fails the test now when err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantErr fails the test when err is not (wrapping) want.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// equal reports a difference between got and want as a diff (-want +got), compared with
// equalOpts.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if diff := cmp.Diff(want, got, equalOpts); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// equalOpts let backends differ where the suite does not care: a time is compared as an
// instant (its location and monotonic reading do not count, and a zero time is zero in
// any location), and a nil slice equals an empty one of the same type. Both rules reach
// only through pointers, slices and exported struct fields; maps, arrays, interfaces and
// unexported fields keep go-cmp's defaults (a nil and an empty map differ, and so do a
// nil and an empty slice inside a map).
var equalOpts = cmp.Options{
	cmp.Exporter(func(reflect.Type) bool { return true }), // unexported fields are compared too
	cmp.FilterPath(lenient, cmp.Options{
		cmp.Comparer(func(a, b time.Time) bool { return a.Round(0).Equal(b.Round(0)) }),
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type().Kind() == reflect.Slice }, cmpopts.EquateEmpty()),
	}),
}

// lenient reports whether the value at p is reached only through pointers, slices and
// exported struct fields, where the rules of equalOpts apply.
func lenient(p cmp.Path) bool {
	for i, step := range p {
		if f, ok := step.(cmp.StructField); ok && !token.IsExported(f.Name()) {
			return false
		}
		if i < len(p)-1 {
			switch step.Type().Kind() {
			case reflect.Pointer, reflect.Struct, reflect.Slice:
			default:
				return false
			}
		}
	}
	return true
}

// errCase is one call expected to fail with a sentinel error.
type errCase struct {
	name string
	call func() error
	want error
}

// runErrCases runs each case as a subtest.
func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.call(), tc.want)
		})
	}
}

// race runs fn(0) … fn(n-1) in n goroutines released at once and returns how many
// returned nil. An error other than loser fails the test.
func race(t *testing.T, n int, loser error, fn func(i int) error) int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			err := fn(i)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, loser):
				t.Errorf("call %d: %v, want nil or %v", i, err, loser)
			}
		})
	}
	close(start)
	wg.Wait()
	return wins
}

// wantBackupCodes fails the test unless userID has want unused backup codes.
func wantBackupCodes(t *testing.T, s storage.Storage, userID string, want int) {
	t.Helper()
	n, err := s.CountBackupCodes(t.Context(), userID)
	must(t, err)
	if n != want {
		t.Errorf("CountBackupCodes(%s) = %d, want %d", userID, n, want)
	}
}

// Fixtures. Every field is set so that a column the backend forgets shows up.

func newClient(id string, created time.Time) *storage.Client {
	return &storage.Client{
		ID:                     id,
		Name:                   "Client " + id,
		SecretHash:             []byte{0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c, 0x7d, 0x65, 0x00, 0xff},
		RedirectURIs:           []string{"https://" + id + ".example/cb", "http://127.0.0.1/cb"},
		PostLogoutRedirectURIs: []string{"https://" + id + ".example/bye"},
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
		SkipConsent:            true,
		AccessTokenFormat:      "jwt",
		IDTokenSigningAlg:      "ES256",
		AccessTokenLifetime:    5 * time.Minute,
		IDTokenLifetime:        time.Hour + 123*time.Nanosecond,
		RefreshTokenLifetime:   30 * 24 * time.Hour,
		Policy:                 fullPolicy(),
		BackchannelLogoutURI:   "https://" + id + ".example/backchannel",
		// private_key_jwt by value and by URL at once: only the storage is tested here.
		TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT,
		JWKS:                    `{"keys":[]}`,
		JWKSURI:                 "https://" + id + ".example/jwks",
		RequirePAR:              true,
		CreatedAt:               created,
	}
}

// fullPolicy is an MFA policy with every field set.
func fullPolicy() storage.MFAPolicy {
	return storage.MFAPolicy{
		MFA:               "required",
		Factors:           []storage.FactorKind{"webauthn", "totp"},
		PhishingResistant: true,
		MaxAge:            12*time.Hour + 345*time.Nanosecond,
		RememberDevice:    30 * 24 * time.Hour,
	}
}

func newAuthRequest(id string, now time.Time) *storage.AuthRequest {
	return &storage.AuthRequest{
		ID:                  id,
		ClientID:            "client-1",
		RedirectURI:         "https://client-1.example/cb",
		State:               "state-" + id,
		Nonce:               "nonce-" + id,
		Scopes:              []string{"openid", "email"},
		ResponseType:        "code",
		ResponseMode:        "query",
		Prompt:              []string{"login", "consent"},
		MaxAge:              ptr(int64(300)),
		ACRValues:           []string{"urn:acr:mfa"},
		EssentialACR:        []string{"urn:acr:phr"},
		LoginHint:           "alice@example.com",
		UILocales:           []string{"de-CH", "en"},
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		HintUserID:          "user-1",
		Resources:           []string{"https://api.example/", "urn:example:billing"},
		CreatedAt:           now,
		ExpiresAt:           now.Add(10 * time.Minute),
		Login: storage.AuthLogin{
			UserID:    "user-1",
			SessionID: "session-1",
			AuthTime:  now.Add(-time.Minute),
			AMR:       []string{"pwd", "otp"},
			ACR:       "urn:acr:mfa",
			Done:      true,
			Grace:     true,
		},
	}
}

func newSession(id, userID string, created time.Time) *storage.Session {
	return &storage.Session{
		ID:         id,
		TokenHash:  "hash-" + id,
		UserID:     userID,
		AuthTime:   created,
		PasswordAt: created.Add(-2 * time.Minute),
		MFAAt:      created.Add(-time.Minute),
		Factors:    []storage.FactorKind{"totp"},
		AMR:        []string{"pwd"},
		ACR:        "urn:acr:password",
		SignIn:     []string{storage.SignInPassword, "totp"},
		IP:         "2001:db8::1",
		UserAgent:  "Mozilla/5.0 (test)",
		CreatedAt:  created,
		LastSeenAt: created,
		ExpiresAt:  created.Add(24 * time.Hour),
	}
}

func newAccessToken(id, userID, familyID string, now time.Time) *storage.AccessToken {
	return &storage.AccessToken{
		ID:        id,
		ClientID:  "client-1",
		UserID:    userID,
		Audience:  []string{"client-1", "https://api.example"},
		Scopes:    []string{"openid", "offline_access"},
		AuthTime:  now.Add(-time.Minute),
		AMR:       []string{"pwd"},
		ACR:       "urn:acr:password",
		SessionID: "session-1",
		FamilyID:  familyID,
		CreatedAt: now,
		ExpiresAt: now.Add(5 * time.Minute),
	}
}

func newRefreshToken(id, userID, familyID string, now time.Time) *storage.RefreshToken {
	return &storage.RefreshToken{
		ID:        id,
		TokenHash: "hash-" + id,
		FamilyID:  familyID,
		ClientID:  "client-1",
		UserID:    userID,
		Audience:  []string{"client-1"},
		Scopes:    []string{"openid", "offline_access"},
		AuthTime:  now.Add(-time.Minute),
		AMR:       []string{"pwd"},
		ACR:       "urn:acr:password",
		SessionID: "session-1",
		Resources: []string{"https://api.example/"},
		CreatedAt: now,
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

func newFactor(id, userID string, kind storage.FactorKind, created time.Time) *storage.Factor {
	return &storage.Factor{
		ID:        id,
		UserID:    userID,
		Kind:      kind,
		Name:      "Factor " + id,
		Target:    "+41790000000",
		Secret:    []byte("sealed\x00\xff" + id),
		Confirmed: true,
		LastStep:  56_000_000,
		CreatedAt: created,
	}
}

func newChallenge(id string, now time.Time) *storage.Challenge {
	return &storage.Challenge{
		ID:        id,
		UserID:    "user-a",
		FactorID:  "factor-email",
		Kind:      "email",
		CodeHash:  "5b1c0e0d4f0e0b6a9c1d" + id,
		Data:      []byte("{\"n\":\"\x00\xff\"}"),
		CreatedAt: now,
		ExpiresAt: now.Add(5 * time.Minute),
	}
}

func newDevice(id, userID string, created time.Time) *storage.Device {
	return &storage.Device{
		ID:         id,
		UserID:     userID,
		TokenHash:  "hash-" + id,
		Name:       "Firefox on Linux",
		IP:         "2001:db8::7",
		CreatedAt:  created,
		LastUsedAt: created.Add(time.Minute),
		ExpiresAt:  created.Add(30 * 24 * time.Hour),
	}
}
