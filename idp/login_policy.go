package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/console"
	"github.com/openidp/idp/storage"
)

// essentialACR extracts the acr values of an essential "acr" member of the claims
// request parameter (OIDC Core 5.5.1): {"id_token":{"acr":{"essential":true,"values":[...]}}}.
func essentialACR(claims string) ([]string, error) {
	if claims == "" {
		return nil, nil
	}
	// Only the acr member is decoded: other members may carry values of any JSON type
	// (email_verified's "value" is a boolean), and member names are case-sensitive, which
	// struct fields are not.
	var req map[string]json.RawMessage
	if err := json.Unmarshal([]byte(claims), &req); err != nil {
		return nil, fmt.Errorf("claims parameter is not valid JSON: %w", err)
	}
	var idToken map[string]json.RawMessage
	if raw, ok := req["id_token"]; ok {
		if err := json.Unmarshal(raw, &idToken); err != nil {
			return nil, fmt.Errorf("claims parameter: id_token is not a JSON object: %w", err)
		}
	}
	var acr *struct {
		Essential bool     `json:"essential"`
		Value     string   `json:"value"`
		Values    []string `json:"values"`
	}
	if raw, ok := idToken["acr"]; ok {
		if err := json.Unmarshal(raw, &acr); err != nil {
			return nil, fmt.Errorf("claims parameter: id_token acr is not a claim request: %w", err)
		}
	}
	if acr == nil || !acr.Essential {
		return nil, nil
	}
	values := slices.Clone(acr.Values)
	if acr.Value != "" {
		values = append(values, acr.Value)
	}
	return values, nil
}

// authParams is what the stored request asks of the sign-in.
func authParams(ar *storage.AuthRequest) consent.AuthParams {
	return consent.AuthParams{MaxAge: ar.MaxAge, PromptLogin: slices.Contains(ar.Prompt, "login"),
		ACRValues: ar.ACRValues, EssentialACR: ar.EssentialACR}
}

// requirement computes what a login of user u to client c must prove, reading the
// account type's policy. The sign-in steps read that policy once and call
// requirementWith; the console's gate and the password reset use this.
func (s *Server) requirement(ctx context.Context, c *storage.Client, u *storage.User, ar *storage.AuthRequest) (consent.Requirement, error) {
	tp, err := s.typePolicy(ctx, c, u)
	if err != nil {
		return consent.Requirement{}, err
	}
	return s.requirementWith(c, u, ar, tp)
}

// typePolicy reads the policy of u's account type that applies to a login to c (nil for
// none: no policy stored, or the account page, which ignores it).
func (s *Server) typePolicy(ctx context.Context, c *storage.Client, u *storage.User) (*storage.MFAPolicy, error) {
	if c.ID == AccountClientID {
		return nil, nil
	}
	tp, err := s.store.GetTypePolicy(ctx, u.Type)
	switch {
	case err == nil:
		return tp, nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	}
	return nil, fmt.Errorf("account type policy: %w", err)
}

// requirementWith computes what this login of user u to client c must prove (the
// request ar's own demands included unless ar is nil), with the account type's policy
// tp already read (typePolicy), so that one sign-in step reads it once.
func (s *Server) requirementWith(c *storage.Client, u *storage.User, ar *storage.AuthRequest, tp *storage.MFAPolicy) (consent.Requirement, error) {
	in := consent.PolicyInput{ClientID: c.ID, Client: c.Policy, AccountType: u.Type}
	if ar != nil {
		in.Request = authParams(ar)
	}
	if c.ID == admin.ConsoleClientID && u.Type != console.AdminType {
		// Refused right after the password: nothing to prove, and nothing to enrol, for
		// a console that will not open.
		return consent.Requirement{}, fmt.Errorf("%w: the admin console is only for accounts of type %s", consent.ErrUnsatisfiable, console.AdminType)
	}
	if c.ID == AccountClientID {
		// The account page is where people fix their factors: any factor they have
		// proves it is them, whatever their account type demands of applications.
		in.TypePolicy = nil
		in.Available = s.factors.Kinds()
		return consent.Evaluate(in)
	}
	in.TypePolicy = tp
	in.Available = s.factors.Kinds()
	return consent.Evaluate(in)
}
