package idp

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/openidp/idp/web"
)

// htmlErrorWriter holds back a text/plain error response (status 400 or above) of the
// wrapped handler, so that the browser is shown the HTML error page instead. Every
// other response passes through unchanged.
type htmlErrorWriter struct {
	http.ResponseWriter
	// only, when set, limits the statuses held back.
	only   func(status int) bool
	held   bool
	status int
	body   bytes.Buffer
	wrote  bool
}

func (w *htmlErrorWriter) WriteHeader(code int) {
	if w.wrote || w.held {
		return
	}
	if code >= 400 && (w.only == nil || w.only(code)) && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.held, w.status = true, code
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *htmlErrorWriter) Write(b []byte) (int, error) {
	if !w.wrote && !w.held {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *htmlErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notFoundPages wraps the mux's fallback (op's router): its text/plain 404 and 405
// answers become the HTML error page. Other errors of op's endpoints are for programs
// and stay as they are.
func (s *Server) notFoundPages(next http.Handler) http.Handler {
	only := func(status int) bool {
		return status == http.StatusNotFound || status == http.StatusMethodNotAllowed
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &htmlErrorWriter{ResponseWriter: w, only: only}
		next.ServeHTTP(hw, r)
		s.finishHTMLErrors(hw, w, r)
	})
}

// finishHTMLErrors renders a text/plain error held back by hw as the HTML error page.
func (s *Server) finishHTMLErrors(hw *htmlErrorWriter, w http.ResponseWriter, r *http.Request) {
	if !hw.held {
		return
	}
	w.Header().Del("Content-Type")
	w.Header().Del("Content-Length")
	text := strings.TrimSpace(hw.body.String())
	switch {
	case hw.status == http.StatusNotFound:
		s.renderNotFound(w, r)
	case hw.status == http.StatusMethodNotAllowed:
		s.renderError(w, r, hw.status, "Not allowed", "This address cannot be used this way.")
	case strings.HasSuffix(r.URL.Path, "/authorize"):
		s.renderAuthorizeError(w, r, hw.status, text)
	default:
		s.render(w, r, hw.status, web.PageError, web.ErrorPage{
			Title: "Something went wrong", Message: readableError(text),
		})
	}
}

// renderAuthorizeError shows an authorization request that cannot be answered to the
// relying party (op answers those in text/plain): a readable message and the OAuth
// error code (RFC 6749 §4.1.2.1: the request is invalid_request when the client or its
// redirect URI cannot be trusted, so it is not redirected).
func (s *Server) renderAuthorizeError(w http.ResponseWriter, r *http.Request, status int, text string) {
	msg := readableError(text)
	switch {
	case strings.Contains(text, "client by id"):
		msg = web.N("The application that sent you here is not known to this sign-in service. Go back to the application and try again, or contact its owner.")
	case strings.Contains(text, "redirect_uri"):
		msg = web.N("The application that sent you here asked to return to an address (redirect_uri) it has not registered. Contact the application's owner.")
	}
	code := "invalid_request"
	if status >= 500 {
		code = "server_error"
	}
	s.render(w, r, status, web.PageError, web.ErrorPage{
		Title: "This sign-in request cannot be completed", Message: msg, Code: code,
	})
}

func (s *Server) renderNotFound(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusNotFound, "Page not found",
		"There is no page at this address. Check the address, or go back to the application you came from.")
}

// readableError turns a library's error text into a sentence.
func readableError(text string) string {
	if text == "" {
		return web.N("The request could not be completed.")
	}
	text = strings.ToUpper(text[:1]) + text[1:]
	if !strings.HasSuffix(text, ".") {
		text += "."
	}
	return text
}

// wantsHTML reports whether the request comes from a browser page load.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
