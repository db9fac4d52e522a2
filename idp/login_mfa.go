package idp

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/mfa"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The second-factor step. What a login must prove comes from the client's policy, the
// account type's policy and the request (consent.Evaluate). A session that already
// holds a recent enough check with a factor that counts is enough ("step-up" asks only
// for what is missing); a remembered device may stand in where the policy allows; a
// person who must use a second factor but has none enrols first (after an optional
// grace period). Otherwise the person proves one factor: the most recently used is
// offered first, the others one click away.

// mfaState is the second-factor situation of one sign-in.
type mfaState struct {
	req       consent.Requirement
	factors   []storage.Factor // usable for this request, most recently used first
	met       bool             // nothing (more) to do
	viaDevice bool             // met thanks to a remembered device
	enrol     bool             // required, but the person has no usable factor
	recovery  bool             // signed in with a backup code: a new factor must be enrolled first
}

// errFactorUnavailable: the person has second factors, but none this server offers now.
var errFactorUnavailable = errors.New("the person's second factors are not available")

// showSecondFactor renders the second-factor step: the factor in ?factor= if it counts,
// else the most recently used one.
func (s *Server) showSecondFactor(w http.ResponseWriter, r *http.Request, f *flowFacts, ms *mfaState) {
	chosen := &ms.factors[0]
	if id := r.URL.Query().Get("factor"); id != "" {
		for i := range ms.factors {
			if ms.factors[i].ID == id {
				chosen = &ms.factors[i]
			}
		}
	}
	page := web.MFAPage{}
	if chosen.Kind == storage.FactorWebAuthn {
		// The browser needs assertion options before it can do anything.
		_, c, err := s.challenge(r.Context(), f.user, chosen.ID)
		if err != nil {
			page.Error = s.mfaMessageFor(r, err)
		} else {
			page.ChallengeID, page.WebAuthnOptions = c.ID, template.JS(c.Options)
		}
	}
	s.showMFA(w, r, f, ms, chosen, page, http.StatusOK)
}

// secondFactors returns the factors that make a second step necessary on the account
// page: the confirmed ones, unless all of them are backup codes.
func (s *Server) secondFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	factors, err := s.confirmedFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	return consent.Requirement{}.UsableFactors(factors), nil
}

// factorLabel is how a factor is named to its owner: the kind, plus the person's own
// name for apps and keys, or the masked destination for e-mail and SMS.
func factorLabel(f *storage.Factor) string {
	return labelFactor(f, func(id string, args ...any) string { return fmt.Sprintf(id, args...) })
}

// factorLabel is factorLabel in the language of r's pages.
func (s *Server) factorLabel(r *http.Request, f *storage.Factor) string {
	return labelFactor(f, func(id string, args ...any) string { return s.tr(r, id, args...) })
}

func labelFactor(f *storage.Factor, tr func(string, ...any) string) string {
	en := factorKindLabels[f.Kind]
	kind := tr(en)
	switch f.Kind {
	case storage.FactorEmail, storage.FactorSMS:
		return tr(web.N("%s (%s)"), kind, maskTarget(f.Target))
	case storage.FactorTOTP, storage.FactorWebAuthn:
		if f.Name != "" && f.Name != en && f.Name != "Security key" {
			return tr(web.N("%s (%s)"), kind, f.Name)
		}
	}
	return kind
}

