package admin

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

var adminTestNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestAdmin returns an Admin over a fresh, migrated SQLite database with a fixed clock.
func newTestAdmin(t *testing.T) *Admin {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatalf("sealer: %v", err)
	}
	now := func() time.Time { return adminTestNow }
	return &Admin{
		Store: store,
		Audit: &audit.Auditor{Store: store, Now: now},
		Keys:  &keys.Manager{Store: store, Sealer: sealer, Retention: time.Hour, Now: now},
		Now:   now,
	}
}

// auditEvents returns every audit event recorded so far.
func auditEvents(t *testing.T, a *Admin) []storage.AuditEvent {
	t.Helper()
	events, err := a.Audit.Store.ListAudit(context.Background(), storage.AuditFilter{})
	if err != nil {
		t.Fatalf("list audit: %v", err)
	}
	return events
}

// mustCreateUser creates a user or fails the test.
func mustCreateUser(t *testing.T, a *Admin, email string) *storage.User {
	t.Helper()
	u, err := a.CreateUser(context.Background(), "test", NewUser{Email: email, Name: "Test", Password: "correct horse battery"})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

func TestCreateClientRejects(t *testing.T) {
	valid := func(mod func(*NewClient)) NewClient {
		in := NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}}
		mod(&in)
		return in
	}
	tests := []struct {
		name    string
		in      NewClient
		wantErr string
	}{
		{"no name", valid(func(c *NewClient) { c.Name = "  " }), "client name is required"},
		{"no redirect URI", valid(func(c *NewClient) { c.RedirectURIs = nil }), "at least one redirect URI"},
		{"relative redirect", valid(func(c *NewClient) { c.RedirectURIs = []string{"/callback"} }), "must be an absolute URL"},
		{"redirect without host", valid(func(c *NewClient) { c.RedirectURIs = []string{"https:///cb"} }), "must be an absolute URL"},
		{"fragment", valid(func(c *NewClient) { c.RedirectURIs = []string{"https://app.example.com/cb#x"} }), "must not contain a fragment"},
		{"http on a public host", valid(func(c *NewClient) { c.RedirectURIs = []string{"http://app.example.com/cb"} }), "http is allowed only for localhost"},
		{"custom scheme", valid(func(c *NewClient) { c.RedirectURIs = []string{"myapp://cb"} }), "scheme must be https"},
		{"unparsable", valid(func(c *NewClient) { c.RedirectURIs = []string{"https://a b.example.com/%zz"} }), "invalid redirect URI"},
		{"bad post-logout", valid(func(c *NewClient) { c.PostLogoutRedirectURIs = []string{"http://evil.example.com/"} }), "invalid post-logout redirect URI"},
		{"unknown grant", valid(func(c *NewClient) { c.GrantTypes = []string{"password"} }), `unsupported grant type "password"`},
		{"implicit grant", valid(func(c *NewClient) { c.GrantTypes = []string{"implicit"} }), "unsupported grant type"},
		{"public client_credentials", valid(func(c *NewClient) {
			c.Public = true
			c.GrantTypes = []string{GrantClientCredentials}
		}), "public client cannot use the client_credentials grant"},
		{"bad scope", valid(func(c *NewClient) { c.Scopes = []string{"openid", "Profile"} }), `invalid scope "Profile"`},
		{"scope with space", valid(func(c *NewClient) { c.Scopes = []string{"a b"} }), "invalid scope"},
		{"token format", valid(func(c *NewClient) { c.AccessTokenFormat = "paseto" }), "unsupported access token format"},
		{"signing alg", valid(func(c *NewClient) { c.IDTokenSigningAlg = "HS256" }), "unsupported ID token signing algorithm"},
		{"negative access lifetime", valid(func(c *NewClient) { c.AccessTokenLifetime = -time.Minute }), "access token lifetime must be positive"},
		{"negative ID lifetime", valid(func(c *NewClient) { c.IDTokenLifetime = -time.Minute }), "ID token lifetime must be positive"},
		{"negative refresh lifetime", valid(func(c *NewClient) { c.RefreshTokenLifetime = -time.Minute }), "refresh token lifetime must be positive"},
	}
	a := newTestAdmin(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, secret, err := a.CreateClient(ctx, "test", tt.in)
			if err == nil {
				t.Fatalf("CreateClient succeeded (client %+v), want error containing %q", c, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if c != nil || secret != "" {
				t.Errorf("got client %v and secret %q on error", c, secret)
			}
		})
	}
	clients, err := a.Store.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(clients) != 0 {
		t.Errorf("%d clients stored after rejected creations, want 0", len(clients))
	}
	if ev := auditEvents(t, a); len(ev) != 0 {
		t.Errorf("%d audit events written for rejected input, want 0: %+v", len(ev), ev)
	}
}

func TestCreateClientAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    NewClient
		check func(t *testing.T, c *storage.Client, secret string)
	}{
		{
			name: "defaults",
			in:   NewClient{Name: " App ", RedirectURIs: []string{"https://app.example.com/cb"}},
			check: func(t *testing.T, c *storage.Client, clientSecret string) {
				if c.Name != "App" {
					t.Errorf("name = %q", c.Name)
				}
				if !slices.Equal(c.GrantTypes, DefaultClientGrants) {
					t.Errorf("grants = %v", c.GrantTypes)
				}
				if !slices.Equal(c.Scopes, DefaultClientScopes) {
					t.Errorf("scopes = %v", c.Scopes)
				}
				if c.AccessTokenFormat != AccessTokenJWT || c.IDTokenSigningAlg != keys.AlgES256 {
					t.Errorf("format/alg = %s/%s", c.AccessTokenFormat, c.IDTokenSigningAlg)
				}
				if c.AccessTokenLifetime != 15*time.Minute || c.IDTokenLifetime != time.Hour || c.RefreshTokenLifetime != 720*time.Hour {
					t.Errorf("lifetimes = %s %s %s", c.AccessTokenLifetime, c.IDTokenLifetime, c.RefreshTokenLifetime)
				}
				if len(clientSecret) != 43 || !bytes.Equal(c.SecretHash, secret.HashClientSecret(clientSecret)) {
					t.Errorf("secret %d chars, hash matches: %v", len(clientSecret), bytes.Equal(c.SecretHash, secret.HashClientSecret(clientSecret)))
				}
			},
		},
		{
			name: "public loopback",
			in: NewClient{Name: "CLI", Public: true, RedirectURIs: []string{
				"http://localhost:8400/cb", "http://127.0.0.1/cb", "http://[::1]:9000/cb",
			}},
			check: func(t *testing.T, c *storage.Client, secret string) {
				if secret != "" || len(c.SecretHash) != 0 {
					t.Errorf("public client got secret %q / hash %x", secret, c.SecretHash)
				}
				if len(c.RedirectURIs) != 3 {
					t.Errorf("redirects = %v", c.RedirectURIs)
				}
			},
		},
		{
			name: "client_credentials without redirect",
			in:   NewClient{Name: "Batch", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"api:read", "reports.write"}},
			check: func(t *testing.T, c *storage.Client, secret string) {
				if len(c.RedirectURIs) != 0 || secret == "" {
					t.Errorf("redirects %v, secret empty: %v", c.RedirectURIs, secret == "")
				}
				if !slices.Equal(c.Scopes, []string{"api:read", "reports.write"}) {
					t.Errorf("scopes = %v", c.Scopes)
				}
			},
		},
		{
			name: "explicit settings",
			in: NewClient{
				Name: "Opaque", RedirectURIs: []string{"https://a.example.com/cb", "https://a.example.com/cb"},
				PostLogoutRedirectURIs: []string{"https://a.example.com/"}, SkipConsent: true,
				Scopes: []string{"openid", "phone", "address", "account"}, AccessTokenFormat: "opaque",
				IDTokenSigningAlg: "rs256", AccessTokenLifetime: time.Minute, IDTokenLifetime: 2 * time.Minute,
				RefreshTokenLifetime: 3 * time.Minute,
			},
			check: func(t *testing.T, c *storage.Client, _ string) {
				if len(c.RedirectURIs) != 1 {
					t.Errorf("duplicate redirect kept: %v", c.RedirectURIs)
				}
				if !c.SkipConsent || c.AccessTokenFormat != AccessTokenOpaque || c.IDTokenSigningAlg != keys.AlgRS256 {
					t.Errorf("got %+v", c)
				}
				if c.AccessTokenLifetime != time.Minute || c.IDTokenLifetime != 2*time.Minute || c.RefreshTokenLifetime != 3*time.Minute {
					t.Errorf("lifetimes = %s %s %s", c.AccessTokenLifetime, c.IDTokenLifetime, c.RefreshTokenLifetime)
				}
			},
		},
	}
	a := newTestAdmin(t)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, secret, err := a.CreateClient(ctx, "cli", tt.in)
			if err != nil {
				t.Fatalf("CreateClient: %v", err)
			}
			stored, err := a.Store.GetClient(ctx, c.ID)
			if err != nil {
				t.Fatalf("GetClient: %v", err)
			}
			tt.check(t, stored, secret)
		})
	}
}

