package idp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
)

// conflictAuditStore is an auditSwitchStore whose failed audit appends wrap
// storage.ErrAlreadyExists, as a unique violation on the audit chain's prev_hash index
// does in both backends: an admin change refused for it must still read as a server
// failure, not as "already exists" (409). It counts the challenges (enrolment and
// recovery links) stored.
type conflictAuditStore struct {
	*auditSwitchStore
	challenges atomic.Int64
}

func (s *conflictAuditStore) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if err := s.auditSwitchStore.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("append audit: %w (audit_events_prev_hash): %w", storage.ErrAlreadyExists, err)
	}
	return nil
}

func (s *conflictAuditStore) CreateChallenge(ctx context.Context, c *storage.Challenge) error {
	err := s.auditSwitchStore.CreateChallenge(ctx, c)
	if err == nil {
		s.challenges.Add(1)
	}
	return err
}

// apiStatusError is a non-2xx answer of the admin API.
type apiStatusError struct {
	status int
	body   map[string]any
}

func (e *apiStatusError) Error() string { return fmt.Sprintf("HTTP %d %v", e.status, e.body) }

// unauditedAdminEnv is a provider whose audit appends can be made to fail, with what
// the admin actions under test work on.
type unauditedAdminEnv struct {
	*env
	st    *conflictAuditStore
	token string // admin API token
	ada   *storage.User
	app   testClient // confidential, with the client_credentials grant
}

func newUnauditedAdminEnv(t *testing.T, open func(testing.TB) storage.Storage) *unauditedAdminEnv {
	t.Helper()
	st := &conflictAuditStore{auditSwitchStore: &auditSwitchStore{Storage: open(t)}}
	u := &unauditedAdminEnv{env: newEnv(t, st), st: st}
	u.token, _ = adminToken(t, u.env, "Provisioning", []string{"admin"}, "admin")
	u.ada = u.createUser("ada@example.com", password)
	u.app = u.createClient(admin.NewClient{Name: "App", GrantTypes: []string{admin.GrantAuthorizationCode, admin.GrantClientCredentials}})
	return u
}

// unwritable makes the audit events of type typ (every type when "") fail to write
// until the returned function is called.
func (u *unauditedAdminEnv) unwritable(typ string) (restore func()) {
	u.st.failType.Store(typ)
	u.st.failAudit.Store(true)
	return func() { u.st.failAudit.Store(false) }
}

// events returns the audit events of type typ, oldest first.
func (u *unauditedAdminEnv) events(t *testing.T, typ string) []storage.AuditEvent {
	t.Helper()
	evs, err := u.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (u *unauditedAdminEnv) user(t *testing.T, email string) *storage.User {
	t.Helper()
	got, err := u.store.GetUserByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	return got
}

func (u *unauditedAdminEnv) noUser(t *testing.T, email string) {
	t.Helper()
	if got, err := u.store.GetUserByEmail(context.Background(), email); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("user %s = %+v, %v; want none", email, got, err)
	}
}

func (u *unauditedAdminEnv) client(t *testing.T, id string) *storage.Client {
	t.Helper()
	c, err := u.store.GetClient(context.Background(), id)
	if err != nil {
		t.Fatalf("client %s: %v", id, err)
	}
	return c
}

// clientsNamed returns a check that exactly n clients are named name: 0 while a
// refused creation must have left none, 1 once it is made.
func (u *unauditedAdminEnv) clientsNamed(name string, n int) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		cs, err := u.store.ListClients(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cs = slices.DeleteFunc(cs, func(c storage.Client) bool { return c.Name != name }); len(cs) != n {
			t.Errorf("%d clients named %q, want %d: %+v", len(cs), name, n, cs)
		}
	}
}

// secretWorks reports whether the client_credentials grant of app, authenticated with
// clientSecret, gets a token.
func (u *unauditedAdminEnv) secretWorks(t *testing.T, clientSecret string) bool {
	t.Helper()
	c := u.app
	c.Secret = clientSecret
	tr := u.tokenRequest(c, url.Values{"grant_type": {"client_credentials"}})
	return tr.AccessToken != ""
}

// api calls the admin API and returns its JSON answer, or an *apiStatusError.
func (u *unauditedAdminEnv) api(t *testing.T, method, path string, body any) (map[string]any, error) {
	t.Helper()
	st, out := apiCall(t, u.env, u.token, method, path, body)
	if st/100 != 2 {
		return nil, &apiStatusError{status: st, body: out}
	}
	return out, nil
}

