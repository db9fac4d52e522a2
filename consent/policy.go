package consent

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/openidp/idp/storage"
)

// MFA modes, from least to most strict.
const (
	ModeOff      = "off"      // never ask for a second factor
	ModeOptional = "optional" // ask when the person has one (the default)
	ModeRequired = "required" // always; a person without one must enrol
)

// Authentication levels (acr values): what a login proved, lowest first. Documented in
// docs/integration-guide.md.
const (
	// ACRPassword: the password alone.
	ACRPassword = "urn:openidp:acr:pwd"
	// ACRMFA: password plus a second factor.
	ACRMFA = "urn:openidp:acr:mfa"
	// ACRPhishingResistant: password plus WebAuthn.
	ACRPhishingResistant = "urn:openidp:acr:phr"
)

// PhishingResistantKinds are the factor kinds that resist phishing.
var PhishingResistantKinds = []storage.FactorKind{storage.FactorWebAuthn}

// ErrUnsatisfiable means no login could meet the combined requirement (e.g. the client
// accepts only WebAuthn but the account type only TOTP, or an essential acr this
// provider does not know). The OIDC answer is unmet_authentication_requirements.
var ErrUnsatisfiable = errors.New("authentication requirements cannot be met")

// AuthParams is what the authorization request itself asks for.
type AuthParams struct {
	ACRValues    []string // acr_values, in order of preference (voluntary)
	EssentialACR []string // acr values of an essential acr claim (claims parameter)
	MaxAge       *int64   // max_age in seconds
	PromptLogin  bool     // prompt=login
}

// PolicyInput is everything a login's requirement is derived from.
type PolicyInput struct {
	ClientID    string
	Client      storage.MFAPolicy
	AccountType string
	TypePolicy  *storage.MFAPolicy // nil when the account type has no policy
	Request     AuthParams
	// Available lists the factor kinds the server offers (configured senders, WebAuthn
	// relying party); a requirement that only unavailable kinds could meet is unsatisfiable.
	Available []storage.FactorKind
}

// Requirement is what one login must prove, with the reasons, rule by rule.
type Requirement struct {
	Mode              string               `json:"mode"`               // off | optional | required
	Kinds             []storage.FactorKind `json:"kinds,omitempty"`    // factor kinds that count; nil = every available kind
	PhishingResistant bool                 `json:"phishing_resistant"` // only WebAuthn counts
	MFAMaxAge         time.Duration        `json:"mfa_max_age_ns"`     // longest age of the second-factor check; 0 = any
	PasswordMaxAge    time.Duration        `json:"password_max_age_ns"`
	HasPasswordMaxAge bool                 `json:"has_password_max_age"` // PasswordMaxAge applies (max_age=0 means "now")
	Fresh             bool                 `json:"fresh"`                // prompt=login or max_age=0: every step again, now
	RememberDevice    time.Duration        `json:"remember_device_ns"`   // how long a device may be remembered; 0 = not allowed
	// DeviceCanSkip: a remembered device may stand in for the second factor. Never when
	// the request itself asked for a level (acr), a fresh login, or phishing resistance.
	DeviceCanSkip bool     `json:"device_can_skip"`
	ACR           string   `json:"acr"`     // the level the login reaches when it meets the requirement
	Reasons       []string `json:"reasons"` // which rule set what, for `idp policy explain` and the audit
}

var modeRank = map[string]int{ModeOff: 0, ModeOptional: 1, ModeRequired: 2}

func normMode(m string) string {
	if _, ok := modeRank[m]; ok {
		return m
	}
	return ModeOptional
}

var acrRank = map[string]int{ACRPassword: 0, ACRMFA: 1, ACRPhishingResistant: 2}

