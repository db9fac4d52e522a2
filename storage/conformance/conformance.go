package conformance

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// RunTests runs the conformance suite against the backend made by newStore. newStore
// must return a fresh, empty, already migrated store for every call and register its
// Close with t.Cleanup. Every subtest gets its own store.
//
// Times in the suite are truncated to microseconds, so a backend that keeps microsecond
// precision (PostgreSQL) passes. Nil and empty slices are treated as equal.
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Storage)
	}{
		{"Users", testUsers},
		{"Clients", testClients},
		{"AuthRequests", testAuthRequests},
		{"AuthCodes", testAuthCodes},
		{"AuthCodeConcurrentConsume", testAuthCodeConcurrentConsume},
		{"CodeReplay", testCodeReplay},
		{"Sessions", testSessions},
		{"SessionTokenRotation", testSessionTokenRotation},
		{"Consents", testConsents},
		{"AccessTokens", testAccessTokens},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshConcurrentRotate", testRefreshConcurrentRotate},
		{"RevokeRefreshFamily", testRevokeRefreshFamily},
		{"RevokeUserTokens", testRevokeUserTokens},
		{"SigningKeys", testSigningKeys},
		{"Audit", testAudit},
		{"AuditChain", testAuditChain},
		{"RateLimits", testRateLimits},
		{"Attempts", testAttempts},
		{"AttemptsConcurrent", testAttemptsConcurrent},
		{"DeleteExpired", testDeleteExpired},
		{"MigrateAndPing", testMigrateAndPing},
		{"Factors", testFactors},
		{"ListFactorsOrder", testListFactorsOrder},
		{"DeleteFactor", testDeleteFactor},
		{"AdvanceTOTPStep", testAdvanceTOTPStep},
		{"AdvanceTOTPStepConcurrent", testAdvanceTOTPStepConcurrent},
		{"BackupCodes", testBackupCodes},
		{"BackupCodeConcurrentConsume", testBackupCodeConcurrentConsume},
		{"Challenges", testChallenges},
		{"ChallengeConcurrentAttempts", testChallengeConcurrentAttempts},
		{"FailureCounters", testFailureCounters},
		{"Secrets", testSecrets},
		{"SecretConcurrentCreate", testSecretConcurrentCreate},
		{"UpdateSigningKeySealed", testUpdateSigningKeySealed},
		{"DeleteExpiredMFA", testDeleteExpiredMFA},
		{"SessionClients", testSessionClients},
		{"TypePolicies", testTypePolicies},
		{"MFAPolicyRoundTrip", testMFAPolicyRoundTrip},
		{"Devices", testDevices},
		{"DeleteExpiredDevices", testDeleteExpiredDevices},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

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

// equal reports a difference between got and want, compared after normalize.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := normalize(reflect.ValueOf(got)), normalize(reflect.ValueOf(want))
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		t.Errorf("%s:\n got  %s\n want %s", what, show(g), show(w))
	}
}

var timeType = reflect.TypeFor[time.Time]()

// normalize returns a copy of v in which times are UTC without monotonic reading (the
// zero time stays zero) and empty slices are nil, so that backends may differ there.
func normalize(v reflect.Value) reflect.Value {
	if !v.IsValid() {
		return v
	}
	if v.Type() == timeType {
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return reflect.ValueOf(time.Time{})
		}
		return reflect.ValueOf(tm.Round(0).UTC())
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(normalize(v.Elem()))
		return p
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range c.NumField() {
			if f := c.Field(i); f.CanSet() {
				f.Set(normalize(f))
			}
		}
		return c
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(normalize(v.Index(i)))
		}
		return c
	}
	return v
}

// show formats a normalized value for a failure message, following pointers.
func show(v reflect.Value) string {
	if !v.IsValid() {
		return "<nil>"
	}
	if v.Type() == timeType {
		return v.Interface().(time.Time).Format(time.RFC3339Nano)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "nil"
		}
		return "&" + show(v.Elem())
	case reflect.Struct:
		s := v.Type().Name() + "{"
		for i := range v.NumField() {
			if i > 0 {
				s += " "
			}
			s += v.Type().Field(i).Name + ":" + show(v.Field(i))
		}
		return s + "}"
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("%x", v.Bytes())
		}
		s := "["
		for i := range v.Len() {
			if i > 0 {
				s += " "
			}
			s += show(v.Index(i))
		}
		return s + "]"
	}
	return fmt.Sprintf("%#v", v.Interface())
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
		CreatedAt:              created,
	}
}

