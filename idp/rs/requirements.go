package rs

import (
	"net/http"
	"slices"
	"time"
)

// The provider's authentication levels (acr values), lowest first. They are the consent
// package's values, repeated here so this package needs nothing of the provider's; a
// test keeps the two equal.
const (
	ACRPassword          = "urn:openidp:acr:pwd" // the password alone
	ACRMFA               = "urn:openidp:acr:mfa" // password and a second factor
	ACRPhishingResistant = "urn:openidp:acr:phr" // password and WebAuthn
)

// OrderedACR returns a Config.ACRRank for levels listed lowest first: a token at one
// level satisfies RequireACR of it and of every level below it.
func OrderedACR(levels ...string) func(acr string) int {
	levels = slices.Clone(levels)
	return func(acr string) int { return slices.Index(levels, acr) }
}

// OpenIDPLevels ranks the provider's levels, pwd < mfa < phr, so RequireACR(ACRMFA) is
// met by a phr token. It is the default Config.ACRRank.
var OpenIDPLevels = OrderedACR(ACRPassword, ACRMFA, ACRPhishingResistant)

// ExactACR ranks nothing: with it as Config.ACRRank, RequireACR accepts only the values
// it names.
func ExactACR(string) int { return -1 }

// A Requirement is what a route needs of a valid token: scopes, an authentication level,
// a recent enough sign-in. Requirements given together must all be met.
type Requirement struct {
	kind   requirementKind
	values []string
	maxAge time.Duration
}

type requirementKind int

const (
	needScope requirementKind = iota + 1
	needACR
	needMaxAge
)

// RequireScope needs every one of scopes in the token's scope. Unmet, the answer is 403
// insufficient_scope (RFC 6750 §3.1), naming all the scopes the route requires.
func RequireScope(scopes ...string) Requirement {
	return Requirement{kind: needScope, values: slices.Clone(scopes)}
}

// RequireACR needs the person to have signed in at one of values, or, by
// Config.ACRRank, at a level at least as strong as one of them. Unmet, the answer is RFC
// 9470's 401 insufficient_user_authentication with acr_values set to values, in the
// order given (the client's order of preference when it asks again).
func RequireACR(values ...string) Requirement {
	return Requirement{kind: needACR, values: slices.Clone(values)}
}

// RequireMaxAge needs the person to have signed in (auth_time) at most d ago. Unmet, or
// without auth_time, the answer is RFC 9470's 401 insufficient_user_authentication with
// max_age in seconds.
func RequireMaxAge(d time.Duration) Requirement {
	return Requirement{kind: needMaxAge, maxAge: max(d, 0)}
}

// challenge is the answer to a request that cannot go on: an RFC 6750 §3 or RFC 9470 §3
// WWW-Authenticate challenge.
type challenge struct {
	status      int
	code        string // the error parameter; empty for a request without a token
	description string
	scope       []string // insufficient_scope: the scopes the route requires
	acrValues   []string // insufficient_user_authentication
	maxAge      time.Duration
	hasMaxAge   bool
}

// RFC 6750 §3.1 and RFC 9470 §3 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
	errInsufficientAuth  = "insufficient_user_authentication"
)

// decide says whether claims meet reqs at now, and if not, the challenge to answer. A
// missing scope is answered first (403): asking the person to sign in again cannot grant
// it. Then every unmet authentication requirement goes into one RFC 9470 challenge.
func (v *Verifier) decide(c *Claims, now time.Time, reqs []Requirement) *challenge {
	var scopes []string
	scopeMissing := false
	for _, r := range reqs {
		if r.kind != needScope {
			continue
		}
		for _, s := range r.values {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
			scopeMissing = scopeMissing || !c.HasScope(s)
		}
	}
	if scopeMissing {
		return &challenge{status: http.StatusForbidden, code: errInsufficientScope,
			description: "The token lacks a scope this request needs", scope: scopes}
	}

	ch := challenge{status: http.StatusUnauthorized, code: errInsufficientAuth}
	var acrUnmet, ageUnmet bool
	for _, r := range reqs {
		switch r.kind {
		case needACR:
			if !acrSatisfies(c.ACR, r.values, v.rank) {
				acrUnmet = true
				for _, a := range r.values {
					if !slices.Contains(ch.acrValues, a) {
						ch.acrValues = append(ch.acrValues, a)
					}
				}
			}
		case needMaxAge:
			// RFC 9470 §3: max_age is the time allowed since the last active
			// authentication; a token without auth_time cannot show it.
			if c.AuthTime.IsZero() || now.Sub(c.AuthTime) > r.maxAge+v.leeway {
				ageUnmet = true
			}
			if !ch.hasMaxAge || r.maxAge < ch.maxAge {
				ch.maxAge, ch.hasMaxAge = r.maxAge, true
			}
		}
	}
	switch {
	case acrUnmet && ageUnmet:
		ch.description = "A different authentication level and more recent authentication are required"
	case acrUnmet:
		ch.description = "A different authentication level is required"
		ch.hasMaxAge = false
	case ageUnmet:
		ch.description = "More recent authentication is required"
		ch.acrValues = nil
	default:
		return nil
	}
	return &ch
}

// acrSatisfies reports whether a token signed in at have meets a route that wants one of
// want.
func acrSatisfies(have string, want []string, rank func(string) int) bool {
	if have == "" {
		return false
	}
	if slices.Contains(want, have) {
		return true
	}
	h := rank(have)
	if h < 0 {
		return false
	}
	for _, w := range want {
		if r := rank(w); r >= 0 && h >= r {
			return true
		}
	}
	return false
}
