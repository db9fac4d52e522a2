package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/conformance"
	"github.com/openidp/idp/storage/postgres"
	"github.com/openidp/idp/storage/postgres/pgtest"
)

// openStore opens a Store on url and closes it when the test ends.
func openStore(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore returns a migrated Store on a fresh database.
func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	s := openStore(t, pgtest.NewDatabase(t))
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// TestConformance runs the shared storage suite, each case on a fresh database.
func TestConformance(t *testing.T) {
	conformance.RunTests(t, func(t *testing.T) storage.Storage { return newStore(t) })
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	all, err := migrations.Load("postgres")
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, pgtest.NewDatabase(t))
	for i, want := range []int{len(all), 0} {
		got, err := s.Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
		if got != want {
			t.Errorf("Migrate #%d applied %d, want %d", i+1, got, want)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	all, err := migrations.Load("postgres")
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDatabase(t)
	stores := []*postgres.Store{openStore(t, url), openStore(t, url)}
	applied := make([]int, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { applied[i], errs[i] = s.Migrate(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate on store %d: %v", i, err)
		}
	}
	if applied[0]+applied[1] != len(all) || (applied[0] != 0 && applied[1] != 0) {
		t.Errorf("concurrent Migrate applied %v, want %d and 0 in some order", applied, len(all))
	}
}

func TestConsumeAuthCodeConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	r := &storage.AuthRequest{ID: "req1", ClientID: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateAuthRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAuthCode(ctx, r.ID, "codehash", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := s.ConsumeAuthCode(ctx, "codehash", now)
			if err == nil && got.ID != r.ID {
				err = fmt.Errorf("got request %q", got.ID)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrNotFound):
			t.Errorf("loser got %v, want ErrNotFound", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d callers redeemed the code, want exactly 1", wins, n)
	}
}

func TestConsumeAuthCodeExpiry(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	if err := s.CreateAuthRequest(ctx, &storage.AuthRequest{ID: "r", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeAuthCode(ctx, "", now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("consume before a code was saved: %v, want ErrNotFound", err)
	}
	if err := s.SaveAuthCode(ctx, "r", "h", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsumeAuthCode(ctx, "h", now.Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("consume at expiry: %v, want ErrNotFound", err)
	}
	if err := s.SaveAuthCode(ctx, "missing", "h2", now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SaveAuthCode on a missing request: %v, want ErrNotFound", err)
	}
}

func TestRotateRefreshTokenConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	rt := &storage.RefreshToken{ID: "rt0", TokenHash: "h0", FamilyID: "fam", UserID: "u", ExpiresAt: now.Add(time.Hour)}
	at := &storage.AccessToken{ID: "at0", UserID: "u", FamilyID: "fam", ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateRefreshToken(ctx, rt, at); err != nil {
		t.Fatal(err)
	}

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := &storage.RefreshToken{ID: fmt.Sprintf("rt%d", i+1), TokenHash: fmt.Sprintf("h%d", i+1),
				FamilyID: "fam", UserID: "u", ExpiresAt: now.Add(time.Hour)}
			nextAT := &storage.AccessToken{ID: fmt.Sprintf("at%d", i+1), UserID: "u", FamilyID: "fam"}
			errs[i] = s.RotateRefreshToken(ctx, "rt0", now, next, nextAT)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("loser got %v, want ErrConflict", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d callers rotated the token, want exactly 1", wins, n)
	}
	old, err := s.GetRefreshToken(ctx, "rt0")
	if err != nil {
		t.Fatal(err)
	}
	if old.RotatedAt.IsZero() {
		t.Error("rotated token has zero RotatedAt")
	}
	if err := s.RotateRefreshToken(ctx, "nope", now, &storage.RefreshToken{ID: "x", TokenHash: "x", FamilyID: "f"}, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("rotate missing token: %v, want ErrNotFound", err)
	}

	revoked, err := s.RevokeRefreshFamily(ctx, "fam", now)
	if err != nil {
		t.Fatal(err)
	}
	if revoked != 2 { // rt0 and the winner
		t.Errorf("RevokeRefreshFamily revoked %d, want 2", revoked)
	}
	if _, err := s.GetAccessToken(ctx, "at0"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("access token of a revoked family: %v, want ErrNotFound", err)
	}
}

// TestRoundTrip checks the encoding rules of the schema: zero times, nil and empty
// lists and byte slices, durations, and lower-cased e-mail.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.FixedZone("X", 3600))

	c := &storage.Client{ID: "c", SecretHash: []byte{1, 2}, RedirectURIs: []string{"https://a/cb"},
		GrantTypes: []string{}, AccessTokenLifetime: 90 * time.Second, CreatedAt: now}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	want := *c
	want.CreatedAt = now.UTC()
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("client round trip:\n got %#v\nwant %#v", *got, want)
	}

	u := &storage.User{ID: "u", Email: "Alice@Example.COM", CreatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	gu, err := s.GetUserByEmail(ctx, "ALICE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if gu.Email != "alice@example.com" || !gu.UpdatedAt.IsZero() || gu.CreatedAt.Location() != time.UTC {
		t.Errorf("user round trip: %+v", gu)
	}
	if err := s.CreateUser(ctx, &storage.User{ID: "u2", Email: "alice@EXAMPLE.com"}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("duplicate e-mail: %v, want ErrAlreadyExists", err)
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	for i, tc := range []struct {
		at   time.Duration
		want int
	}{{0, 1}, {time.Second, 2}, {59 * time.Second, 3}, {time.Minute, 1}, {61 * time.Second, 2}} {
		got, err := s.HitRateLimit(ctx, "k", time.Minute, now.Add(tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("hit %d at +%v: count %d, want %d", i, tc.at, got, tc.want)
		}
	}
	if n, _ := s.RateLimitCount(ctx, "k", time.Minute, now.Add(119*time.Second)); n != 2 {
		t.Errorf("count in open window = %d, want 2", n)
	}
	if n, _ := s.RateLimitCount(ctx, "k", time.Minute, now.Add(2*time.Minute)); n != 0 {
		t.Errorf("count after window = %d, want 0", n)
	}
}

func TestListAuditLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i := range 5 {
		e := &storage.AuditEvent{Type: "t", Time: time.Now(), Reason: fmt.Sprint(i)}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{Type: "t", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Reason != "3" || evs[1].Reason != "4" {
		t.Errorf("ListAudit(Limit 2) = %+v, want events 3 and 4 in that order", evs)
	}
}
