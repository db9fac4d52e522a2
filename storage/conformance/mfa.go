package conformance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

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
