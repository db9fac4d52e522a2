package sqlite

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
)

// migrateTo applies the migrations up to and including version last, the way Migrate
// records them, so that a test can write rows in an older schema.
func migrateTo(t *testing.T, s *Store, last int) {
	t.Helper()
	ctx := t.Context()
	ms, err := migrations.Load("sqlite")
	if err != nil {
		t.Fatalf("load migrations: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		t.Fatalf("create schema_migrations: %v", err)
	}
	for _, m := range ms {
		if m.Version > last {
			break
		}
		if _, err := s.db.ExecContext(ctx, m.SQL); err != nil {
			t.Fatalf("apply %s: %v", m.Name, err)
		}
		if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at)
			VALUES (?, ?, ?)`, m.Version, m.Name, time.Now().UnixNano()); err != nil {
			t.Fatalf("record %s: %v", m.Name, err)
		}
	}
}

// TestUpgradeFrom0002 writes a user, a client and a session in the 0002 schema and
// checks how they read after the later migrations: new fields at their zero values, and
// PasswordAt of an existing session taken from its AuthTime.
func TestUpgradeFrom0002(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "idp.db"))
	ctx := t.Context()
	migrateTo(t, s, 2)
	authTime := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, q := range []string{
		`INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')`,
		`INSERT INTO clients (id, name) VALUES ('c1', 'Client 1')`,
		`INSERT INTO sessions (id, token_hash, user_id, auth_time) VALUES ('s1', 'h1', 'u1', ?1)`,
	} {
		if _, err := s.db.ExecContext(ctx, q, authTime.UnixNano()); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	u, err := s.GetUser(ctx, "u1")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if u.Type != "" || u.Groups != nil || !u.MFAGraceStarted.IsZero() || u.MFAGraceLogins != 0 {
		t.Errorf("upgraded user = %+v, want empty type, no groups, no grace", u)
	}
	c, err := s.GetClient(ctx, "c1")
	if err != nil {
		t.Fatalf("GetClient: %v", err)
	}
	if !reflect.DeepEqual(c.Policy, storage.MFAPolicy{}) || c.BackchannelLogoutURI != "" {
		t.Errorf("upgraded client: policy %+v, back-channel URI %q; want zero values", c.Policy, c.BackchannelLogoutURI)
	}
	ss, err := s.GetSession(ctx, "s1")
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if !ss.PasswordAt.Equal(authTime) || !ss.MFAAt.IsZero() {
		t.Errorf("upgraded session: PasswordAt %v, MFAAt %v; want %v and zero", ss.PasswordAt, ss.MFAAt, authTime)
	}
}

// TestPolicyEncoding checks the stored form of an MFA policy: a JSON object whose
// durations are numbers of nanoseconds, {} for the zero policy.
func TestPolicyEncoding(t *testing.T) {
	s := newMigrated(t)
	ctx := t.Context()
	for id, p := range map[string]storage.MFAPolicy{
		"zero": {},
		"full": {MFA: "required", Factors: []storage.FactorKind{"totp"}, MaxAge: time.Hour, RememberDevice: time.Nanosecond},
	} {
		if err := s.CreateClient(ctx, &storage.Client{ID: id, Policy: p}); err != nil {
			t.Fatalf("CreateClient: %v", err)
		}
	}
	if err := s.SetTypePolicy(ctx, "staff", storage.MFAPolicy{MaxAge: 90 * time.Second}); err != nil {
		t.Fatalf("SetTypePolicy: %v", err)
	}
	for q, want := range map[string]string{
		`SELECT policy FROM clients WHERE id = 'zero'`:          `{}`,
		`SELECT policy FROM clients WHERE id = 'full'`:          `{"mfa":"required","factors":["totp"],"max_age":3600000000000,"remember_device":1}`,
		`SELECT policy FROM type_policies WHERE type = 'staff'`: `{"max_age":90000000000}`,
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
}

// TestUpgradeEssentialACR: migration 0007 moves the essential acr values of in-flight
// sign-ins, stored with an "essential:" prefix inside acr_values, into their own column.
func TestUpgradeEssentialACR(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "idp.db"))
	ctx := t.Context()
	migrateTo(t, s, 6)
	for _, q := range []string{
		`INSERT INTO auth_requests (id, client_id, acr_values) VALUES ('a1', 'c1', '["urn:x:voluntary","essential:urn:openidp:acr:mfa"]')`,
		`INSERT INTO auth_requests (id, client_id, acr_values) VALUES ('a2', 'c1', '["urn:x:only"]')`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for _, tc := range []struct {
		id                   string
		voluntary, essential []string
	}{
		{"a1", []string{"urn:x:voluntary"}, []string{"urn:openidp:acr:mfa"}},
		{"a2", []string{"urn:x:only"}, nil},
	} {
		ar, err := s.GetAuthRequest(ctx, tc.id)
		if err != nil {
			t.Fatalf("GetAuthRequest %s: %v", tc.id, err)
		}
		if !reflect.DeepEqual(ar.ACRValues, tc.voluntary) || !reflect.DeepEqual(ar.EssentialACR, tc.essential) {
			t.Errorf("%s: acr %q essential %q, want %q and %q", tc.id, ar.ACRValues, ar.EssentialACR, tc.voluntary, tc.essential)
		}
	}
}

// TestUpgradeSigningKeyActivation: migration 0009 gives existing signing keys an
// activation time equal to their creation: they signed from the start.
func TestUpgradeSigningKeyActivation(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "idp.db"))
	ctx := t.Context()
	migrateTo(t, s, 7)
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO signing_keys (id, algorithm, created_at) VALUES ('k1', 'ES256', ?)`,
		created.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	keys, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys[0].ActivatesAt.Equal(created) {
		t.Fatalf("keys after migration = %+v, want k1 activated at %v", keys, created)
	}
}
