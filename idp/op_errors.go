package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors of the token, introspection, revocation and userinfo endpoints as the RFCs
// name them. op writes some of them its own way (introspection errors as text/plain,
// userinfo refusals as 403 without a challenge, storage failures as invalid_client with
// the storage error as description); the endpoints' responses are buffered and
// corrected here before they reach the client.

// apiEndpoint is the kind of op endpoint a request is for.
type apiEndpoint int

const (
	endpointOther apiEndpoint = iota
	endpointToken
	endpointIntrospection
	endpointRevocation
	endpointUserinfo
)

func (s *Server) apiEndpointOf(r *http.Request) apiEndpoint {
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, s.provider.TokenEndpoint().Relative()):
		return endpointToken
	case strings.HasSuffix(p, s.provider.IntrospectionEndpoint().Relative()):
		return endpointIntrospection
	case strings.HasSuffix(p, s.provider.RevocationEndpoint().Relative()):
		return endpointRevocation
	case strings.HasSuffix(p, s.provider.UserinfoEndpoint().Relative()):
		return endpointUserinfo
	}
	return endpointOther
}

// bufferedResponse holds a response until it has been checked.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// oauthError is the JSON error body of RFC 6749 §5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// postToBasic lets introspection and revocation accept client_secret_post (RFC 6749
// §2.3.1): op's introspection endpoint reads client secrets only from HTTP Basic.
func postToBasic(r *http.Request) {
	if _, _, ok := r.BasicAuth(); ok || r.Method != http.MethodPost {
		return
	}
	if err := r.ParseForm(); err != nil {
		return
	}
	id, sec := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id == "" || sec == "" {
		return
	}
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	for _, k := range []string{"client_id", "client_secret"} {
		r.PostForm.Del(k)
		r.Form.Del(k)
	}
}

// serveAPI runs next for one of the API endpoints and corrects its errors.
func (s *Server) serveAPI(kind apiEndpoint, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if kind == endpointIntrospection || kind == endpointRevocation {
		postToBasic(r)
	}
	buf := &bufferedResponse{header: w.Header()}
	next.ServeHTTP(buf, r)
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	if buf.status < 400 {
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
		return
	}
	status, body := buf.status, oauthError{}
	if strings.HasPrefix(buf.header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(buf.body.Bytes(), &body)
	}
	if body.Error == "" {
		body = plainError(kind, status, buf.body.String())
	}
	switch {
	case s.storeDown(r.Context()):
		// A failing database is the provider's problem, never the client's, and what it
		// said (user, database, host) stays in the log.
		s.logger.ErrorContext(r.Context(), "request failed: database unavailable", "path", r.URL.Path, "error", body.Error, "description", body.Description)
		status, body = http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable", Description: "the service is temporarily unavailable; try again later"}
		w.Header().Set("Retry-After", "5")
	case body.Error == "server_error":
		s.logger.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "description", body.Description)
		status, body.Description = http.StatusInternalServerError, "internal error"
	case kind == endpointUserinfo:
		// RFC 6750 §3.1: a missing token gets a bare challenge, a bad one invalid_token.
		if r.Header.Get("Authorization") == "" && r.URL.Query().Get("access_token") == "" && r.PostFormValue("access_token") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer`)
			body = oauthError{Error: "invalid_request", Description: "access token missing"}
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			body = oauthError{Error: "invalid_token", Description: "the access token is invalid, expired or revoked"}
		}
		status = http.StatusUnauthorized
	case body.Error == "invalid_client":
		// RFC 6749 §5.2: 401, with the scheme the client tried as the challenge.
		status = http.StatusUnauthorized
		if _, _, ok := r.BasicAuth(); ok || strings.HasPrefix(r.Header.Get("Authorization"), "Basic") {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.cfg.Issuer+`", charset="UTF-8"`)
		}
		body.Description = "client authentication failed"
	}
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// plainError names a text/plain error of op's (introspection, userinfo).
func plainError(kind apiEndpoint, status int, text string) oauthError {
	text = strings.TrimSpace(text)
	switch {
	case kind == endpointUserinfo:
		return oauthError{Error: "invalid_token"}
	case strings.Contains(text, "ErrorType=invalid_client") || status == http.StatusUnauthorized:
		return oauthError{Error: "invalid_client"}
	case strings.Contains(text, "ErrorType=server_error") || status >= 500:
		return oauthError{Error: "server_error"}
	}
	return oauthError{Error: "invalid_request", Description: "the request could not be parsed"}
}

// storeDown reports whether the database fails to answer a ping.
func (s *Server) storeDown(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return s.store.Ping(ctx) != nil
}

// withAuthResponseIssuer adds iss (RFC 9207) to every authorization response: each
// redirect from the provider to a relying party that carries a code or an error, in
// the query or the fragment, whichever handler (op's /authorize and callback, the
// sign-in flow failing a request) wrote it.
func (s *Server) withAuthResponseIssuer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&issWriter{ResponseWriter: w, issuer: s.cfg.Issuer}, r)
	})
}

type issWriter struct {
	http.ResponseWriter
	issuer string
}

func (w *issWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *issWriter) WriteHeader(code int) {
	if code >= 300 && code < 400 {
		if loc := w.Header().Get("Location"); loc != "" {
			w.Header().Set("Location", withIssuer(loc, w.issuer))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// withIssuer adds iss to an authorization response URL; any other URL is returned
// as it is.
func withIssuer(loc, issuer string) string {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || strings.HasPrefix(loc, issuer+"/") {
		return loc
	}
	isResponse := func(v url.Values) bool {
		return (v.Has("code") || v.Has("error")) && !v.Has("iss")
	}
	if q := u.Query(); isResponse(q) {
		q.Set("iss", issuer)
		u.RawQuery = q.Encode()
		return u.String()
	}
	if f, err := url.ParseQuery(u.Fragment); err == nil && isResponse(f) {
		f.Set("iss", issuer)
		u.Fragment = f.Encode()
		u.RawFragment = ""
		return u.String()
	}
	return loc
}

// formPostMarker starts op's form_post response page (response_mode=form_post).
const formPostMarker = `<body onload="javascript:document.forms[0].submit()">`

// serveWithFormPostIssuer runs op's authorization callback and adds iss (RFC 9207) to a
// form_post response, whose template knows only op's own parameters.
func (s *Server) serveWithFormPostIssuer(next http.Handler, w http.ResponseWriter, r *http.Request) {
	buf := &bufferedResponse{header: w.Header()}
	next.ServeHTTP(buf, r)
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	body := buf.body.Bytes()
	if buf.status == http.StatusOK && bytes.Contains(body, []byte(formPostMarker)) {
		input := `<input type="hidden" name="iss" value="` + html.EscapeString(s.cfg.Issuer) + `"/>` + "\n</form>"
		body = bytes.Replace(body, []byte("</form>"), []byte(input), 1)
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(buf.status)
	_, _ = w.Write(body)
}
