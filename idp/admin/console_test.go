package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// TestConsoleClientActions covers the client actions of the console: edit (with
// validation that writes nothing), secret rotation, refusal of built-in clients, delete;
// each audited with the actor.
func TestConsoleClientActions(t *testing.T) {
	ctx := context.Background()
	a := newTestAdmin(t)
	c, oldSecret, err := a.CreateClient(ctx, "alice", NewClient{Name: "Shop", RedirectURIs: []string{"https://shop.example/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.UpdateClient(ctx, "alice", c.ID, ClientUpdate{Name: "Shop", RedirectURIs: []string{"http://evil.example/cb"}})
	var inv *InvalidInputError
	if !errors.As(err, &inv) {
		t.Fatalf("UpdateClient with an http redirect URI = %v, want InvalidInputError", err)
	}
	got, err := a.UpdateClient(ctx, "alice", c.ID, ClientUpdate{Name: "Shop 2", RedirectURIs: []string{"https://shop.example/cb2"},
		Scopes: []string{"openid"}, AccessTokenLifetime: 5 * time.Minute, BackchannelLogoutURI: "https://shop.example/bcl"})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := a.FindClient(ctx, c.ID)
	if stored.Name != "Shop 2" || stored.RedirectURIs[0] != "https://shop.example/cb2" || stored.AccessTokenLifetime != 5*time.Minute ||
		stored.BackchannelLogoutURI != "https://shop.example/bcl" || got.Public || string(stored.SecretHash) != string(c.SecretHash) {
		t.Fatalf("stored after update = %+v", stored)
	}

	newSecret, err := a.RotateClientSecret(ctx, "alice", c.ID)
	if err != nil || newSecret == "" || newSecret == oldSecret {
		t.Fatalf("RotateClientSecret = %q, %v", newSecret, err)
	}
	stored, _ = a.FindClient(ctx, c.ID)
	if !bytes.Equal(stored.SecretHash, secret.HashClientSecret(newSecret)) {
		t.Fatal("stored hash is not the new secret's")
	}

	for _, id := range []string{AccountClientID, ConsoleClientID} {
		if err := a.DeleteClient(ctx, "alice", id); !errors.As(err, &inv) {
			t.Errorf("DeleteClient(%s) = %v, want refusal", id, err)
		}
	}
	if err := a.DeleteClient(ctx, "alice", c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.FindClient(ctx, c.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("client after delete: %v", err)
	}
	want := map[string]bool{audit.EventAdminClientUpdate: false, audit.EventAdminClientSecret: false, audit.EventAdminClientDelete: false}
	for _, e := range auditEvents(t, a) {
		if _, ok := want[e.Type]; ok && e.Result == audit.ResultSuccess && strings.HasPrefix(e.Reason, "actor=alice ") {
			want[e.Type] = true
		}
		if strings.Contains(e.Reason, newSecret) {
			t.Errorf("audit event %s contains the secret", e.Type)
		}
	}
	for typ, seen := range want {
		if !seen {
			t.Errorf("no successful %s event by alice", typ)
		}
	}
}

// TestConsoleSessionsAndUsers covers search, enable, and ending one session and a
// client's sessions.
func TestConsoleSessionsAndUsers(t *testing.T) {
	ctx := context.Background()
	a := newTestAdmin(t)
	ada := mustCreateUser(t, a, "ada@example.com")
	mustCreateUser(t, a, "bob@example.com")
	users, more, err := a.SearchUsers(ctx, "ADA", 10)
	if err != nil || len(users) != 1 || users[0].ID != ada.ID || more {
		t.Fatalf("SearchUsers(ADA) = %v, %v, %v", users, more, err)
	}
	if users, more, _ = a.SearchUsers(ctx, "", 1); len(users) != 1 || !more {
		t.Fatalf("SearchUsers limit 1 = %d users, more %v", len(users), more)
	}
	if err := a.DisableUser(ctx, "alice", ada.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.EnableUser(ctx, "alice", ada.Email); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.FindUser(ctx, ada.ID); u.Disabled {
		t.Fatal("still disabled after EnableUser")
	}

	mk := func(id string) {
		t.Helper()
		s := &storage.Session{ID: id, TokenHash: "h-" + id, UserID: ada.ID, AuthTime: adminTestNow, CreatedAt: adminTestNow,
			LastSeenAt: adminTestNow, ExpiresAt: adminTestNow.Add(time.Hour)}
		if err := a.Store.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	mk("s1")
	mk("s2")
	mk("s3")
	c, _, err := a.CreateClient(ctx, "alice", NewClient{Name: "App", RedirectURIs: []string{"https://app.example/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2"} {
		if err := a.Store.AddSessionClient(ctx, id, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if ss, _ := a.ClientSessions(ctx, c.ID); len(ss) != 2 {
		t.Fatalf("ClientSessions = %d, want 2", len(ss))
	}
	if err := a.EndSession(ctx, "alice", "s3", "lost laptop"); err != nil {
		t.Fatal(err)
	}
	n, err := a.EndClientSessions(ctx, "alice", c.ID, "compromised app")
	if err != nil || n != 2 {
		t.Fatalf("EndClientSessions = %d, %v", n, err)
	}
	if ss, _ := a.UserSessions(ctx, ada.ID); len(ss) != 0 {
		t.Fatalf("sessions left: %d", len(ss))
	}
	es, err := a.ListAudit(ctx, storage.AuditFilter{Type: audit.EventAdminClientSessionsEnd})
	if err != nil || len(es) != 1 || !strings.Contains(es[0].Reason, "sessions_ended=2") {
		t.Fatalf("client sessions audit = %+v, %v", es, err)
	}
	if _, err := a.ListAudit(ctx, storage.AuditFilter{Type: "nonsense"}); err == nil {
		t.Fatal("ListAudit accepted an unknown type")
	}
	var buf bytes.Buffer
	if err := WriteAuditJSONL(&buf, es); err != nil {
		t.Fatal(err)
	}
	var line AuditLine
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil || line.Hash == "" || line.Type != audit.EventAdminClientSessionsEnd {
		t.Fatalf("export line %q: %v", buf.String(), err)
	}
	// The console's export is `idp audit export`'s format: every field, the ids an
	// event concerns and its chain key included.
	buf.Reset()
	withIDs := storage.AuditEvent{ID: 7, Type: audit.EventTokenIssue, TokenID: "tok", FamilyID: "fam", SessionID: "sid",
		FactorID: "fac", PrevHash: "p", Hash: "h", ChainKey: "k1"}
	if err := WriteAuditJSONL(&buf, []storage.AuditEvent{withIDs}); err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(buf.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"token_id": "tok", "family_id": "fam", "session_id": "sid", "factor_id": "fac", "chain_key": "k1", "user_id": ""} {
		if got, ok := fields[k]; !ok || got != want {
			t.Errorf("export field %s = %v (present %t), want %q", k, got, ok, want)
		}
	}
	if res, err := a.VerifyAudit(ctx); err != nil || !res.Intact {
		t.Fatalf("VerifyAudit = %+v, %v", res, err)
	}
}
