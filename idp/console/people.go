package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/pwhash"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The people pages: search, create, and one person's account, factors and sessions.

// peoplePageSize is how many people a search shows.
const peoplePageSize = 50

type personRow struct {
	ID, Email, Name, Type, Groups string
	Disabled                      bool
	Passwordless                  bool // no password: signs in with a passkey
}

type peoplePage struct {
	base
	Query     string
	People    []personRow
	More      bool
	FormError string
	New       struct{ Email, Name, Type, Groups string }
}

type factorRow struct {
	Label                   string // a message id
	Name                    string // the person's name for the factor, if any
	Target, Added, LastUsed string
	Confirmed               bool
}

type personPage struct {
	base
	Person       personRow
	Created      string
	Factors      []factorRow
	Sessions     []sessionRow
	RecoveryLink string
	LinkExpires  string
	FormError    string
	// EnrolmentLink is a new enrolment link of a passkey-only person, shown once;
	// EnrolmentMailed says it was also e-mailed to them.
	EnrolmentLink   string
	EnrolmentMailed bool
}

func toRow(u *storage.User) personRow {
	return personRow{ID: u.ID, Email: u.Email, Name: u.Name, Type: u.Type, Groups: strings.Join(u.Groups, ", "), Disabled: u.Disabled,
		Passwordless: u.PasswordHash == ""}
}

func (c *Console) people(q *request) {
	c.renderPeople(q, http.StatusOK, "", nil)
}

func (c *Console) renderPeople(q *request, status int, formErr string, r *http.Request) {
	p := peoplePage{base: c.base(q, "people"), Query: q.r.URL.Query().Get("q"), FormError: formErr}
	if r != nil {
		p.New.Email, p.New.Name, p.New.Type, p.New.Groups = r.PostFormValue("email"), r.PostFormValue("name"), r.PostFormValue("type"), r.PostFormValue("groups")
	}
	users, more, err := c.cfg.Admin.SearchUsers(q.ctx(), p.Query, peoplePageSize)
	if err != nil {
		c.internal(q.w, q.r, err)
		return
	}
	for i := range users {
		p.People = append(p.People, toRow(&users[i]))
	}
	p.More = more
	c.render(q, status, web.PageConsolePeople, p)
}

func (c *Console) createPerson(q *request) {
	r := q.r
	noPassword := r.PostFormValue("no_password") == "1"
	switch {
	case noPassword && r.PostFormValue("password") != "":
		c.renderPeople(q, http.StatusBadRequest, web.Translate(q.lang, msgPasswordOrPasskey), r)
		return
	case !noPassword && len(r.PostFormValue("password")) < pwhash.MinLength:
		c.renderPeople(q, http.StatusBadRequest, web.Translate(q.lang, "The password must have at least %d characters.", pwhash.MinLength), r)
		return
	}
	if _, err := admin.NormalizeEmail(r.PostFormValue("email")); err != nil {
		c.renderPeople(q, http.StatusBadRequest, err.Error(), r)
		return
	}
	u, err := c.cfg.Admin.CreateUserOfType(q.ctx(), q.actor, admin.NewUser{Email: r.PostFormValue("email"), Name: r.PostFormValue("name"),
		Password: r.PostFormValue("password"), NoPassword: noPassword}, r.PostFormValue("type"), lines(r.PostFormValue("groups")))
	var inv *admin.InvalidInputError
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		c.renderPeople(q, http.StatusBadRequest, web.Translate(q.lang, "A person with the e-mail address %s already exists.", strings.TrimSpace(r.PostFormValue("email"))), r)
		return
	case errors.As(err, &inv):
		c.renderPeople(q, http.StatusBadRequest, inv.Message, r)
		return
	case err != nil:
		c.fail(q, err)
		return
	}
	if noPassword {
		// A passkey-only person gets their enrolment link at once.
		q.r.SetPathValue("id", u.ID)
		c.showEnrolmentLink(q, u, "personnew")
		return
	}
	done(q, "/admin/people/"+url.PathEscape(u.ID), "personnew")
}

