package admin

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/openidp/idp/idp/audit"
)

// TestPasskeyOnlyAccounts: a person created without a password has no hash; an
// enrolment link is a single challenge of its kind, valid 24 h, e-mailed when a mailer is
// set (and a mailer failure is an audited failure); an MFA reset of such a person gives
// an enrolment link instead of a recovery link, which would ask for a password.
func TestPasskeyOnlyAccounts(t *testing.T) {
	ctx := context.Background()
	a := newTestAdmin(t)
	a.Issuer = "https://id.example.com"

	if _, err := a.CreateUser(ctx, "test", NewUser{Email: "both@example.com", Password: "long enough password", NoPassword: true}); err == nil {
		t.Fatal("CreateUser accepted a password together with NoPassword")
	}
	u, err := a.CreateUser(ctx, "test", NewUser{Email: "cy@example.com", NoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordHash != "" {
		t.Fatal("passkey-only account has a password hash")
	}

	type mail struct{ to, subject, body string }
	var sent []mail
	a.Mail = func(_ context.Context, to, subject, body string) error {
		sent = append(sent, mail{to, subject, body})
		return nil
	}
	res, err := a.EnrolmentLink(ctx, "test", "cy@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Mailed || len(sent) != 1 || sent[0].to != u.Email || !strings.Contains(sent[0].body, res.Link) {
		t.Fatalf("mailed %v, sent %+v, link %s", res.Mailed, sent, res.Link)
	}
	if !strings.HasPrefix(res.Link, "https://id.example.com/enrol?id=") || !res.ExpiresAt.Equal(adminTestNow.Add(RecoveryLinkLifetime)) {
		t.Fatalf("link %s expiring %v", res.Link, res.ExpiresAt)
	}
	for _, ev := range auditEvents(t, a) {
		if strings.Contains(ev.Reason, "token=") {
			t.Fatalf("the link's secret reached the audit trail: %+v", ev)
		}
	}

	a.Mail = func(context.Context, string, string, string) error { return errors.New("smtp down") }
	if _, err := a.EnrolmentLink(ctx, "test", u.ID, ""); err == nil {
		t.Fatal("an enrolment link that could not be e-mailed was reported as sent")
	}
	a.Mail = nil
	if _, err := a.EnrolmentLink(ctx, "test", u.ID, "not a url"); err == nil {
		t.Fatal("an enrolment link on an invalid issuer was issued")
	}

	reset, err := a.ResetMFA(ctx, "test", u.ID, "lost phone", ResetOptions{RemoveFactors: true, RecoveryLink: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reset.RecoveryLink, "/enrol?") {
		t.Fatalf("the reset of a passwordless account gave %s, want an enrolment link", reset.RecoveryLink)
	}
	pw := mustCreateUser(t, a, "pw@example.com")
	reset, err = a.ResetMFA(ctx, "test", pw.ID, "lost phone", ResetOptions{RemoveFactors: true, RecoveryLink: true})
	if err != nil || !strings.Contains(reset.RecoveryLink, "/recovery?") {
		t.Fatalf("the reset of an account with a password gave %s, %v; want a recovery link", reset.RecoveryLink, err)
	}

	// The event is written ahead: the link that could not be e-mailed has its success
	// event followed by a failure event naming the same link.
	var results, links []string
	for _, ev := range auditEvents(t, a) {
		if ev.Type == audit.EventAdminEnrolLink {
			results = append(results, ev.Result)
			link, _, _ := strings.Cut(ev.Reason[strings.Index(ev.Reason, "link=")+len("link="):], " ")
			links = append(links, link)
		}
	}
	if !slices.Equal(results, []string{audit.ResultSuccess, audit.ResultSuccess, audit.ResultFailure}) || links[1] != links[2] || links[0] == links[1] {
		t.Fatalf("enrolment links audited: %v for links %v; want success, success, failure, the last two of one link", results, links)
	}
}