// fullPolicy is an MFA policy with every field set.
func fullPolicy() storage.MFAPolicy {
	return storage.MFAPolicy{
		MFA:               "required",
		Factors:           []string{"webauthn", "totp"},
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
		LoginHint:           "alice@example.com",
		UILocales:           []string{"de-CH", "en"},
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		HintUserID:          "user-1",
		CreatedAt:           now,
		ExpiresAt:           now.Add(10 * time.Minute),
		Login: storage.AuthLogin{
			UserID:    "user-1",
			SessionID: "session-1",
			AuthTime:  now.Add(-time.Minute),
			AMR:       []string{"pwd", "otp"},
			ACR:       "urn:acr:mfa",
			Done:      true,
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
		Factors:    []string{"totp"},
		AMR:        []string{"pwd"},
		ACR:        "urn:acr:password",
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
		CreatedAt: now,
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

func testUsers(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	alice := &storage.User{
		ID: "user-alice", Email: "Alice@Example.COM", Name: "Alice",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		Type:         "staff", Groups: []string{"engineering", "on-call"},
		MFAGraceStarted: now.Add(-time.Hour), MFAGraceLogins: 2,
		CreatedAt: now, UpdatedAt: now,
	}
	bob := &storage.User{ID: "user-bob", Email: "bob@example.com", Name: "Bob", CreatedAt: now.Add(time.Second), UpdatedAt: now}
	// Carol is inserted last but created first: listing follows CreatedAt.
	carol := &storage.User{ID: "user-carol", Email: "carol@example.com", Disabled: true, CreatedAt: now.Add(-time.Hour)}
	for _, u := range []*storage.User{alice, bob, carol} {
		must(t, s.CreateUser(ctx, u))
	}

	wantAlice := *alice
	wantAlice.Email = "alice@example.com" // stored lower-cased
	got, err := s.GetUser(ctx, alice.ID)
	must(t, err)
	equal(t, "GetUser", got, &wantAlice)
	for _, email := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.COM"} {
		got, err := s.GetUserByEmail(ctx, email)
		must(t, err)
		equal(t, "GetUserByEmail("+email+")", got, &wantAlice)
	}

	runErrCases(t, []errCase{
		{"CreateUser duplicate id", func() error {
			return s.CreateUser(ctx, &storage.User{ID: alice.ID, Email: "new@example.com", CreatedAt: now})
		}, storage.ErrAlreadyExists},
		{"CreateUser duplicate email in other case", func() error {
			return s.CreateUser(ctx, &storage.User{ID: "user-new", Email: "ALICE@example.com", CreatedAt: now})
		}, storage.ErrAlreadyExists},
		{"GetUser missing", func() error {
			_, err := s.GetUser(ctx, "user-missing")
			return err
		}, storage.ErrNotFound},
		{"GetUserByEmail missing", func() error {
			_, err := s.GetUserByEmail(ctx, "missing@example.com")
			return err
		}, storage.ErrNotFound},
		{"UpdateUser missing", func() error {
			return s.UpdateUser(ctx, &storage.User{ID: "user-missing", Email: "missing@example.com"})
		}, storage.ErrNotFound},
		{"UpdateUser to taken email", func() error {
			u := *bob
			u.Email = "ALICE@example.com"
			return s.UpdateUser(ctx, &u)
		}, storage.ErrAlreadyExists},
	})

	// The update changes every field, and ends Alice's grace (zero time, zero logins).
	upd := storage.User{
		ID: alice.ID, Email: "Alice.B@Example.org", Name: "Alice B", PasswordHash: "$argon2id$new",
		Disabled: true, Type: "admin", Groups: []string{"admins"},
		UpdatedAt: now.Add(time.Hour), CreatedAt: now.Add(2 * time.Hour),
	}
	must(t, s.UpdateUser(ctx, &upd))
	wantAlice = upd
	wantAlice.Email = "alice.b@example.org"
	wantAlice.CreatedAt = alice.CreatedAt // UpdateUser leaves CreatedAt alone
	got, err = s.GetUserByEmail(ctx, "alice.b@EXAMPLE.org")
	must(t, err)
	equal(t, "user after UpdateUser", got, &wantAlice)
	_, err = s.GetUserByEmail(ctx, "alice@example.com")
	wantErr(t, err, storage.ErrNotFound)

	// Bob had no type, groups or grace: the update sets them.
	wantBob := *bob
	wantBob.Type, wantBob.Groups = "customer", []string{"beta"}
	wantBob.MFAGraceStarted, wantBob.MFAGraceLogins = now.Add(-time.Minute), 1
	wantBob.UpdatedAt = now.Add(time.Minute)
	must(t, s.UpdateUser(ctx, &wantBob))
	got, err = s.GetUser(ctx, bob.ID)
	must(t, err)
	equal(t, "bob after UpdateUser", got, &wantBob)

	list, err := s.ListUsers(ctx)
	must(t, err)
	equal(t, "ListUsers", list, []storage.User{*carol, wantAlice, wantBob})
}

func testClients(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	conf := newClient("client-conf", now)
	public := &storage.Client{
		ID: "client-public", Name: "SPA", Public: true,
		RedirectURIs: []string{"https://spa.example/cb"}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, AccessTokenFormat: "opaque", IDTokenSigningAlg: "RS256",
		CreatedAt: now.Add(-time.Minute),
	}
	must(t, s.CreateClient(ctx, conf))
	must(t, s.CreateClient(ctx, public))

	for _, want := range []*storage.Client{conf, public} {
		got, err := s.GetClient(ctx, want.ID)
		must(t, err)
		equal(t, "GetClient("+want.ID+")", got, want)
	}
	// A client created without a policy reads back with exactly the zero policy.
	got, err := s.GetClient(ctx, public.ID)
	must(t, err)
	if !reflect.DeepEqual(got.Policy, storage.MFAPolicy{}) {
		t.Errorf("policy of a client created without one = %#v, want the zero value", got.Policy)
	}
	list, err := s.ListClients(ctx)
	must(t, err)
	equal(t, "ListClients", list, []storage.Client{*public, *conf})

	runErrCases(t, []errCase{
		{"CreateClient duplicate id", func() error {
			return s.CreateClient(ctx, newClient(conf.ID, now))
		}, storage.ErrAlreadyExists},
		{"GetClient missing", func() error {
			_, err := s.GetClient(ctx, "client-missing")
			return err
		}, storage.ErrNotFound},
		{"UpdateClient missing", func() error {
			return s.UpdateClient(ctx, newClient("client-missing", now))
		}, storage.ErrNotFound},
		{"DeleteClient missing", func() error {
			return s.DeleteClient(ctx, "client-missing")
		}, storage.ErrNotFound},
	})

	upd := &storage.Client{
		ID: conf.ID, Name: "Renamed", SecretHash: []byte{1, 2, 3}, Public: false,
		RedirectURIs: []string{"https://new.example/cb"}, PostLogoutRedirectURIs: nil,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"},
		SkipConsent: false, AccessTokenFormat: "opaque", IDTokenSigningAlg: "RS256",
		AccessTokenLifetime: time.Minute, IDTokenLifetime: 2 * time.Minute,
		RefreshTokenLifetime: 3 * time.Minute,
		Policy:               storage.MFAPolicy{MFA: "off", RememberDevice: time.Hour},
		BackchannelLogoutURI: "https://new.example/bc", CreatedAt: now.Add(time.Hour),
	}
	must(t, s.UpdateClient(ctx, upd))
	want := *upd
	want.CreatedAt = conf.CreatedAt // UpdateClient leaves CreatedAt alone
	got, err = s.GetClient(ctx, conf.ID)
	must(t, err)
	equal(t, "client after UpdateClient", got, &want)

	must(t, s.DeleteClient(ctx, public.ID))
	_, err = s.GetClient(ctx, public.ID)
	wantErr(t, err, storage.ErrNotFound)
	list, err = s.ListClients(ctx)
	must(t, err)
	equal(t, "ListClients after delete", list, []storage.Client{want})
}

func testAuthRequests(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	full := newAuthRequest("ar-full", now)
	bare := &storage.AuthRequest{ID: "ar-bare", ClientID: "client-1", RedirectURI: "https://c/cb",
		Scopes: []string{"openid"}, ResponseType: "code", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	zeroAge := newAuthRequest("ar-zero-age", now)
	zeroAge.MaxAge = ptr(int64(0))
	zeroAge.Login = storage.AuthLogin{}
	for _, r := range []*storage.AuthRequest{full, bare, zeroAge} {
		must(t, s.CreateAuthRequest(ctx, r))
		got, err := s.GetAuthRequest(ctx, r.ID)
		must(t, err)
		equal(t, "GetAuthRequest("+r.ID+")", got, r)
	}
	got, err := s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	if got.MaxAge != nil {
		t.Errorf("MaxAge = %d, want nil", *got.MaxAge)
	}
	got, err = s.GetAuthRequest(ctx, zeroAge.ID)
	must(t, err)
	if got.MaxAge == nil || *got.MaxAge != 0 {
		t.Errorf("MaxAge = %v, want pointer to 0", got.MaxAge)
	}

	runErrCases(t, []errCase{
		{"CreateAuthRequest duplicate id", func() error {
			return s.CreateAuthRequest(ctx, newAuthRequest(full.ID, now))
		}, storage.ErrAlreadyExists},
		{"GetAuthRequest missing", func() error {
			_, err := s.GetAuthRequest(ctx, "ar-missing")
			return err
		}, storage.ErrNotFound},
		{"SetAuthRequestLogin missing", func() error {
			return s.SetAuthRequestLogin(ctx, "ar-missing", storage.AuthLogin{UserID: "u"})
		}, storage.ErrNotFound},
		{"SaveAuthCode missing", func() error {
			return s.SaveAuthCode(ctx, "ar-missing", "code-hash", now.Add(time.Minute))
		}, storage.ErrNotFound},
	})

	login := storage.AuthLogin{UserID: "user-2", SessionID: "session-2", AuthTime: now,
		AMR: []string{"pwd", "webauthn"}, ACR: "urn:acr:phr", Done: true}
	must(t, s.SetAuthRequestLogin(ctx, bare.ID, login))
	want := *bare
	want.Login = login
	got, err = s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	equal(t, "request after SetAuthRequestLogin", got, &want)

	// Replacing the Login part may also clear it.
	must(t, s.SetAuthRequestLogin(ctx, full.ID, storage.AuthLogin{}))
	wantFull := *full
	wantFull.Login = storage.AuthLogin{}
	got, err = s.GetAuthRequest(ctx, full.ID)
	must(t, err)
	equal(t, "request after clearing Login", got, &wantFull)

	codeExp := now.Add(time.Minute)
	must(t, s.SaveAuthCode(ctx, bare.ID, "code-hash-1", codeExp))
	want.CodeHash, want.CodeExpiresAt = "code-hash-1", codeExp
	got, err = s.GetAuthRequest(ctx, bare.ID)
	must(t, err)
	equal(t, "request after SaveAuthCode", got, &want)

	must(t, s.DeleteAuthRequest(ctx, zeroAge.ID))
	_, err = s.GetAuthRequest(ctx, zeroAge.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteAuthRequest(ctx, zeroAge.ID)) // missing is not an error
}

func testAuthCodes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	exp := now.Add(time.Minute)
	r := newAuthRequest("ar-code", now)
	must(t, s.CreateAuthRequest(ctx, r))
	must(t, s.CreateAuthRequest(ctx, newAuthRequest("ar-without-code", now)))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-1", exp))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-2", exp)) // replaces code-hash-1
	want := *r
	want.CodeHash, want.CodeExpiresAt = "code-hash-2", exp

	// The steps run in order against one store.
	steps := []struct {
		name    string
		hash    string
		at      time.Time
		wantErr error
	}{
		{"replaced code", "code-hash-1", now, storage.ErrNotFound},
		{"unknown code", "code-hash-unknown", now, storage.ErrNotFound},
		{"empty hash matches no request without code", "", now, storage.ErrNotFound},
		{"expired code", "code-hash-2", exp.Add(time.Second), storage.ErrNotFound},
		{"valid code", "code-hash-2", exp.Add(-time.Second), nil},
		{"second redemption", "code-hash-2", now, storage.ErrNotFound},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.ConsumeAuthCode(ctx, st.hash, st.at)
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
				return
			}
			must(t, err)
			equal(t, "ConsumeAuthCode", got, &want)
		})
	}

	// A new code for the same request is redeemable once more.
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-3", exp))
	_, err := s.ConsumeAuthCode(ctx, "code-hash-3", now)
	must(t, err)
	_, err = s.ConsumeAuthCode(ctx, "code-hash-3", now)
	wantErr(t, err, storage.ErrNotFound)
}

func testAuthCodeConcurrentConsume(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	r := newAuthRequest("ar-race", now)
	must(t, s.CreateAuthRequest(ctx, r))
	must(t, s.SaveAuthCode(ctx, r.ID, "code-hash-race", now.Add(time.Minute)))

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		start = make(chan struct{})
	)
	for range concurrency {
		wg.Go(func() {
			<-start
			got, err := s.ConsumeAuthCode(ctx, "code-hash-race", now)
			switch {
			case err == nil:
				if got.ID != r.ID {
					t.Errorf("ConsumeAuthCode returned request %q, want %q", got.ID, r.ID)
				}
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, storage.ErrNotFound):
				t.Errorf("ConsumeAuthCode: %v, want nil or ErrNotFound", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeAuthCode calls won, want exactly 1", wins, concurrency)
	}
}

func testSessions(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	s1 := newSession("sess-1", "user-a", now.Add(-3*time.Hour))
	s2 := newSession("sess-2", "user-a", now.Add(-2*time.Hour))
	s3 := newSession("sess-3", "user-a", now.Add(-time.Hour))
	other := newSession("sess-other", "user-b", now)
	for _, ss := range []*storage.Session{s1, s3, s2, other} {
		must(t, s.CreateSession(ctx, ss))
	}
	got, err := s.GetSession(ctx, s1.ID)
	must(t, err)
	equal(t, "GetSession", got, s1)
	got, err = s.GetSessionByTokenHash(ctx, s1.TokenHash)
	must(t, err)
	equal(t, "GetSessionByTokenHash", got, s1)

	runErrCases(t, []errCase{
		{"CreateSession duplicate id", func() error {
			ss := newSession(s1.ID, "user-a", now)
			ss.TokenHash = "hash-unused"
			return s.CreateSession(ctx, ss)
		}, storage.ErrAlreadyExists},
		{"CreateSession duplicate token hash", func() error {
			ss := newSession("sess-new", "user-a", now)
			ss.TokenHash = s1.TokenHash
			return s.CreateSession(ctx, ss)
		}, storage.ErrAlreadyExists},
		{"GetSession missing", func() error {
			_, err := s.GetSession(ctx, "sess-missing")
			return err
		}, storage.ErrNotFound},
		{"GetSessionByTokenHash missing", func() error {
			_, err := s.GetSessionByTokenHash(ctx, "hash-missing")
			return err
		}, storage.ErrNotFound},
		{"UpdateSessionAuth missing", func() error {
			return s.UpdateSessionAuth(ctx, "sess-missing", storage.SessionAuth{AuthTime: now})
		}, storage.ErrNotFound},
	})

	seen := now.Add(5 * time.Minute)
	must(t, s.TouchSession(ctx, s1.ID, seen))
	authTime := now.Add(10 * time.Minute)
	auth := storage.SessionAuth{
		AuthTime: authTime, PasswordAt: now.Add(-time.Minute), MFAAt: authTime,
		Factors: []string{"totp", "webauthn"}, AMR: []string{"pwd", "otp"}, ACR: "urn:acr:mfa",
	}
	must(t, s.UpdateSessionAuth(ctx, s1.ID, auth))
	want := *s1
	want.LastSeenAt, want.AuthTime, want.PasswordAt, want.MFAAt = seen, auth.AuthTime, auth.PasswordAt, auth.MFAAt
	want.AMR, want.ACR, want.Factors = auth.AMR, auth.ACR, auth.Factors
	got, err = s.GetSession(ctx, s1.ID)
	must(t, err)
	equal(t, "session after TouchSession and UpdateSessionAuth", got, &want)

	// A password-only authentication with MFAAt zero clears the stored MFA time.
	pwdOnly := storage.SessionAuth{AuthTime: now.Add(20 * time.Minute), PasswordAt: now.Add(20 * time.Minute),
		AMR: []string{"pwd"}, ACR: "urn:acr:password"}
	must(t, s.UpdateSessionAuth(ctx, s2.ID, pwdOnly))
	want2 := *s2
	want2.AuthTime, want2.PasswordAt, want2.MFAAt = pwdOnly.AuthTime, pwdOnly.PasswordAt, time.Time{}
	want2.AMR, want2.ACR, want2.Factors = pwdOnly.AMR, pwdOnly.ACR, nil
	got, err = s.GetSession(ctx, s2.ID)
	must(t, err)
	equal(t, "session after password-only UpdateSessionAuth", got, &want2)

	list, err := s.ListUserSessions(ctx, "user-a")
	must(t, err)
	equal(t, "ListUserSessions newest first", list, []storage.Session{*s3, want2, want})
	list, err = s.ListUserSessions(ctx, "user-nobody")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListUserSessions of unknown user = %d sessions, want 0", len(list))
	}

	must(t, s.DeleteSession(ctx, s2.ID))
	_, err = s.GetSession(ctx, s2.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteSession(ctx, s2.ID)) // missing is not an error

	n, err := s.DeleteUserSessions(ctx, "user-a")
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteUserSessions = %d, want 2", n)
	}
	for _, id := range []string{s1.ID, s3.ID} {
		_, err = s.GetSession(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err = s.GetSession(ctx, other.ID)
	must(t, err)
	equal(t, "other user's session", got, other)
	n, err = s.DeleteUserSessions(ctx, "user-a")
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteUserSessions = %d, want 0", n)
	}
}

func testConsents(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	_, err := s.GetConsent(ctx, "user-a", "client-1")
	wantErr(t, err, storage.ErrNotFound)

	c := &storage.Consent{UserID: "user-a", ClientID: "client-1", Scopes: []string{"openid", "email"}, GrantedAt: now}
	other := &storage.Consent{UserID: "user-a", ClientID: "client-2", Scopes: []string{"openid"}, GrantedAt: now}
	must(t, s.SaveConsent(ctx, c))
	must(t, s.SaveConsent(ctx, other))
	got, err := s.GetConsent(ctx, c.UserID, c.ClientID)
	must(t, err)
	equal(t, "GetConsent", got, c)

	upd := &storage.Consent{UserID: "user-a", ClientID: "client-1", Scopes: []string{"openid", "email", "profile"}, GrantedAt: now.Add(time.Hour)}
	must(t, s.SaveConsent(ctx, upd))
	got, err = s.GetConsent(ctx, c.UserID, c.ClientID)
	must(t, err)
	equal(t, "GetConsent after second SaveConsent", got, upd)

	must(t, s.DeleteConsent(ctx, c.UserID, c.ClientID))
	_, err = s.GetConsent(ctx, c.UserID, c.ClientID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteConsent(ctx, c.UserID, c.ClientID)) // missing is not an error
	got, err = s.GetConsent(ctx, other.UserID, other.ClientID)
	must(t, err)
	equal(t, "other consent", got, other)
}

func testAccessTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	user := newAccessToken("at-user", "user-a", "", now)
	cc := &storage.AccessToken{ID: "at-cc", ClientID: "client-svc", Audience: []string{"https://api.example"},
		Scopes: []string{"api:read"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, at := range []*storage.AccessToken{user, cc} {
		must(t, s.CreateAccessToken(ctx, at))
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "GetAccessToken("+at.ID+")", got, at)
	}
	runErrCases(t, []errCase{
		{"CreateAccessToken duplicate id", func() error {
			return s.CreateAccessToken(ctx, newAccessToken(user.ID, "user-b", "", now))
		}, storage.ErrAlreadyExists},
		{"GetAccessToken missing", func() error {
			_, err := s.GetAccessToken(ctx, "at-missing")
			return err
		}, storage.ErrNotFound},
	})
	must(t, s.DeleteAccessToken(ctx, user.ID))
	_, err := s.GetAccessToken(ctx, user.ID)
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteAccessToken(ctx, user.ID)) // missing is not an error
	_, err = s.GetAccessToken(ctx, cc.ID)
	must(t, err)
}

func testRefreshTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	rt1 := newRefreshToken("rt-1", "user-a", "fam-1", now)
	at1 := newAccessToken("at-1", "user-a", "fam-1", now)
	must(t, s.CreateRefreshToken(ctx, rt1, at1))
	got, err := s.GetRefreshToken(ctx, rt1.ID)
	must(t, err)
	equal(t, "GetRefreshToken", got, rt1)
	got, err = s.GetRefreshTokenByHash(ctx, rt1.TokenHash)
	must(t, err)
	equal(t, "GetRefreshTokenByHash", got, rt1)
	gotAT, err := s.GetAccessToken(ctx, at1.ID)
	must(t, err)
	equal(t, "access token of CreateRefreshToken", gotAT, at1)

	rotatedAt := now.Add(time.Minute)
	rt2 := newRefreshToken("rt-2", "user-a", "fam-1", rotatedAt)
	at2 := newAccessToken("at-2", "user-a", "fam-1", rotatedAt)
	must(t, s.RotateRefreshToken(ctx, rt1.ID, rotatedAt, rt2, at2))
	wantRT1 := *rt1
	wantRT1.RotatedAt = rotatedAt
	got, err = s.GetRefreshTokenByHash(ctx, rt1.TokenHash) // rotated ones are still found
	must(t, err)
	equal(t, "old token after rotation", got, &wantRT1)
	got, err = s.GetRefreshToken(ctx, rt2.ID)
	must(t, err)
	equal(t, "next token", got, rt2)
	gotAT, err = s.GetAccessToken(ctx, at2.ID)
	must(t, err)
	equal(t, "access token of rotation", gotAT, at2)

	// A revoked family for the "revoked" case.
	rtRevoked := newRefreshToken("rt-revoked", "user-a", "fam-revoked", now)
	must(t, s.CreateRefreshToken(ctx, rtRevoked, newAccessToken("at-revoked", "user-a", "fam-revoked", now)))
	_, err = s.RevokeRefreshFamily(ctx, "fam-revoked", now)
	must(t, err)

	// failedNext returns a next token and access token that a failing call must not
	// insert.
	failedNext := func(id string) (*storage.RefreshToken, *storage.AccessToken) {
		return newRefreshToken("rt-"+id, "user-a", "fam-1", now), newAccessToken("at-"+id, "user-a", "fam-1", now)
	}
	cases := []struct {
		name    string
		oldID   string
		wantErr error
	}{
		{"second rotation of the same token", rt1.ID, storage.ErrConflict},
		{"revoked token", rtRevoked.ID, storage.ErrConflict},
		{"unknown token", "rt-missing", storage.ErrNotFound},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, at := failedNext(fmt.Sprintf("failed-%d", i))
			wantErr(t, s.RotateRefreshToken(ctx, tc.oldID, now.Add(time.Hour), next, at), tc.wantErr)
			_, err := s.GetRefreshToken(ctx, next.ID)
			wantErr(t, err, storage.ErrNotFound)
			_, err = s.GetAccessToken(ctx, at.ID)
			wantErr(t, err, storage.ErrNotFound)
		})
	}
	got, err = s.GetRefreshToken(ctx, rt1.ID)
	must(t, err)
	equal(t, "old token after failed rotations", got, &wantRT1)

	runErrCases(t, []errCase{
		{"CreateRefreshToken duplicate id", func() error {
			rt := newRefreshToken(rt1.ID, "user-a", "fam-dup", now)
			rt.TokenHash = "hash-unused"
			return s.CreateRefreshToken(ctx, rt, newAccessToken("at-dup-id", "user-a", "fam-dup", now))
		}, storage.ErrAlreadyExists},
		{"CreateRefreshToken duplicate hash", func() error {
			rt := newRefreshToken("rt-dup-hash", "user-a", "fam-dup", now)
			rt.TokenHash = rt1.TokenHash
			return s.CreateRefreshToken(ctx, rt, newAccessToken("at-dup-hash", "user-a", "fam-dup", now))
		}, storage.ErrAlreadyExists},
		{"access token of failed CreateRefreshToken not inserted", func() error {
			_, err := s.GetAccessToken(ctx, "at-dup-id")
			return err
		}, storage.ErrNotFound},
		{"GetRefreshToken missing", func() error {
			_, err := s.GetRefreshToken(ctx, "rt-missing")
			return err
		}, storage.ErrNotFound},
		{"GetRefreshTokenByHash missing", func() error {
			_, err := s.GetRefreshTokenByHash(ctx, "hash-missing")
			return err
		}, storage.ErrNotFound},
	})
}