func TestCreateUser(t *testing.T) {
	a := newTestAdmin(t)
	ctx := context.Background()
	u, err := a.CreateUser(ctx, "cli", NewUser{Email: " Ada@Example.COM ", Name: "Ada", Password: "correct horse battery"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if u.Email != "ada@example.com" || u.ID == "" || !u.CreatedAt.Equal(adminTestNow) {
		t.Errorf("user = %+v", u)
	}
	if ok, _ := pwhash.Verify("correct horse battery", u.PasswordHash); !ok {
		t.Error("stored hash does not verify the password")
	}

	tests := []struct {
		name    string
		in      NewUser
		wantErr string
		is      error
	}{
		{"duplicate email", NewUser{Email: "ADA@example.com", Password: "another password"}, "already exists", storage.ErrAlreadyExists},
		{"invalid email", NewUser{Email: "not-an-email", Password: "another password"}, "not a valid e-mail address", nil},
		{"display-name address", NewUser{Email: "Bob <bob@example.com>", Password: "another password"}, "not a valid e-mail address", nil},
		{"empty email", NewUser{Password: "another password"}, "e-mail is required", nil},
		{"short password", NewUser{Email: "bob@example.com", Password: "short"}, "at least 8 characters", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.CreateUser(ctx, "cli", tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
	users, err := a.Store.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 {
		t.Errorf("%d users stored, want 1", len(users))
	}
}

func TestFindUser(t *testing.T) {
	a := newTestAdmin(t)
	ctx := context.Background()
	u := mustCreateUser(t, a, "ada@example.com")
	tests := []struct {
		name, key string
		wantErr   bool
	}{
		{"by id", u.ID, false},
		{"by email", "ada@example.com", false},
		{"by email, other case", "ADA@Example.com", false},
		{"unknown id", "nope", true},
		{"unknown email", "bob@example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.FindUser(ctx, tt.key)
			if tt.wantErr {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil || got.ID != u.ID {
				t.Fatalf("FindUser = %v, %v", got, err)
			}
		})
	}
}

func TestDisableUser(t *testing.T) {
	a := newTestAdmin(t)
	ctx := context.Background()
	u := mustCreateUser(t, a, "ada@example.com")
	other := mustCreateUser(t, a, "bob@example.com")
	c, _, err := a.CreateClient(ctx, "test", NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, owner := range []string{u.ID, u.ID, other.ID} {
		s := &storage.Session{
			ID: secret.NewID(), TokenHash: secret.Hash(secret.NewID()), UserID: owner, AuthTime: adminTestNow,
			CreatedAt: adminTestNow, LastSeenAt: adminTestNow, ExpiresAt: adminTestNow.Add(time.Hour),
		}
		if err := a.Store.CreateSession(ctx, s); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	family := secret.NewID()
	at := &storage.AccessToken{ID: secret.NewID(), ClientID: c.ID, UserID: u.ID, FamilyID: family, CreatedAt: adminTestNow, ExpiresAt: adminTestNow.Add(time.Hour)}
	rt := &storage.RefreshToken{ID: secret.NewID(), TokenHash: secret.Hash(secret.NewID()), FamilyID: family, ClientID: c.ID, UserID: u.ID, CreatedAt: adminTestNow, ExpiresAt: adminTestNow.Add(time.Hour)}
	if err := a.Store.CreateRefreshToken(ctx, rt, at); err != nil {
		t.Fatalf("refresh token: %v", err)
	}

	if err := a.DisableUser(ctx, "cli", "ADA@example.com"); err != nil {
		t.Fatalf("DisableUser: %v", err)
	}

	got, err := a.Store.GetUser(ctx, u.ID)
	if err != nil || !got.Disabled {
		t.Fatalf("user after disable = %+v, %v", got, err)
	}
	if s, err := a.Store.ListUserSessions(ctx, u.ID); err != nil || len(s) != 0 {
		t.Errorf("sessions left = %d, %v; want 0", len(s), err)
	}
	if s, err := a.Store.ListUserSessions(ctx, other.ID); err != nil || len(s) != 1 {
		t.Errorf("other user's sessions = %d, %v; want 1", len(s), err)
	}
	if _, err := a.Store.GetAccessToken(ctx, at.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("access token after disable: err = %v, want ErrNotFound", err)
	}
	if r, err := a.Store.GetRefreshToken(ctx, rt.ID); err != nil || r.RevokedAt.IsZero() {
		t.Errorf("refresh token after disable = %+v, %v; want revoked", r, err)
	}

	var found bool
	for _, e := range auditEvents(t, a) {
		if e.Type == audit.EventAdminUserDisable && e.UserID == u.ID {
			found = true
			if e.Result != audit.ResultSuccess || !strings.Contains(e.Reason, "actor=cli") || !strings.Contains(e.Reason, "sessions_deleted=2") {
				t.Errorf("disable event = %+v", e)
			}
		}
	}
	if !found {
		t.Error("no admin.user.disable audit event")
	}
	if err := a.DisableUser(ctx, "cli", "nobody@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("disable unknown user: err = %v, want ErrNotFound", err)
	}
}

func TestAdminAuditEvents(t *testing.T) {
	a := newTestAdmin(t)
	ctx := context.Background()
	u := mustCreateUser(t, a, "ada@example.com")
	if _, err := a.CreateUser(ctx, "cli", NewUser{Email: "ada@example.com", Password: "correct horse battery"}); err == nil {
		t.Fatal("duplicate user created")
	}
	c, secret, err := a.CreateClient(ctx, "cli", NewClient{Name: "App", RedirectURIs: []string{"https://app.example.com/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := a.RotateKeys(ctx, "cli")
	if err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	if len(ids) != len(keys.SupportedAlgs) {
		t.Errorf("RotateKeys returned %d ids, want %d", len(ids), len(keys.SupportedAlgs))
	}

	want := []struct {
		typ, result, userID, clientID, reason string
	}{
		{audit.EventAdminUserCreate, audit.ResultSuccess, u.ID, "", "actor=test email=ada@example.com"},
		{audit.EventAdminUserCreate, audit.ResultFailure, "", "", "actor=cli email=ada@example.com"},
		{audit.EventAdminClientCreate, audit.ResultSuccess, "", c.ID, "actor=cli name=\"App\""},
		{audit.EventAdminKeyRotate, audit.ResultSuccess, "", "", "actor=cli key_ids=" + strings.Join(ids, ",")},
	}
	events := auditEvents(t, a)
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(events), len(want), events)
	}
	for i, w := range want {
		e := events[i]
		if e.Type != w.typ || e.Result != w.result || e.UserID != w.userID || e.ClientID != w.clientID ||
			!strings.HasPrefix(e.Reason, w.reason) || !e.Time.Equal(adminTestNow) {
			t.Errorf("event %d = %+v, want type %s result %s user %q client %q reason prefix %q",
				i, e, w.typ, w.result, w.userID, w.clientID, w.reason)
		}
		if strings.Contains(e.Reason, secret) || strings.Contains(e.Reason, "correct horse") {
			t.Errorf("event %d leaks a secret: %q", i, e.Reason)
		}
	}
}

func TestSeedDemo(t *testing.T) {
	a := newTestAdmin(t)
	ctx := context.Background()
	seed, err := a.SeedDemo(ctx, "http://192.168.1.20:8080/")
	if err != nil {
		t.Fatalf("SeedDemo: %v", err)
	}
	if seed.Email != DemoUserEmail || len(seed.Password) != 16 {
		t.Errorf("seed = %s / %d-char password", seed.Email, len(seed.Password))
	}
	u, err := a.FindUser(ctx, seed.Email)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := pwhash.Verify(seed.Password, u.PasswordHash); !ok || u.Name != DemoUserName {
		t.Errorf("demo user %+v: password verifies %v", u, ok)
	}
	c, err := a.Store.GetClient(ctx, seed.Client.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	wantRedirect := "http://192.168.1.20:8080/demo/callback"
	if seed.Client.RedirectURI != wantRedirect || !slices.Equal(c.RedirectURIs, []string{wantRedirect}) {
		t.Errorf("redirect = %q, client redirects %v", seed.Client.RedirectURI, c.RedirectURIs)
	}
	if !slices.Equal(c.PostLogoutRedirectURIs, []string{"http://192.168.1.20:8080/"}) {
		t.Errorf("post-logout = %v", c.PostLogoutRedirectURIs)
	}
	if c.Name != DemoClientName || c.Public || c.SkipConsent || !bytes.Equal(c.SecretHash, secret.HashClientSecret(seed.Client.ClientSecret)) {
		t.Errorf("demo client = %+v", c)
	}
	if !slices.Equal(c.Scopes, []string{"openid", "profile", "email", "offline_access"}) ||
		!slices.Equal(c.GrantTypes, []string{GrantAuthorizationCode, GrantRefreshToken}) {
		t.Errorf("scopes %v grants %v", c.Scopes, c.GrantTypes)
	}
	if _, err := a.SeedDemo(ctx, "http://localhost:8080"); err == nil {
		t.Error("second SeedDemo succeeded, want duplicate-user error")
	}
}
