// Package idptest holds helpers for tests that drive the provider over HTTP the way a
// browser and a relying party do: a cookie-keeping browser that stops at redirects
// leaving the provider, form scraping, PKCE pairs and token requests.
package idptest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Browser is a cookie-keeping HTTP client that follows redirects within the provider and
// stops at the first redirect that leaves it (to a relying party).
type Browser struct {
	T      testing.TB
	Client *http.Client
	Issuer string
}

// NewBrowser returns a browser with an empty cookie jar for the provider at issuer.
func NewBrowser(t testing.TB, issuer string) *Browser {
	jar, _ := cookiejar.New(nil)
	b := &Browser{T: t, Issuer: issuer}
	b.Client = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// Page is a response as the browser saw it.
type Page struct {
	Status   int
	URL      *url.URL // final URL inside the provider
	Location string   // redirect target outside the provider, if any
	Body     string
}

func (b *Browser) do(req *http.Request) Page {
	b.T.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.T.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return Page{Status: resp.StatusCode, URL: resp.Request.URL, Location: resp.Header.Get("Location"), Body: string(body)}
}

// Get loads u.
func (b *Browser) Get(u string) Page {
	b.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// Post submits form to u.
func (b *Browser) Post(u string, form url.Values) Page {
	b.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Hidden returns the hidden form fields of the page.
func (p Page) Hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// IsLogin reports whether the page is the password form.
func (p Page) IsLogin() bool { return strings.Contains(p.Body, `action="/login"`) }

// IsConsent reports whether the page is the consent form.
func (p Page) IsConsent() bool { return strings.Contains(p.Body, `action="/consent"`) }

// RedirectParams returns the query of the redirect to the relying party, failing the
// test when the page is not such a redirect.
func (p Page) RedirectParams(t testing.TB) url.Values {
	t.Helper()
	if p.Location == "" {
		t.Fatalf("expected a redirect to the relying party, got status %d at %s:\n%.600s", p.Status, p.URL, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// Login submits the password form shown on p.
func (b *Browser) Login(p Page, email, password string) Page {
	b.T.Helper()
	if !p.IsLogin() {
		b.T.Fatalf("expected the login form, got status %d:\n%.600s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("email", email)
	f.Set("password", password)
	return b.Post(b.Issuer+"/login", f)
}

// Consent answers ("allow" or "deny") the consent page shown on p.
func (b *Browser) Consent(p Page, action string) Page {
	b.T.Helper()
	if !p.IsConsent() {
		b.T.Fatalf("expected the consent page, got status %d:\n%.600s", p.Status, p.Body)
	}
	f := p.Hidden()
	f.Set("action", action)
	return b.Post(b.Issuer+"/consent", f)
}

// RandString returns 256 random bits, base64url.
func RandString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PKCE returns a fresh S256 verifier and its challenge.
func PKCE() (verifier, challenge string) {
	verifier = RandString()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// Client is a registered client as the relying party knows it.
type Client struct {
	ID, Secret, RedirectURI string
}

// AuthURL builds an authorization request to issuer for c with a random state and
// nonce; extra parameters are added or replace the defaults.
func AuthURL(issuer string, c Client, extra url.Values) string {
	q := url.Values{
		"client_id":     {c.ID},
		"redirect_uri":  {c.RedirectURI},
		"response_type": {"code"},
		"scope":         {"openid profile email offline_access"},
		"state":         {"st-" + RandString()},
		"nonce":         {"n-" + RandString()},
	}
	for k, v := range extra {
		q[k] = v
	}
	return issuer + "/authorize?" + q.Encode()
}

// TokenResponse is the token endpoint's JSON answer plus the HTTP status.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
	Status       int    `json:"-"`
}

// PostToken sends form to a token endpoint as client c: HTTP Basic when c has a secret,
// else client_id in the form (public client).
func PostToken(t testing.TB, endpoint string, c Client, form url.Values) TokenResponse {
	t.Helper()
	if c.Secret == "" {
		form.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("token response: %v", err)
	}
	tr.Status = resp.StatusCode
	return tr
}

// GetJSON fetches u and decodes its JSON body into v.
func GetJSON(t testing.TB, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