func testRefreshConcurrentRotate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	old := newRefreshToken("rt-race", "user-a", "fam-race", now)
	must(t, s.CreateRefreshToken(ctx, old, newAccessToken("at-race", "user-a", "fam-race", now)))

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner = -1
		wins   int
		start  = make(chan struct{})
	)
	for i := range concurrency {
		wg.Go(func() {
			next := newRefreshToken(fmt.Sprintf("rt-race-%d", i), "user-a", "fam-race", now)
			at := newAccessToken(fmt.Sprintf("at-race-%d", i), "user-a", "fam-race", now)
			<-start
			err := s.RotateRefreshToken(ctx, old.ID, now, next, at)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				winner = i
				mu.Unlock()
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("RotateRefreshToken: %v, want nil or ErrConflict", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d concurrent rotations won, want exactly 1", wins, concurrency)
	}
	for i := range concurrency {
		_, rtErr := s.GetRefreshToken(ctx, fmt.Sprintf("rt-race-%d", i))
		_, atErr := s.GetAccessToken(ctx, fmt.Sprintf("at-race-%d", i))
		if i == winner {
			must(t, rtErr)
			must(t, atErr)
			continue
		}
		wantErr(t, rtErr, storage.ErrNotFound)
		wantErr(t, atErr, storage.ErrNotFound)
	}
}

func testRevokeRefreshFamily(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	// Family fam-1: rt-1 -> rt-2 -> rt-3, each with its access token.
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-1", "user-a", "fam-1", now), newAccessToken("at-1", "user-a", "fam-1", now)))
	for i, at := range []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute)} {
		old, id := fmt.Sprintf("rt-%d", i+1), fmt.Sprintf("%d", i+2)
		must(t, s.RotateRefreshToken(ctx, old, at, newRefreshToken("rt-"+id, "user-a", "fam-1", at), newAccessToken("at-"+id, "user-a", "fam-1", at)))
	}
	// Untouched: another family of the same user, and an access token without family.
	otherRT := newRefreshToken("rt-other", "user-a", "fam-2", now)
	otherAT := newAccessToken("at-other", "user-a", "fam-2", now)
	plainAT := newAccessToken("at-plain", "user-a", "", now)
	must(t, s.CreateRefreshToken(ctx, otherRT, otherAT))
	must(t, s.CreateAccessToken(ctx, plainAT))

	before := map[string]*storage.RefreshToken{}
	for _, id := range []string{"rt-1", "rt-2", "rt-3"} {
		rt, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		before[id] = rt
	}
	revokedAt := now.Add(time.Hour)
	n, err := s.RevokeRefreshFamily(ctx, "fam-1", revokedAt)
	must(t, err)
	if n != 3 {
		t.Errorf("RevokeRefreshFamily = %d, want 3", n)
	}
	for id, b := range before {
		want := *b
		want.RevokedAt = revokedAt // RotatedAt stays as it was
		got, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		equal(t, "revoked "+id, got, &want)
	}
	for _, id := range []string{"at-1", "at-2", "at-3"} {
		_, err := s.GetAccessToken(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err := s.GetRefreshToken(ctx, otherRT.ID)
	must(t, err)
	equal(t, "other family", got, otherRT)
	for _, at := range []*storage.AccessToken{otherAT, plainAT} {
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "untouched access token "+at.ID, got, at)
	}

	// Revoking again changes nothing, not even the revocation time.
	n, err = s.RevokeRefreshFamily(ctx, "fam-1", revokedAt.Add(time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("second RevokeRefreshFamily = %d, want 0", n)
	}
	got, err = s.GetRefreshToken(ctx, "rt-3")
	must(t, err)
	if !got.RevokedAt.Equal(revokedAt) {
		t.Errorf("RevokedAt after second revocation = %v, want %v", got.RevokedAt, revokedAt)
	}
	n, err = s.RevokeRefreshFamily(ctx, "fam-missing", now)
	must(t, err)
	if n != 0 {
		t.Errorf("RevokeRefreshFamily of unknown family = %d, want 0", n)
	}
}

func testRevokeUserTokens(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	// user-a: two families (one rotated once) and an access token without family.
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-a1", "user-a", "fam-a1", now), newAccessToken("at-a1", "user-a", "fam-a1", now)))
	must(t, s.CreateRefreshToken(ctx, newRefreshToken("rt-a2", "user-a", "fam-a2", now), newAccessToken("at-a2", "user-a", "fam-a2", now)))
	must(t, s.RotateRefreshToken(ctx, "rt-a2", now.Add(time.Minute), newRefreshToken("rt-a2b", "user-a", "fam-a2", now), newAccessToken("at-a2b", "user-a", "fam-a2", now)))
	must(t, s.CreateAccessToken(ctx, newAccessToken("at-a-plain", "user-a", "", now)))
	// user-b and a client_credentials token stay.
	rtB := newRefreshToken("rt-b", "user-b", "fam-b", now)
	atB := newAccessToken("at-b", "user-b", "fam-b", now)
	must(t, s.CreateRefreshToken(ctx, rtB, atB))
	atCC := &storage.AccessToken{ID: "at-cc", ClientID: "client-svc", Scopes: []string{"api"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	must(t, s.CreateAccessToken(ctx, atCC))

	revokedAt := now.Add(time.Hour)
	must(t, s.RevokeUserTokens(ctx, "user-a", revokedAt))
	for _, id := range []string{"rt-a1", "rt-a2", "rt-a2b"} {
		got, err := s.GetRefreshToken(ctx, id)
		must(t, err)
		if !got.RevokedAt.Equal(revokedAt) {
			t.Errorf("%s RevokedAt = %v, want %v", id, got.RevokedAt, revokedAt)
		}
	}
	for _, id := range []string{"at-a1", "at-a2", "at-a2b", "at-a-plain"} {
		_, err := s.GetAccessToken(ctx, id)
		wantErr(t, err, storage.ErrNotFound)
	}
	got, err := s.GetRefreshToken(ctx, rtB.ID)
	must(t, err)
	equal(t, "other user's refresh token", got, rtB)
	for _, at := range []*storage.AccessToken{atB, atCC} {
		got, err := s.GetAccessToken(ctx, at.ID)
		must(t, err)
		equal(t, "untouched access token "+at.ID, got, at)
	}
}

func testSigningKeys(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	key := func(id, alg string, created time.Time) *storage.SigningKey {
		return &storage.SigningKey{
			ID: id, Algorithm: alg, CreatedAt: created,
			PrivateSealed: []byte("sealed\x00\xff" + id),
			PublicJWK:     []byte(`{"kty":"EC","kid":"` + id + `"}`),
		}
	}
	es1 := key("es-1", "ES256", now.Add(-2*time.Hour))
	rs1 := key("rs-1", "RS256", now.Add(-time.Hour))
	es2 := key("es-2", "ES256", now)
	es3 := key("es-3", "ES256", now.Add(time.Hour))

	must(t, s.AddSigningKey(ctx, es1, now.Add(time.Hour)))
	must(t, s.AddSigningKey(ctx, rs1, now.Add(time.Hour))) // other algorithm: es-1 stays active
	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys before rotation", list, []storage.SigningKey{*rs1, *es1})

	exp2 := now.Add(24 * time.Hour)
	must(t, s.AddSigningKey(ctx, es2, exp2))
	wantES1 := *es1
	wantES1.RetiredAt, wantES1.ExpiresAt = es2.CreatedAt, exp2
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after adding es-2", list, []storage.SigningKey{*es2, *rs1, wantES1})

	// Only not-yet-retired keys are retired: es-1 keeps its times.
	exp3 := now.Add(48 * time.Hour)
	must(t, s.AddSigningKey(ctx, es3, exp3))
	wantES2 := *es2
	wantES2.RetiredAt, wantES2.ExpiresAt = es3.CreatedAt, exp3
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	want := []storage.SigningKey{*es3, wantES2, *rs1, wantES1}
	equal(t, "keys after adding es-3", list, want)

	// A failed insert retires nothing.
	wantErr(t, s.AddSigningKey(ctx, key(es1.ID, "ES256", now.Add(2*time.Hour)), exp3), storage.ErrAlreadyExists)
	list, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after failed AddSigningKey", list, want)
}

func testAudit(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	events := []*storage.AuditEvent{
		{Type: "login.password", UserID: "user-a", IP: "192.0.2.1", UserAgent: "ua", Result: "success"},
		{Type: "token.issue", UserID: "user-a", ClientID: "client-1", Result: "success"},
		{Type: "token.issue", UserID: "user-b", ClientID: "client-1", Result: "success"},
		{Type: "login.password", UserID: "user-b", IP: "198.51.100.7", Result: "failure", Reason: "bad password"},
		{Type: "token.refresh.reuse", UserID: "user-a", ClientID: "client-2", Result: "failure", Reason: "reuse"},
	}
	var lastID int64
	for i, e := range events {
		e.Time = now.Add(time.Duration(i) * time.Second)
		must(t, s.AppendAudit(ctx, e))
		if e.ID <= lastID {
			t.Fatalf("event %d got ID %d, want > %d", i, e.ID, lastID)
		}
		lastID = e.ID
	}
	pick := func(idx ...int) []storage.AuditEvent {
		var out []storage.AuditEvent
		for _, i := range idx {
			out = append(out, *events[i])
		}
		return out
	}
	tests := []struct {
		name   string
		filter storage.AuditFilter
		want   []storage.AuditEvent
	}{
		{"all", storage.AuditFilter{}, pick(0, 1, 2, 3, 4)},
		{"by user", storage.AuditFilter{UserID: "user-a"}, pick(0, 1, 4)},
		{"by client", storage.AuditFilter{ClientID: "client-1"}, pick(1, 2)},
		{"by type", storage.AuditFilter{Type: "login.password"}, pick(0, 3)},
		{"since", storage.AuditFilter{Since: events[2].Time.Add(-time.Second / 2)}, pick(2, 3, 4)},
		{"limit keeps the newest", storage.AuditFilter{Limit: 2}, pick(3, 4)},
		{"limit above count", storage.AuditFilter{Limit: 10}, pick(0, 1, 2, 3, 4)},
		{"user and limit", storage.AuditFilter{UserID: "user-a", Limit: 2}, pick(1, 4)},
		{"user and type", storage.AuditFilter{UserID: "user-a", Type: "token.issue"}, pick(1)},
		{"no match", storage.AuditFilter{ClientID: "client-none"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.filter)
			must(t, err)
			equal(t, "ListAudit", got, tc.want)
		})
	}
}

func testRateLimits(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const window = time.Minute
	// The steps run in order against one store; at is an offset from now.
	steps := []struct {
		name string
		op   string // hit, count or reset
		key  string
		at   time.Duration
		want int
	}{
		{"first hit", "hit", "login:alice", 0, 1},
		{"second hit", "hit", "login:alice", 10 * time.Second, 2},
		{"third hit", "hit", "login:alice", 20 * time.Second, 3},
		{"count does not increment", "count", "login:alice", 30 * time.Second, 3},
		{"count again", "count", "login:alice", 30 * time.Second, 3},
		{"other key is separate", "count", "login:bob", 30 * time.Second, 0},
		{"other key hit", "hit", "login:bob", 30 * time.Second, 1},
		{"count after window", "count", "login:alice", window + time.Second, 0},
		{"hit after window starts anew", "hit", "login:alice", window + time.Second, 1},
		{"hit in new window", "hit", "login:alice", window + 10*time.Second, 2},
		{"count in new window", "count", "login:alice", 2 * window, 2},
		{"reset", "reset", "login:alice", 0, 0},
		{"count after reset", "count", "login:alice", 2 * window, 0},
		{"hit after reset", "hit", "login:alice", 2 * window, 1},
		{"other key unaffected", "count", "login:bob", 40 * time.Second, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var (
				got int
				err error
			)
			at := now.Add(st.at)
			switch st.op {
			case "hit":
				got, err = s.HitRateLimit(ctx, st.key, window, at)
			case "count":
				got, err = s.RateLimitCount(ctx, st.key, window, at)
			case "reset":
				err = s.ResetRateLimit(ctx, st.key)
			}
			must(t, err)
			if got != st.want {
				t.Errorf("%s %s at +%v = %d, want %d", st.op, st.key, st.at, got, st.want)
			}
		})
	}
}

func testDeleteExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)

	arOld, arLive := newAuthRequest("ar-old", now.Add(-time.Hour)), newAuthRequest("ar-live", now)
	arOld.ExpiresAt, arLive.ExpiresAt = past, future
	sOld, sLive := newSession("sess-old", "user-a", now.Add(-48*time.Hour)), newSession("sess-live", "user-a", now)
	sOld.ExpiresAt = past
	atOld, atLive := newAccessToken("at-old", "user-a", "", now), newAccessToken("at-live", "user-a", "", now)
	atOld.ExpiresAt, atLive.ExpiresAt = past, future
	rtOld, rtLive := newRefreshToken("rt-old", "user-a", "fam-old", now), newRefreshToken("rt-live", "user-a", "fam-live", now)
	rtOld.ExpiresAt, rtLive.ExpiresAt = past, future
	atRtOld, atRtLive := newAccessToken("at-rt-old", "user-a", "fam-old", now), newAccessToken("at-rt-live", "user-a", "fam-live", now)
	atRtOld.ExpiresAt, atRtLive.ExpiresAt = past, future

	must(t, s.CreateAuthRequest(ctx, arOld))
	must(t, s.CreateAuthRequest(ctx, arLive))
	must(t, s.CreateSession(ctx, sOld))
	must(t, s.CreateSession(ctx, sLive))
	must(t, s.CreateAccessToken(ctx, atOld))
	must(t, s.CreateAccessToken(ctx, atLive))
	must(t, s.CreateRefreshToken(ctx, rtOld, atRtOld))
	must(t, s.CreateRefreshToken(ctx, rtLive, atRtLive))
	// A one-minute window opened two days ago, and one opened just now.
	_, err := s.HitRateLimit(ctx, "rl-old", time.Minute, now.Add(-48*time.Hour))
	must(t, err)
	_, err = s.HitRateLimit(ctx, "rl-live", time.Minute, now.Add(-10*time.Second))
	must(t, err)
	// es-old retired with an expiry in the past; es-mid retired, not yet expired;
	// es-new and rs-1 are signing (no expiry).
	mk := func(id, alg string, created time.Time) *storage.SigningKey {
		return &storage.SigningKey{ID: id, Algorithm: alg, PrivateSealed: []byte("p" + id), PublicJWK: []byte("{}"), CreatedAt: created}
	}
	must(t, s.AddSigningKey(ctx, mk("es-old", "ES256", now.Add(-72*time.Hour)), time.Time{}))
	must(t, s.AddSigningKey(ctx, mk("rs-1", "RS256", now.Add(-72*time.Hour)), time.Time{}))
	must(t, s.AddSigningKey(ctx, mk("es-mid", "ES256", now.Add(-48*time.Hour)), now.Add(-24*time.Hour)))
	must(t, s.AddSigningKey(ctx, mk("es-new", "ES256", now.Add(-time.Hour)), now.Add(24*time.Hour)))

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	// ar-old, sess-old, at-old, at-rt-old, rt-old, rl-old, es-old.
	if n != 7 {
		t.Errorf("DeleteExpired = %d, want 7", n)
	}

	gone := []errCase{
		{"auth request", func() error { _, err := s.GetAuthRequest(ctx, arOld.ID); return err }, storage.ErrNotFound},
		{"session", func() error { _, err := s.GetSession(ctx, sOld.ID); return err }, storage.ErrNotFound},
		{"access token", func() error { _, err := s.GetAccessToken(ctx, atOld.ID); return err }, storage.ErrNotFound},
		{"refresh token", func() error { _, err := s.GetRefreshToken(ctx, rtOld.ID); return err }, storage.ErrNotFound},
		{"access token of refresh token", func() error { _, err := s.GetAccessToken(ctx, atRtOld.ID); return err }, storage.ErrNotFound},
	}
	t.Run("expired rows gone", func(t *testing.T) { runErrCases(t, gone) })

	t.Run("live rows kept", func(t *testing.T) {
		_, err := s.GetAuthRequest(ctx, arLive.ID)
		must(t, err)
		_, err = s.GetSession(ctx, sLive.ID)
		must(t, err)
		for _, id := range []string{atLive.ID, atRtLive.ID} {
			_, err = s.GetAccessToken(ctx, id)
			must(t, err)
		}
		_, err = s.GetRefreshToken(ctx, rtLive.ID)
		must(t, err)
		c, err := s.RateLimitCount(ctx, "rl-live", time.Minute, now)
		must(t, err)
		if c != 1 {
			t.Errorf("rl-live count = %d, want 1", c)
		}
		keys, err := s.ListSigningKeys(ctx)
		must(t, err)
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
		}
		equal(t, "signing keys left", ids, []string{"es-new", "es-mid", "rs-1"})
	})

	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteExpired = %d, want 0", n)
	}
}

