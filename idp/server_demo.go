package idp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/rs"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/web"
)

// demoRP is the small relying party served at "/" in dev mode. It is an ordinary OIDC
// client of this provider (discovery, authorization code + PKCE, ID-token verification
// against the JWKS) so a newcomer sees the real flow end to end.
type demoRP struct {
	s       *Server
	client  admin.DemoClient
	cookies *httphelper.CookieHandler
	// api verifies the access tokens sent to the demo's protected API, as any Go API
	// would with package rs.
	api *rs.Verifier

	mu sync.Mutex
	rp rp.RelyingParty // created on first use: discovery needs the server to be listening
}

func newDemoRP(s *Server, c admin.DemoClient) (*demoRP, error) {
	if c.RedirectURI != s.cfg.Issuer+"/demo/callback" {
		return nil, fmt.Errorf("demo redirect URI must be %s/demo/callback", s.cfg.Issuer)
	}
	hashKey, encKey := s.cfg.Sealer.DeriveKey("demo-hash"), s.cfg.Sealer.DeriveKey("demo-enc")
	opts := []httphelper.CookieHandlerOpt{}
	if !s.secure {
		opts = append(opts, httphelper.WithUnsecure())
	}
	api, err := rs.NewVerifier(rs.Config{Issuer: s.cfg.Issuer, Audience: c.ClientID, Logger: s.logger})
	if err != nil {
		return nil, err
	}
	return &demoRP{s: s, client: c, cookies: httphelper.NewCookieHandler(hashKey[:], encKey[:], opts...), api: api}, nil
}

// demoTokenCookie keeps the demo's access token (encrypted) for its API call.
const demoTokenCookie = "demo_token"

// report is the demo's protected API: it needs a token from a sign-in with a second
// factor (RFC 9470: a weaker one is answered 401 insufficient_user_authentication).
func (d *demoRP) report() http.Handler {
	return d.api.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := rs.FromContext(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{
			"message": "This answer needed a second factor.", "sub": c.Subject, "acr": c.ACR, "amr": c.AMR,
			"auth_time": c.AuthTime.UTC().Format(time.RFC3339),
		})
	}), rs.RequireACR(rs.ACRMFA))
}

// callAPI is the demo app calling its API with the access token of its sign-in. When
// the API asks for a stronger sign-in, the app signs in again with the acr_values (and
// max_age) the API named: the person is asked only for what is missing.
func (d *demoRP) callAPI(w http.ResponseWriter, r *http.Request) {
	d.hostCookies(d.serveCallAPI)(w, r)
}

