// Package console serves the admin console at /admin: server-rendered pages for the
// people who run the provider, over the operator actions of idp/admin. Every change goes
// through an admin.Admin method, which audits it with the signed-in administrator as the
// actor; every change is a POST carrying the CSRF token, and destructive ones ask for
// confirmation first. The server (idp/server_console.go) supplies the sign-in: the
// console opens only for a live session of an account of type "admin" whose second
// factor meets the console's policy.
package console

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
	"golang.org/x/text/language"
)

// AdminType is the account type that may use the console.
const AdminType = "admin"

// Config is what the console needs from the server.
type Config struct {
	// Admin performs every read and change.
	Admin *admin.Admin
	// Pages renders the console's templates (web.PageConsole*).
	Pages  *web.Renderer
	Logger *slog.Logger
	// Factors are the factor kinds the server offers (for policy explanations).
	Factors []storage.FactorKind
	// Session returns the browser's live SSO session and its enabled person, or nils.
	Session func(r *http.Request) (*storage.Session, *storage.User)
	// Verified reports whether the session's second factor satisfies the console's policy now.
	Verified func(ctx context.Context, sess *storage.Session, u *storage.User) (bool, error)
	// SignIn sends the browser through the sign-in (or a second-factor step-up) and back
	// to returnTo, a path under /admin.
	SignIn func(w http.ResponseWriter, r *http.Request, returnTo string)
	// CSRFToken returns the token to embed in forms; CheckCSRF verifies a posted one.
	CSRFToken func(w http.ResponseWriter, r *http.Request) string
	CheckCSRF func(r *http.Request) bool
	// Error renders the provider's error page.
	Error func(w http.ResponseWriter, r *http.Request, status int, title, msg string)
}

// Console is the console's HTTP handler.
type Console struct {
	cfg Config
	mux *http.ServeMux
}

// request is one authorised console request.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	user  *storage.User
	actor string // the audit trail's name for the administrator
	csrf  string
	// lang is the language of the console's pages and messages, from Accept-Language
	// (the console has no ui_locales: it is not an OIDC request).
	lang language.Tag
}

func (q *request) ctx() context.Context { return q.r.Context() }

// New returns the console's handler; mount it at /admin and /admin/.
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux()}
	routes := []struct {
		pattern string
		h       func(*request)
	}{
		{"GET /admin", func(q *request) { http.Redirect(q.w, q.r, "/admin/clients", http.StatusSeeOther) }},
		{"GET /admin/{$}", func(q *request) { http.Redirect(q.w, q.r, "/admin/clients", http.StatusSeeOther) }},
		{"GET /admin/clients", c.clients},
		{"GET /admin/clients/new", c.newClientForm},
		{"POST /admin/clients", c.createClient},
		{"GET /admin/clients/{id}", c.client},
		{"POST /admin/clients/{id}", c.updateClient},
		{"POST /admin/clients/{id}/policy", c.setClientPolicy},
		{"POST /admin/clients/{id}/secret", c.rotateSecret},
		{"POST /admin/clients/{id}/delete", c.deleteClient},
		{"POST /admin/clients/{id}/sessions/end", c.endClientSessions},
		{"GET /admin/policies", c.policies},
		{"POST /admin/policies", c.setTypePolicy},
		{"GET /admin/people", c.people},
		{"POST /admin/people", c.createPerson},
		{"GET /admin/people/{id}", c.person},
		{"POST /admin/people/{id}/disable", c.disablePerson},
		{"POST /admin/people/{id}/enable", c.enablePerson},
		{"POST /admin/people/{id}/account", c.setTypeGroups},
		{"POST /admin/people/{id}/reset-mfa", c.resetMFA},
		{"POST /admin/people/{id}/recovery-link", c.recoveryLink},
		{"POST /admin/people/{id}/enrolment-link", c.enrolmentLink},
		{"POST /admin/people/{id}/sessions/end", c.endPersonSessions},
		{"POST /admin/sessions/{sid}/end", c.endSession},
		{"GET /admin/audit", c.audit},
		{"GET /admin/audit/export", c.auditExport},
		{"GET /admin/keys", c.keys},
		{"POST /admin/keys/rotate", c.rotateKeys},
	}
	for _, rt := range routes {
		c.mux.HandleFunc(rt.pattern, c.gate(rt.h))
	}
	c.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "Page not found", "There is no console page at this address.")
	})
	return c
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Texts of the refusals.
const (
	msgNotAdmin = "The admin console is only for administrators. Your account is not an administrator account; ask an administrator if you need access."
	msgCSRF     = "This form has expired or did not come from the console. Go back, reload the page and try again."

	msgReasonRequired = "A reason is required: it is recorded in the audit trail."
)

// pageLang returns the language of the console's pages for r.
func pageLang(r *http.Request) language.Tag {
	return web.MatchLanguage(nil, r.Header.Get("Accept-Language"))
}

// renderError shows the provider's error page, which translates title and msg (message
// ids, or texts already translated).
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	c.cfg.Error(w, r, status, title, msg)
}

