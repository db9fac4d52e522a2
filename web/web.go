// Package web renders the provider's server-side pages from templates and serves their
// static assets, all embedded in the binary. Templates are parsed once at start-up; a
// missing or broken template fails start-up.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page names.
const (
	PageLogin     = "login.html"
	PageConsent   = "consent.html"
	PageError     = "error.html"
	PageLogout    = "logout.html"
	PageLoggedOut = "logged_out.html"
	PageDemo      = "demo.html"
	PageMFA       = "mfa.html"
	PageAccount   = "account.html"
	PageEnroll    = "enroll.html"
	// PageBackupCodes shows new backup codes once.
	PageBackupCodes = "backup_codes.html"
	// PageRecovery is the form behind an administrator's one-time recovery link.
	PageRecovery = "recovery.html"
	// PageDevice is the form where a person enters the user code of a TV or CLI
	// (RFC 8628), PageDeviceDone what they see once the device is approved.
	PageDevice     = "device.html"
	PageDeviceDone = "device_done.html"
	// PageEnrolLink is where an enrolment link leads: the person registers a passkey.
	PageEnrolLink = "enrol_link.html"
	// PageResetRequest asks for the e-mail address of a forgotten password,
	// PageResetSent says a link is on its way (whether or not the account exists),
	// PageResetPassword is the new-password form behind the link and PageResetDone
	// confirms the change.
	PageResetRequest  = "reset_request.html"
	PageResetSent     = "reset_sent.html"
	PageResetPassword = "reset_password.html"
	PageResetDone     = "reset_done.html"
)

// Pages of the admin console (idp/console). Each is parsed with the layout and
// consoleCommon, which holds the console's navigation and notices.
const (
	PageConsoleClients  = "console_clients.html"
	PageConsoleClient   = "console_client.html"
	PageConsoleSecret   = "console_secret.html"
	PageConsoleConfirm  = "console_confirm.html"
	PageConsolePeople   = "console_people.html"
	PageConsolePerson   = "console_person.html"
	PageConsolePolicies = "console_policies.html"
	PageConsoleAudit    = "console_audit.html"
	PageConsoleKeys     = "console_keys.html"
)

const consoleCommon = "console_common.html"

var pages = []string{PageLogin, PageConsent, PageError, PageLogout, PageLoggedOut, PageDemo, PageMFA, PageAccount, PageEnroll, PageBackupCodes, PageRecovery, PageDevice, PageDeviceDone,
	PageConsoleClients, PageConsoleClient, PageConsoleSecret, PageConsoleConfirm, PageConsolePeople, PageConsolePerson,
	PageConsolePolicies, PageConsoleAudit, PageConsoleKeys, PageEnrolLink,
	PageResetRequest, PageResetSent, PageResetPassword, PageResetDone}

// Renderer renders pages.
type Renderer struct {
	// t holds each page parsed once per language, with that language's "t" and "lang".
	t map[language.Tag]map[string]*template.Template
	// SiteName, when set, follows every page title ("Sign in – Example ID").
	SiteName string
}

// New parses every page with the shared layout, once per language (Languages).
func New() (*Renderer, error) {
	r := &Renderer{t: map[language.Tag]map[string]*template.Template{}}
	for _, lang := range Languages() {
		r.t[lang] = map[string]*template.Template{}
		for _, p := range pages {
			files := []string{"templates/layout.html", "templates/" + p}
			if strings.HasPrefix(p, "console_") {
				files = append(files, "templates/"+consoleCommon)
			}
			t, err := template.New("layout.html").Funcs(funcs(r, lang)).ParseFS(templateFS, files...)
			if err != nil {
				return nil, fmt.Errorf("parse template %s: %w", p, err)
			}
			r.t[lang][p] = t
		}
	}
	return r, nil
}

// funcs are the template functions of pages in lang: t translates a message id
// ({{t "Signed in as %s" .Email}}), lang names the language for <html lang>.
func funcs(r *Renderer, lang language.Tag) template.FuncMap {
	return template.FuncMap{
		"siteName": func() string { return r.SiteName },
		"t":        func(id string, args ...any) string { return Translate(lang, id, args...) },
		"lang":     func() string { return lang.String() },
	}
}

