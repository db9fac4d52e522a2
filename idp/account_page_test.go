package idp_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestAccountPageEdges checks the account page's rough edges: an error is shown beside
// the field it concerns, with what was typed; a confirmation is styled as success and a
// notice as a notice; every button that acts on one row names it; inputs use the page
// font.
func TestAccountPageEdges(t *testing.T) {
	m := newMFAEnv(t, openSQLite(t))
	email := "edges@example.com"
	m.createUser(email, password)
	b := m.newBrowser()
	p := accountPage(t, m.env, b, email, nil)

	got := enroll(b, m.env, p, "sms", url.Values{"phone": {"+44 12345"}})
	sms := regexp.MustCompile(`(?s)<input type="hidden" name="kind" value="sms">(.*?)</form>`).FindStringSubmatch(got.Body)
	if sms == nil {
		t.Fatalf("no sms form:\n%s", got.Body)
	}
	for _, want := range []string{`aria-invalid="true"`, `aria-describedby="err-sms"`, `id="err-sms"`, "not a valid phone number", `value="&#43;44 12345"`} {
		if !strings.Contains(sms[1], want) && !strings.Contains(sms[1], strings.ReplaceAll(want, "&#43;", "+")) {
			t.Errorf("sms form lacks %s:\n%s", want, sms[1])
		}
	}
	if strings.Count(got.Body, "not a valid phone number") != 1 {
		t.Errorf("the error is shown elsewhere too:\n%s", got.Body)
	}

	// A confirmation is success; the form's buttons name what they act on.
	enrolTOTP(t, m.env, b, accountPage(t, m.env, b, email, nil))
	p = b.Get(m.issuer + "/account/security?msg=added")
	for _, want := range []string{
		`<p class="success" role="status">Sign-in method added.</p>`,
		`aria-label="Remove Authenticator app"`,
		`aria-label="Sign out of this session"`,
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("account page lacks %s:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, `class="notice" role="status">Sign-in method added`) {
		t.Error("a confirmation is styled as a notice")
	}

	css := b.Get(m.issuer + "/static/style.css").Body
	for _, want := range []string{"input, button, select, textarea { font: inherit; }", ".success {", ".notice { background: #e8f0fe"} {
		if !strings.Contains(css, want) {
			t.Errorf("style.css lacks %q", want)
		}
	}
}
