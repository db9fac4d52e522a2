package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/backends"
)

// store opens the cli's database directly, for what no command shows.
func (c *cli) store() storage.Storage {
	c.t.Helper()
	st, err := backends.Open(context.Background(), "sqlite:"+filepath.Join(c.dataDir, "idp.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { st.Close() })
	return st
}

func TestUserTypesAndGroups(t *testing.T) {
	c := newCLI(t)
	var u userJSON
	out := c.ok("correct horse battery\n", "users", "create", "--email", "ops@example.com", "--type", "Staff",
		"--groups", "ops,oncall", "--password-stdin", "--json")
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("users create --json: %v\n%s", err, out)
	}
	if u.Type != "staff" || !slices.Equal(u.Groups, []string{"ops", "oncall"}) {
		t.Fatalf("created %+v", u)
	}

	c.okJSON(&u, "users", "set-type", "ops@example.com", "admin", "--json")
	if u.Type != "admin" {
		t.Errorf("set-type: %+v", u)
	}
	if out := c.ok("", "users", "set-groups", u.ID, "sec, ops"); !strings.Contains(out, "sec, ops") {
		t.Errorf("set-groups text output = %q", out)
	}
	var users []userJSON
	c.okJSON(&users, "users", "list", "--json")
	if len(users) != 1 || users[0].Type != "admin" || !slices.Equal(users[0].Groups, []string{"sec", "ops"}) {
		t.Errorf("users list --json = %+v", users)
	}
	if out := c.ok("", "users", "list"); !strings.Contains(out, "TYPE") || !strings.Contains(out, "sec,ops") {
		t.Errorf("users list table = %q", out)
	}
	if out := c.ok("", "users", "set-type", "ops@example.com", ""); !strings.Contains(out, "(default)") {
		t.Errorf("clearing the type: %q", out)
	}
}

func TestMFAReset(t *testing.T) {
	c := newCLI(t)
	u := c.createUser("lost@example.com", "correct horse battery")
	st := c.store()
	ctx := context.Background()
	addFactor := func() {
		t.Helper()
		if err := st.CreateFactor(ctx, &storage.Factor{ID: secret.NewID(), UserID: u.ID, Kind: "totp", Confirmed: true, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	addFactor()
	now := time.Now()
	if err := st.CreateSession(ctx, &storage.Session{ID: secret.NewID(), TokenHash: secret.NewID(), UserID: u.ID, AuthTime: now,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	var res mfaResetJSON
	c.okJSON(&res, "users", "mfa", "reset", "lost@example.com", "--reason", "lost phone", "--json")
	if res.UserID != u.ID || res.FactorsRemoved != 1 || res.SessionsEnded != 1 || !res.TokensRevoked || res.RecoveryLink != "" {
		t.Fatalf("reset --json = %+v", res)
	}
	if fs, _ := st.ListFactors(ctx, u.ID); len(fs) != 0 {
		t.Fatalf("%d factors left", len(fs))
	}

	addFactor()
	c.okJSON(&res, "users", "mfa", "reset", u.ID, "--reason", "new laptop", "--keep-factors", "--json")
	if res.FactorsRemoved != 0 {
		t.Errorf("--keep-factors removed %d factors", res.FactorsRemoved)
	}
	if fs, _ := st.ListFactors(ctx, u.ID); len(fs) != 1 {
		t.Errorf("%d factors after --keep-factors, want 1", len(fs))
	}

	text := c.ok("", "users", "mfa", "reset", u.ID, "--reason", "ticket 4711", "--recovery-link", "--issuer", "https://id.example.com")
	i := strings.Index(text, "https://id.example.com/recovery?")
	if i < 0 || !strings.Contains(text, "will not be shown again") {
		t.Fatalf("reset --recovery-link output:\n%s", text)
	}
	link, err := url.Parse(strings.Fields(text[i:])[0])
	if err != nil || link.Query().Get("id") == "" || len(link.Query().Get("token")) < 43 {
		t.Fatalf("recovery link %v (%v)", link, err)
	}
	if strings.Count(text, link.Query().Get("token")) != 1 {
		t.Error("the recovery link is printed more than once")
	}

	var events []auditEventJSON
	c.okJSON(&events, "audit", "list", "--type", audit.EventAdminMFAReset, "--json")
	if len(events) != 3 {
		t.Fatalf("%d reset events, want 3", len(events))
	}
	if r := events[2].Reason; !strings.HasPrefix(r, "actor=cli ") || !strings.Contains(r, `reason="ticket 4711"`) ||
		strings.Contains(r, link.Query().Get("token")) {
		t.Errorf("reset event reason = %q", r)
	}
}

// TestClientsCreatePrivateKeyJWT: a private_key_jwt client is registered with its keys
// from a JWKS file or a URL, and gets no secret.
func TestClientsCreatePrivateKeyJWT(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	jwks := `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`
	if err := os.WriteFile(file, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	var created map[string]string
	c.okJSON(&created, "clients", "create", "--name", "Signed", "--redirect-uri", "https://s.example.com/cb",
		"--auth-method", "private_key_jwt", "--jwks", file, "--require-par", "--json")
	if created["client_id"] == "" || created["client_secret"] != "" {
		t.Fatalf("create --auth-method private_key_jwt = %v", created)
	}
	c.okJSON(&created, "clients", "create", "--name", "Signed by URL", "--grants", "client_credentials", "--scopes", "api:read",
		"--auth-method", "private_key_jwt", "--jwks-uri", "https://s.example.com/jwks.json", "--json")
	if created["client_id"] == "" || created["client_secret"] != "" {
		t.Fatalf("create --jwks-uri = %v", created)
	}
}

func TestClientPolicies(t *testing.T) {
	c := newCLI(t)
	var created map[string]string
	c.okJSON(&created, "clients", "create", "--name", "Payroll", "--redirect-uri", "https://pay.example.com/cb",
		"--backchannel-logout-uri", "https://pay.example.com/bc", "--json")
	id := created["client_id"]

	var p policyJSON
	c.okJSON(&p, "clients", "policy", "set", id, "--mfa", "required", "--factors", "totp,webauthn", "--max-age", "12h", "--json")
	if p.MFA != "required" || !slices.Equal(p.Factors, []storage.FactorKind{"totp", "webauthn"}) || p.MaxAgeSeconds != 43200 || p.RememberDeviceSeconds != 0 {
		t.Fatalf("policy set --json = %+v", p)
	}
	// Only the flags given change.
	c.okJSON(&p, "clients", "policy", "set", id, "--remember-device", "720h", "--json")
	if p.MFA != "required" || p.MaxAgeSeconds != 43200 || p.RememberDeviceSeconds != 720*3600 {
		t.Fatalf("partial policy set = %+v", p)
	}
	c.okJSON(&p, "clients", "policy", "show", id, "--json")
	if p.MFA != "required" || len(p.Factors) != 2 {
		t.Errorf("policy show --json = %+v", p)
	}
	show := c.ok("", "clients", "policy", "show", id)
	for _, want := range []string{"mfa:                required", "factors:            totp, webauthn", "max age:            12h", "remember device:    720h"} {
		if !strings.Contains(show, want) {
			t.Errorf("policy show lacks %q:\n%s", want, show)
		}
	}
	var list []clientJSON
	c.okJSON(&list, "clients", "list", "--json")
	if len(list) != 1 || list[0].BackchannelLogoutURI != "https://pay.example.com/bc" || list[0].Policy.MFA != "required" {
		t.Errorf("clients list --json = %+v", list)
	}

	var tp typePolicyJSON
	c.okJSON(&tp, "policy", "set-type", "admin", "--mfa", "required", "--phishing-resistant", "--json")
	if tp.Type != "admin" || tp.Policy.MFA != "required" || !tp.Policy.PhishingResistant {
		t.Fatalf("policy set-type --json = %+v", tp)
	}
	var all struct {
		AccountTypes []typePolicyJSON   `json:"account_types"`
		Clients      []clientPolicyJSON `json:"clients"`
	}
	c.okJSON(&all, "policy", "list", "--json")
	if len(all.AccountTypes) != 1 || all.AccountTypes[0].Type != "admin" || len(all.Clients) != 1 || all.Clients[0].ClientID != id {
		t.Errorf("policy list --json = %+v", all)
	}
	if table := c.ok("", "policy", "list"); !strings.Contains(table, "ACCOUNT TYPE") || !strings.Contains(table, "Payroll ("+id+")") {
		t.Errorf("policy list table:\n%s", table)
	}

	var events []auditEventJSON
	c.okJSON(&events, "audit", "list", "--type", audit.EventAdminPolicySet, "--json")
	if len(events) != 1 || !strings.Contains(events[0].Reason, "account_type=admin") {
		t.Errorf("type policy audit events = %+v", events)
	}
}

func TestAdminCommandErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"reset without reason", []string{"users", "mfa", "reset", "a@example.com"}, 2, []string{"--reason is required", "Usage:"}},
		{"recovery link without issuer", []string{"users", "mfa", "reset", "a@example.com", "--reason", "x", "--recovery-link"}, 2, []string{"--issuer (or IDP_ISSUER) is required"}},
		{"reset of an unknown user", []string{"users", "mfa", "reset", "nobody@example.com", "--reason", "x"}, 1, []string{`user "nobody@example.com" not found`}},
		{"invalid account type", []string{"users", "set-type", "a@example.com", "Bad Type"}, 1, []string{`invalid account type "bad type"`}},
		{"set-type needs two arguments", []string{"users", "set-type", "a@example.com"}, 2, []string{"accepts 2 arg"}},
		{"policy set without changes", []string{"clients", "policy", "set", "some-client"}, 2, []string{"nothing to change"}},
		{"unknown mfa mode", []string{"policy", "set-type", "staff", "--mfa", "sometimes"}, 1, []string{`invalid MFA setting "sometimes"`}},
		{"unknown factor kind", []string{"policy", "set-type", "staff", "--factors", "pigeon"}, 1, []string{`invalid factor kind "pigeon"`}},
		{"negative max age", []string{"policy", "set-type", "staff", "--max-age", "-1h"}, 1, []string{"max age must not be negative"}},
		{"phishing resistant without webauthn", []string{"policy", "set-type", "staff", "--phishing-resistant", "--factors", "totp"}, 1, []string{"needs the factor kind webauthn"}},
		{"policy of an unknown client", []string{"clients", "policy", "show", "nope"}, 1, []string{`client "nope" not found`}},
		{"http back-channel logout URI", []string{"clients", "create", "--name", "A", "--redirect-uri", "https://a.example.com/cb",
			"--backchannel-logout-uri", "http://a.example.com/bc"}, 1, []string{`invalid back-channel logout URI "http://a.example.com/bc"`}},
		{"private_key_jwt without keys", []string{"clients", "create", "--name", "A", "--redirect-uri", "https://a.example.com/cb",
			"--auth-method", "private_key_jwt"}, 1, []string{"private_key_jwt needs exactly one of"}},
		{"http JWKS URL", []string{"clients", "create", "--name", "A", "--redirect-uri", "https://a.example.com/cb",
			"--auth-method", "private_key_jwt", "--jwks-uri", "http://a.example.com/jwks"}, 1, []string{`invalid key set URL`}},
		{"key set without private_key_jwt", []string{"clients", "create", "--name", "A", "--redirect-uri", "https://a.example.com/cb",
			"--jwks-uri", "https://a.example.com/jwks"}, 1, []string{"only for --auth-method private_key_jwt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			c.createUser("a@example.com", "correct horse battery")
			r := c.run("", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}