// msgPasswordOrPasskey: the create form had a password and "no password".
const msgPasswordOrPasskey = "Give an initial password, or choose no password, not both."

// enrolmentLink issues a new enrolment link for a person (a passkey-only account
// registers its passkey on it).
func (c *Console) enrolmentLink(q *request) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	c.showEnrolmentLink(q, u, "enrolment")
}

// showEnrolmentLink issues an enrolment link for u and shows it once on their page.
func (c *Console) showEnrolmentLink(q *request, u *storage.User, code string) {
	res, err := c.cfg.Admin.EnrolmentLink(q.ctx(), q.actor, u.ID, "")
	if err != nil {
		c.fail(q, err)
		return
	}
	p, err := c.personPageFor(q)
	if err != nil {
		c.fail(q, err)
		return
	}
	p.Message = doneMessages[code]
	p.EnrolmentLink, p.EnrolmentMailed, p.LinkExpires = res.Link, res.Mailed, fmtTime(res.ExpiresAt)
	c.render(q, http.StatusOK, web.PageConsolePerson, p)
}

// personPageFor builds the page of the person named in the path.
func (c *Console) personPageFor(q *request) (*personPage, error) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	p := &personPage{base: c.base(q, "people"), Person: toRow(u), Created: fmtTime(u.CreatedAt)}
	fs, err := c.cfg.Admin.UserFactors(q.ctx(), u.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		row := factorRow{Label: kindLabel(f.Kind), Target: f.Target, Added: fmtTime(f.CreatedAt), LastUsed: fmtTime(f.LastUsedAt), Confirmed: f.Confirmed}
		if f.Name != "" && f.Name != row.Label {
			row.Name = f.Name
		}
		p.Factors = append(p.Factors, row)
	}
	ss, err := c.cfg.Admin.UserSessions(q.ctx(), u.ID)
	if err != nil {
		return nil, err
	}
	if p.Sessions, err = c.sessionRows(q, ss); err != nil {
		return nil, err
	}
	return p, nil
}

func (c *Console) person(q *request) {
	p, err := c.personPageFor(q)
	if err != nil {
		c.fail(q, err)
		return
	}
	c.render(q, http.StatusOK, web.PageConsolePerson, p)
}

func personPath(q *request) string { return "/admin/people/" + url.PathEscape(q.r.PathValue("id")) }

func (c *Console) disablePerson(q *request) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if u.ID == q.user.ID {
		c.renderError(q.w, q.r, http.StatusBadRequest, "Not done", "You cannot disable your own account from the console.")
		return
	}
	if !c.confirmed(q, confirmPage{Section: "people", Title: "Disable this account?",
		Text: "%s can no longer sign in, is signed out everywhere, and every token is revoked.", Subject: u.Email,
		Button: "Disable the account", Cancel: personPath(q)}) {
		return
	}
	if err := c.cfg.Admin.DisableUser(q.ctx(), q.actor, u.ID); err != nil {
		c.fail(q, err)
		return
	}
	done(q, personPath(q), "disabled")
}

func (c *Console) enablePerson(q *request) {
	if err := c.cfg.Admin.EnableUser(q.ctx(), q.actor, q.r.PathValue("id")); err != nil {
		c.fail(q, err)
		return
	}
	done(q, personPath(q), "enabled")
}