func (d *demoRP) serveCallAPI(w http.ResponseWriter, r *http.Request) {
	token, err := d.cookies.CheckCookie(r, demoTokenCookie)
	if err != nil || token == "" {
		http.Redirect(w, r, "/demo/login", http.StatusSeeOther)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, d.s.cfg.Issuer+"/demo/api/report", nil)
	if err != nil {
		d.render(w, r, web.DemoPage{Error: err.Error()})
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.render(w, r, web.DemoPage{Error: "the API could not be reached: " + err.Error()})
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusUnauthorized {
		ch := resp.Header.Get("WWW-Authenticate")
		if strings.Contains(ch, `error="insufficient_user_authentication"`) {
			q := url.Values{}
			for _, p := range []string{"acr_values", "max_age"} {
				if v := challengeParam(ch, p); v != "" {
					q.Set(p, v)
				}
			}
			http.Redirect(w, r, "/demo/login?"+q.Encode(), http.StatusSeeOther)
			return
		}
	}
	page, ok := d.session(r)
	if !ok {
		page = web.DemoPage{SignedIn: true}
	}
	page.APIStatus, page.APIResult = resp.Status, string(body)
	d.render(w, r, page)
}

// challengeParam returns the value of parameter name in a WWW-Authenticate challenge.
func challengeParam(challenge, name string) string {
	i := strings.Index(challenge, name+`="`)
	if i < 0 {
		return ""
	}
	rest := challenge[i+len(name)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

func (d *demoRP) relyingParty(r *http.Request) (rp.RelyingParty, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rp != nil {
		return d.rp, nil
	}
	p, err := rp.NewRelyingPartyOIDC(r.Context(), d.s.cfg.Issuer, d.client.ClientID, d.client.ClientSecret, d.client.RedirectURI,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail}, rp.WithPKCE(d.cookies), rp.WithCookieHandler(d.cookies),
		rp.WithUnauthorizedHandler(d.unauthorized))
	if err != nil {
		return nil, err
	}
	d.rp = p
	return p, nil
}

func (d *demoRP) render(w http.ResponseWriter, r *http.Request, page web.DemoPage) {
	page.Issuer = d.s.cfg.Issuer
	d.s.render(w, r, http.StatusOK, web.PageDemo, page)
}

// demoIDCookie keeps the ID token of the demo's sign-in (encrypted): the demo's own
// session, from which its home page shows who is signed in.
const demoIDCookie = "demo_id"

// demoWhoCookie keeps the name and e-mail address of the person signed in to the demo,
// from userinfo (the ID token carries neither).
const demoWhoCookie = "demo_who"

func (d *demoRP) home(w http.ResponseWriter, r *http.Request) {
	d.hostCookies(func(w http.ResponseWriter, r *http.Request) {
		page := web.DemoPage{Error: r.URL.Query().Get("error_description")}
		if signedIn, ok := d.session(r); ok {
			signedIn.Error = page.Error
			page = signedIn
		}
		d.render(w, r, page)
	})(w, r)
}

// session returns the signed-in page of the demo's own session, if the browser has one.
func (d *demoRP) session(r *http.Request) (web.DemoPage, bool) {
	idToken, err := d.cookies.CheckCookie(r, demoIDCookie)
	if err != nil || idToken == "" {
		return web.DemoPage{}, false
	}
	who, _ := d.cookies.CheckCookie(r, demoWhoCookie)
	page, err := d.signedInPage(idToken, who)
	if err != nil {
		return web.DemoPage{}, false
	}
	return page, true
}

// logout ends the demo's own session, then the provider's (RP-initiated logout).
func (d *demoRP) logout(w http.ResponseWriter, r *http.Request) {
	d.hostCookies(func(w http.ResponseWriter, r *http.Request) {
		q := url.Values{"client_id": {d.client.ClientID}, "post_logout_redirect_uri": {d.s.cfg.Issuer + "/"}}
		if idToken, err := d.cookies.CheckCookie(r, demoIDCookie); err == nil && idToken != "" {
			q.Set("id_token_hint", idToken)
		}
		for _, name := range []string{demoIDCookie, demoWhoCookie, demoTokenCookie} {
			d.cookies.DeleteCookie(w, name)
		}
		http.Redirect(w, r, d.s.cfg.Issuer+"/end_session?"+q.Encode(), http.StatusSeeOther)
	})(w, r)
}

// unauthorized answers a callback the library refuses: most often a reload of the
// callback page, whose state and PKCE cookies were used up by the first visit. A person
// signed in to the demo sees the signed-in page; anyone else a sign-in button.
func (d *demoRP) unauthorized(w http.ResponseWriter, r *http.Request, desc, _ string) {
	d.s.logger.InfoContext(r.Context(), "demo: callback refused", "reason", desc)
	if page, ok := d.session(r); ok {
		d.render(w, r, page)
		return
	}
	d.render(w, r, web.DemoPage{Error: "This sign-in link has already been used, or it expired (reloading the page after signing in does that). Sign in again."})
}

// signedInPage is the page of a person signed in with idToken, which the demo verified
// when it received it: who they are, the token's claims and a sign-out link.
func (d *demoRP) signedInPage(idToken, who string) (web.DemoPage, error) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return web.DemoPage{}, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return web.DemoPage{}, err
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return web.DemoPage{}, err
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	sort.Strings(names)
	page := web.DemoPage{SignedIn: true, LogoutURL: "/demo/logout"}
	for _, k := range names {
		v, _ := json.Marshal(claims[k])
		val := string(v)
		if k == "auth_time" || k == "iat" || k == "exp" {
			if f, ok := claims[k].(float64); ok {
				val += "  (" + time.Unix(int64(f), 0).UTC().Format(time.RFC3339) + ")"
			}
		}
		page.Claims = append(page.Claims, web.Claim{Name: k, Value: val})
	}
	page.SignedInAs = who
	if sub, ok := claims["sub"].(string); ok && who == "" {
		page.SignedInAs = sub
	}
	return page, nil
}

func (d *demoRP) login(w http.ResponseWriter, r *http.Request) {
	p, err := d.relyingParty(r)
	if err != nil {
		d.render(w, r, web.DemoPage{Error: "discovery failed: " + err.Error()})
		return
	}
	// A step-up asked for by the API: pass its acr_values and max_age on.
	var params []rp.URLParamOpt
	for _, k := range []string{"acr_values", "max_age"} {
		if v := r.URL.Query().Get(k); v != "" && len(v) <= 256 {
			params = append(params, rp.WithURLParam(k, v))
		}
	}
	d.hostCookies(rp.AuthURLHandler(func() string { return secret.Token(16) }, p, params...))(w, r)
}

func (d *demoRP) callback(w http.ResponseWriter, r *http.Request) {
	if e := r.URL.Query().Get("error"); e != "" {
		d.render(w, r, web.DemoPage{Error: e + ": " + r.URL.Query().Get("error_description")})
		return
	}
	p, err := d.relyingParty(r)
	if err != nil {
		d.render(w, r, web.DemoPage{Error: err.Error()})
		return
	}
	d.hostCookies(rp.CodeExchangeHandler(func(w http.ResponseWriter, r *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], _ string, _ rp.RelyingParty) {
		if err := d.cookies.SetCookie(w, demoTokenCookie, tokens.AccessToken); err != nil {
			d.s.logger.WarnContext(r.Context(), "demo: access token not kept", "err", err)
		}
		if err := d.cookies.SetCookie(w, demoIDCookie, tokens.IDToken); err != nil {
			d.s.logger.WarnContext(r.Context(), "demo: sign-in not kept", "err", err)
		}
		// The ID token carries no e-mail or name: ask userinfo who signed in.
		var who string
		if info, err := rp.Userinfo[*oidc.UserInfo](r.Context(), tokens.AccessToken, tokens.TokenType, tokens.IDTokenClaims.GetSubject(), p); err == nil {
			who = info.Name
			if info.Email != "" {
				who = strings.TrimSpace(who + " <" + info.Email + ">")
			}
		}
		if who != "" {
			if err := d.cookies.SetCookie(w, demoWhoCookie, who); err != nil {
				d.s.logger.WarnContext(r.Context(), "demo: name not kept", "err", err)
			}
		}
		page, err := d.signedInPage(tokens.IDToken, who)
		if err != nil {
			page = web.DemoPage{Error: "the ID token could not be read: " + err.Error()}
		}
		d.render(w, r, page)
	}, p))(w, r)
}

