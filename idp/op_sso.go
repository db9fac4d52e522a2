package idp

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/openidp/idp/storage"
)

// SSO sign-ins in one round trip. op answers every authorization request by storing it
// and redirecting the browser to the sign-in pages (/login?id=…), which, once the
// sign-in is done, redirect it to /authorize/callback, where op issues the code and
// redirects it to the client: three round trips. When the browser's session already
// satisfies everything the request asks (decide says issue: no page to show), the
// sign-in is finished within the /authorize request and op's callback answers it there:
// one round trip, and the auth request, session and client are read once instead of
// once per hop. Anything else (no session, a page to show, an error) gets op's redirect
// to the sign-in pages exactly as before.

// serveAuthorize runs op's /authorize (next) for r, answering an SSO sign-in directly
// when it can (see above). With a session cookie, op's CreateAuthRequest leaves the new
// request unstored (reqState.deferInsert): a sign-in finished here stores it once, with
// its login record and code (opStorage.SaveAuthCode); otherwise it is stored here before
// op's redirect to the sign-in pages goes out.
func (s *Server) serveAuthorize(next http.Handler, w http.ResponseWriter, r *http.Request, st *reqState) {
	ri := requestInfoFrom(r.Context())
	if ri == nil || ri.SessionTokenHash == "" {
		// No session cookie: the sign-in pages are needed anyway.
		next.ServeHTTP(w, r)
		return
	}
	buf := &bufferedResponse{header: w.Header()}
	st.deferInsert = true
	next.ServeHTTP(buf, r)
	st.deferInsert = false
	if ar := st.created; ar != nil && st.unsaved {
		if buf.status == http.StatusFound && w.Header().Get("Location") == s.cfg.Issuer+"/login?id="+ar.ID &&
			s.answerSSO(next, w, r, st, ar) {
			// Answered. Had the sign-in failed before its code, the request stays
			// unstored: nothing refers to it.
			return
		}
		if err := s.store.CreateAuthRequest(r.Context(), ar); err != nil {
			w.Header().Del("Location")
			s.internalError(w, r, fmt.Errorf("create auth request: %w", err))
			return
		}
		st.unsaved = false
	}
	if buf.status == 0 {
		buf.status = http.StatusOK
	}
	w.WriteHeader(buf.status)
	_, _ = w.Write(buf.body.Bytes())
}

// answerSSO finishes the sign-in of the just-created request ar in this response when it
// needs no page, and reports whether it did; when it reports false it has written
// nothing.
func (s *Server) answerSSO(next http.Handler, w http.ResponseWriter, r *http.Request, st *reqState, ar *storage.AuthRequest) bool {
	f, err := s.gatherFlowFor(r, ar)
	if err != nil {
		return false
	}
	d := decide(f)
	if d.step != stepIssue || finishRecordsFirst(ar) {
		return false
	}
	f.unsaved = true
	// op's redirect to the sign-in pages is dropped; its callback answers instead.
	w.Header().Del("Location")
	w.Header().Del("Content-Type")
	callbackPath := strings.TrimSuffix(r.URL.Path, "/authorize") + "/authorize/callback"
	f.respond = func(w http.ResponseWriter, r *http.Request, done *storage.AuthRequest) {
		// op's callback reads the request by id: it is the one just written
		// (AuthRequestByID takes it from st).
		st.authRequest = done
		cb := r.Clone(r.Context())
		cb.Method = http.MethodGet
		u := *r.URL
		u.Path, u.RawPath, u.RawQuery = callbackPath, "", "id="+done.ID
		cb.URL, cb.RequestURI = &u, u.RequestURI()
		cb.Form, cb.PostForm, cb.Body, cb.ContentLength = nil, nil, http.NoBody, 0
		cb.Header.Del("Content-Type")
		s.serveWithFormPostIssuer(next, w, cb)
	}
	s.drive(w, r, f, d)
	return true
}
