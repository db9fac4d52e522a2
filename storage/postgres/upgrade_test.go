package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// connect opens a plain connection to url for statements the Store does not offer.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// migrateTo applies the migrations up to and including version last on conn, the way
// Migrate records them, so that a test can write rows in an older schema.
func migrateTo(t *testing.T, conn *pgx.Conn, last int) {
	t.Helper()
	ctx := t.Context()
	ms, err := migrations.Load("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		t.Fatalf("create schema_migrations: %v", err)
	}
	for _, m := range ms {
		if m.Version > last {
			break
		}
		if _, err := conn.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("apply %s: %v", m.Name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
			m.Version, m.Name); err != nil {
			t.Fatalf("record %s: %v", m.Name, err)
		}
	}
}

// TestUpgradeEssentialACR: migration 0007 moves the essential acr values of in-flight
// sign-ins, stored with an "essential:" prefix inside acr_values, into their own column.
func TestUpgradeEssentialACR(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	migrateTo(t, conn, 6)
	for _, q := range []string{
		`INSERT INTO auth_requests (id, client_id, acr_values) VALUES ('a1', 'c1', ARRAY['urn:x:voluntary', 'essential:urn:openidp:acr:mfa'])`,
		`INSERT INTO auth_requests (id, client_id, acr_values) VALUES ('a2', 'c1', ARRAY['urn:x:only'])`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := openStore(t, url)
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

// TestUpgradeFrom0002 writes a user, a client and a session in the 0002 schema and
// checks how they read after the later migrations: new fields at their zero values, and
// PasswordAt of an existing session taken from its AuthTime.
func TestUpgradeFrom0002(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	migrateTo(t, conn, 2)
	authTime := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, st := range []struct {
		q    string
		args []any
	}{
		{`INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')`, nil},
		{`INSERT INTO clients (id, name) VALUES ('c1', 'Client 1')`, nil},
		{`INSERT INTO sessions (id, token_hash, user_id, auth_time) VALUES ('s1', 'h1', 'u1', $1)`, []any{authTime}},
	} {
		if _, err := conn.Exec(ctx, st.q, st.args...); err != nil {
			t.Fatalf("%s: %v", st.q, err)
		}
	}

	s := openStore(t, url)
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

// TestPolicyEncoding checks the stored form of an MFA policy: a jsonb object whose
// durations are numbers of nanoseconds, {} for the zero policy.
func TestPolicyEncoding(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	s := openStore(t, url)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	for id, p := range map[string]storage.MFAPolicy{
		"zero": {},
		"full": {MFA: "required", Factors: []storage.FactorKind{"totp"}, MaxAge: time.Hour, RememberDevice: 1<<63 - 1},
	} {
		if err := s.CreateClient(ctx, &storage.Client{ID: id, Policy: p}); err != nil {
			t.Fatalf("CreateClient: %v", err)
		}
	}
	if err := s.SetTypePolicy(ctx, "staff", storage.MFAPolicy{MaxAge: 90 * time.Second}); err != nil {
		t.Fatalf("SetTypePolicy: %v", err)
	}
	conn := connect(t, url)
	for q, want := range map[string]string{
		`SELECT policy::text FROM clients WHERE id = 'zero'`: `{}`,
		`SELECT policy::text FROM clients WHERE id = 'full'`: `{"mfa": "required", "factors": ["totp"], "max_age": 3600000000000, "remember_device": 9223372036854775807}`,
		`SELECT jsonb_typeof(policy->'max_age') || ' ' || (policy->>'max_age') FROM type_policies
			WHERE type = 'staff'`: `number 90000000000`,
	} {
		var got string
		if err := conn.QueryRow(ctx, q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
}

// TestAddSessionClientDeleteRace races AddSessionClient against DeleteSession: whatever
// the interleaving, no session_clients row may outlive its session.
func TestAddSessionClientDeleteRace(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	s := openStore(t, url)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	now := time.Now()
	const rounds = 50
	for i := range rounds {
		id := fmt.Sprintf("sess-%d", i)
		sess := &storage.Session{ID: id, TokenHash: "hash-" + id, UserID: "u", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := range 4 {
			wg.Go(func() {
				<-start
				err := s.AddSessionClient(ctx, id, fmt.Sprintf("client-%d", c))
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("AddSessionClient: %v", err)
				}
			})
		}
		wg.Go(func() {
			<-start
			if err := s.DeleteSession(ctx, id); err != nil {
				t.Errorf("DeleteSession: %v", err)
			}
		})
		close(start)
		wg.Wait()
	}
	var orphans int
	if err := connect(t, url).QueryRow(ctx, `SELECT count(*) FROM session_clients`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d session_clients rows outlived their session", orphans)
	}
}

// TestUpgradeSigningKeyActivation: migration 0009 gives existing signing keys an
// activation time equal to their creation: they signed from the start.
func TestUpgradeSigningKeyActivation(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	migrateTo(t, conn, 7)
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := conn.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, created_at) VALUES ('k1', 'ES256', $1)`, created); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, url)
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
