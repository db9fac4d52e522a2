package rs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// acceptedAlgs are the signature algorithms a JWT access token may use: asymmetric
// only. none and the HMAC algorithms are refused (RFC 8725 §3.1, RFC 9068 §4).
var acceptedAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// verifyJWT verifies an RFC 9068 JWT access token against the provider's key set.
func (v *Verifier) verifyJWT(ctx context.Context, token string) (*Claims, error) {
	// Read alg before go-jose does, to say why a token is refused.
	if alg := headerAlg(token); !slices.Contains(acceptedAlgs, jose.SignatureAlgorithm(alg)) {
		return nil, invalid("signature algorithm not accepted")
	}
	jws, err := jose.ParseSignedCompact(token, acceptedAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalid("malformed token")
	}
	h := jws.Signatures[0].Header
	// RFC 9068 §4: the typ header must be at+jwt (or application/at+jwt); this refuses ID
	// tokens and other JWTs signed by the same keys (typ JWT, or none).
	if !isAccessTokenType(h.ExtraHeaders[jose.HeaderType]) {
		return nil, invalid("typ is not at+jwt: not an access token")
	}
	keys, err := v.signingKeys(ctx, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if err != nil {
		return nil, err
	}
	var payload []byte
	for _, k := range keys {
		if payload, err = jws.Verify(k); err == nil {
			break
		}
	}
	if err != nil {
		return nil, invalid("bad signature")
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, invalid("malformed claims")
	}
	return v.check(&w, payload, true)
}

// headerAlg returns the alg of a compact JWS's protected header, or "" if it cannot be
// read.
func headerAlg(token string) string {
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Alg
}

// isAccessTokenType reports whether a typ header names an RFC 9068 access token. Media
// types compare case-insensitively, and "application/" may be left out (RFC 7515 §4.1.9).
func isAccessTokenType(typ any) bool {
	s, _ := typ.(string)
	s = strings.ToLower(s)
	return s == "at+jwt" || s == "application/at+jwt"
}
