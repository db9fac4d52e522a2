package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
)

func TestResources(t *testing.T) {
	c := newCLI(t)
	var app, svc map[string]string
	c.okJSON(&app, "clients", "create", "--name", "App", "--redirect-uri", "https://app.example.com/cb", "--json")
	c.okJSON(&svc, "clients", "create", "--name", "Batch", "--grants", "client_credentials", "--scopes", "api:read", "--json")

	var created admin.ResourceView
	c.okJSON(&created, "resources", "create", "--uri", "https://api.example.com/", "--name", "API",
		"--clients", app["client_id"]+","+svc["client_id"], "--scopes", "api:read", "--json")
	if created.URI != "https://api.example.com/" || created.Name != "API" ||
		!slices.Equal(created.AllowedClients, []string{app["client_id"], svc["client_id"]}) ||
		!slices.Equal(created.RequiredScopes, []string{"api:read"}) {
		t.Fatalf("resources create --json = %+v", created)
	}
	text := c.ok("", "resources", "create", "--uri", "urn:example:billing", "--clients", app["client_id"])
	if !strings.Contains(text, "urn:example:billing") {
		t.Errorf("resources create text output = %q", text)
	}

	var list []admin.ResourceView
	c.okJSON(&list, "resources", "list", "--json")
	if len(list) != 2 || list[0].URI != "https://api.example.com/" || list[1].URI != "urn:example:billing" ||
		list[1].RequiredScopes == nil {
		t.Fatalf("resources list --json = %+v", list)
	}
	table := c.ok("", "resources", "list")
	for _, col := range []string{"URI", "CLIENTS", "REQUIRED SCOPES", "https://api.example.com/", "api:read", svc["client_id"]} {
		if !strings.Contains(table, col) {
			t.Errorf("resources table lacks %q:\n%s", col, table)
		}
	}

	errs := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no --uri", []string{"resources", "create", "--clients", app["client_id"]}, 2, "--uri is required"},
		{"no --clients", []string{"resources", "create", "--uri", "https://x.example.com/"}, 2, "--clients is required"},
		{"relative URI", []string{"resources", "create", "--uri", "api", "--clients", app["client_id"]}, 1, "absolute URI"},
		{"fragment", []string{"resources", "create", "--uri", "https://x.example.com/#a", "--clients", app["client_id"]}, 1, "fragment"},
		{"query", []string{"resources", "create", "--uri", "https://x.example.com/?a=1", "--clients", app["client_id"]}, 1, "query"},
		{"unknown client", []string{"resources", "create", "--uri", "https://x.example.com/", "--clients", "nope"}, 1, `unknown client "nope"`},
		{"duplicate", []string{"resources", "create", "--uri", "urn:example:billing", "--clients", app["client_id"]}, 1, "already exists"},
		{"delete unknown", []string{"resources", "delete", "https://x.example.com/"}, 1, "no resource"},
		{"delete without URI", []string{"resources", "delete"}, 2, "Usage:"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run("", tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
		})
	}

	if out := c.ok("", "resources", "delete", "urn:example:billing"); !strings.Contains(out, "Removed resource urn:example:billing") {
		t.Errorf("resources delete output = %q", out)
	}
	c.okJSON(&list, "resources", "list", "--json")
	if len(list) != 1 || list[0].URI != "https://api.example.com/" {
		t.Fatalf("resources list after delete = %+v", list)
	}

	var events []map[string]any
	c.okJSON(&events, "audit", "list", "--json", "--type", audit.EventAdminResourceDelete)
	if len(events) != 2 || events[0]["result"] != audit.ResultFailure || events[1]["result"] != audit.ResultSuccess ||
		!strings.Contains(events[1]["reason"].(string), "actor=cli") {
		t.Errorf("%s events = %v", audit.EventAdminResourceDelete, events)
	}
	c.okJSON(&events, "audit", "list", "--json", "--type", audit.EventAdminResourceCreate, "--limit", "2")
	if len(events) != 2 {
		t.Errorf("%s events = %v", audit.EventAdminResourceCreate, events)
	}
}
