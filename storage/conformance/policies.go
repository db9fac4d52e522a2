package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
)

func testTypePolicies(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	all, err := s.ListTypePolicies(ctx)
	must(t, err)
	if len(all) != 0 {
		t.Errorf("ListTypePolicies of an empty store = %v, want none", all)
	}
	_, err = s.GetTypePolicy(ctx, "staff")
	wantErr(t, err, storage.ErrNotFound)

	staff := fullPolicy()
	customer := storage.MFAPolicy{MFA: "optional", RememberDevice: 7 * 24 * time.Hour}
	must(t, s.SetTypePolicy(ctx, "staff", staff))
	must(t, s.SetTypePolicy(ctx, "customer", customer))
	// The empty type is the default type, and may have a policy like any other.
	must(t, s.SetTypePolicy(ctx, "", storage.MFAPolicy{}))
	for typ, want := range map[string]storage.MFAPolicy{"staff": staff, "customer": customer, "": {}} {
		got, err := s.GetTypePolicy(ctx, typ)
		must(t, err)
		equal(t, "GetTypePolicy("+typ+")", got, &want)
	}

	// Setting again replaces the whole policy.
	admin := storage.MFAPolicy{MFA: "required", PhishingResistant: true, MaxAge: time.Hour}
	must(t, s.SetTypePolicy(ctx, "staff", admin))
	got, err := s.GetTypePolicy(ctx, "staff")
	must(t, err)
	equal(t, "GetTypePolicy after replace", got, &admin)

	all, err = s.ListTypePolicies(ctx)
	must(t, err)
	equal(t, "ListTypePolicies", all, map[string]storage.MFAPolicy{"staff": admin, "customer": customer, "": {}})

	must(t, s.DeleteTypePolicy(ctx, "staff"))
	_, err = s.GetTypePolicy(ctx, "staff")
	wantErr(t, err, storage.ErrNotFound)
	must(t, s.DeleteTypePolicy(ctx, "staff")) // missing is not an error
	must(t, s.DeleteTypePolicy(ctx, ""))
	all, err = s.ListTypePolicies(ctx)
	must(t, err)
	equal(t, "ListTypePolicies after delete", all, map[string]storage.MFAPolicy{"customer": customer})
}

// testMFAPolicyRoundTrip stores policies through both stores that hold one and checks
// that each reads back exactly, durations to the nanosecond.
func testMFAPolicyRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := clock()
	policies := []struct {
		name string
		p    storage.MFAPolicy
	}{
		{"zero", storage.MFAPolicy{}},
		{"full", fullPolicy()},
		{"mfa only", storage.MFAPolicy{MFA: "off"}},
		{"one factor", storage.MFAPolicy{Factors: []storage.FactorKind{"sms"}}},
		{"phishing resistant only", storage.MFAPolicy{PhishingResistant: true}},
		{"odd nanoseconds", storage.MFAPolicy{MaxAge: time.Nanosecond, RememberDevice: 90*24*time.Hour + 999_999_999}},
		{"largest durations", storage.MFAPolicy{MaxAge: 1<<63 - 1, RememberDevice: 1<<53 + 1}},
		{"negative duration", storage.MFAPolicy{MaxAge: -time.Second}},
	}
	c := newClient("client-rt", now)
	c.Policy = storage.MFAPolicy{}
	must(t, s.CreateClient(ctx, c))
	for i, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			// CreateClient with the policy, UpdateClient onto it, and a type policy.
			created := newClient(fmt.Sprintf("client-%d", i), now)
			created.Policy = tc.p
			must(t, s.CreateClient(ctx, created))
			c.Policy = tc.p
			must(t, s.UpdateClient(ctx, c))
			must(t, s.SetTypePolicy(ctx, "type-rt", tc.p))

			for _, id := range []string{created.ID, c.ID} {
				got, err := s.GetClient(ctx, id)
				must(t, err)
				equal(t, "policy of "+id, got.Policy, tc.p)
				if tc.p.MaxAge != got.Policy.MaxAge || tc.p.RememberDevice != got.Policy.RememberDevice {
					t.Errorf("durations of %s = %d, %d; want %d, %d", id, got.Policy.MaxAge,
						got.Policy.RememberDevice, tc.p.MaxAge, tc.p.RememberDevice)
				}
			}
			got, err := s.GetTypePolicy(ctx, "type-rt")
			must(t, err)
			equal(t, "type policy", got, &tc.p)
		})
	}
}
