package idp

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The second-factor step: after the password (or an SSO session with the password only),
// a person with enrolled factors proves one of them. The most recently used factor is
// offered first; the others are one click away.

// mfaSatisfied reports whether the session already carries a second factor, or the
// person has none enrolled.
func (s *Server) mfaSatisfied(r *http.Request, st *loginState) (bool, []storage.Factor, error) {
	if slices.Contains(st.sess.AMR, mfa.AMRMFA) {
		return true, nil, nil
	}
	factors, err := s.secondFactors(r.Context(), st.sess.UserID)
	if err != nil {
		return false, nil, err
	}
	return len(factors) == 0, factors, nil
}

// secondFactors returns the factors that make a second step necessary: the confirmed
// ones, unless all of them are backup codes (which are a way back in after losing
// another factor, not a factor to enrol on their own).
func (s *Server) secondFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	factors, err := s.confirmedFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, f := range factors {
		if f.Kind != string(mfa.KindBackup) {
			return factors, nil
		}
	}
	return nil, nil
}

// mfaStep renders the second-factor page when one is needed and reports whether it did.
func (s *Server) mfaStep(w http.ResponseWriter, r *http.Request, st *loginState) bool {
	ok, factors, err := s.mfaSatisfied(r, st)
	if err != nil {
		s.internalError(w, r, err)
		return true
	}
	if ok {
		return false
	}
	if slices.Contains(st.ar.Prompt, oidc.PromptNone) {
		s.failRequest(w, r, st.ar, oidc.ErrInteractionRequired().WithDescription("a second factor is required"))
		return true
	}
	chosen := &factors[0]
	if id := r.URL.Query().Get("factor"); id != "" {
		for i := range factors {
			if factors[i].ID == id {
				chosen = &factors[i]
			}
		}
	}
	page := web.MFAPage{}
	if chosen.Kind == string(mfa.KindWebAuthn) {
		// The browser needs assertion options before it can do anything.
		_, c, err := s.challenge(r.Context(), st.user, chosen.ID)
		if err != nil {
			page.Error = mfaMessage(err)
		} else {
			page.ChallengeID, page.WebAuthnOptions = c.ID, template.JS(c.Options)
		}
	}
	s.showMFA(w, r, st, factors, chosen, page, http.StatusOK)
	return true
}

// factorLabel is how a factor is named to its owner: the kind, plus the person's own
// name for apps and keys, or the masked destination for e-mail and SMS.
func factorLabel(f *storage.Factor) string {
	kind := map[string]string{
		string(mfa.KindTOTP): "Authenticator app", string(mfa.KindBackup): "Backup code",
		string(mfa.KindEmail): "Email code", string(mfa.KindSMS): "Text message",
		string(mfa.KindWebAuthn): "Security key or passkey",
	}[f.Kind]
	switch mfa.Kind(f.Kind) {
	case mfa.KindEmail, mfa.KindSMS:
		return kind + " (" + maskTarget(f.Target) + ")"
	case mfa.KindTOTP, mfa.KindWebAuthn:
		if f.Name != "" && f.Name != kind && f.Name != "Security key" {
			return kind + " (" + f.Name + ")"
		}
	}
	return kind
}

// showMFA renders the challenge page for chosen, with links to the other factors.
func (s *Server) showMFA(w http.ResponseWriter, r *http.Request, st *loginState, factors []storage.Factor, chosen *storage.Factor, page web.MFAPage, status int) {
	page.AuthRequestID = st.ar.ID
	page.CSRF = s.csrfToken(w, r)
	page.ClientName = st.client.Name
	page.FactorID = chosen.ID
	page.Kind = chosen.Kind
	page.Label = factorLabel(chosen)
	if page.SentTo == "" && (chosen.Kind == string(mfa.KindEmail) || chosen.Kind == string(mfa.KindSMS)) {
		page.SentTo = maskTarget(chosen.Target)
	}
	page.NeedSend = (chosen.Kind == string(mfa.KindEmail) || chosen.Kind == string(mfa.KindSMS)) && page.ChallengeID == ""
	for i := range factors {
		if factors[i].ID != chosen.ID {
			page.Others = append(page.Others, web.FactorChoice{
				Label: factorLabel(&factors[i]),
				URL:   "/login?" + url.Values{"id": {st.ar.ID}, "factor": {factors[i].ID}}.Encode(),
			})
		}
	}
	s.render(w, r, status, web.PageMFA, page)
}

