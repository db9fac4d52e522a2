package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

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
