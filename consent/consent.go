// Package consent decides what a sign-in must prove and whether a person must be asked
// to grant a client the scopes it requests. It combines client, account-type and request
// policies into a Requirement (second factor, factor kinds, phishing resistance, the acr
// reached; the acr values live here), and describes scopes to people. It is
// protocol-free: the idp package feeds it policies, stored grants and the request's
// parameters.
package consent

import (
	"slices"
	"sort"

	"github.com/openidp/idp/storage"
)

// Request is what the decision looks at.
type Request struct {
	Scopes      []string         // scopes of this authorization request
	Prompt      []string         // prompt values of this request
	SkipConsent bool             // the client is first-party
	Grant       *storage.Consent // the stored grant of this user to this client, nil if none
}

// Required reports whether the consent page must be shown: always with prompt=consent;
// never for a first-party client otherwise; else when some requested scope has not been
// granted before.
func Required(r Request) bool {
	if slices.Contains(r.Prompt, "consent") {
		return true
	}
	if r.SkipConsent {
		return false
	}
	if r.Grant == nil {
		return true
	}
	for _, s := range r.Scopes {
		if !slices.Contains(r.Grant.Scopes, s) {
			return true
		}
	}
	return false
}

// Merge returns the union of the granted and newly approved scopes, sorted, so that a
// grant only ever widens by explicit approval.
func Merge(grant *storage.Consent, approved []string) []string {
	var out []string
	if grant != nil {
		out = append(out, grant.Scopes...)
	}
	for _, s := range approved {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

var descriptions = map[string]string{
	"openid":         "sign you in and know who you are",
	"profile":        "see your name",
	"email":          "see your email address",
	"phone":          "see your phone number",
	"address":        "see your postal address",
	"offline_access": "stay signed in and act for you while you are away",
	"account":        "manage your sign-in methods",
}

// Describe returns a sentence fragment that tells a person what a scope allows.
func Describe(scope string) string {
	if d, ok := descriptions[scope]; ok {
		return d
	}
	return "access “" + scope + "”"
}
