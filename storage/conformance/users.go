package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

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

	odd := &storage.User{ID: "user-odd", Email: "under_score%@example.net", Name: "Ödön", CreatedAt: now, UpdatedAt: now}
	must(t, s.CreateUser(ctx, odd))
	for _, tc := range []struct {
		query string
		limit int
		want  []storage.User
	}{
		{"", 10, []storage.User{wantAlice, wantBob, *carol, *odd}},
		{"", 2, []storage.User{wantAlice, wantBob}},
		{"EXAMPLE.COM", 10, []storage.User{wantBob, *carol}},
		{"alice b", 10, []storage.User{wantAlice}}, // the name
		{"_", 10, []storage.User{*odd}},            // a literal underscore, not any character
		{"%", 10, []storage.User{*odd}},
		{`\`, 10, nil},
		{"nobody", 10, nil},
	} {
		got, err := s.SearchUsers(ctx, tc.query, tc.limit)
		must(t, err)
		equal(t, "SearchUsers("+tc.query+")", got, tc.want)
	}
}