func testMigrateAndPing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	must(t, s.Ping(ctx))
	n, err := s.Migrate(ctx)
	must(t, err)
	if n != 0 {
		t.Errorf("Migrate on a migrated store applied %d, want 0", n)
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

func newFactor(id, userID, kind string, created time.Time) *storage.Factor {
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

// wantBackupCodes fails the test unless userID has want unused backup codes.
func wantBackupCodes(t *testing.T, s storage.Storage, userID string, want int) {
	t.Helper()
	n, err := s.CountBackupCodes(t.Context(), userID)
	must(t, err)
	if n != want {
		t.Errorf("CountBackupCodes(%s) = %d, want %d", userID, n, want)
	}
}

func testFactors(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	full := newFactor("factor-full", "user-a", "totp", now.Add(-time.Hour))
	full.LastUsedAt = now.Add(-time.Minute)
	// Enrolling: not confirmed, never used, no target, no secret yet.
	fresh := &storage.Factor{ID: "factor-fresh", UserID: "user-a", Kind: "webauthn", Name: "YubiKey 5", CreatedAt: now}
	other := newFactor("factor-other", "user-b", "sms", now)
	for _, f := range []*storage.Factor{full, fresh, other} {
		must(t, s.CreateFactor(ctx, f))
		got, err := s.GetFactor(ctx, f.ID)
		must(t, err)
		equal(t, "GetFactor("+f.ID+")", got, f)
	}
	got, err := s.GetFactor(ctx, fresh.ID)
	must(t, err)
	if !got.LastUsedAt.IsZero() {
		t.Errorf("LastUsedAt of a never-used factor = %v, want the zero time", got.LastUsedAt)
	}

	runErrCases(t, []errCase{
		{"CreateFactor duplicate id", func() error {
			return s.CreateFactor(ctx, newFactor(full.ID, "user-c", "totp", now))
		}, storage.ErrAlreadyExists},
		{"GetFactor missing", func() error {
			_, err := s.GetFactor(ctx, "factor-missing")
			return err
		}, storage.ErrNotFound},
		{"UpdateFactor missing", func() error {
			return s.UpdateFactor(ctx, newFactor("factor-missing", "user-a", "totp", now))
		}, storage.ErrNotFound},
	})

	// The stored step moves ahead of full.LastStep; UpdateFactor must not move it back.
	step := full.LastStep + 7
	must(t, s.AdvanceTOTPStep(ctx, full.ID, step, now))
	upd := &storage.Factor{
		ID: full.ID, UserID: "user-z", Kind: "email", Name: "Renamed", Target: "alice@example.com",
		Secret: []byte{0x00, 0x01, 0xfe, 0xff}, Confirmed: false, LastStep: 1,
		CreatedAt: now.Add(time.Hour), LastUsedAt: now.Add(time.Second),
	}
	must(t, s.UpdateFactor(ctx, upd))
	want := *full
	want.Name, want.Target, want.Secret, want.Confirmed, want.LastUsedAt = upd.Name, upd.Target, upd.Secret, upd.Confirmed, upd.LastUsedAt
	want.LastStep = step // id, user, kind and creation time stay too
	got, err = s.GetFactor(ctx, full.ID)
	must(t, err)
	equal(t, "factor after UpdateFactor", got, &want)

	// Finishing an enrolment; a zero LastUsedAt is stored as given.
	confirmed := *fresh
	confirmed.Secret, confirmed.Confirmed = []byte(`{"id":"cred"}`), true
	must(t, s.UpdateFactor(ctx, &confirmed))
	got, err = s.GetFactor(ctx, fresh.ID)
	must(t, err)
	equal(t, "factor after confirmation", got, &confirmed)

	all, err := s.ListAllFactors(ctx)
	must(t, err)
	slices.SortFunc(all, func(a, b storage.Factor) int { return strings.Compare(a.ID, b.ID) })
	equal(t, "ListAllFactors (sorted by id)", all, []storage.Factor{confirmed, want, *other})
}

func testListFactorsOrder(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	usedLongAgo := newFactor("f-used-long-ago", "user-a", "totp", now.Add(-5*time.Hour))
	usedLongAgo.LastUsedAt = now.Add(-time.Hour)
	usedRecently := newFactor("f-used-recently", "user-a", "webauthn", now.Add(-4*time.Hour))
	usedRecently.LastUsedAt = now.Add(-10 * time.Minute)
	unusedOld := newFactor("f-unused-old", "user-a", "email", now.Add(-3*time.Hour))
	unusedNew := newFactor("f-unused-new", "user-a", "sms", now.Add(-time.Hour))
	unusedNew.Confirmed = false // unconfirmed factors are listed too
	other := newFactor("f-other", "user-b", "totp", now)
	other.LastUsedAt = now
	for _, f := range []*storage.Factor{unusedOld, usedLongAgo, other, unusedNew, usedRecently} {
		must(t, s.CreateFactor(ctx, f))
	}
	list, err := s.ListFactors(ctx, "user-a")
	must(t, err)
	equal(t, "ListFactors", list, []storage.Factor{*usedRecently, *usedLongAgo, *unusedNew, *unusedOld})

	// Using a factor moves it to the front.
	must(t, s.AdvanceTOTPStep(ctx, unusedOld.ID, unusedOld.LastStep+1, now))
	list, err = s.ListFactors(ctx, "user-a")
	must(t, err)
	var ids []string
	for _, f := range list {
		ids = append(ids, f.ID)
	}
	equal(t, "ListFactors after use", ids, []string{unusedOld.ID, usedRecently.ID, usedLongAgo.ID, unusedNew.ID})

	list, err = s.ListFactors(ctx, "user-nobody")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListFactors of unknown user = %d factors, want 0", len(list))
	}
}

func testDeleteFactor(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	totpA := newFactor("totp-a", "user-a", "totp", now)
	backupA := newFactor("backup-a", "user-a", "backup", now)
	totpB := newFactor("totp-b", "user-b", "totp", now)
	for _, f := range []*storage.Factor{totpA, backupA, totpB} {
		must(t, s.CreateFactor(ctx, f))
	}
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"h1", "h2", "h3"}, now))
	must(t, s.ReplaceBackupCodes(ctx, "user-b", []string{"h1"}, now))

	runErrCases(t, []errCase{
		{"another user's factor", func() error { return s.DeleteFactor(ctx, "user-b", totpA.ID) }, storage.ErrNotFound},
		{"another user's backup factor", func() error { return s.DeleteFactor(ctx, "user-b", backupA.ID) }, storage.ErrNotFound},
		{"missing factor", func() error { return s.DeleteFactor(ctx, "user-a", "factor-missing") }, storage.ErrNotFound},
	})
	t.Run("failed deletes deleted nothing", func(t *testing.T) {
		for _, f := range []*storage.Factor{totpA, backupA} {
			got, err := s.GetFactor(ctx, f.ID)
			must(t, err)
			equal(t, "factor after failed DeleteFactor", got, f)
		}
		wantBackupCodes(t, s, "user-a", 3)
		wantBackupCodes(t, s, "user-b", 1)
	})

	// A non-backup factor goes alone.
	must(t, s.DeleteFactor(ctx, "user-a", totpA.ID))
	_, err := s.GetFactor(ctx, totpA.ID)
	wantErr(t, err, storage.ErrNotFound)
	wantBackupCodes(t, s, "user-a", 3)
	wantErr(t, s.DeleteFactor(ctx, "user-a", totpA.ID), storage.ErrNotFound)

	// The backup factor takes its user's codes with it, and only that user's.
	must(t, s.DeleteFactor(ctx, "user-a", backupA.ID))
	_, err = s.GetFactor(ctx, backupA.ID)
	wantErr(t, err, storage.ErrNotFound)
	wantBackupCodes(t, s, "user-a", 0)
	wantErr(t, s.ConsumeBackupCode(ctx, "user-a", "h1", now), storage.ErrNotFound)
	wantBackupCodes(t, s, "user-b", 1)

	// DeleteUserFactors removes every factor and backup code of one user.
	for _, f := range []*storage.Factor{newFactor("c-1", "user-c", "totp", now), newFactor("c-2", "user-c", "backup", now)} {
		must(t, s.CreateFactor(ctx, f))
	}
	must(t, s.ReplaceBackupCodes(ctx, "user-c", []string{"h1", "h2"}, now))
	n, err := s.DeleteUserFactors(ctx, "user-c")
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteUserFactors = %d, want 2", n)
	}
	list, err := s.ListFactors(ctx, "user-c")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListFactors after DeleteUserFactors = %d factors, want 0", len(list))
	}
	wantBackupCodes(t, s, "user-c", 0)
	got, err := s.GetFactor(ctx, totpB.ID)
	must(t, err)
	equal(t, "other user's factor", got, totpB)
	wantBackupCodes(t, s, "user-b", 1)
	n, err = s.DeleteUserFactors(ctx, "user-c")
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteUserFactors = %d, want 0", n)
	}
}