// Evaluate combines the client's policy, the account type's policy and the request.
// The combination rule: the stricter requirement wins, item by item — the stricter MFA
// mode, the intersection of the allowed factor kinds, phishing resistance if either
// asks, the shorter re-check age, the shorter remember-device period (forbidden if
// either forbids it); then the request can only raise it (acr_values, an essential acr
// claim, max_age, prompt=login), never lower it.
func Evaluate(in PolicyInput) (Requirement, error) {
	r := Requirement{Mode: normMode(in.Client.MFA)}
	why := func(format string, a ...any) { r.Reasons = append(r.Reasons, fmt.Sprintf(format, a...)) }
	why("client %s: mfa %s", in.ClientID, r.Mode)
	r.Kinds = slices.Clone(in.Client.Factors)
	if len(r.Kinds) > 0 {
		why("client %s: factors %v", in.ClientID, r.Kinds)
	}
	r.PhishingResistant = in.Client.PhishingResistant
	if r.PhishingResistant {
		why("client %s: phishing-resistant factor required", in.ClientID)
	}
	r.MFAMaxAge = in.Client.MaxAge
	if r.MFAMaxAge > 0 {
		why("client %s: second factor re-checked after %s", in.ClientID, r.MFAMaxAge)
	}
	r.RememberDevice = in.Client.RememberDevice

	if tp := in.TypePolicy; tp != nil {
		t := "account type " + typeName(in.AccountType)
		if m := normMode(tp.MFA); modeRank[m] > modeRank[r.Mode] {
			r.Mode = m
			why("%s: mfa %s (stricter than the client)", t, m)
		}
		if len(tp.Factors) > 0 {
			if len(r.Kinds) == 0 {
				r.Kinds = slices.Clone(tp.Factors)
			} else {
				r.Kinds = slices.DeleteFunc(r.Kinds, func(k storage.FactorKind) bool { return !slices.Contains(tp.Factors, k) })
			}
			why("%s: factors %v (kinds allowed now: %v)", t, tp.Factors, r.Kinds)
			if len(r.Kinds) == 0 {
				return r, fmt.Errorf("%w: the client's and the account type's allowed factors have nothing in common", ErrUnsatisfiable)
			}
		}
		if tp.PhishingResistant && !r.PhishingResistant {
			r.PhishingResistant = true
			why("%s: phishing-resistant factor required", t)
		}
		if tp.MaxAge > 0 && (r.MFAMaxAge == 0 || tp.MaxAge < r.MFAMaxAge) {
			r.MFAMaxAge = tp.MaxAge
			why("%s: second factor re-checked after %s", t, tp.MaxAge)
		}
		if tp.RememberDevice < r.RememberDevice {
			r.RememberDevice = tp.RememberDevice
			why("%s: remember-device limited to %s", t, tp.RememberDevice)
		}
	}

	// The request raises the bar.
	requested := -1
	for _, v := range in.Request.ACRValues {
		if rank, ok := acrRank[v]; ok {
			requested = rank // the first known value, in the client's order of preference
			why("request: acr_values %s", v)
			break
		}
	}
	if len(in.Request.EssentialACR) > 0 {
		lowest := -1
		for _, v := range in.Request.EssentialACR {
			if rank, ok := acrRank[v]; ok && (lowest < 0 || rank < lowest) {
				lowest = rank
			}
		}
		if lowest < 0 {
			return r, fmt.Errorf("%w: none of the essential acr values %v is offered", ErrUnsatisfiable, in.Request.EssentialACR)
		}
		requested = lowest
		why("request: essential acr %v", in.Request.EssentialACR)
	}
	if requested >= acrRank[ACRMFA] && r.Mode != ModeRequired {
		r.Mode = ModeRequired
		why("request: acr asks for a second factor")
	}
	if requested >= acrRank[ACRPhishingResistant] && !r.PhishingResistant {
		r.PhishingResistant = true
		why("request: acr asks for a phishing-resistant factor")
	}
	if in.Request.MaxAge != nil {
		age := maxAgeDuration(*in.Request.MaxAge)
		r.PasswordMaxAge, r.HasPasswordMaxAge = age, true
		if r.MFAMaxAge == 0 || age < r.MFAMaxAge {
			r.MFAMaxAge = age
		}
		why("request: max_age %s applies to the password and the second factor", age)
		if age == 0 {
			r.Fresh = true // max_age=0: authenticate now, every step
		}
	}
	if in.Request.PromptLogin {
		r.Fresh = true
		why("request: prompt=login: every step again")
	}

	if r.PhishingResistant {
		kinds := r.Kinds
		if len(kinds) == 0 {
			kinds = PhishingResistantKinds
		}
		r.Kinds = slices.DeleteFunc(slices.Clone(kinds), func(k storage.FactorKind) bool { return !slices.Contains(PhishingResistantKinds, k) })
		if len(r.Kinds) == 0 {
			return r, fmt.Errorf("%w: phishing resistance is required but no allowed factor resists phishing", ErrUnsatisfiable)
		}
		if r.Mode != ModeRequired {
			r.Mode = ModeRequired
			why("phishing resistance implies mfa required")
		}
	}
	if in.Available != nil && r.Mode == ModeRequired {
		usable := r.Kinds
		if len(usable) == 0 {
			usable = in.Available
		}
		if !slices.ContainsFunc(usable, func(k storage.FactorKind) bool { return slices.Contains(in.Available, k) }) {
			return r, fmt.Errorf("%w: none of the factors %v is offered by this server", ErrUnsatisfiable, usable)
		}
	}

	switch {
	case r.PhishingResistant:
		r.ACR = ACRPhishingResistant
	case r.Mode == ModeRequired:
		r.ACR = ACRMFA
	default:
		r.ACR = ACRPassword
	}
	r.DeviceCanSkip = r.RememberDevice > 0 && requested < acrRank[ACRMFA] && !r.Fresh && !r.PhishingResistant
	if r.RememberDevice > 0 {
		if r.DeviceCanSkip {
			why("remember this device allowed for %s", r.RememberDevice)
		} else {
			why("remember this device allowed for %s, but not for this request", r.RememberDevice)
		}
	}
	return r, nil
}

// maxAgeDuration converts max_age seconds to a Duration without overflowing: a negative
// value (never valid) counts as 0, the strictest, and one beyond what a Duration holds as
// the longest Duration. An overflow must never turn a long max_age into a short or
// negative one: a negative MFAMaxAge would switch the re-check off.
func maxAgeDuration(secs int64) time.Duration {
	const most = int64(math.MaxInt64 / int64(time.Second))
	switch {
	case secs < 0:
		return 0
	case secs > most:
		return time.Duration(most) * time.Second
	}
	return time.Duration(secs) * time.Second
}

func typeName(t string) string {
	if t == "" {
		return "(default)"
	}
	return t
}

// Counts reports whether a verified factor kind counts towards r.
func (r Requirement) Counts(kind storage.FactorKind) bool {
	return len(r.Kinds) == 0 || slices.Contains(r.Kinds, kind)
}

// PasswordRequired reports whether an account-type policy needs its accounts to keep a
// password: when it names the factor kinds that count and passkeys (WebAuthn) are not
// among them, a passkey is not a sanctioned way in for that account type, so the
// password stays. Otherwise a passkey with user verification satisfies every policy
// (it is multi-factor and phishing-resistant) and a person with one may drop the password.
func PasswordRequired(p storage.MFAPolicy) bool {
	return len(p.Factors) > 0 && !slices.Contains(p.Factors, storage.FactorWebAuthn)
}
