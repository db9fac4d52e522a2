package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
	"golang.org/x/text/language"
)

// The clients pages: the list, one client's settings, its MFA policy with the explain
// panel, its secret, its sessions.

type clientRow struct {
	ID, Name, Kind, Grants, Policy string
	Builtin                        bool
}

type clientsPage struct {
	base
	Clients []clientRow
}

// option is a checkbox or select choice.
type option struct {
	Value, Label string
	Checked      bool
}

type clientForm struct {
	Name, RedirectURIs, PostLogoutRedirectURIs, Scopes string
	BackchannelLogoutURI                               string
	AccessTokenLifetime, IDTokenLifetime               string
	RefreshTokenLifetime                               string
	SkipConsent, Public                                bool
	Grants                                             []option
}

type policyForm struct {
	Prefix                 string // of the form's element ids, unique on the page
	Modes                  []option
	Factors                []option
	PhishingResistant      bool
	MaxAge, RememberDevice string
}

type explainView struct {
	User, AccountType, Outcome, Unsatisfiable string
	Mode, ACR, MaxAge                         string
	PhishingResistant, DeviceCanSkip          bool
	Enrolled, Usable, Kinds                   string
	Reasons                                   []string
}

type sessionRow struct {
	ID, UserID, User, Created, LastSeen, IP, Device, SignedInWith string
}

type clientPage struct {
	base
	New, Builtin, HasSecret bool
	ID                      string
	Form                    clientForm
	FormError               string
	Policy                  policyForm
	PolicyError             string
	ExplainFor              string
	Explain                 *explainView
	ExplainError            string
	Sessions                []sessionRow
}

var grantLabels = []option{
	{Value: admin.GrantAuthorizationCode, Label: "Authorization code (sign-in in a browser)"},
	{Value: admin.GrantRefreshToken, Label: "Refresh token"},
	{Value: admin.GrantClientCredentials, Label: "Client credentials (service to service)"},
	{Value: admin.GrantDeviceCode, Label: "Device code (TVs and command-line tools)"},
}

var modeLabels = []option{
	{Value: consent.ModeOff, Label: "Off: never ask for a second factor"},
	{Value: consent.ModeOptional, Label: "Optional: ask when the person has one"},
	{Value: consent.ModeRequired, Label: "Required: always; people without one must enrol"},
}

// policyModeLabels name a policy's second-factor mode in lists and the explain panel.
var policyModeLabels = map[string]string{
	consent.ModeOff: "off", consent.ModeOptional: "optional", consent.ModeRequired: "required",
}

// modeName is the translated name of a policy mode (an unknown one as it is).
func modeName(lang language.Tag, mode string) string { return label(lang, policyModeLabels, mode) }

var kindLabels = map[storage.FactorKind]string{
	storage.FactorTOTP: "Authenticator app", storage.FactorSMS: "Text message", storage.FactorEmail: "Email code",
	storage.FactorBackup: "Backup code", storage.FactorWebAuthn: "Security key or passkey",
}

func kindLabel(k storage.FactorKind) string {
	if l, ok := kindLabels[k]; ok {
		return l
	}
	return string(k)
}

// kindList names factor kinds in lang, separated by commas.
func kindList(lang language.Tag, ks []storage.FactorKind) string {
	if len(ks) == 0 {
		return ""
	}
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, web.Translate(lang, kindLabel(k)))
	}
	return strings.Join(out, ", ")
}

// fmtDuration shows a duration without trailing zero units: 15m, 1h, 1h30m; "" for 0.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseDuration reads a form duration ("" is 0); what (a message id) names the field
// in the error, an *admin.InvalidInputError in lang.
func parseDuration(lang language.Tag, what, v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &admin.InvalidInputError{Message: web.Translate(lang, "%s: write a duration such as 15m, 12h or 720h", web.Translate(lang, what))}
	}
	return d, nil
}

// lines splits a textarea or a space/comma separated field into items.
func lines(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' || r == ' ' || r == ',' || r == '\t' })
}

