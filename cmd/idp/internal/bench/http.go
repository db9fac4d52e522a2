package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// endpoints are the issuer's endpoints from its discovery document.
type endpoints struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Introspection string `json:"introspection_endpoint"`
}

// maxBody bounds every response body the bench reads.
const maxBody = 1 << 20

func discover(ctx context.Context, c *http.Client, issuer string) (*endpoints, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: %s answered %s", req.URL, resp.Status)
	}
	var ep endpoints
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&ep); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if ep.Token == "" || ep.Authorization == "" {
		return nil, errors.New("discovery: no token or authorization endpoint")
	}
	return &ep, nil
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
}

// postForm posts form to endpoint as client c (HTTP Basic, RFC 6749 2.3.1) and decodes
// the JSON answer into out; a status other than 200 is an error.
func (r *runner) postForm(ctx context.Context, endpoint string, c ClientCredentials, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %.200s", endpoint, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	return nil
}

// token posts a token request as c and returns the answer, an error unless it carries
// an access token.
func (r *runner) token(ctx context.Context, c ClientCredentials, form url.Values) (*tokenResponse, error) {
	var tr tokenResponse
	if err := r.postForm(ctx, r.ep.Token, c, form, &tr); err != nil {
		return nil, err
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint: no access token (%s %s)", tr.Error, tr.ErrorDesc)
	}
	r.tokens.Or(accessTokenFormat(tr.AccessToken))
	return &tr, nil
}

// Access-token formats (runner.tokens, Result.AccessTokens).
const (
	tokenJWT uint32 = 1 << iota
	tokenOpaque
)

// accessTokenFormat tells a JWT from an opaque token by its shape: a JWS in compact
// serialization is three dot-separated base64url parts, the first a JSON object (so it
// begins "eyJ", the encoding of `{"`). An encrypted JWE has five parts and is opaque to
// its holder, as is a random string.
func accessTokenFormat(token string) uint32 {
	if strings.Count(token, ".") == 2 && strings.HasPrefix(token, "eyJ") {
		return tokenJWT
	}
	return tokenOpaque
}

// tokenFormats names the formats seen (Result.AccessTokens).
func tokenFormats(seen uint32) string {
	switch seen {
	case tokenJWT:
		return "jwt"
	case tokenOpaque:
		return "opaque"
	case tokenJWT | tokenOpaque:
		return "jwt+opaque"
	}
	return ""
}

// browser is one browser: its own cookie jar, the shared transport, and the address it
// claims to come from (X-Forwarded-For), if any.
type browser struct {
	r      *runner
	client *http.Client
	addr   string
}

func (r *runner) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{r: r, addr: r.nextAddr(), client: &http.Client{
		Transport: r.o.Client.Transport, Jar: jar, Timeout: r.o.Client.Timeout,
		// Redirects are followed by hand (see get), to stop at the relying party.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is a response the browser got: an HTML page, or a redirect to the relying party.
type page struct {
	url      *url.URL
	status   int
	body     string
	redirect *url.URL // set when the provider sent the browser to the redirect URI
}

// maxRedirects bounds the redirects followed within one step of a sign-in.
const maxRedirects = 10

// do sends req and follows redirects until a page or a redirect to redirectURI.
func (b *browser) do(req *http.Request, redirectURI string) (*page, error) {
	for range maxRedirects {
		if b.addr != "" {
			req.Header.Set("X-Forwarded-For", b.addr)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return &page{url: req.URL, status: resp.StatusCode, body: string(body)}, nil
		}
		loc, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return nil, fmt.Errorf("redirect from %s: %w", req.URL, err)
		}
		if strings.HasPrefix(loc.String(), redirectURI) {
			return &page{url: req.URL, status: resp.StatusCode, redirect: loc}, nil
		}
		if req, err = http.NewRequestWithContext(req.Context(), http.MethodGet, loc.String(), nil); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("more than %d redirects", maxRedirects)
}

func (b *browser) get(ctx context.Context, u, redirectURI string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req, redirectURI)
}

func (b *browser) post(ctx context.Context, u string, form url.Values, redirectURI string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req, redirectURI)
}

