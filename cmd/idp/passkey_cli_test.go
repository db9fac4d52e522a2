package main

import (
	"strings"
	"testing"
)

// TestUsersCreateNoPassword: `idp users create --no-password --enrolment-link` makes a
// passkey-only account and prints its enrolment link (JSON too); `idp users
// enrolment-link` issues another; the flags that do not go together are usage errors.
func TestUsersCreateNoPassword(t *testing.T) {
	c := newCLI(t)
	var out struct {
		userJSON
		EnrolmentLink string `json:"enrolment_link"`
		Mailed        bool   `json:"enrolment_link_mailed"`
	}
	c.okJSON(&out, "users", "create", "--email", "cy@example.com", "--no-password", "--enrolment-link", "--issuer", "https://id.example.com", "--json")
	if out.Email != "cy@example.com" || !strings.HasPrefix(out.EnrolmentLink, "https://id.example.com/enrol?id=") || out.Mailed {
		t.Fatalf("created %+v", out)
	}
	text := c.ok("", "users", "enrolment-link", "cy@example.com", "--issuer", "https://id.example.com")
	if !strings.Contains(text, "https://id.example.com/enrol?id=") || strings.Contains(text, out.EnrolmentLink) {
		t.Fatalf("enrolment-link printed:\n%s", text)
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"password and no password", "correct horse battery\n", []string{"users", "create", "--email", "a@example.com", "--password-stdin", "--no-password"}, "not both"},
		{"enrolment link with a password", "correct horse battery\n", []string{"users", "create", "--email", "a@example.com", "--password-stdin", "--enrolment-link"}, "--enrolment-link goes with --no-password"},
		{"enrolment link without issuer", "", []string{"users", "create", "--email", "a@example.com", "--no-password", "--enrolment-link"}, "--issuer"},
		{"enrolment-link without issuer", "", []string{"users", "enrolment-link", "cy@example.com"}, "--issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(tc.stdin, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