// Render writes page name in language lang (see MatchLanguage; English when lang is not
// one of Languages) with data and the given status. Rendering into a buffer first means
// a template error never sends half a page.
func (r *Renderer) Render(w http.ResponseWriter, lang language.Tag, status int, name string, data any) error {
	byName, ok := r.t[lang]
	if !ok {
		lang, byName = English, r.t[English]
	}
	t, ok := byName[name]
	if !ok {
		return fmt.Errorf("unknown page %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang.String())
	h.Add("Vary", "Accept-Language")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Static serves the embedded assets; mount it at /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// LoginPage is the data of the password form.
type LoginPage struct {
	AuthRequestID string
	CSRF          string
	ClientName    string
	Email         string
	Error         string
	// PasskeyOptions, when set, are the request options (JSON) of this sign-in's
	// passkey ceremony: the page offers passkeys in the e-mail field's autofill
	// (conditional mediation) and on a "Sign in with a passkey" button.
	PasskeyOptions template.JS
	// PasskeyAutostart runs the passkey ceremony as soon as the page loads (the person
	// chose "Sign in with a passkey" on a page that could not run it yet).
	PasskeyAutostart bool
	// PasskeyStart offers "Sign in with a passkey" as a form that first stores the
	// sign-in (the account page's sign-in form, stored only when used).
	PasskeyStart bool
	// ResetURL is the "Forgot your password?" link; empty when password reset is off.
	ResetURL string
}

// Scope describes one requested scope on the consent page.
type Scope struct {
	Name        string
	Description string
}

// ConsentPage is the data of the consent form.
type ConsentPage struct {
	AuthRequestID string
	CSRF          string
	ClientName    string
	UserEmail     string
	Scopes        []Scope
}

// DevicePage is the data of the device code form.
type DevicePage struct {
	CSRF     string
	UserCode string
	Error    string
}

// DeviceDonePage tells the person their device is signed in.
type DeviceDonePage struct {
	ClientName string
}

// ErrorPage explains a problem to the person.
type ErrorPage struct {
	Title   string
	Message string
	// Code is the OAuth error code of a protocol error shown in the browser, if any.
	Code string
}

// LogoutPage asks the person to confirm signing out.
type LogoutPage struct {
	CSRF        string
	RedirectURI string
	Sig         string // signature of RedirectURI, checked on POST
	ClientID    string
	UserEmail   string
}

// Claim is one ID-token claim shown by the demo.
type Claim struct {
	Name  string
	Value string
}

// DemoPage is the built-in demo relying party.
type DemoPage struct {
	Issuer   string
	SignedIn bool
	// SignedInAs names the person signed in to the demo (name, else e-mail, else sub).
	SignedInAs string
	Claims     []Claim
	Error      string
	LogoutURL  string
	// The demo's call of its protected API: the HTTP status and the answer.
	APIStatus string
	APIResult string
}

// FactorChoice links to another sign-in method on the second-factor page.
type FactorChoice struct {
	Label string
	URL   string
}

// MFAPage is the second-factor challenge during sign-in.
type MFAPage struct {
	AuthRequestID   string
	CSRF            string
	ClientName      string
	FactorID        string
	Kind            string // totp, backup, email, sms, webauthn
	Label           string
	SentTo          string // masked e-mail address or phone number
	NeedSend        bool   // e-mail/SMS: no code sent yet
	ChallengeID     string
	WebAuthnOptions template.JS // JSON request options for webauthn.js (from json.Marshal, which escapes <, > and &)
	Others          []FactorChoice
	CanRemember     bool // offer "remember this device"
	Error           string
	// Action is where the check is posted ("/login/mfa" when empty); sending a code
	// posts to Action + "/send".
	Action string
}

// FormAction is where the page's check is posted.
func (p MFAPage) FormAction() string {
	if p.Action == "" {
		return "/login/mfa"
	}
	return p.Action
}

// FactorView is one enrolled factor on the account page.
type FactorView struct {
	ID       string
	Label    string
	Target   string // masked
	Added    string
	LastUsed string
	// Detail says more about a key or passkey: synced across devices or bound to one.
	Detail string
}

// AccountPage is the person's security settings.
type AccountPage struct {
	CSRF            string
	Email           string
	Factors         []FactorView
	HasBackup       bool
	BackupFactorID  string
	BackupRemaining int
	Kinds           []string // factor kinds that can be added
	Message         string   // a confirmation: what the last action did
	Error           string
	// ErrorKind is the factor kind whose "add" form the Error concerns: the error is then
	// shown in that form, beside its field, rather than at the top.
	ErrorKind string
	// What the person typed in the form that failed, shown again.
	EnteredPhone, EnteredEmail string
	// A sign-in waiting for the person to enrol a second factor (forced enrolment).
	RequiredBy     string // the application that requires it
	Recovered      bool   // signed in with a backup code: add a new method first
	ContinueURL    string
	ContinueClient string
	// Where the person is signed in, and which browsers skip the second factor.
	Sessions []SessionView // live SSO sessions, newest first
	Devices  []DeviceView  // unexpired remembered devices, newest first
	// The password: HasPassword false for a passkey-only account; CanRemovePassword when
	// the person has a passkey and no policy needs a password; PasswordNote says why not.
	HasPassword       bool
	CanRemovePassword bool
	PasswordNote      string
}

// SessionView is one signed-in browser on the account page.
type SessionView struct {
	ID        string
	Device    string // guessed from the user agent, e.g. "Firefox on Linux"
	UserAgent string
	IP        string
	Created   string
	LastUsed  string
	Factors   string // how it signed in, e.g. "Password, One-time code"
	Current   bool   // the browser showing the page
}

// DeviceView is one remembered device on the account page.
type DeviceView struct {
	ID       string
	Name     string
	IP       string
	Created  string
	LastUsed string
	Expires  string
}

// EnrollPage guides the person through adding a factor.
type EnrollPage struct {
	CSRF            string
	FactorID        string
	Kind            string
	Label           string
	Secret          string       // TOTP key for manual entry
	URI             template.URL // otpauth:// URI, built by the provider
	QRDataURI       template.URL // the QR code as a data:image/png URI, built by the provider
	ChallengeID     string
	SentTo          string
	WebAuthnOptions template.JS // JSON creation options (from json.Marshal, which escapes <, > and &)
	Error           string
}

// BackupCodesPage shows freshly generated backup codes, once.
type BackupCodesPage struct {
	Codes []string
}

// EnrolLinkPage is the page of an enrolment link: a button to start, then the passkey
// registration, then a confirmation.
type EnrolLinkPage struct {
	CSRF  string
	ID    string // the link's challenge id
	Token string // the link's secret, posted back with each form
	Email string // the account's address, once the link was checked
	// The registration ceremony, once started.
	FactorID        string
	ChallengeID     string
	WebAuthnOptions template.JS // JSON creation options (from json.Marshal)
	Done            bool        // the passkey is registered
	Error           string
}

// RecoveryPage asks for the password behind a one-time recovery link.
type RecoveryPage struct {
	CSRF  string
	ID    string // the link's challenge id
	Token string // the link's secret, posted back with the form
	Error string
}

// ResetRequestPage asks for the e-mail address of an account whose password is forgotten.
type ResetRequestPage struct {
	CSRF          string
	AuthRequestID string // the sign-in to return to afterwards
	Email         string
	Error         string
}

// ResetSentPage says that a link was sent if the address belongs to an account. It is the
// same whether or not it does.
type ResetSentPage struct {
	LoginURL string // back to the sign-in, or empty
}

// ResetPasswordPage is the new-password form behind a reset link.
type ResetPasswordPage struct {
	CSRF  string
	Token string // the link's secret, posted back with the form
	Error string
	// MinLength is the shortest password accepted.
	MinLength int
}

// ResetDonePage confirms a password reset.
type ResetDonePage struct {
	ContinueURL string // the sign-in to resume, or the account page
}