func testAdvanceTOTPStep(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	f := newFactor("totp-1", "user-a", "totp", now.Add(-time.Hour))
	f.LastStep = 100
	must(t, s.CreateFactor(ctx, f))
	want := *f
	// The steps run in order against one store.
	steps := []struct {
		name    string
		id      string
		step    int64
		wantErr error
	}{
		{"greater step", f.ID, 101, nil},
		{"equal step (replay)", f.ID, 101, storage.ErrConflict},
		{"lower step", f.ID, 50, storage.ErrConflict},
		{"much greater step", f.ID, 1000, nil},
		{"step just below", f.ID, 999, storage.ErrConflict},
		{"missing factor", "totp-missing", 5000, storage.ErrNotFound},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			usedAt := now.Add(time.Duration(i+1) * time.Second)
			err := s.AdvanceTOTPStep(ctx, st.id, st.step, usedAt)
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
			} else {
				must(t, err)
				want.LastStep, want.LastUsedAt = st.step, usedAt
			}
			got, err := s.GetFactor(ctx, f.ID)
			must(t, err)
			equal(t, "factor", got, &want)
		})
	}
}

func testAdvanceTOTPStepConcurrent(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	f := newFactor("totp-race", "user-a", "totp", now)
	must(t, s.CreateFactor(ctx, f))
	step := f.LastStep + 1
	wins := race(t, concurrency, storage.ErrConflict, func(int) error {
		return s.AdvanceTOTPStep(ctx, f.ID, step, now)
	})
	if wins != 1 {
		t.Fatalf("%d of %d concurrent AdvanceTOTPStep calls with one step won, want exactly 1", wins, concurrency)
	}
	got, err := s.GetFactor(ctx, f.ID)
	must(t, err)
	if got.LastStep != step {
		t.Errorf("LastStep = %d, want %d", got.LastStep, step)
	}
}

func testBackupCodes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	wantBackupCodes(t, s, "user-a", 0)
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"a1", "a2", "a3", "a4", "shared"}, now))
	must(t, s.ReplaceBackupCodes(ctx, "user-b", []string{"b1", "shared"}, now))
	wantBackupCodes(t, s, "user-a", 5)

	// The steps run in order against one store.
	steps := []struct {
		name     string
		user     string
		hash     string
		wantErr  error
		wantLeft int // unused codes of user afterwards
	}{
		{"first use", "user-a", "a1", nil, 4},
		{"second use", "user-a", "a1", storage.ErrNotFound, 4},
		{"wrong code", "user-a", "nope", storage.ErrNotFound, 4},
		{"another user's code", "user-a", "b1", storage.ErrNotFound, 4},
		{"same hash, other user", "user-b", "shared", nil, 1},
		{"same hash, first user", "user-a", "shared", nil, 3},
		{"same hash, first user again", "user-a", "shared", storage.ErrNotFound, 3},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := s.ConsumeBackupCode(ctx, st.user, st.hash, now.Add(time.Duration(i)*time.Second))
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
			} else {
				must(t, err)
			}
			wantBackupCodes(t, s, st.user, st.wantLeft)
		})
	}

	// A new set invalidates every old code, used or not.
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"n1", "n2", "a1"}, now.Add(time.Hour)))
	wantBackupCodes(t, s, "user-a", 3)
	wantErr(t, s.ConsumeBackupCode(ctx, "user-a", "a2", now), storage.ErrNotFound)
	must(t, s.ConsumeBackupCode(ctx, "user-a", "a1", now)) // re-issued: usable again
	must(t, s.ConsumeBackupCode(ctx, "user-a", "n1", now))
	wantBackupCodes(t, s, "user-a", 1)
	wantBackupCodes(t, s, "user-b", 1)

	must(t, s.ReplaceBackupCodes(ctx, "user-a", nil, now))
	wantBackupCodes(t, s, "user-a", 0)
	wantErr(t, s.ConsumeBackupCode(ctx, "user-a", "n2", now), storage.ErrNotFound)
}

func testBackupCodeConcurrentConsume(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"race", "other"}, now))
	wins := race(t, concurrency, storage.ErrNotFound, func(int) error {
		return s.ConsumeBackupCode(ctx, "user-a", "race", now)
	})
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeBackupCode calls won, want exactly 1", wins, concurrency)
	}
	wantBackupCodes(t, s, "user-a", 1)
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