// showMFA renders the challenge page for chosen, with links to the other factors.
func (s *Server) showMFA(w http.ResponseWriter, r *http.Request, st *flowFacts, ms *mfaState, chosen *storage.Factor, page web.MFAPage, status int) {
	factors := ms.factors
	// Remembering is about later sign-ins: offered whenever the policy allows it.
	page.CanRemember = ms.req.RememberDevice > 0
	page.AuthRequestID = st.ar.ID
	page.CSRF = s.csrfToken(w, r)
	page.ClientName = st.client.Name
	page.FactorID = chosen.ID
	page.Kind = string(chosen.Kind)
	page.Label = s.factorLabel(r, chosen)
	if page.SentTo == "" && (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) {
		page.SentTo = maskTarget(chosen.Target)
	}
	page.NeedSend = (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) && page.ChallengeID == ""
	for i := range factors {
		if factors[i].ID != chosen.ID {
			page.Others = append(page.Others, web.FactorChoice{
				Label: s.factorLabel(r, &factors[i]),
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

// mfaForm loads what every second-factor POST needs: the sign-in at its second-factor
// step, its requirement, and the chosen factor (which must count for this request).
func (s *Server) mfaForm(w http.ResponseWriter, r *http.Request) (*flowFacts, *mfaState, *storage.Factor, bool) {
	f, d, ok := s.postedStep(w, r, stepSecondFactor)
	if !ok {
		return nil, nil, nil, false
	}
	id := r.PostFormValue("factor")
	for i := range d.mfa.factors {
		if d.mfa.factors[i].ID == id {
			return f, d.mfa, &d.mfa.factors[i], true
		}
	}
	s.renderError(w, r, http.StatusBadRequest, "Bad request", "Choose one of your sign-in methods.")
	return nil, nil, nil, false
}

// handleMFASend sends an e-mail or SMS code for the chosen factor.
func (s *Server) handleMFASend(w http.ResponseWriter, r *http.Request) {
	st, ms, chosen, ok := s.mfaForm(w, r)
	if !ok {
		return
	}
	page := web.MFAPage{}
	if _, c, err := s.challenge(r.Context(), st.user, chosen.ID); err != nil {
		page.Error = s.mfaMessageFor(r, err)
		s.showMFA(w, r, st, ms, chosen, page, http.StatusTooManyRequests)
		return
	} else {
		page.ChallengeID, page.SentTo = c.ID, c.SentTo
	}
	s.showMFA(w, r, st, ms, chosen, page, http.StatusOK)
}

// handleMFAVerify checks the second factor and, on success, records it in the session.
func (s *Server) handleMFAVerify(w http.ResponseWriter, r *http.Request) {
	st, ms, chosen, ok := s.mfaForm(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	challengeID := r.PostFormValue("challenge")
	response := r.PostFormValue("code")
	if chosen.Kind == storage.FactorWebAuthn {
		response = r.PostFormValue("response")
	}
	amr, _, err := s.verify(ctx, st.user, chosen.ID, challengeID, response)
	s.countMFASignIn(chosen.Kind, err)
	if err != nil {
		page := web.MFAPage{Error: s.mfaMessageFor(r, err)}
		if (chosen.Kind == storage.FactorEmail || chosen.Kind == storage.FactorSMS) && !errors.Is(err, mfa.ErrExpired) {
			page.ChallengeID = challengeID // up to three tries per code; a used-up code offers "Send code" again
		}
		if chosen.Kind == storage.FactorWebAuthn {
			if _, c, cerr := s.challenge(ctx, st.user, chosen.ID); cerr == nil {
				page.ChallengeID, page.WebAuthnOptions = c.ID, template.JS(c.Options)
			}
		}
		s.showMFA(w, r, st, ms, chosen, page, http.StatusUnauthorized)
		return
	}
	now := s.now()
	auth := storage.SessionAuth{
		AuthTime: now, PasswordAt: st.sess.PasswordAt, MFAAt: now,
		Factors: appendUnique(st.sess.Factors, chosen.Kind), AMR: combineAMR(st.sess.AMR, amr),
		SignIn: signedInWith(st.sess, string(chosen.Kind)),
	}
	auth.ACR = acrFor(auth.AMR)
	if err := s.upgradeSession(w, r, st.sess, auth); err != nil {
		s.internalError(w, r, err)
		return
	}
	s.markKnownDevice(w, r, st.user.ID)
	if ms.req.RememberDevice > 0 && r.PostFormValue("remember") == "1" {
		if err := s.rememberDevice(w, r, st.user.ID, ms.req.RememberDevice); err != nil {
			s.logger.WarnContext(ctx, "remember device", "err", err)
		}
	}
	// The next visit records the session's new level in the sign-in (drive).
	http.Redirect(w, r, "/login?id="+url.QueryEscape(st.ar.ID), http.StatusSeeOther)
}

func appendUnique[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(slices.Clone(list), v)
}