func (c *Console) setTypeGroups(q *request) {
	r := q.r
	u, err := c.cfg.Admin.FindUser(q.ctx(), r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	typ := r.PostFormValue("type")
	if u.ID == q.user.ID && strings.TrimSpace(typ) != AdminType {
		err = &admin.InvalidInputError{Message: web.Translate(q.lang, "You cannot take the admin type from your own account: another administrator must.")}
	}
	if err == nil {
		_, err = c.cfg.Admin.SetUserType(q.ctx(), q.actor, u.ID, typ)
	}
	if err == nil {
		_, err = c.cfg.Admin.SetUserGroups(q.ctx(), q.actor, u.ID, lines(r.PostFormValue("groups")))
	}
	var inv *admin.InvalidInputError
	if errors.As(err, &inv) {
		p, perr := c.personPageFor(q)
		if perr != nil {
			c.fail(q, perr)
			return
		}
		p.FormError = inv.Message
		c.render(q, http.StatusBadRequest, web.PageConsolePerson, p)
		return
	}
	if err != nil {
		c.fail(q, err)
		return
	}
	done(q, personPath(q), "saved")
}

func (c *Console) resetMFA(q *request) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "people", Title: "Reset the second factors?",
		Text: "Every second factor and backup code of %s is removed, they are signed out everywhere, remembered devices are forgotten and tokens revoked.", Subject: u.Email,
		Button: "Reset MFA", Cancel: personPath(q), Reason: true, ReasonRequired: true}) {
		return
	}
	opts := admin.ResetOptions{RemoveFactors: true, RecoveryLink: q.r.PostFormValue("recovery_link") == "on"}
	c.reset(q, u, opts, "reset")
}

func (c *Console) recoveryLink(q *request) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "people", Title: "Issue a recovery link?",
		Text: "The link lets %s sign in with their password alone to add a new second factor. They are signed out everywhere first. Hand the link over on a channel you trust.", Subject: u.Email,
		Button: "Issue the link", Cancel: personPath(q), Reason: true, ReasonRequired: true}) {
		return
	}
	c.reset(q, u, admin.ResetOptions{RecoveryLink: true}, "reset")
}

// reset runs ResetMFA and shows the person's page, with the recovery link once.
func (c *Console) reset(q *request, u *storage.User, opts admin.ResetOptions, code string) {
	res, err := c.cfg.Admin.ResetMFA(q.ctx(), q.actor, u.ID, q.r.PostFormValue("reason"), opts)
	if err != nil {
		c.fail(q, err)
		return
	}
	if res.RecoveryLink == "" {
		done(q, personPath(q), code)
		return
	}
	p, err := c.personPageFor(q)
	if err != nil {
		c.fail(q, err)
		return
	}
	p.Message = doneMessages[code]
	p.RecoveryLink, p.LinkExpires = res.RecoveryLink, fmtTime(res.RecoveryExpiresAt)
	c.render(q, http.StatusOK, web.PageConsolePerson, p)
}

func (c *Console) endPersonSessions(q *request) {
	u, err := c.cfg.Admin.FindUser(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "people", Title: "Sign this person out everywhere?",
		Text: "Every session of %s ends. Tokens already issued stay valid until they expire.", Subject: u.Email,
		Button: "End all sessions", Cancel: personPath(q), Reason: true}) {
		return
	}
	if _, err := c.cfg.Admin.EndUserSessions(q.ctx(), q.actor, u.ID, q.r.PostFormValue("reason")); err != nil {
		c.fail(q, err)
		return
	}
	done(q, personPath(q), "sessions")
}

// endSession ends one session and goes back to the page it was ended from.
func (c *Console) endSession(q *request) {
	back := q.r.PostFormValue("back")
	if !strings.HasPrefix(back, "/admin/") || strings.HasPrefix(back, "//") {
		back = "/admin/people"
	}
	if !c.confirmed(q, confirmPage{Section: "people", Title: "End this session?",
		Text: "The browser of this session is signed out of the provider.", Button: "End the session", Cancel: back, Reason: true}) {
		return
	}
	if err := c.cfg.Admin.EndSession(q.ctx(), q.actor, q.r.PathValue("sid"), q.r.PostFormValue("reason")); err != nil {
		c.fail(q, err)
		return
	}
	done(q, back, "session")
}