// sessions returns how many sessions userID has.
func (u *unauditedAdminEnv) sessions(t *testing.T, userID string) int {
	t.Helper()
	ss, err := u.store.ListUserSessions(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return len(ss)
}

// signingKeys returns the stored signing keys by id.
func (u *unauditedAdminEnv) signingKeys(t *testing.T) map[string]storage.SigningKey {
	t.Helper()
	ks, err := u.store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storage.SigningKey{}
	for _, k := range ks {
		out[k.ID] = k
	}
	return out
}

// An unaudited change: run makes it (through Admin, or the admin API when api is set),
// event is the type of its success event, made unwritable for the first run; unchanged
// checks that the refused run changed nothing, changed that the second run took effect.
type unauditedChange struct {
	name      string
	event     string
	api       bool
	run       func(t *testing.T) error
	unchanged func(t *testing.T)
	changed   func(t *testing.T)
}

// unauditedChanges are the admin changes that grant or widen access or change a
// security setting, in the order they run on one provider (re-encryption last: the
// provider cannot open its keys afterwards).
func unauditedChanges(u *unauditedAdminEnv) []unauditedChange {
	ctx := context.Background()
	adm := u.admin
	var (
		oldSecret = u.app.Secret
		newSecret string
		keysNow   map[string]storage.SigningKey
		rotated   []string
		reset     *admin.ResetResult
		link      *admin.EnrolmentResult
		hashNow   string
		sessions  int
		newKey    = seal.NewKey()
	)
	staff := storage.MFAPolicy{MFA: "required", MaxAge: 8 * time.Hour}
	return []unauditedChange{
		{
			name: "CreateClient", event: audit.EventAdminClientCreate,
			run: func(t *testing.T) error {
				_, _, err := adm.CreateClient(ctx, "test", admin.NewClient{Name: "Unaudited", RedirectURIs: []string{"https://u.example.com/cb"}})
				return err
			},
			unchanged: u.clientsNamed("Unaudited", 0),
			changed:   u.clientsNamed("Unaudited", 1),
		},
		{
			name: "UpdateClient", event: audit.EventAdminClientUpdate,
			run: func(t *testing.T) error {
				_, err := adm.UpdateClient(ctx, "test", u.app.ID, admin.ClientUpdate{Name: "Renamed",
					RedirectURIs: []string{"https://evil.example.com/cb"}, GrantTypes: []string{admin.GrantAuthorizationCode, admin.GrantClientCredentials}})
				return err
			},
			unchanged: func(t *testing.T) {
				if c := u.client(t, u.app.ID); c.Name != "App" || !slices.Equal(c.RedirectURIs, []string{u.app.RedirectURI}) {
					t.Errorf("client after the refused update: %q %v", c.Name, c.RedirectURIs)
				}
			},
			changed: func(t *testing.T) {
				if c := u.client(t, u.app.ID); c.Name != "Renamed" || !slices.Equal(c.RedirectURIs, []string{"https://evil.example.com/cb"}) {
					t.Errorf("client after the update: %q %v", c.Name, c.RedirectURIs)
				}
			},
		},
		{
			name: "RotateClientSecret", event: audit.EventAdminClientSecret,
			run: func(t *testing.T) error {
				s, err := adm.RotateClientSecret(ctx, "test", u.app.ID)
				if err == nil {
					newSecret = s
				}
				return err
			},
			unchanged: func(t *testing.T) {
				if c := u.client(t, u.app.ID); !bytes.Equal(c.SecretHash, secret.HashClientSecret(oldSecret)) {
					t.Error("the secret hash changed")
				}
				if !u.secretWorks(t, oldSecret) {
					t.Error("the old secret stopped working")
				}
			},
			changed: func(t *testing.T) {
				if u.secretWorks(t, oldSecret) || !u.secretWorks(t, newSecret) {
					t.Errorf("after the rotation: old secret works %v, new one %v; want false, true", u.secretWorks(t, oldSecret), u.secretWorks(t, newSecret))
				}
			},
		},
		{
			name: "SetClientPolicy", event: audit.EventAdminClientUpdate,
			run: func(t *testing.T) error {
				_, err := adm.SetClientPolicy(ctx, "test", u.app.ID, storage.MFAPolicy{MFA: "off"})
				return err
			},
			unchanged: func(t *testing.T) {
				if p := u.client(t, u.app.ID).Policy; p.MFA != "" {
					t.Errorf("client policy after the refused change: %+v", p)
				}
			},
			changed: func(t *testing.T) {
				if p := u.client(t, u.app.ID).Policy; p.MFA != "off" {
					t.Errorf("client policy: %+v", p)
				}
			},
		},
		{
			name: "SetTypePolicy", event: audit.EventAdminPolicySet,
			run: func(t *testing.T) error {
				_, err := adm.SetTypePolicy(ctx, "test", "staff", staff)
				return err
			},
			unchanged: func(t *testing.T) {
				if p, err := u.store.GetTypePolicy(ctx, "staff"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("type policy after the refused change: %+v, %v", p, err)
				}
			},
			changed: func(t *testing.T) {
				if p, err := u.store.GetTypePolicy(ctx, "staff"); err != nil || p.MFA != "required" || p.MaxAge != 8*time.Hour {
					t.Errorf("type policy: %+v, %v", p, err)
				}
			},
		},
		{
			name: "CreateUser", event: audit.EventAdminUserCreate,
			run: func(t *testing.T) error {
				_, err := adm.CreateUser(ctx, "test", admin.NewUser{Email: "new@example.com", Password: password})
				return err
			},
			unchanged: func(t *testing.T) { u.noUser(t, "new@example.com") },
			changed: func(t *testing.T) {
				if got := u.user(t, "new@example.com"); got.PasswordHash == "" {
					t.Error("created without a password")
				}
			},
		},
		{
			// The user.create event is written; the user.update event of its type and
			// groups is not: no user, and the create event is followed by a failure.
			name: "CreateUserOfType", event: audit.EventAdminUserUpdate,
			run: func(t *testing.T) error {
				_, err := adm.CreateUserOfType(ctx, "test", admin.NewUser{Email: "typed@example.com", NoPassword: true}, "admin", []string{"ops"})
				return err
			},
			unchanged: func(t *testing.T) {
				u.noUser(t, "typed@example.com")
				evs := u.events(t, audit.EventAdminUserCreate)
				if n := len(evs); n < 2 || evs[n-2].Result != audit.ResultSuccess || evs[n-1].Result != audit.ResultFailure ||
					evs[n-1].UserID != evs[n-2].UserID || !strings.Contains(evs[n-2].Reason, "typed@example.com") {
					t.Errorf("user.create events end with %+v; want the success written ahead, then a failure for the same user", evs[max(n-2, 0):])
				}
			},
			changed: func(t *testing.T) {
				if got := u.user(t, "typed@example.com"); got.Type != "admin" || !slices.Equal(got.Groups, []string{"ops"}) {
					t.Errorf("created %q %v; want admin [ops]", got.Type, got.Groups)
				}
			},
		},
		{
			name: "SetUserType", event: audit.EventAdminUserUpdate,
			run: func(t *testing.T) error {
				_, err := adm.SetUserType(ctx, "test", u.ada.ID, "admin")
				return err
			},
			unchanged: func(t *testing.T) {
				if got := u.user(t, u.ada.Email); got.Type != "" {
					t.Errorf("type %q after the refused change", got.Type)
				}
			},
			changed: func(t *testing.T) {
				if got := u.user(t, u.ada.Email); got.Type != "admin" {
					t.Errorf("type %q, want admin", got.Type)
				}
			},
		},
		{
			name: "SetUserGroups", event: audit.EventAdminUserUpdate,
			run: func(t *testing.T) error {
				_, err := adm.SetUserGroups(ctx, "test", u.ada.ID, []string{"finance"})
				return err
			},
			unchanged: func(t *testing.T) {
				if got := u.user(t, u.ada.Email); len(got.Groups) != 0 {
					t.Errorf("groups %v after the refused change", got.Groups)
				}
			},
			changed: func(t *testing.T) {
				if got := u.user(t, u.ada.Email); !slices.Equal(got.Groups, []string{"finance"}) {
					t.Errorf("groups %v, want [finance]", got.Groups)
				}
			},
		},
		{
			name: "EnableUser", event: audit.EventAdminUserEnable,
			run: func(t *testing.T) error { return adm.EnableUser(ctx, "test", "off@example.com") },
			unchanged: func(t *testing.T) {
				if !u.user(t, "off@example.com").Disabled {
					t.Error("enabled although the event was not written")
				}
			},
			changed: func(t *testing.T) {
				if u.user(t, "off@example.com").Disabled {
					t.Error("still disabled")
				}
			},
		},
		{
			name: "SetPassword", event: audit.EventAdminPassword,
			run: func(t *testing.T) error {
				hashNow = u.user(t, u.ada.Email).PasswordHash
				newSession(t, u.env, u.ada.ID) // one to end
				sessions = u.sessions(t, u.ada.ID)
				return adm.SetPassword(ctx, "test", u.ada.ID, "a new password for ada")
			},
			unchanged: func(t *testing.T) {
				if u.user(t, u.ada.Email).PasswordHash != hashNow {
					t.Error("the password hash changed")
				}
				if n := u.sessions(t, u.ada.ID); n != sessions {
					t.Errorf("%d sessions after the refused change, want %d (nothing ends)", n, sessions)
				}
			},
			changed: func(t *testing.T) {
				if u.user(t, u.ada.Email).PasswordHash == hashNow {
					t.Error("the password hash did not change")
				}
				if n := u.sessions(t, u.ada.ID); n != 0 {
					t.Errorf("%d sessions after the change, want 0", n)
				}
			},
		},
		{
			name: "EnrolmentLink", event: audit.EventAdminEnrolLink,
			run: func(t *testing.T) error {
				res, err := adm.EnrolmentLink(ctx, "test", u.ada.ID, u.issuer)
				link = res
				return err
			},
			unchanged: func(t *testing.T) {
				if n := u.st.challenges.Load(); n != 0 {
					t.Errorf("%d links stored", n)
				}
			},
			changed: func(t *testing.T) {
				if n := u.st.challenges.Load(); n != 1 || link == nil || link.Link == "" {
					t.Errorf("%d links stored, result %+v; want 1", n, link)
				}
			},
		},
		{
			name: "ResetMFA", event: audit.EventAdminMFAReset,
			run: func(t *testing.T) error {
				newSession(t, u.env, u.ada.ID) // one to end
				sessions = u.sessions(t, u.ada.ID)
				res, err := adm.ResetMFA(ctx, "test", u.ada.ID, "lost phone", admin.ResetOptions{RemoveFactors: true, RecoveryLink: true, Issuer: u.issuer})
				reset = res
				return err
			},
			unchanged: func(t *testing.T) {
				if fs, err := u.store.ListFactors(ctx, u.ada.ID); err != nil || len(fs) != 1 {
					t.Errorf("factors after the refused reset: %d, %v; want 1", len(fs), err)
				}
				if n := u.sessions(t, u.ada.ID); n != sessions {
					t.Errorf("%d sessions after the refused reset, want %d", n, sessions)
				}
				if n := u.st.challenges.Load(); n != 1 {
					t.Errorf("%d links stored, want only the enrolment link's", n)
				}
			},
			changed: func(t *testing.T) {
				if fs, err := u.store.ListFactors(ctx, u.ada.ID); err != nil || len(fs) != 0 {
					t.Errorf("factors after the reset: %d, %v; want 0", len(fs), err)
				}
				if n := u.st.challenges.Load(); n != 2 || reset == nil || reset.RecoveryLink == "" || reset.FactorsRemoved != 1 || reset.SessionsEnded != sessions {
					t.Errorf("%d links stored, result %+v", n, reset)
				}
			},
		},
		{
			name: "CreateResource", event: audit.EventAdminResourceCreate,
			run: func(t *testing.T) error {
				_, err := adm.CreateResource(ctx, "test", admin.NewResource{URI: "https://api.example.com/", AllowedClients: []string{u.app.ID}})
				return err
			},
			unchanged: func(t *testing.T) {
				if r, err := u.store.GetResource(ctx, "https://api.example.com/"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("resource after the refused change: %+v, %v", r, err)
				}
			},
			changed: func(t *testing.T) {
				if _, err := u.store.GetResource(ctx, "https://api.example.com/"); err != nil {
					t.Errorf("resource: %v", err)
				}
			},
		},
		{
			name: "RotateKeys", event: audit.EventAdminKeyRotate,
			run: func(t *testing.T) error {
				keysNow = u.signingKeys(t)
				ids, err := adm.RotateKeys(ctx, "test")
				rotated = ids
				return err
			},
			unchanged: func(t *testing.T) {
				if ks := u.signingKeys(t); len(ks) != len(keysNow) {
					t.Errorf("%d signing keys after the refused rotation, want %d", len(ks), len(keysNow))
				}
			},
			changed: func(t *testing.T) {
				ks := u.signingKeys(t)
				if len(ks) != len(keysNow)+2 || len(rotated) != 2 {
					t.Fatalf("%d signing keys after the rotation (ids %v), want %d", len(ks), rotated, len(keysNow)+2)
				}
				evs := u.events(t, audit.EventAdminKeyRotate)
				for _, id := range rotated {
					if _, ok := ks[id]; !ok || !strings.Contains(evs[len(evs)-1].Reason, id) {
						t.Errorf("key %s: stored %v, in the event %q", id, ok, evs[len(evs)-1].Reason)
					}
				}
			},
		},
		{
			name: "API create client", event: audit.EventAdminClientCreate, api: true,
			run: func(t *testing.T) error {
				_, err := u.api(t, "POST", "/api/v1/admin/clients", map[string]any{"name": "Through the API", "redirect_uris": []string{"https://api.example.com/cb"}})
				return err
			},
			unchanged: u.clientsNamed("Through the API", 0),
			changed:   u.clientsNamed("Through the API", 1),
		},
		{
			// The API answers a taken e-mail with 409: an unwritten event must not be
			// taken for one, although the store's error wraps storage.ErrAlreadyExists.
			name: "API create user", event: audit.EventAdminUserCreate, api: true,
			run: func(t *testing.T) error {
				_, err := u.api(t, "POST", "/api/v1/admin/users", map[string]any{"email": "api@example.com", "no_password": true})
				return err
			},
			unchanged: func(t *testing.T) { u.noUser(t, "api@example.com") },
			changed:   func(t *testing.T) { u.user(t, "api@example.com") },
		},
		{
			name: "API type policy", event: audit.EventAdminPolicySet, api: true,
			run: func(t *testing.T) error {
				_, err := u.api(t, "PUT", "/api/v1/admin/policies/types/contractor", map[string]any{"mfa": "required"})
				return err
			},
			unchanged: func(t *testing.T) {
				if p, err := u.store.GetTypePolicy(ctx, "contractor"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("type policy after the refused change: %+v, %v", p, err)
				}
			},
			changed: func(t *testing.T) {
				if p, err := u.store.GetTypePolicy(ctx, "contractor"); err != nil || p.MFA != "required" {
					t.Errorf("type policy: %+v, %v", p, err)
				}
			},
		},
		{
			name: "Reencrypt", event: audit.EventAdminReencrypt,
			run: func(t *testing.T) error {
				keysNow = u.signingKeys(t)
				both, err := seal.New(newKey, u.rawKey)
				if err != nil {
					t.Fatal(err)
				}
				_, err = adm.Reencrypt(ctx, "test", both)
				return err
			},
			unchanged: func(t *testing.T) {
				for id, k := range u.signingKeys(t) {
					if !bytes.Equal(k.PrivateSealed, keysNow[id].PrivateSealed) {
						t.Errorf("signing key %s was re-sealed", id)
					}
				}
			},
			changed: func(t *testing.T) {
				onlyNew, err := seal.New(newKey)
				if err != nil {
					t.Fatal(err)
				}
				for id, k := range u.signingKeys(t) {
					if _, err := onlyNew.Open(k.PrivateSealed, []byte("signing-key:"+id)); err != nil {
						t.Errorf("signing key %s is not sealed under the new key: %v", id, err)
					}
				}
			},
		},
	}
}

// TestAdminUnauditedChangesRefused: an admin change that grants or widens access or
// changes a security setting is not made when its success event cannot be written: the
// action fails (with an error matching audit.ErrNotRecorded, not storage.ErrAlreadyExists
// although the store's error wraps it; the admin API answers 500 server_error) and
// what it would change is unchanged. Once the event can be written, the same action
// succeeds and its success event is stored.
func TestAdminUnauditedChangesRefused(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			u := newUnauditedAdminEnv(t, be.open)
			ctx := context.Background()
			// A person to enable, and a factor and a session of ada, for the changes to
			// leave alone while refused.
			u.createUser("off@example.com", password)
			if err := u.admin.DisableUser(ctx, "test", "off@example.com"); err != nil {
				t.Fatal(err)
			}
			if err := u.store.CreateFactor(ctx, &storage.Factor{ID: secret.NewID(), UserID: u.ada.ID, Kind: storage.FactorEmail,
				Target: u.ada.Email, Confirmed: true, CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}

			for _, c := range unauditedChanges(u) {
				t.Run(c.name, func(t *testing.T) {
					successes := countSuccesses(u.events(t, c.event))
					var err error
					func() {
						defer u.unwritable(c.event)()
						err = c.run(t)
					}()
					var ae *apiStatusError
					switch {
					case err == nil:
						t.Fatalf("%s succeeded while its %s event could not be written", c.name, c.event)
					case c.api && (!errors.As(err, &ae) || ae.status != http.StatusInternalServerError || ae.body["error"] != "server_error"):
						t.Fatalf("admin API answered %v; want 500 server_error", err)
					case !c.api && (!errors.Is(err, audit.ErrNotRecorded) || errors.Is(err, storage.ErrAlreadyExists) || errors.Is(err, storage.ErrNotFound)):
						t.Fatalf("error %v: want one matching audit.ErrNotRecorded and no storage sentinel", err)
					}
					c.unchanged(t)

					if err := c.run(t); err != nil {
						t.Fatalf("%s with the audit trail writable: %v", c.name, err)
					}
					c.changed(t)
					evs := u.events(t, c.event)
					if n := len(evs); n == 0 || evs[n-1].Result != audit.ResultSuccess || !strings.HasPrefix(evs[n-1].Reason, "actor=") ||
						countSuccesses(evs) != successes+1 {
						t.Errorf("%s events after the change: %+v; want one more success, the last event", c.event, evs)
					}
				})
			}
		})
	}
}

