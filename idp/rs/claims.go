package rs

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Claims is what a verified access token says: the person (or client) it was issued
// for, the client that holds it, the audience and scopes it grants, and how and when the
// person signed in. It is read-only: every request gets its own copy.
type Claims struct {
	Issuer   string
	Subject  string // the person, or the client for client_credentials
	ClientID string // the client the token was issued to
	Audience []string
	Scopes   []string // the space-separated "scope" claim, split
	ACR      string   // authentication level, e.g. urn:openidp:acr:mfa; empty without a person
	AMR      []string // authentication methods (RFC 8176), e.g. ["mfa", "otp", "pwd"]
	// AuthTime is when the person last proved who they are; zero when the token has no
	// auth_time (client_credentials).
	AuthTime  time.Time
	Expiry    time.Time
	IssuedAt  time.Time // zero when absent
	NotBefore time.Time // zero when absent
	JWTID     string

	raw json.RawMessage // the JWT payload or introspection answer, for Decode
}

// HasScope reports whether the token grants scope.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(c.Scopes, scope)
}

// Decode unmarshals the whole claim set (the JWT payload, or the introspection answer)
// into v, for claims this type does not name, such as sid or email.
func (c *Claims) Decode(v any) error {
	if len(c.raw) == 0 {
		return errors.New("rs: no claims to decode")
	}
	return json.Unmarshal(c.raw, v)
}

// clone copies c, so a cached answer is never shared with a handler that changes it.
func (c *Claims) clone() *Claims {
	out := *c
	out.Audience = slices.Clone(c.Audience)
	out.Scopes = slices.Clone(c.Scopes)
	out.AMR = slices.Clone(c.AMR)
	return &out
}

// wireClaims is the claim set as the provider sends it, in a JWT access token (RFC 9068
// §2.2) or an introspection answer (RFC 7662 §2.2).
type wireClaims struct {
	Active    *bool       `json:"active"` // introspection only
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	ClientID  string      `json:"client_id"`
	Audience  audience    `json:"aud"`
	Scope     scope       `json:"scope"`
	ACR       string      `json:"acr"`
	AMR       []string    `json:"amr"`
	AuthTime  numericDate `json:"auth_time"`
	Expiry    numericDate `json:"exp"`
	IssuedAt  numericDate `json:"iat"`
	NotBefore numericDate `json:"nbf"`
	JWTID     string      `json:"jti"`
}

// audience is "aud": one string or an array of them (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// scope is "scope": a space-separated string (RFC 9068 §2.2.3, RFC 7662 §2.2). An array
// is accepted too, as some servers send one.
type scope []string

func (s *scope) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("scope is not a string")
	}
	*s = many
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly fractional
// (RFC 7519 §2). null or absent leaves it unset.
type numericDate struct {
	t   time.Time
	set bool
}

// maxNumericDate is the year 10000: later dates are nonsense, not tokens.
const maxNumericDate = 253402300800

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = numericDate{}
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f >= maxNumericDate {
		return errors.New("a date is not a number of seconds")
	}
	sec, frac := math.Modf(f)
	*d = numericDate{t: time.Unix(int64(sec), int64(frac*1e9)).UTC(), set: true}
	return nil
}

// check applies the checks common to JWT access tokens (RFC 9068 §4) and introspection
// answers, and returns the claims. fromJWT says whether iss is required: an
// introspection answer comes from the issuer itself and may leave it out (RFC 7662 §2.2).
func (v *Verifier) check(w *wireClaims, raw json.RawMessage, fromJWT bool) (*Claims, error) {
	now := v.now()
	// RFC 9068 §4 (and RFC 8414 §3): iss must match the issuer exactly.
	if w.Issuer != v.issuer && (fromJWT || w.Issuer != "") {
		return nil, invalid("wrong issuer")
	}
	// RFC 9068 §4: aud must contain the identifier this resource server expects.
	if !slices.Contains(w.Audience, v.audience) {
		return nil, invalid("the token is not for this audience")
	}
	// RFC 9068 §4: the current time must be before exp.
	if !w.Expiry.set {
		return nil, invalid("the token has no expiry")
	}
	if !now.Before(w.Expiry.t.Add(v.leeway)) {
		return nil, invalid("the token expired")
	}
	if w.NotBefore.set && now.Add(v.leeway).Before(w.NotBefore.t) {
		return nil, invalid("the token is not valid yet")
	}
	if w.IssuedAt.set && now.Add(v.leeway).Before(w.IssuedAt.t) {
		return nil, invalid("the token was issued in the future")
	}
	// RFC 9068 §2.2: sub and client_id are required.
	if w.Subject == "" {
		return nil, invalid("the token has no subject")
	}
	if w.ClientID == "" {
		return nil, invalid("the token has no client_id")
	}
	return &Claims{
		Issuer:    v.issuer, // equal to w.Issuer, or absent from an introspection answer
		Subject:   w.Subject,
		ClientID:  w.ClientID,
		Audience:  []string(w.Audience),
		Scopes:    []string(w.Scope),
		ACR:       w.ACR,
		AMR:       w.AMR,
		AuthTime:  w.AuthTime.t,
		Expiry:    w.Expiry.t,
		IssuedAt:  w.IssuedAt.t,
		NotBefore: w.NotBefore.t,
		JWTID:     w.JWTID,
		raw:       raw,
	}, nil
}