func testChallenges(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const maxAttempts = 3
	c := newChallenge("ch-1", now)
	must(t, s.CreateChallenge(ctx, c))
	// A WebAuthn ceremony: no code, no data round-trips as empty.
	wa := &storage.Challenge{ID: "ch-webauthn", UserID: "user-a", Kind: "webauthn", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	must(t, s.CreateChallenge(ctx, wa))

	want := *c
	for i := 1; i <= maxAttempts; i++ {
		got, err := s.AttemptChallenge(ctx, c.ID, now.Add(time.Duration(i)*time.Second), maxAttempts)
		must(t, err)
		want.Attempts = i
		equal(t, fmt.Sprintf("attempt %d", i), got, &want)
	}
	got, err := s.AttemptChallenge(ctx, wa.ID, now, maxAttempts)
	must(t, err)
	wantWA := *wa
	wantWA.Attempts = 1
	equal(t, "attempt at webauthn challenge", got, &wantWA)

	expiring := newChallenge("ch-expiring", now)
	expiring.ExpiresAt = now.Add(time.Minute)
	consumed := newChallenge("ch-consumed", now)
	must(t, s.CreateChallenge(ctx, expiring))
	must(t, s.CreateChallenge(ctx, consumed))
	_, err = s.AttemptChallenge(ctx, consumed.ID, now, maxAttempts)
	must(t, err)
	must(t, s.ConsumeChallenge(ctx, consumed.ID, now.Add(time.Second)))

	runErrCases(t, []errCase{
		{"attempt past maxAttempts", func() error {
			_, err := s.AttemptChallenge(ctx, c.ID, now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"attempt after expiry", func() error {
			_, err := s.AttemptChallenge(ctx, expiring.ID, expiring.ExpiresAt.Add(time.Second), maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"attempt after consumption", func() error {
			_, err := s.AttemptChallenge(ctx, consumed.ID, now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"second consumption", func() error {
			return s.ConsumeChallenge(ctx, consumed.ID, now.Add(2*time.Second))
		}, storage.ErrNotFound},
		{"attempt missing", func() error {
			_, err := s.AttemptChallenge(ctx, "ch-missing", now, maxAttempts)
			return err
		}, storage.ErrNotFound},
		{"consume missing", func() error {
			return s.ConsumeChallenge(ctx, "ch-missing", now)
		}, storage.ErrNotFound},
		{"CreateChallenge duplicate id", func() error {
			return s.CreateChallenge(ctx, newChallenge(c.ID, now))
		}, storage.ErrAlreadyExists},
	})

	// Failed attempts are not counted: the expired attempt left the counter alone.
	got, err = s.AttemptChallenge(ctx, expiring.ID, now, maxAttempts)
	must(t, err)
	if got.Attempts != 1 {
		t.Errorf("Attempts after a refused and an accepted attempt = %d, want 1", got.Attempts)
	}
	// A larger limit lets the exhausted challenge go on counting from where it was.
	got, err = s.AttemptChallenge(ctx, c.ID, now, maxAttempts+1)
	must(t, err)
	if got.Attempts != maxAttempts+1 {
		t.Errorf("Attempts = %d, want %d", got.Attempts, maxAttempts+1)
	}
	must(t, s.ConsumeChallenge(ctx, c.ID, now))
	wantErr(t, s.ConsumeChallenge(ctx, c.ID, now), storage.ErrNotFound)
}

func testChallengeConcurrentAttempts(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	const maxAttempts = 5
	c := newChallenge("ch-race", now)
	must(t, s.CreateChallenge(ctx, c))
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	wins := race(t, concurrency, storage.ErrNotFound, func(int) error {
		got, err := s.AttemptChallenge(ctx, c.ID, now, maxAttempts)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[got.Attempts] {
			t.Errorf("two attempts were both counted as number %d", got.Attempts)
		}
		seen[got.Attempts] = true
		return nil
	})
	if wins != maxAttempts {
		t.Fatalf("%d of %d concurrent attempts were accepted, want exactly %d", wins, concurrency, maxAttempts)
	}
	wins = race(t, concurrency, storage.ErrNotFound, func(int) error {
		return s.ConsumeChallenge(ctx, c.ID, now)
	})
	if wins != 1 {
		t.Fatalf("%d of %d concurrent ConsumeChallenge calls won, want exactly 1", wins, concurrency)
	}
}

func testFailureCounters(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	until := now.Add(15 * time.Minute)
	// The steps run in order against one store.
	steps := []struct {
		name      string
		op        string // inc, get, lock, unlock or reset
		key       string
		want      int       // failures returned by inc or get
		wantUntil time.Time // lockedUntil returned by get
		wantErr   error
	}{
		{"missing counter", "get", "acct:alice", 0, time.Time{}, nil},
		{"first failure", "inc", "acct:alice", 1, time.Time{}, nil},
		{"second failure", "inc", "acct:alice", 2, time.Time{}, nil},
		{"other key", "inc", "acct:bob", 1, time.Time{}, nil},
		{"get", "get", "acct:alice", 2, time.Time{}, nil},
		{"lock", "lock", "acct:alice", 0, time.Time{}, nil},
		{"get locked", "get", "acct:alice", 2, until, nil},
		{"failure while locked", "inc", "acct:alice", 3, time.Time{}, nil},
		{"increment keeps the lock", "get", "acct:alice", 3, until, nil},
		{"unlock", "unlock", "acct:alice", 0, time.Time{}, nil},
		{"get unlocked", "get", "acct:alice", 3, time.Time{}, nil},
		{"lock missing counter", "lock", "acct:nobody", 0, time.Time{}, storage.ErrNotFound},
		{"lock did not create a counter", "get", "acct:nobody", 0, time.Time{}, nil},
		{"lock again", "lock", "acct:alice", 0, time.Time{}, nil},
		{"reset", "reset", "acct:alice", 0, time.Time{}, nil},
		{"get after reset", "get", "acct:alice", 0, time.Time{}, nil},
		{"reset missing counter", "reset", "acct:nobody", 0, time.Time{}, nil},
		{"failure after reset starts at 1, unlocked", "inc", "acct:alice", 1, time.Time{}, nil},
		{"get after reset and failure", "get", "acct:alice", 1, time.Time{}, nil},
		{"other key unaffected", "get", "acct:bob", 1, time.Time{}, nil},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var (
				got      int
				gotUntil time.Time
				err      error
			)
			switch st.op {
			case "inc":
				got, err = s.IncrementFailures(ctx, st.key, now.Add(time.Duration(i)*time.Second))
			case "get":
				got, gotUntil, err = s.GetFailures(ctx, st.key)
			case "lock":
				err = s.SetLockedUntil(ctx, st.key, until)
			case "unlock":
				err = s.SetLockedUntil(ctx, st.key, time.Time{})
			case "reset":
				err = s.ResetFailures(ctx, st.key)
			}
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
				return
			}
			must(t, err)
			if got != st.want {
				t.Errorf("%s %s = %d, want %d", st.op, st.key, got, st.want)
			}
			equal(t, st.op+" "+st.key+" lockedUntil", gotUntil, st.wantUntil)
		})
	}
}

func testSecrets(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	v1, v2 := []byte("sealed-1\x00\xff"), []byte("sealed-2")
	got, err := s.GetOrCreateSecret(ctx, "backup-code-key", v1)
	must(t, err)
	equal(t, "first GetOrCreateSecret", got, v1)
	got, err = s.GetOrCreateSecret(ctx, "backup-code-key", v2)
	must(t, err)
	equal(t, "second GetOrCreateSecret returns the stored value", got, v1)
	other := []byte("sealed-other")
	got, err = s.GetOrCreateSecret(ctx, "cookie-key", other)
	must(t, err)
	equal(t, "GetOrCreateSecret of another name", got, other)

	all, err := s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets", all, map[string][]byte{"backup-code-key": v1, "cookie-key": other})

	v3 := []byte("resealed\x00")
	must(t, s.UpdateSecret(ctx, "backup-code-key", v3))
	got, err = s.GetOrCreateSecret(ctx, "backup-code-key", v2)
	must(t, err)
	equal(t, "GetOrCreateSecret after UpdateSecret", got, v3)
	wantErr(t, s.UpdateSecret(ctx, "missing", v3), storage.ErrNotFound)
	all, err = s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets after UpdateSecret", all, map[string][]byte{"backup-code-key": v3, "cookie-key": other})
}

func testSecretConcurrentCreate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	const callers = 10
	got := make([][]byte, callers)
	wins := race(t, callers, nil, func(i int) error {
		v, err := s.GetOrCreateSecret(ctx, "race", []byte(fmt.Sprintf("value-%d", i)))
		got[i] = v
		return err
	})
	if wins != callers {
		t.Fatalf("%d of %d concurrent GetOrCreateSecret calls succeeded", wins, callers)
	}
	first := got[0]
	if !strings.HasPrefix(string(first), "value-") {
		t.Fatalf("GetOrCreateSecret returned %q, want one of the values offered", first)
	}
	for i, v := range got {
		equal(t, fmt.Sprintf("value of caller %d", i), v, first)
	}
	all, err := s.ListSecrets(ctx)
	must(t, err)
	equal(t, "ListSecrets", all, map[string][]byte{"race": first})
}

func testUpdateSigningKeySealed(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	es := &storage.SigningKey{ID: "es-1", Algorithm: "ES256", PrivateSealed: []byte("old\x00"), PublicJWK: []byte(`{"kid":"es-1"}`), CreatedAt: now}
	rs := &storage.SigningKey{ID: "rs-1", Algorithm: "RS256", PrivateSealed: []byte("rs"), PublicJWK: []byte(`{"kid":"rs-1"}`), CreatedAt: now.Add(-time.Hour)}
	must(t, s.AddSigningKey(ctx, rs, time.Time{}))
	must(t, s.AddSigningKey(ctx, es, time.Time{}))

	must(t, s.UpdateSigningKeySealed(ctx, es.ID, []byte("new\xff")))
	want := *es
	want.PrivateSealed = []byte("new\xff")
	list, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "keys after UpdateSigningKeySealed", list, []storage.SigningKey{want, *rs})

	wantErr(t, s.UpdateSigningKeySealed(ctx, "missing", []byte("x")), storage.ErrNotFound)
}

func testDeleteExpiredMFA(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	mk := func(id string, expires time.Time, consume bool) *storage.Challenge {
		c := newChallenge(id, now.Add(-time.Hour))
		c.ExpiresAt = expires
		must(t, s.CreateChallenge(ctx, c))
		if consume {
			must(t, s.ConsumeChallenge(ctx, id, now.Add(-30*time.Minute)))
		}
		return c
	}
	expired := mk("ch-expired", past, false)
	expiredConsumed := mk("ch-expired-consumed", past, true)
	live := mk("ch-live", future, false)
	liveConsumed := mk("ch-live-consumed", future, true)

	// Nothing else of the MFA store expires, whatever its times say.
	f := newFactor("totp-old", "user-a", "totp", now.Add(-72*time.Hour))
	f.LastUsedAt = now.Add(-48 * time.Hour)
	must(t, s.CreateFactor(ctx, f))
	must(t, s.ReplaceBackupCodes(ctx, "user-a", []string{"h1", "h2"}, now.Add(-72*time.Hour)))
	_, err := s.IncrementFailures(ctx, "acct:alice", now.Add(-72*time.Hour))
	must(t, err)
	must(t, s.SetLockedUntil(ctx, "acct:alice", now.Add(-48*time.Hour)))
	_, err = s.GetOrCreateSecret(ctx, "backup-code-key", []byte("sealed"))
	must(t, err)

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpired = %d, want 2 (the expired challenges)", n)
	}

	// An id can be reused only once its challenge is gone.
	t.Run("expired challenges gone", func(t *testing.T) {
		for _, c := range []*storage.Challenge{expired, expiredConsumed} {
			must(t, s.CreateChallenge(ctx, newChallenge(c.ID, now)))
		}
	})
	t.Run("live challenges kept", func(t *testing.T) {
		got, err := s.AttemptChallenge(ctx, live.ID, now, 5)
		must(t, err)
		want := *live
		want.Attempts = 1
		equal(t, "live challenge", got, &want)
		wantErr(t, s.CreateChallenge(ctx, newChallenge(liveConsumed.ID, now)), storage.ErrAlreadyExists)
	})
	t.Run("factors, codes, counters and secrets kept", func(t *testing.T) {
		got, err := s.GetFactor(ctx, f.ID)
		must(t, err)
		equal(t, "factor", got, f)
		wantBackupCodes(t, s, "user-a", 2)
		failures, lockedUntil, err := s.GetFailures(ctx, "acct:alice")
		must(t, err)
		if failures != 1 || !lockedUntil.Equal(now.Add(-48*time.Hour)) {
			t.Errorf("GetFailures = %d, %v; want 1, %v", failures, lockedUntil, now.Add(-48*time.Hour))
		}
		all, err := s.ListSecrets(ctx)
		must(t, err)
		equal(t, "secrets", all, map[string][]byte{"backup-code-key": []byte("sealed")})
	})

	n, err = s.DeleteExpired(ctx, now.Add(-2*time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("DeleteExpired before every expiry = %d, want 0", n)
	}
}

// wantSessionClients fails the test unless session id has exactly the clients want (in
// any order).
func wantSessionClients(t *testing.T, s storage.Storage, id string, want ...string) {
	t.Helper()
	got, err := s.ListSessionClients(t.Context(), id)
	must(t, err)
	got = slices.Clone(got)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	equal(t, "ListSessionClients("+id+")", got, want)
}

func testSessionClients(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	s1 := newSession("sess-1", "user-a", now.Add(-2*time.Hour))
	s2 := newSession("sess-2", "user-a", now.Add(-time.Hour))
	other := newSession("sess-other", "user-b", now)
	for _, ss := range []*storage.Session{s1, s2, other} {
		must(t, s.CreateSession(ctx, ss))
	}

	wantSessionClients(t, s, s1.ID)
	must(t, s.AddSessionClient(ctx, s1.ID, "client-b"))
	must(t, s.AddSessionClient(ctx, s1.ID, "client-a"))
	must(t, s.AddSessionClient(ctx, s1.ID, "client-b")) // the same pair again is not an error
	must(t, s.AddSessionClient(ctx, s2.ID, "client-a"))
	must(t, s.AddSessionClient(ctx, other.ID, "client-c"))
	wantSessionClients(t, s, s1.ID, "client-a", "client-b")
	wantSessionClients(t, s, s2.ID, "client-a")
	wantSessionClients(t, s, other.ID, "client-c")
	wantSessionClients(t, s, "sess-missing")

	// The contract leaves the error for a missing session open; either way nothing may
	// be recorded for it.
	t.Run("missing session", func(t *testing.T) {
		if err := s.AddSessionClient(ctx, "sess-missing", "client-a"); err != nil {
			wantErr(t, err, storage.ErrNotFound)
		}
		must(t, s.CreateSession(ctx, newSession("sess-missing", "user-c", now)))
		wantSessionClients(t, s, "sess-missing")
	})

	// A session's clients go with it: a new session under the same id starts with none.
	recreate := func(ss *storage.Session) {
		t.Helper()
		must(t, s.CreateSession(ctx, ss))
		wantSessionClients(t, s, ss.ID)
	}
	t.Run("DeleteSession", func(t *testing.T) {
		must(t, s.DeleteSession(ctx, s1.ID))
		wantSessionClients(t, s, s1.ID)
		wantSessionClients(t, s, s2.ID, "client-a")
		recreate(s1)
	})
	t.Run("DeleteUserSessions", func(t *testing.T) {
		must(t, s.AddSessionClient(ctx, s1.ID, "client-d"))
		n, err := s.DeleteUserSessions(ctx, "user-a")
		must(t, err)
		if n != 2 {
			t.Errorf("DeleteUserSessions = %d, want 2 (session clients are not counted)", n)
		}
		wantSessionClients(t, s, s1.ID)
		wantSessionClients(t, s, s2.ID)
		wantSessionClients(t, s, other.ID, "client-c")
		recreate(s1)
		recreate(s2)
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		old := newSession("sess-old", "user-b", now.Add(-48*time.Hour))
		old.ExpiresAt = now.Add(-time.Minute)
		must(t, s.CreateSession(ctx, old))
		must(t, s.AddSessionClient(ctx, old.ID, "client-a"))
		must(t, s.AddSessionClient(ctx, old.ID, "client-c"))
		n, err := s.DeleteExpired(ctx, now)
		must(t, err)
		if n != 1 {
			t.Errorf("DeleteExpired = %d, want 1 (the session; its clients are not counted)", n)
		}
		wantSessionClients(t, s, old.ID)
		wantSessionClients(t, s, other.ID, "client-c")
		old.ExpiresAt = now.Add(time.Hour)
		recreate(old)
	})
}

func testTypePolicies(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	all, err := s.ListTypePolicies(ctx)
	must(t, err)
	if len(all) != 0 {
		t.Errorf("ListTypePolicies of an empty store = %v, want none", all)
	}
	_, err = s.GetTypePolicy(ctx, "staff")
	wantErr(t, err, storage.ErrNotFound)

	staff := fullPolicy()
	customer := storage.MFAPolicy{MFA: "optional", RememberDevice: 7 * 24 * time.Hour}
	must(t, s.SetTypePolicy(ctx, "staff", staff))
	must(t, s.SetTypePolicy(ctx, "customer", customer))
	// The empty type is the default type, and may have a policy like any other.
	must(t, s.SetTypePolicy(ctx, "", storage.MFAPolicy{}))
	for typ, want := range map[string]storage.MFAPolicy{"staff": staff, "customer": customer, "": {}} {
		got, err := s.GetTypePolicy(ctx, typ)
		must(t, err)
		equal(t, "GetTypePolicy("+typ+")", got, &want)
	}

	// Setting again replaces the whole policy.
	admin := storage.MFAPolicy{MFA: "required", PhishingResistant: true, MaxAge: time.Hour}
	must(t, s.SetTypePolicy(ctx, "staff", admin))
	got, err := s.GetTypePolicy(ctx, "staff")
	must(t, err)
	equal(t, "GetTypePolicy after replace", got, &admin)

	all, err = s.ListTypePolicies(ctx)
	must(t, err)
	equal(t, "ListTypePolicies", all, map[string]storage.MFAPolicy{"staff": admin, "customer": customer, "": {}})

	must(t, s.DeleteTypePolicy(ctx, "staff"))
	_, err = s.GetTypePolicy(ctx, "staff")
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteTypePolicy(ctx, "staff")) // missing is not an error
	must(t, s.DeleteTypePolicy(ctx, ""))
	all, err = s.ListTypePolicies(ctx)
	must(t, err)
	equal(t, "ListTypePolicies after delete", all, map[string]storage.MFAPolicy{"customer": customer})
}

// testMFAPolicyRoundTrip stores policies through both stores that hold one and checks
// that each reads back exactly, durations to the nanosecond.
func testMFAPolicyRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	policies := []struct {
		name string
		p    storage.MFAPolicy
	}{
		{"zero", storage.MFAPolicy{}},
		{"full", fullPolicy()},
		{"mfa only", storage.MFAPolicy{MFA: "off"}},
		{"one factor", storage.MFAPolicy{Factors: []string{"sms"}}},
		{"phishing resistant only", storage.MFAPolicy{PhishingResistant: true}},
		{"odd nanoseconds", storage.MFAPolicy{MaxAge: time.Nanosecond, RememberDevice: 90*24*time.Hour + 999_999_999}},
		{"largest durations", storage.MFAPolicy{MaxAge: 1<<63 - 1, RememberDevice: 1<<53 + 1}},
		{"negative duration", storage.MFAPolicy{MaxAge: -time.Second}},
	}
	c := newClient("client-rt", now)
	c.Policy = storage.MFAPolicy{}
	must(t, s.CreateClient(ctx, c))
	for i, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			// CreateClient with the policy, UpdateClient onto it, and a type policy.
			created := newClient(fmt.Sprintf("client-%d", i), now)
			created.Policy = tc.p
			must(t, s.CreateClient(ctx, created))
			c.Policy = tc.p
			must(t, s.UpdateClient(ctx, c))
			must(t, s.SetTypePolicy(ctx, "type-rt", tc.p))

			for _, id := range []string{created.ID, c.ID} {
				got, err := s.GetClient(ctx, id)
				must(t, err)
				equal(t, "policy of "+id, got.Policy, tc.p)
				if tc.p.MaxAge != got.Policy.MaxAge || tc.p.RememberDevice != got.Policy.RememberDevice {
					t.Errorf("durations of %s = %d, %d; want %d, %d", id, got.Policy.MaxAge,
						got.Policy.RememberDevice, tc.p.MaxAge, tc.p.RememberDevice)
				}
			}
			got, err := s.GetTypePolicy(ctx, "type-rt")
			must(t, err)
			equal(t, "type policy", got, &tc.p)
		})
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