// maskTarget hides most of an e-mail address or phone number.
func maskTarget(t string) string {
	if t == "" {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if t[i] == '@' {
			if i <= 1 {
				return t[:i] + "***" + t[i:]
			}
			return t[:1] + "***" + t[i:]
		}
	}
	if len(t) > 4 {
		return t[:3] + "•••" + t[len(t)-2:]
	}
	return "•••"
}

// mfaForm loads what every second-factor POST needs: the flow, its factors, the chosen one.
func (s *Server) mfaForm(w http.ResponseWriter, r *http.Request) (*loginState, []storage.Factor, *storage.Factor, bool) {
	st, ok := s.postedLogin(w, r)
	if !ok {
		return nil, nil, nil, false
	}
	if st.sess == nil || st.ar.Login.SessionID != st.sess.ID || !s.passwordSatisfied(st) {
		s.advance(w, r, st)
		return nil, nil, nil, false
	}
	done, factors, err := s.mfaSatisfied(r, st)
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil, nil, false
	}
	if done {
		s.advance(w, r, st)
		return nil, nil, nil, false
	}
	id := r.PostFormValue("factor")
	for i := range factors {
		if factors[i].ID == id {
			return st, factors, &factors[i], true
		}
	}
	s.renderError(w, r, http.StatusBadRequest, "Bad request", "Choose one of your sign-in methods.")
	return nil, nil, nil, false
}

// handleMFASend sends an e-mail or SMS code for the chosen factor.
func (s *Server) handleMFASend(w http.ResponseWriter, r *http.Request) {
	st, factors, chosen, ok := s.mfaForm(w, r)
	if !ok {
		return
	}
	page := web.MFAPage{}
	if _, c, err := s.challenge(r.Context(), st.user, chosen.ID); err != nil {
		page.Error = mfaMessage(err)
		s.showMFA(w, r, st, factors, chosen, page, http.StatusTooManyRequests)
		return
	} else {
		page.ChallengeID, page.SentTo = c.ID, c.SentTo
	}
	s.showMFA(w, r, st, factors, chosen, page, http.StatusOK)
}

// handleMFAVerify checks the second factor and, on success, records it in the session.
func (s *Server) handleMFAVerify(w http.ResponseWriter, r *http.Request) {
	st, factors, chosen, ok := s.mfaForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	challengeID := r.PostFormValue("challenge")
	response := r.PostFormValue("code")
	if chosen.Kind == string(mfa.KindWebAuthn) {
		response = r.PostFormValue("response")
	}
	amr, _, err := s.verify(ctx, st.user, chosen.ID, challengeID, response)
	if err != nil {
		page := web.MFAPage{Error: mfaMessage(err)}
		if chosen.Kind == string(mfa.KindEmail) || chosen.Kind == string(mfa.KindSMS) {
			page.ChallengeID = challengeID // up to three tries per code
		}
		if chosen.Kind == string(mfa.KindWebAuthn) {
			if _, c, cerr := s.challenge(ctx, st.user, chosen.ID); cerr == nil {
				page.ChallengeID, page.WebAuthnOptions = c.ID, template.JS(c.Options)
			}
		}
		s.showMFA(w, r, st, factors, chosen, page, http.StatusUnauthorized)
		return
	}
	all := combineAMR(st.sess.AMR, amr)
	acr := acrFor(all)
	now := s.now()
	if err := s.store.UpdateSessionAuth(ctx, st.sess.ID, now, all, acr); err != nil {
		s.internalError(w, r, err)
		return
	}
	st.ar.Login.AMR, st.ar.Login.ACR, st.ar.Login.AuthTime = all, acr, now
	if err := s.store.SetAuthRequestLogin(ctx, st.ar.ID, st.ar.Login); err != nil {
		s.internalError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
}