// form is an HTML form of a page: where it posts, its fields and its submit buttons.
type form struct {
	action  string
	fields  url.Values // inputs with a name, with their value (hidden or not)
	buttons url.Values // submit buttons with a name
}

var (
	formRE   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	attrRE   = regexp.MustCompile(`(?is)([a-z-]+)\s*=\s*"([^"]*)"`)
	inputRE  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	buttonRE = regexp.MustCompile(`(?is)<button\b([^>]*)>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// forms returns the forms of an HTML page. It reads the plain markup that sign-in pages
// are made of, not arbitrary HTML.
func forms(body string) []form {
	var out []form
	for _, m := range formRE.FindAllStringSubmatch(body, -1) {
		if method := attrs(m[1])["method"]; method != "" && !strings.EqualFold(method, "post") {
			continue
		}
		f := form{action: attrs(m[1])["action"], fields: url.Values{}, buttons: url.Values{}}
		for _, in := range inputRE.FindAllStringSubmatch(m[2], -1) {
			a := attrs(in[1])
			if a["name"] == "" || a["type"] == "checkbox" || a["type"] == "submit" {
				continue
			}
			f.fields.Set(a["name"], a["value"])
		}
		for _, bt := range buttonRE.FindAllStringSubmatch(m[2], -1) {
			if a := attrs(bt[1]); a["name"] != "" && a["type"] != "button" {
				f.buttons.Add(a["name"], a["value"])
			}
		}
		out = append(out, f)
	}
	return out
}

// has reports whether f has a field named one of names, returning the first.
func (f form) has(names ...string) (string, bool) {
	for _, n := range names {
		if _, ok := f.fields[n]; ok {
			return n, true
		}
	}
	return "", false
}

// signIn is what one sign-in goes through, for the scenarios to check.
type signIn struct {
	passwordForms, codeForms, consentForms int
}

// signInFlow runs a browser-like authorization code flow with PKCE for the app client:
// GET /authorize, then whatever pages the provider shows (the password form, a TOTP
// form, a consent page), each posted with its hidden fields (CSRF included), until the
// redirect to the relying party; then the code is exchanged at the token endpoint.
// p == nil means the browser has to be signed in already (SSO).
func (b *browser) signInFlow(ctx context.Context, p *Person, totpCode func() (string, error)) (*tokenResponse, signIn, error) {
	var seen signIn
	c := b.r.o.Credentials
	verifier, challenge := pkce()
	q := url.Values{
		"client_id": {c.App.ID}, "redirect_uri": {c.RedirectURI}, "response_type": {"code"},
		"scope": {"openid profile email offline_access"}, "state": {randString()}, "nonce": {randString()},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	authURL := b.r.ep.Authorization + "?" + q.Encode()
	pg, err := b.get(ctx, authURL, c.RedirectURI)
	for step := 0; err == nil && pg.redirect == nil; step++ {
		if step > 6 {
			return nil, seen, fmt.Errorf("sign-in did not finish after %d pages (last %s)", step, pg.url)
		}
		if pg.status != http.StatusOK {
			return nil, seen, fmt.Errorf("sign-in: %s answered %d: %.200s", pg.url, pg.status, strip(pg.body))
		}
		f, fill, ferr := b.nextForm(pg, p, totpCode, &seen)
		if ferr != nil {
			return nil, seen, ferr
		}
		for k, v := range fill {
			f.fields[k] = v
		}
		target, perr := pg.url.Parse(f.action)
		if perr != nil {
			return nil, seen, fmt.Errorf("form action %q: %w", f.action, perr)
		}
		pg, err = b.post(ctx, target.String(), f.fields, c.RedirectURI)
	}
	if err != nil {
		return nil, seen, err
	}
	rq := pg.redirect.Query()
	code := rq.Get("code")
	if code == "" {
		return nil, seen, fmt.Errorf("redirect without a code: error=%s %s", rq.Get("error"), rq.Get("error_description"))
	}
	tr, err := b.r.token(ctx, c.App, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {c.RedirectURI}, "code_verifier": {verifier}})
	if err != nil {
		return nil, seen, err
	}
	return tr, seen, nil
}

// nextForm picks the form to post on pg and what to fill in: the password form, a code
// form (TOTP), or the consent page's "allow".
func (b *browser) nextForm(pg *page, p *Person, totpCode func() (string, error), seen *signIn) (form, url.Values, error) {
	fs := forms(pg.body)
	for _, f := range fs {
		if _, ok := f.has("password"); ok {
			if p == nil {
				return f, nil, errors.New("the provider asked for a password on an SSO sign-in")
			}
			user, ok := f.has("email", "username", "login", "user")
			if !ok {
				return f, nil, errors.New("password form without a user-name field")
			}
			seen.passwordForms++
			if seen.passwordForms > 1 {
				return f, nil, fmt.Errorf("password refused: %.200s", strip(pg.body))
			}
			return f, url.Values{user: {p.Email}, "password": {p.Password}}, nil
		}
	}
	for _, f := range fs {
		if _, ok := f.has("code", "otp"); ok {
			if totpCode == nil {
				return f, nil, errors.New("the provider asked for a second factor")
			}
			seen.codeForms++
			if seen.codeForms > 1 {
				return f, nil, fmt.Errorf("code refused: %.200s", strip(pg.body))
			}
			code, err := totpCode()
			if err != nil {
				return f, nil, err
			}
			name, _ := f.has("code", "otp")
			return f, url.Values{name: {code}}, nil
		}
	}
	for _, f := range fs {
		for name, values := range f.buttons {
			for _, v := range values {
				if v == "allow" || v == "accept" || v == "yes" {
					seen.consentForms++
					return f, url.Values{name: {v}}, nil
				}
			}
		}
	}
	return form{}, nil, fmt.Errorf("no sign-in form on %s: %.200s", pg.url, strip(pg.body))
}

var tagRE = regexp.MustCompile(`(?s)<[^>]*>|\s+`)

// strip reduces an HTML page to its words, for error messages.
func strip(s string) string { return strings.TrimSpace(tagRE.ReplaceAllString(s, " ")) }

func randString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkce returns an S256 verifier and its challenge (RFC 7636).
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// metricStoreCommits is the counter of store transactions committed, if the server
// exposes it.
const metricStoreCommits = "openidp_store_commits_total"

// metricProcessCPU is the CPU time the server process has used, user and system, in
// seconds: the Prometheus client's process collector, which openidp's /metrics has (as
// do many Go and Java servers).
const metricProcessCPU = "process_cpu_seconds_total"

// metricStoreFlushes and metricStoreFlushSeconds count the store's flushes to the disk
// and the time spent in them, if the server exposes them.
const (
	metricStoreFlushes      = "openidp_store_flushes_total"
	metricStoreFlushSeconds = "openidp_store_flush_seconds_total"
)

// counters is one read of the server's metrics: the store commits, the process's CPU
// time and the store's flushes, each with whether the server exposes it.
type counters struct {
	commits, cpu, flushes, flushSeconds float64
	hasCommits, hasCPU, hasFlushes      bool
}

// readCounters reads the server's metrics once; zero counters when they cannot be read.
func (r *runner) readCounters(ctx context.Context) counters {
	if r.o.MetricsURL == "-" {
		return counters{}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.MetricsURL, nil)
	if err != nil {
		return counters{}
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return counters{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return counters{}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return counters{}
	}
	var c counters
	c.commits, c.hasCommits = sumMetric(bytes.NewReader(body), metricStoreCommits)
	c.cpu, c.hasCPU = sumMetric(bytes.NewReader(body), metricProcessCPU)
	var hasSeconds bool
	c.flushes, c.hasFlushes = sumMetric(bytes.NewReader(body), metricStoreFlushes)
	c.flushSeconds, hasSeconds = sumMetric(bytes.NewReader(body), metricStoreFlushSeconds)
	c.hasFlushes = c.hasFlushes && hasSeconds
	return c
}

// sumMetric sums the samples of metric name in a Prometheus text exposition.
func sumMetric(rd io.Reader, name string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}
