package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

// Device authorizations (RFC 8628): the poll interval (slow_down), the state machine
// pending → approved → consumed / pending → denied, expiry, and single use under
// concurrency.

func newDeviceAuth(id string, now time.Time) *storage.DeviceAuthorization {
	return &storage.DeviceAuthorization{
		ID: id, DeviceCodeHash: "dc-" + id, UserCodeHash: "uc-" + id, ClientID: "tv",
		Scopes: []string{"openid", "offline_access"}, State: storage.DeviceAuthPending,
		CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}
}

func testDeviceAuthorizations(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	d := newDeviceAuth("d1", now)
	must(t, s.CreateDeviceAuthorization(ctx, d))
	wantErr(t, s.CreateDeviceAuthorization(ctx, newDeviceAuth("d1", now)), storage.ErrAlreadyExists)
	dup := newDeviceAuth("d2", now)
	dup.UserCodeHash = d.UserCodeHash
	wantErr(t, s.CreateDeviceAuthorization(ctx, dup), storage.ErrAlreadyExists)

	got, err := s.GetDeviceAuthorizationByUserCode(ctx, "uc-d1")
	must(t, err)
	equal(t, "device authorization", got, d)
	_, err = s.GetDeviceAuthorizationByUserCode(ctx, "uc-none")
	wantErr(t, err, storage.ErrNotFound)

	// Polling: the first poll is recorded, one within the interval is refused.
	p, err := s.PollDeviceAuthorization(ctx, "dc-d1", now, 5*time.Second)
	must(t, err)
	equal(t, "state", p.State, storage.DeviceAuthPending)
	equal(t, "last poll", p.LastPollAt, now)
	_, err = s.PollDeviceAuthorization(ctx, "dc-d1", now.Add(2*time.Second), 5*time.Second)
	wantErr(t, err, storage.ErrConflict)
	_, err = s.PollDeviceAuthorization(ctx, "dc-d1", now.Add(5*time.Second), 5*time.Second)
	must(t, err)
	_, err = s.PollDeviceAuthorization(ctx, "dc-none", now, 5*time.Second)
	wantErr(t, err, storage.ErrNotFound)

	// Not approved yet: nothing to consume.
	_, err = s.ConsumeDeviceAuthorization(ctx, "dc-d1", now)
	wantErr(t, err, storage.ErrNotFound)

	login := storage.AuthLogin{UserID: "u1", SessionID: "s1", AuthTime: now, AMR: []string{"pwd", "otp"}, ACR: "mfa"}
	must(t, s.ApproveDeviceAuthorization(ctx, "d1", login, now))
	wantErr(t, s.ApproveDeviceAuthorization(ctx, "d1", login, now), storage.ErrNotFound)
	wantErr(t, s.DenyDeviceAuthorization(ctx, "d1", now), storage.ErrNotFound)
	wantErr(t, s.ApproveDeviceAuthorization(ctx, "none", login, now), storage.ErrNotFound)

	c, err := s.ConsumeDeviceAuthorization(ctx, "dc-d1", now)
	must(t, err)
	equal(t, "consumed state", c.State, storage.DeviceAuthConsumed)
	equal(t, "login", c.Login, login)
	equal(t, "scopes", c.Scopes, d.Scopes)
	_, err = s.ConsumeDeviceAuthorization(ctx, "dc-d1", now)
	wantErr(t, err, storage.ErrNotFound)

	// Deny.
	must(t, s.CreateDeviceAuthorization(ctx, newDeviceAuth("d3", now)))
	must(t, s.DenyDeviceAuthorization(ctx, "d3", now))
	got, err = s.GetDeviceAuthorizationByUserCode(ctx, "uc-d3")
	must(t, err)
	equal(t, "denied", got.State, storage.DeviceAuthDenied)
	wantErr(t, s.ApproveDeviceAuthorization(ctx, "d3", login, now), storage.ErrNotFound)

	// Expired: neither approved nor consumed, and swept by DeleteExpired a day later.
	must(t, s.CreateDeviceAuthorization(ctx, newDeviceAuth("d4", now)))
	late := now.Add(11 * time.Minute)
	wantErr(t, s.ApproveDeviceAuthorization(ctx, "d4", login, late), storage.ErrNotFound)
	must(t, s.CreateDeviceAuthorization(ctx, newDeviceAuth("d5", now)))
	must(t, s.ApproveDeviceAuthorization(ctx, "d5", login, now))
	_, err = s.ConsumeDeviceAuthorization(ctx, "dc-d5", late)
	wantErr(t, err, storage.ErrNotFound)
	if _, err := s.DeleteExpired(ctx, late); err != nil {
		t.Fatal(err)
	}
	if _, err = s.GetDeviceAuthorizationByUserCode(ctx, "uc-d4"); err != nil {
		t.Fatalf("expired device authorization swept before its day of grace: %v", err)
	}
	if _, err := s.DeleteExpired(ctx, late.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetDeviceAuthorizationByUserCode(ctx, "uc-d4")
	wantErr(t, err, storage.ErrNotFound)
}

// testDeviceAuthorizationConcurrentConsume: of many concurrent redemptions of one
// approved authorization exactly one gets it.
func testDeviceAuthorizationConcurrentConsume(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	must(t, s.CreateDeviceAuthorization(ctx, newDeviceAuth("d1", now)))
	must(t, s.ApproveDeviceAuthorization(ctx, "d1", storage.AuthLogin{UserID: "u1"}, now))
	wins := race(t, 16, storage.ErrNotFound, func(int) error {
		_, err := s.ConsumeDeviceAuthorization(ctx, "dc-d1", now)
		return err
	})
	if wins != 1 {
		t.Fatalf("%d concurrent consumptions succeeded, want exactly 1", wins)
	}
}