// countSuccesses returns how many of evs are successes.
func countSuccesses(evs []storage.AuditEvent) int {
	n := 0
	for _, e := range evs {
		if e.Result == audit.ResultSuccess {
			n++
		}
	}
	return n
}

// newSession stores an SSO session of userID.
func newSession(t *testing.T, e *env, userID string) {
	t.Helper()
	now := time.Now()
	s := &storage.Session{ID: secret.NewID(), TokenHash: secret.Hash(secret.Token(32)), UserID: userID, AuthTime: now,
		PasswordAt: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := e.store.CreateSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// TestAdminProtectiveChangesUnaudited: changes that only take access away (ending
// sessions, disabling a person, deleting a client) go ahead while no audit event can be
// written, and report success.
func TestAdminProtectiveChangesUnaudited(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			u := newUnauditedAdminEnv(t, be.open)
			newSession(t, u.env, u.ada.ID)
			newSession(t, u.env, u.ada.ID)
			bob := u.createUser("bob@example.com", password)
			newSession(t, u.env, bob.ID)

			restore := u.unwritable("")
			defer restore()
			if n, err := u.admin.EndUserSessions(ctx, "test", u.ada.ID, "compromised"); err != nil || n != 2 {
				t.Errorf("EndUserSessions = %d, %v; want 2, nil", n, err)
			}
			if ss, err := u.store.ListUserSessions(ctx, u.ada.ID); err != nil || len(ss) != 0 {
				t.Errorf("ada's sessions after EndUserSessions: %d, %v; want 0", len(ss), err)
			}
			if err := u.admin.DisableUser(ctx, "test", bob.ID); err != nil {
				t.Errorf("DisableUser: %v", err)
			}
			if got := u.user(t, bob.Email); !got.Disabled {
				t.Error("bob is not disabled")
			}
			if ss, err := u.store.ListUserSessions(ctx, bob.ID); err != nil || len(ss) != 0 {
				t.Errorf("bob's sessions after DisableUser: %d, %v; want 0", len(ss), err)
			}
			if err := u.admin.DeleteClient(ctx, "test", u.app.ID); err != nil {
				t.Errorf("DeleteClient: %v", err)
			}
			if _, err := u.store.GetClient(ctx, u.app.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("client after DeleteClient: %v; want ErrNotFound", err)
			}
		})
	}
}
