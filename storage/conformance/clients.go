package conformance

import (
	"reflect"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

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
		TokenEndpointAuthMethod: "", JWKS: `{"keys":[{"kty":"EC"}]}`, JWKSURI: "", RequirePAR: false,
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

// testUsedAssertions: a client assertion's jti is accepted once until it expires, even
// under concurrency, and per client.
func testUsedAssertions(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	exp := now.Add(time.Minute)
	wins := race(t, 8, storage.ErrConflict, func(int) error {
		return s.UseAssertion(ctx, "client-a", "jti-1", exp, now)
	})
	if wins != 1 {
		t.Fatalf("UseAssertion raced: %d won, want 1", wins)
	}
	wantErr(t, s.UseAssertion(ctx, "client-a", "jti-1", exp, now.Add(30*time.Second)), storage.ErrConflict)
	must(t, s.UseAssertion(ctx, "client-b", "jti-1", exp, now)) // another client's jti
	// Once expired it may be recorded again (it is refused by its exp anyway).
	must(t, s.UseAssertion(ctx, "client-a", "jti-1", now.Add(3*time.Minute), now.Add(2*time.Minute)))
	n, err := s.DeleteExpired(ctx, now.Add(time.Hour))
	must(t, err)
	if n < 2 {
		t.Errorf("DeleteExpired removed %d rows, want the 2 used assertions at least", n)
	}
}

// testPushedRequests: a pushed request is consumed once, by its client, before it expires.
func testPushedRequests(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	p := &storage.PushedRequest{ID: "par-1", ClientID: "client-a", Params: "a=b&c=d", ExpiresAt: now.Add(time.Minute)}
	must(t, s.CreatePushedRequest(ctx, p))
	wantErr(t, s.CreatePushedRequest(ctx, p), storage.ErrAlreadyExists)
	_, err := s.ConsumePushedRequest(ctx, "par-1", "client-b", now)
	wantErr(t, err, storage.ErrNotFound)
	wins := race(t, 8, storage.ErrNotFound, func(int) error {
		got, err := s.ConsumePushedRequest(ctx, "par-1", "client-a", now)
		if err == nil {
			equal(t, "ConsumePushedRequest", got, p)
		}
		return err
	})
	if wins != 1 {
		t.Fatalf("ConsumePushedRequest raced: %d won, want 1", wins)
	}
	must(t, s.CreatePushedRequest(ctx, &storage.PushedRequest{ID: "par-2", ClientID: "client-a", Params: "x=y", ExpiresAt: now.Add(time.Minute)}))
	_, err = s.ConsumePushedRequest(ctx, "par-2", "client-a", now.Add(time.Minute))
	wantErr(t, err, storage.ErrNotFound)
}