func testDevices(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	d1 := newDevice("dev-1", "user-a", now.Add(-3*time.Hour))
	d2 := newDevice("dev-2", "user-a", now.Add(-2*time.Hour))
	d3 := newDevice("dev-3", "user-a", now.Add(-time.Hour))
	other := newDevice("dev-other", "user-b", now)
	for _, d := range []*storage.Device{d2, d3, d1, other} {
		must(t, s.CreateDevice(ctx, d))
	}
	got, err := s.GetDeviceByTokenHash(ctx, d1.TokenHash)
	must(t, err)
	equal(t, "GetDeviceByTokenHash", got, d1)

	runErrCases(t, []errCase{
		{"CreateDevice duplicate id", func() error {
			d := newDevice(d1.ID, "user-a", now)
			d.TokenHash = "hash-unused"
			return s.CreateDevice(ctx, d)
		}, storage.ErrAlreadyExists},
		{"CreateDevice duplicate token hash", func() error {
			d := newDevice("dev-new", "user-a", now)
			d.TokenHash = d1.TokenHash
			return s.CreateDevice(ctx, d)
		}, storage.ErrAlreadyExists},
		{"GetDeviceByTokenHash missing", func() error {
			_, err := s.GetDeviceByTokenHash(ctx, "hash-missing")
			return err
		}, storage.ErrNotFound},
		{"DeleteDevice of another user", func() error { return s.DeleteDevice(ctx, "user-b", d1.ID) }, storage.ErrNotFound},
		{"DeleteDevice missing", func() error { return s.DeleteDevice(ctx, "user-a", "dev-missing") }, storage.ErrNotFound},
	})
	t.Run("failed deletes deleted nothing", func(t *testing.T) {
		got, err := s.GetDeviceByTokenHash(ctx, d1.TokenHash)
		must(t, err)
		equal(t, "device after failed DeleteDevice", got, d1)
	})

	used := now.Add(5 * time.Minute)
	must(t, s.TouchDevice(ctx, d1.ID, used))
	want1 := *d1
	want1.LastUsedAt = used
	got, err = s.GetDeviceByTokenHash(ctx, d1.TokenHash)
	must(t, err)
	equal(t, "device after TouchDevice", got, &want1)

	list, err := s.ListUserDevices(ctx, "user-a")
	must(t, err)
	equal(t, "ListUserDevices newest first", list, []storage.Device{*d3, *d2, want1})
	list, err = s.ListUserDevices(ctx, "user-nobody")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListUserDevices of unknown user = %d devices, want 0", len(list))
	}

	must(t, s.DeleteDevice(ctx, "user-a", d2.ID))
	_, err = s.GetDeviceByTokenHash(ctx, d2.TokenHash)
	wantErr(t, err, storage.ErrNotFound)
	wantErr(t, s.DeleteDevice(ctx, "user-a", d2.ID), storage.ErrNotFound)

	n, err := s.DeleteUserDevices(ctx, "user-a")
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteUserDevices = %d, want 2", n)
	}
	list, err = s.ListUserDevices(ctx, "user-a")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListUserDevices after DeleteUserDevices = %d devices, want 0", len(list))
	}
	got, err = s.GetDeviceByTokenHash(ctx, other.TokenHash)
	must(t, err)
	equal(t, "other user's device", got, other)
	n, err = s.DeleteUserDevices(ctx, "user-a")
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteUserDevices = %d, want 0", n)
	}
}

func testDeleteExpiredDevices(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	old := newDevice("dev-old", "user-a", now.Add(-31*24*time.Hour))
	old.ExpiresAt = now.Add(-time.Minute)
	live := newDevice("dev-live", "user-a", now.Add(-time.Hour))
	for _, d := range []*storage.Device{old, live} {
		must(t, s.CreateDevice(ctx, d))
	}

	n, err := s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpired = %d, want 1 (the expired device)", n)
	}
	_, err = s.GetDeviceByTokenHash(ctx, old.TokenHash)
	wantErr(t, err, storage.ErrNotFound)
	list, err := s.ListUserDevices(ctx, "user-a")
	must(t, err)
	equal(t, "devices left", list, []storage.Device{*live})

	n, err = s.DeleteExpired(ctx, now)
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteExpired = %d, want 0", n)
	}
}