// hostCookies gives the cookies that the OIDC library sets for the demo (its state and
// PKCE verifier, under names of its own) the __Host- prefix on https issuers, like the
// provider's cookies: the library's handler h sees them under its names, the browser
// under prefixed ones, and unprefixed cookies of those names are dropped. The library
// sets them Secure, with Path=/ and no Domain, as the prefix requires.
func (d *demoRP) hostCookies(h http.HandlerFunc) http.HandlerFunc {
	if !d.s.secure {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		cookies := r.Cookies()
		r.Header.Del("Cookie")
		for _, c := range cookies {
			if name, ok := strings.CutPrefix(c.Name, hostCookiePrefix); ok {
				r.AddCookie(&http.Cookie{Name: name, Value: c.Value})
			}
		}
		hw := &hostCookieWriter{ResponseWriter: w}
		h(hw, r)
		hw.prefix() // when h wrote nothing, net/http sends the headers after it returns
	}
}

// hostCookieWriter adds the __Host- prefix to every cookie set through it, just before
// the headers are sent.
type hostCookieWriter struct {
	http.ResponseWriter
	done bool
}

func (w *hostCookieWriter) prefix() {
	if w.done {
		return
	}
	w.done = true
	lines := w.Header()["Set-Cookie"]
	for i, line := range lines {
		if !strings.HasPrefix(line, hostCookiePrefix) {
			lines[i] = hostCookiePrefix + line // a Set-Cookie value starts with the name
		}
	}
}

func (w *hostCookieWriter) WriteHeader(code int) {
	w.prefix()
	w.ResponseWriter.WriteHeader(code)
}

func (w *hostCookieWriter) Write(b []byte) (int, error) {
	w.prefix()
	return w.ResponseWriter.Write(b)
}

func (w *hostCookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