// describePolicy summarises a policy in lang: "required (Authenticator app), phishing-resistant".
func describePolicy(lang language.Tag, p storage.MFAPolicy) string {
	s := modeName(lang, admin.ToPolicyView(p).MFA)
	if len(p.Factors) > 0 {
		s = web.Translate(lang, "%s (%s)", s, kindList(lang, p.Factors))
	}
	if p.PhishingResistant {
		s = web.Translate(lang, "%s, phishing-resistant", s)
	}
	return s
}

// clientName is the name of cl on a page in lang: a built-in client's name is a message
// id (the server registers it with web.N), any other is shown as it is.
func clientName(lang language.Tag, cl *storage.Client) string {
	if admin.IsBuiltinClient(cl.ID) {
		return web.Translate(lang, cl.Name)
	}
	return cl.Name
}

func (c *Console) clients(q *request) {
	cs, err := c.cfg.Admin.ListClients(q.ctx())
	if err != nil {
		c.internal(q.w, q.r, err)
		return
	}
	slices.SortFunc(cs, func(a, b storage.Client) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	p := clientsPage{base: c.base(q, "clients")}
	for _, cl := range cs {
		kind := web.N("Confidential")
		if cl.Public {
			kind = web.N("Public")
		}
		p.Clients = append(p.Clients, clientRow{ID: cl.ID, Name: clientName(q.lang, &cl), Kind: kind, Grants: strings.Join(cl.GrantTypes, ", "),
			Policy: describePolicy(q.lang, cl.Policy), Builtin: admin.IsBuiltinClient(cl.ID)})
	}
	c.render(q, http.StatusOK, web.PageConsoleClients, p)
}

func formFromClient(cl *storage.Client) clientForm {
	f := clientForm{
		Name: cl.Name, RedirectURIs: strings.Join(cl.RedirectURIs, "\n"), PostLogoutRedirectURIs: strings.Join(cl.PostLogoutRedirectURIs, "\n"),
		Scopes: strings.Join(cl.Scopes, " "), BackchannelLogoutURI: cl.BackchannelLogoutURI, SkipConsent: cl.SkipConsent, Public: cl.Public,
		AccessTokenLifetime: fmtDuration(cl.AccessTokenLifetime), IDTokenLifetime: fmtDuration(cl.IDTokenLifetime),
		RefreshTokenLifetime: fmtDuration(cl.RefreshTokenLifetime),
	}
	for _, g := range grantLabels {
		g.Checked = slices.Contains(cl.GrantTypes, g.Value)
		f.Grants = append(f.Grants, g)
	}
	return f
}

// formFromPost is the client form as posted, to show it again with an error.
func formFromPost(r *http.Request) clientForm {
	f := clientForm{
		Name: r.PostFormValue("name"), RedirectURIs: r.PostFormValue("redirect_uris"), PostLogoutRedirectURIs: r.PostFormValue("post_logout_redirect_uris"),
		Scopes: r.PostFormValue("scopes"), BackchannelLogoutURI: r.PostFormValue("backchannel_logout_uri"),
		SkipConsent: r.PostFormValue("skip_consent") == "on", Public: r.PostFormValue("public") == "on",
		AccessTokenLifetime: r.PostFormValue("access_token_lifetime"), IDTokenLifetime: r.PostFormValue("id_token_lifetime"),
		RefreshTokenLifetime: r.PostFormValue("refresh_token_lifetime"),
	}
	for _, g := range grantLabels {
		g.Checked = slices.Contains(r.PostForm["grant"], g.Value)
		f.Grants = append(f.Grants, g)
	}
	return f
}

// policyFormFrom is the policy editor's form for p; its labels are message ids.
func policyFormFrom(p storage.MFAPolicy) policyForm {
	v := admin.ToPolicyView(p)
	f := policyForm{PhishingResistant: p.PhishingResistant, MaxAge: fmtDuration(p.MaxAge), RememberDevice: fmtDuration(p.RememberDevice)}
	for _, m := range modeLabels {
		m.Checked = m.Value == v.MFA
		f.Modes = append(f.Modes, m)
	}
	for _, k := range admin.PolicyFactorKinds {
		f.Factors = append(f.Factors, option{Value: string(k), Label: kindLabel(k), Checked: slices.Contains(p.Factors, k)})
	}
	return f
}

func (c *Console) newClientForm(q *request) {
	f := formFromClient(&storage.Client{Scopes: admin.DefaultClientScopes, GrantTypes: admin.DefaultClientGrants,
		AccessTokenLifetime: admin.DefaultAccessTokenLifetime, IDTokenLifetime: admin.DefaultIDTokenLifetime,
		RefreshTokenLifetime: admin.DefaultRefreshTokenLifetime})
	c.render(q, http.StatusOK, web.PageConsoleClient, clientPage{base: c.base(q, "clients"), New: true, Form: f})
}

// lifetimes reads the three token lifetimes of the client form.
func lifetimes(lang language.Tag, r *http.Request) (at, id, rt time.Duration, err error) {
	if at, err = parseDuration(lang, web.N("Access token lifetime"), r.PostFormValue("access_token_lifetime")); err != nil {
		return
	}
	if id, err = parseDuration(lang, web.N("ID token lifetime"), r.PostFormValue("id_token_lifetime")); err != nil {
		return
	}
	rt, err = parseDuration(lang, web.N("Refresh token lifetime"), r.PostFormValue("refresh_token_lifetime"))
	return
}

func (c *Console) createClient(q *request) {
	r := q.r
	showErr := func(msg string) {
		c.render(q, http.StatusBadRequest, web.PageConsoleClient, clientPage{base: c.base(q, "clients"), New: true, Form: formFromPost(r), FormError: msg})
	}
	at, id, rt, err := lifetimes(q.lang, r)
	if err != nil {
		showErr(err.Error())
		return
	}
	in := admin.NewClient{
		Name: r.PostFormValue("name"), RedirectURIs: lines(r.PostFormValue("redirect_uris")),
		PostLogoutRedirectURIs: lines(r.PostFormValue("post_logout_redirect_uris")),
		Public:                 r.PostFormValue("public") == "on", SkipConsent: r.PostFormValue("skip_consent") == "on",
		GrantTypes: r.PostForm["grant"], Scopes: lines(r.PostFormValue("scopes")),
		AccessTokenLifetime: at, IDTokenLifetime: id, RefreshTokenLifetime: rt,
		BackchannelLogoutURI: r.PostFormValue("backchannel_logout_uri"),
	}
	if err := admin.CheckClient(in); err != nil {
		showErr(err.Error())
		return
	}
	cl, secret, err := c.cfg.Admin.CreateClient(q.ctx(), q.actor, in)
	if err != nil {
		c.fail(q, err)
		return
	}
	if secret == "" {
		done(q, "/admin/clients/"+url.PathEscape(cl.ID), "created")
		return
	}
	c.showSecret(q, cl, secret, true)
}

type secretPage struct {
	base
	ClientID, ClientName, Secret string
	Created                      bool
}

// showSecret shows a client secret, once: it is not stored and this response is not cached.
func (c *Console) showSecret(q *request, cl *storage.Client, secret string, created bool) {
	c.render(q, http.StatusOK, web.PageConsoleSecret, secretPage{base: c.base(q, "clients"), ClientID: cl.ID, ClientName: cl.Name,
		Secret: secret, Created: created})
}

// clientPageFor builds the page of client cl; the explain panel runs when the query
// names a person.
func (c *Console) clientPageFor(q *request, cl *storage.Client) (clientPage, error) {
	p := clientPage{base: c.base(q, "clients"), ID: cl.ID, Builtin: admin.IsBuiltinClient(cl.ID),
		HasSecret: !cl.Public && cl.TokenEndpointAuthMethod == "", Form: formFromClient(cl), Policy: policyFormFrom(cl.Policy)}
	if p.Builtin {
		p.Form.Name = clientName(q.lang, cl) // its page has no settings form, only the name as title
	}
	if who := strings.TrimSpace(q.r.URL.Query().Get("explain")); who != "" {
		p.ExplainFor = who
		ex, err := c.cfg.Admin.Explain(q.ctx(), who, cl.ID, consent.AuthParams{}, c.cfg.Factors)
		var inv *admin.InvalidInputError
		switch {
		case errors.Is(err, storage.ErrNotFound):
			p.ExplainError = web.Translate(q.lang, "No person has this e-mail address or id.")
		case errors.As(err, &inv):
			p.ExplainError = inv.Message
		case err != nil:
			return p, err
		default:
			p.Explain = &explainView{
				User: ex.User, AccountType: ex.AccountType, Outcome: ex.Outcome, Unsatisfiable: ex.Unsatisfiable,
				Mode: modeName(q.lang, ex.Requirement.Mode), ACR: ex.Requirement.ACR, MaxAge: fmtDuration(ex.Requirement.MFAMaxAge),
				PhishingResistant: ex.Requirement.PhishingResistant, DeviceCanSkip: ex.Requirement.DeviceCanSkip,
				Enrolled: kindList(q.lang, ex.Enrolled), Usable: kindList(q.lang, ex.Usable), Kinds: kindList(q.lang, ex.Requirement.Kinds),
				Reasons: ex.Requirement.Reasons,
			}
		}
	}
	ss, err := c.cfg.Admin.ClientSessions(q.ctx(), cl.ID)
	if err != nil {
		return p, err
	}
	p.Sessions, err = c.sessionRows(q, ss)
	return p, err
}

func (c *Console) client(q *request) {
	cl, err := c.cfg.Admin.FindClient(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	p, err := c.clientPageFor(q, cl)
	if err != nil {
		c.internal(q.w, q.r, err)
		return
	}
	c.render(q, http.StatusOK, web.PageConsoleClient, p)
}

// refused answers a change of client cl that failed with err, and reports whether it did
// (false: err is nil). Bad input shows the client's page again with what was posted and
// the error (fill sets them); any other error is the usual failure page.
func (c *Console) refused(q *request, cl *storage.Client, err error, fill func(*clientPage)) bool {
	if err == nil {
		return false
	}
	var inv *admin.InvalidInputError
	if !errors.As(err, &inv) {
		c.fail(q, err)
		return true
	}
	p, perr := c.clientPageFor(q, cl)
	if perr != nil {
		c.internal(q.w, q.r, perr)
		return true
	}
	fill(&p)
	c.render(q, http.StatusBadRequest, web.PageConsoleClient, p)
	return true
}

func (c *Console) updateClient(q *request) {
	r := q.r
	cl, err := c.cfg.Admin.FindClient(q.ctx(), r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	at, id, rt, err := lifetimes(q.lang, r)
	if err == nil {
		_, err = c.cfg.Admin.UpdateClient(q.ctx(), q.actor, cl.ID, admin.ClientUpdate{
			Name: r.PostFormValue("name"), RedirectURIs: lines(r.PostFormValue("redirect_uris")),
			PostLogoutRedirectURIs: lines(r.PostFormValue("post_logout_redirect_uris")),
			GrantTypes:             r.PostForm["grant"], Scopes: lines(r.PostFormValue("scopes")),
			SkipConsent: r.PostFormValue("skip_consent") == "on", AccessTokenLifetime: at, IDTokenLifetime: id, RefreshTokenLifetime: rt,
			BackchannelLogoutURI: r.PostFormValue("backchannel_logout_uri"),
		})
	}
	if c.refused(q, cl, err, func(p *clientPage) {
		p.Form, p.FormError = formFromPost(r), err.Error()
		p.Form.Public = cl.Public
	}) {
		return
	}
	done(q, "/admin/clients/"+url.PathEscape(cl.ID), "saved")
}

// postedPolicy reads the policy editor's form; errors are in lang.
func postedPolicy(lang language.Tag, r *http.Request) (storage.MFAPolicy, error) {
	p := storage.MFAPolicy{MFA: r.PostFormValue("mfa"), PhishingResistant: r.PostFormValue("phishing_resistant") == "on"}
	for _, k := range r.PostForm["factor"] {
		p.Factors = append(p.Factors, storage.FactorKind(k))
	}
	var err error
	if p.MaxAge, err = parseDuration(lang, web.N("Re-check age"), r.PostFormValue("max_age")); err != nil {
		return p, err
	}
	p.RememberDevice, err = parseDuration(lang, web.N("Remember devices for"), r.PostFormValue("remember_device"))
	return p, err
}

func (c *Console) setClientPolicy(q *request) {
	r := q.r
	cl, err := c.cfg.Admin.FindClient(q.ctx(), r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if admin.IsBuiltinClient(cl.ID) {
		c.renderError(q.w, q.r, http.StatusBadRequest, "Not done", "The policy of a built-in client is set by the server's configuration.")
		return
	}
	pol, err := postedPolicy(q.lang, r)
	if err == nil {
		_, err = c.cfg.Admin.SetClientPolicy(q.ctx(), q.actor, cl.ID, pol)
	}
	if c.refused(q, cl, err, func(p *clientPage) { p.Policy, p.PolicyError = policyFormFrom(pol), err.Error() }) {
		return
	}
	done(q, "/admin/clients/"+url.PathEscape(cl.ID), "policy")
}

func (c *Console) rotateSecret(q *request) {
	cl, err := c.cfg.Admin.FindClient(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "clients", Title: "Replace the client secret?",
		Text: "The application %s stops working until its configuration has the new secret. The new secret is shown once.", Subject: cl.Name,
		Button: "Replace the secret", Cancel: "/admin/clients/" + url.PathEscape(cl.ID)}) {
		return
	}
	secret, err := c.cfg.Admin.RotateClientSecret(q.ctx(), q.actor, cl.ID)
	if err != nil {
		c.fail(q, err)
		return
	}
	c.showSecret(q, cl, secret, false)
}

func (c *Console) deleteClient(q *request) {
	cl, err := c.cfg.Admin.FindClient(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "clients", Title: "Delete this client?",
		Text: "Deleting %s stops every sign-in and token of this application. This cannot be undone.", Subject: cl.Name,
		Button: "Delete the client", Cancel: "/admin/clients/" + url.PathEscape(cl.ID)}) {
		return
	}
	if err := c.cfg.Admin.DeleteClient(q.ctx(), q.actor, cl.ID); err != nil {
		c.fail(q, err)
		return
	}
	done(q, "/admin/clients", "deleted")
}

func (c *Console) endClientSessions(q *request) {
	cl, err := c.cfg.Admin.FindClient(q.ctx(), q.r.PathValue("id"))
	if err != nil {
		c.fail(q, err)
		return
	}
	if !c.confirmed(q, confirmPage{Section: "clients", Title: "End every session of this client?",
		Text: "Everyone who signed in to %s is signed out of the provider (and of applications told by back-channel logout).", Subject: cl.Name,
		Button: "End the sessions", Cancel: "/admin/clients/" + url.PathEscape(cl.ID), Reason: true}) {
		return
	}
	if _, err := c.cfg.Admin.EndClientSessions(q.ctx(), q.actor, cl.ID, q.r.PostFormValue("reason")); err != nil {
		c.fail(q, err)
		return
	}
	done(q, "/admin/clients/"+url.PathEscape(cl.ID), "sessions")
}

// sessionRows shows sessions with their person's e-mail.
func (c *Console) sessionRows(q *request, ss []storage.Session) ([]sessionRow, error) {
	emails := map[string]string{}
	var out []sessionRow
	for _, s := range ss {
		email, ok := emails[s.UserID]
		if !ok {
			u, err := c.cfg.Admin.FindUser(q.ctx(), s.UserID)
			switch {
			case err == nil:
				email = u.Email
			case errors.Is(err, storage.ErrNotFound):
				email = s.UserID
			default:
				return nil, err
			}
			emails[s.UserID] = email
		}
		out = append(out, sessionRow{
			ID: s.ID, UserID: s.UserID, User: email, Created: fmtTime(s.CreatedAt), LastSeen: fmtTime(s.LastSeenAt),
			IP: s.IP, Device: s.UserAgent, SignedInWith: kindList(q.lang, s.Factors),
		})
	}
	return out, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