// gate lets a request through only for an administrator whose session meets the
// console's policy; changes (POST) also need the CSRF token.
func (c *Console) gate(h func(*request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		returnTo := "/admin"
		if r.Method == http.MethodGet {
			returnTo = r.URL.RequestURI()
		}
		sess, u := c.cfg.Session(r)
		if sess == nil {
			c.cfg.SignIn(w, r, returnTo)
			return
		}
		if u.Type != AdminType {
			c.renderError(w, r, http.StatusForbidden, "Not allowed", msgNotAdmin)
			return
		}
		ok, err := c.cfg.Verified(r.Context(), sess, u)
		if err != nil {
			c.internal(w, r, err)
			return
		}
		if !ok {
			c.cfg.SignIn(w, r, returnTo) // step-up: the sign-in asks for the second factor
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
			if err := r.ParseForm(); err != nil {
				c.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if !c.cfg.CheckCSRF(r) {
				c.renderError(w, r, http.StatusForbidden, "Form expired", msgCSRF)
				return
			}
		}
		h(&request{w: w, r: r, user: u, actor: "user:" + u.Email, csrf: c.cfg.CSRFToken(w, r), lang: pageLang(r)})
	}
}

func (c *Console) internal(w http.ResponseWriter, r *http.Request, err error) {
	c.cfg.Logger.ErrorContext(r.Context(), "admin console", "err", err)
	c.renderError(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

// fail answers an error of an admin action: a missing record is 404, refused input
// 400 with its message, anything else 500.
func (c *Console) fail(q *request, err error) {
	var inv *admin.InvalidInputError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		c.renderError(q.w, q.r, http.StatusNotFound, "Not found", "What you asked for does not exist (any more).")
	case errors.As(err, &inv):
		c.renderError(q.w, q.r, http.StatusBadRequest, "Not done", inv.Message)
	default:
		c.internal(q.w, q.r, err)
	}
}

// base is what every console page shows: the navigation, who is signed in, and the
// result of the last action.
type base struct {
	CSRF    string
	Admin   string
	Section string
	Message string
	Error   string
}

// Results of actions, shown after the redirect that follows a change (?done=...); the
// page translates them ({{t .Message}}).
var doneMessages = map[string]string{
	"created":   "Created.",
	"saved":     "Saved.",
	"deleted":   "Deleted.",
	"policy":    "The MFA policy is saved.",
	"sessions":  "The sessions are ended.",
	"session":   "The session is ended.",
	"disabled":  "The account is disabled and signed out everywhere.",
	"enabled":   "The account is enabled.",
	"reset":     "The second factors are reset; the person is signed out everywhere.",
	"keys":      "New signing keys are added. They sign once they have been published for the publish delay.",
	"typeset":   "The account type policy is saved.",
	"personnew": "The person is created.",
	"enrolment": "A new enrolment link is issued.",
}

func (c *Console) base(q *request, section string) base {
	return base{CSRF: q.csrf, Admin: q.user.Email, Section: section, Message: doneMessages[q.r.URL.Query().Get("done")]}
}

func (c *Console) render(q *request, status int, page string, data any) {
	if err := c.cfg.Pages.Render(q.w, q.lang, status, page, data); err != nil {
		c.cfg.Logger.ErrorContext(q.ctx(), "render console page", "page", page, "err", err)
	}
}

// done redirects to path after a change, with the result's message code.
func done(q *request, path, code string) {
	http.Redirect(q.w, q.r, path+"?done="+url.QueryEscape(code), http.StatusSeeOther)
}

// confirmPage asks before a destructive action.
type confirmPage struct {
	base
	// Title, Text and Button are message ids: the page translates them.
	Title string
	// Text is a page text with one %s, which Subject fills (when set).
	Text, Subject string
	Action        string
	Button        string
	Cancel        string
	Fields        []field
	// Reason asks for a reason (mandatory when ReasonRequired).
	Reason, ReasonRequired   bool
	ReasonValue, ReasonError string
	Section                  string
}

type field struct{ Name, Value string }

// confirmed reports whether the form was confirmed; if not, it shows the confirmation
// page for it. Posted fields other than csrf and confirm are carried over.
func (c *Console) confirmed(q *request, p confirmPage) bool {
	if q.r.PostFormValue("confirm") == "yes" && !(p.ReasonRequired && strings.TrimSpace(q.r.PostFormValue("reason")) == "") {
		return true
	}
	if q.r.PostFormValue("confirm") == "yes" {
		p.ReasonError = msgReasonRequired
	}
	p.base = c.base(q, p.Section)
	p.ReasonValue = q.r.PostFormValue("reason")
	p.Action = q.r.URL.Path
	for k, vs := range q.r.PostForm {
		if k == "csrf" || k == "confirm" || k == "reason" {
			continue
		}
		for _, v := range vs {
			p.Fields = append(p.Fields, field{k, v})
		}
	}
	status := http.StatusOK
	if p.ReasonError != "" {
		status = http.StatusBadRequest
	}
	c.render(q, status, web.PageConsoleConfirm, p)
	return false
}
