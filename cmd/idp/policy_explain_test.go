package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/sqlite"
)

// addFactor gives a user a confirmed factor straight in the store (explain reads only
// the kinds, never the secret).
func (c *cli) addFactor(userID string, kind storage.FactorKind) {
	c.t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(c.dataDir, "idp.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.CreateFactor(ctx, &storage.Factor{ID: string(kind) + "-" + userID, UserID: userID, Kind: kind, Confirmed: true, CreatedAt: now}); err != nil {
		c.t.Fatal(err)
	}
}

// TestPolicyExplain checks `idp policy explain` against a table of user, client and
// request combinations, with policies set through the CLI.
func TestPolicyExplain(t *testing.T) {
	c := newCLI(t)
	customer := c.createUser("carol@example.com", "correct horse battery")
	admin := c.createUser("adam@example.com", "correct horse battery")
	c.ok("", "users", "set-type", admin.ID, "admin")
	c.addFactor(customer.ID, "totp")
	c.addFactor(admin.ID, "totp")
	c.ok("", "policy", "set-type", "admin", "--mfa", "required", "--max-age", "8h")

	client := func(name string, policy ...string) string {
		var out struct {
			ClientID string `json:"client_id"`
		}
		c.okJSON(&out, "clients", "create", "--json", "--name", name, "--redirect-uri", "https://"+strings.ToLower(name)+".example.com/cb")
		if len(policy) > 0 {
			c.ok("", append([]string{"clients", "policy", "set", out.ClientID}, policy...)...)
		}
		return out.ClientID
	}
	wiki := client("Wiki", "--mfa", "off")
	shop := client("Shop")
	finance := client("Finance", "--mfa", "required", "--factors", "totp,webauthn", "--max-age", "12h", "--remember-device", "720h")
	console := client("Console", "--mfa", "required", "--phishing-resistant")

	tests := []struct {
		name    string
		user    string
		client  string
		extra   []string
		want    []string // substrings of the output, in order of appearance not required
		wantNot []string
	}{
		{"customer on wiki: password only", customer.Email, wiki, nil,
			[]string{"second factor:        off", "Outcome: password only", "client " + wiki + ": mfa off"}, nil},
		{"customer on shop: optional, has totp", customer.Email, shop, nil,
			[]string{"second factor:        optional", "Outcome: password (or a valid session), then one of: totp"}, nil},
		{"admin on wiki: type beats client", admin.Email, wiki, nil,
			[]string{"second factor:        required", "account type admin: mfa required (stricter than the client)", "re-check factor after: 8h0m0s"}, nil},
		{"customer on finance: factor list and re-check, device may stand in", customer.Email, finance, nil,
			[]string{"factors that count:   totp, webauthn", "re-check factor after: 12h0m0s", "(a remembered device may stand in)"}, nil},
		{"admin on finance: shorter re-check wins", admin.Email, finance, nil,
			[]string{"re-check factor after: 8h0m0s"}, nil},
		{"customer on console: totp does not count, enrol webauthn", customer.Email, console, nil,
			[]string{"phishing-resistant:   true", "acr reached:          urn:openidp:acr:phr", "Outcome: password, then enrolment of one of: webauthn"}, nil},
		{"acr_values mfa raises shop", customer.Email, shop, []string{"--acr", "urn:openidp:acr:mfa"},
			[]string{"second factor:        required", "request: acr asks for a second factor"}, nil},
		{"acr request removes the device skip", customer.Email, finance, []string{"--acr", "urn:openidp:acr:mfa"},
			[]string{"but not for this request"}, []string{"(a remembered device may stand in)"}},
		{"unknown essential acr is refused", customer.Email, shop, []string{"--essential-acr", "urn:example:gold"},
			[]string{"cannot be satisfied", "Outcome: refused: unmet_authentication_requirements"}, nil},
		{"max_age and prompt=login", customer.Email, shop, []string{"--max-age", "5m", "--prompt-login"},
			[]string{"password max age:     5m0s", "fresh login (prompt): true"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := c.ok("", append([]string{"policy", "explain", "--user", tt.user, "--client", tt.client}, tt.extra...)...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
	// --json is machine-readable and carries the same decision.
	var ex struct {
		Requirement struct {
			Mode string `json:"mode"`
		} `json:"requirement"`
		Outcome string `json:"outcome"`
	}
	c.okJSON(&ex, "policy", "explain", "--user", admin.Email, "--client", wiki, "--json")
	if ex.Requirement.Mode != "required" || !strings.Contains(ex.Outcome, "totp") {
		t.Fatalf("json explain: %+v", ex)
	}
	if r := c.run("", "policy", "explain", "--user", customer.Email); r.code != 2 {
		t.Fatalf("missing --client: exit %d", r.code)
	}
}

// TestPolicyExplainDev checks that --dev (and IDP_DEV) counts the log e-mail and SMS
// senders of a dev server, as the running dev server does.
func TestPolicyExplainDev(t *testing.T) {
	c := newCLI(t)
	u := c.createUser("sam@example.com", "correct horse battery")
	c.addFactor(u.ID, "sms")
	var out struct {
		ClientID string `json:"client_id"`
	}
	c.okJSON(&out, "clients", "create", "--json", "--name", "Texts", "--redirect-uri", "https://texts.example.com/cb")
	c.ok("", "clients", "policy", "set", out.ClientID, "--mfa", "required", "--factors", "sms")

	args := []string{"policy", "explain", "--user", u.Email, "--client", out.ClientID}
	want := "Outcome: password (or a valid session), then one of: sms"
	if got := c.ok("", args...); strings.Contains(got, want) {
		t.Errorf("without --dev and an SMS provider, sms counted:\n%s", got)
	}
	if got := c.ok("", append(args, "--dev")...); !strings.Contains(got, want) {
		t.Errorf("--dev: want %q:\n%s", want, got)
	}
	t.Setenv("IDP_DEV", "true")
	if got := c.ok("", args...); !strings.Contains(got, want) {
		t.Errorf("IDP_DEV=true: want %q:\n%s", want, got)
	}
}
