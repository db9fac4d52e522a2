package conformance

import (
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

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
