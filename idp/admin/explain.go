package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/storage"
)

// Explanation says what a login by a person to a client must prove, and why.
type Explanation struct {
	User        string              `json:"user"`
	AccountType string              `json:"account_type"`
	Client      string              `json:"client"`
	Requirement consent.Requirement `json:"requirement"`
	// Unsatisfiable is set when no login can meet the requirement (the OIDC answer is
	// unmet_authentication_requirements).
	Unsatisfiable string               `json:"unsatisfiable,omitempty"`
	Enrolled      []storage.FactorKind `json:"enrolled"` // confirmed factor kinds of the person
	Usable        []storage.FactorKind `json:"usable"`   // those that count for this client
	Outcome       string               `json:"outcome"`  // what a fresh login will ask for
}

// Explain evaluates the policies for a login by user (id or e-mail) to clientID with the
// given request parameters, as the provider would, without signing anyone in. available
// lists the factor kinds the server offers.
func (a *Admin) Explain(ctx context.Context, user, clientID string, params consent.AuthParams, available []storage.FactorKind) (*Explanation, error) {
	u, err := a.FindUser(ctx, user)
	if err != nil {
		return nil, err
	}
	c, err := a.Store.GetClient(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("client %q: %w", clientID, err)
	}
	in := consent.PolicyInput{ClientID: c.ID, Client: c.Policy, AccountType: u.Type, Request: params, Available: available}
	if tp, err := a.Store.GetTypePolicy(ctx, u.Type); err == nil {
		in.TypePolicy = tp
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	ex := &Explanation{User: u.Email, AccountType: u.Type, Client: c.Name + " (" + c.ID + ")", Enrolled: []storage.FactorKind{}, Usable: []storage.FactorKind{}}
	req, err := consent.Evaluate(in)
	ex.Requirement = req
	if err != nil {
		if !errors.Is(err, consent.ErrUnsatisfiable) {
			return nil, err
		}
		ex.Unsatisfiable = err.Error()
		ex.Outcome = "refused: unmet_authentication_requirements"
		return ex, nil
	}
	factors, err := a.Store.ListFactors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	var confirmed []storage.Factor
	for _, f := range factors {
		if f.Confirmed && slices.Contains(available, f.Kind) {
			confirmed = append(confirmed, f)
			if !slices.Contains(ex.Enrolled, f.Kind) {
				ex.Enrolled = append(ex.Enrolled, f.Kind)
			}
		}
	}
	usable := req.UsableFactors(confirmed)
	for _, f := range usable {
		if !slices.Contains(ex.Usable, f.Kind) {
			ex.Usable = append(ex.Usable, f.Kind)
		}
	}
	switch {
	case !req.NeedsSecondFactor(usable):
		ex.Outcome = "password only"
	case len(ex.Usable) == 0:
		ex.Outcome = "password, then enrolment of one of: " + kindsOrAny(req.Kinds)
	default:
		ex.Outcome = "password (or a valid session), then one of: " + storage.JoinFactorKinds(ex.Usable, ", ")
		if req.DeviceCanSkip {
			ex.Outcome += " (a remembered device may stand in)"
		}
	}
	return ex, nil
}

func kindsOrAny(kinds []storage.FactorKind) string {
	if len(kinds) == 0 {
		return "any factor"
	}
	return storage.JoinFactorKinds(kinds, ", ")
}
