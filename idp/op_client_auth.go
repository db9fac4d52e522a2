package idp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9).
//
// op's own private_key_jwt path checks only that the audience holds the issuer, the
// signature, exp and iat: no jti, no bound on exp, and not the token endpoint URL as
// audience. So the assertion is verified here, in opInterceptor, before op sees the
// request. A verified assertion is replaced by a one-request credential: HTTP Basic auth
// with the client id and a random secret kept in the request's reqState, which
// AuthorizeClientIDSecret accepts (clientAuthenticatedByAssertion). op's own JWT path is
// therefore never taken (Config.AuthMethodPrivateKeyJWT stays off, GetKeyByIDAndClientID
// fails), and a client registered for private_key_jwt has no secret to be authenticated
// otherwise.

// ClientAssertionSigningAlgs are the signature algorithms accepted for client assertions.
var ClientAssertionSigningAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

const (
	// maxAssertionLifetime bounds how far ahead a client assertion's exp may be.
	maxAssertionLifetime = 5 * time.Minute
	// assertionLeeway is the clock skew allowed on exp, iat and nbf.
	assertionLeeway = 30 * time.Second
	// maxAssertionSize bounds the client_assertion parameter.
	maxAssertionSize = 16 << 10
)

// assertionClaims are the claims of a client assertion.
type assertionClaims struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  oidc.Audience `json:"aud"`
	Expiry    *oidc.Time    `json:"exp"`
	IssuedAt  *oidc.Time    `json:"iat"`
	NotBefore *oidc.Time    `json:"nbf"`
	JWTID     string        `json:"jti"`
}

// clientAuthEndpoint reports whether path is an endpoint where clients authenticate.
func (s *Server) clientAuthEndpoint(path string) bool {
	for _, e := range []op.Endpoint{*s.provider.TokenEndpoint(), *s.provider.IntrospectionEndpoint(), *s.provider.RevocationEndpoint()} {
		if strings.HasSuffix(path, e.Relative()) {
			return true
		}
	}
	return false
}

// interceptClientAssertion verifies the client assertion of a request to a client
// authentication endpoint, if it has one, and swaps it for the request's one-time Basic
// credential. r.Form must be parsed. It answers the request itself and returns false when
// the assertion is refused.
func (s *Server) interceptClientAssertion(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	assertion, typ := r.PostForm.Get("client_assertion"), r.PostForm.Get("client_assertion_type")
	if assertion == "" && typ == "" {
		return true
	}
	if _, _, basic := r.BasicAuth(); basic || r.PostForm.Get("client_secret") != "" {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("use one client authentication method"), s.logger)
		return false
	}
	clientID, err := s.verifyClientAssertion(r, assertion, typ)
	if err != nil {
		s.audit.Record(r.Context(), storage.AuditEvent{Type: audit.EventClientAuth, ClientID: clientID, Result: audit.ResultFailure,
			Reason: "client assertion: " + err.Error()})
		op.RequestError(w, r, oidc.ErrInvalidClient().WithDescription("invalid client assertion"), s.logger)
		return false
	}
	for _, v := range []url.Values{r.Form, r.PostForm} {
		v.Del("client_assertion")
		v.Del("client_assertion_type")
		v.Set("client_id", clientID)
	}
	st.assertedClient = clientID
	st.assertionSecret = secret.Token(32)
	r.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(st.assertionSecret))
	return true
}

// clientAuthenticatedByAssertion reports whether id and clientSecret are the one-time
// credential that interceptClientAssertion gave this request.
func clientAuthenticatedByAssertion(ctx context.Context, id, clientSecret string) bool {
	st := reqStateFrom(ctx)
	return st != nil && st.assertedClient != "" && st.assertedClient == id &&
		subtle.ConstantTimeCompare([]byte(st.assertionSecret), []byte(clientSecret)) == 1
}

// verifyClientAssertion checks a client assertion and returns the client it
// authenticates. On an error the client id is the claimed one, for the audit, or "".
func (s *Server) verifyClientAssertion(r *http.Request, assertion, typ string) (string, error) {
	if typ != oidc.ClientAssertionTypeJWTAssertion {
		return "", errors.New("unsupported client_assertion_type")
	}
	if len(assertion) > maxAssertionSize {
		return "", errors.New("assertion too large")
	}
	jws, err := jose.ParseSignedCompact(assertion, ClientAssertionSigningAlgs)
	if err != nil {
		return "", fmt.Errorf("not a signed JWT: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return "", errors.New("not a single signature")
	}
	var claims assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	clientID := claims.Issuer
	if clientID == "" || claims.Subject != clientID {
		return "", errors.New("iss and sub must both be the client id")
	}
	if formID := r.PostForm.Get("client_id"); formID != "" && formID != clientID {
		return clientID, errors.New("client_id does not match the assertion")
	}
	c, err := s.store.GetClient(r.Context(), clientID)
	if err != nil {
		return clientID, errors.New("unknown client")
	}
	if c.TokenEndpointAuthMethod != storage.AuthMethodPrivateKeyJWT {
		return clientID, errors.New("client is not registered for private_key_jwt")
	}
	// Signature first: the claims below are the client's only once it is checked.
	if err := s.verifyWithClientKeys(r.Context(), c, jws); err != nil {
		return clientID, err
	}
	if !slices.ContainsFunc(claims.Audience, s.assertionAudience(r)) {
		return clientID, errors.New("audience is not the issuer or the endpoint")
	}
	now := s.now()
	if claims.Expiry == nil {
		return clientID, errors.New("exp is required")
	}
	exp := claims.Expiry.AsTime()
	switch {
	case !now.Before(exp.Add(assertionLeeway)):
		return clientID, errors.New("assertion expired")
	case exp.After(now.Add(maxAssertionLifetime + assertionLeeway)):
		return clientID, fmt.Errorf("exp is more than %s ahead", maxAssertionLifetime)
	case claims.IssuedAt != nil && claims.IssuedAt.AsTime().After(now.Add(assertionLeeway)):
		return clientID, errors.New("iat is in the future")
	case claims.NotBefore != nil && claims.NotBefore.AsTime().After(now.Add(assertionLeeway)):
		return clientID, errors.New("not valid yet (nbf)")
	case claims.JWTID == "" || len(claims.JWTID) > 256:
		return clientID, errors.New("jti is required (at most 256 characters)")
	}
	// Single use: the jti is remembered until the assertion can no longer be accepted.
	if err := s.store.UseAssertion(r.Context(), clientID, claims.JWTID, exp.Add(assertionLeeway), now); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return clientID, errors.New("assertion replayed (jti already used)")
		}
		return clientID, err
	}
	return clientID, nil
}

// assertionAudience accepts the audiences that identify this provider to the endpoint
// of r: the issuer, the token endpoint URL, and the URL of the endpoint itself
// (RFC 7523 §3, OIDC Core §9, RFC 9126 §2).
func (s *Server) assertionAudience(r *http.Request) func(string) bool {
	iss := s.cfg.Issuer
	ok := []string{iss, iss + "/", s.provider.TokenEndpoint().Absolute(iss), iss + r.URL.Path}
	return func(aud string) bool { return slices.Contains(ok, aud) }
}

// verifyWithClientKeys verifies jws with the client's registered keys: the key with the
// JWS kid, or every key when the JWS names none.
func (s *Server) verifyWithClientKeys(ctx context.Context, c *storage.Client, jws *jose.JSONWebSignature) error {
	kid := jws.Signatures[0].Header.KeyID
	alg := jws.Signatures[0].Header.Algorithm
	try := func(set *jose.JSONWebKeySet) (bool, error) {
		found := false
		for _, k := range set.Keys {
			if kid != "" && k.KeyID != kid {
				continue
			}
			if k.Algorithm != "" && k.Algorithm != alg {
				continue
			}
			found = true
			if _, err := jws.Verify(k); err == nil {
				return true, nil
			}
		}
		if !found {
			return false, nil
		}
		return false, errors.New("bad signature")
	}
	var set *jose.JSONWebKeySet
	var err error
	if c.JWKSURI == "" {
		if set, err = admin.ParseJWKS([]byte(c.JWKS)); err != nil {
			return fmt.Errorf("registered key set: %w", err)
		}
		if ok, err := try(set); ok || err != nil {
			return err
		}
		return errors.New("no registered key matches")
	}
	if set, err = s.jwks.get(ctx, c.JWKSURI, false); err != nil {
		return err
	}
	if ok, err := try(set); ok || err != nil {
		return err
	}
	// An unknown kid may be a key the client just added: fetch again (not too often).
	if set, err = s.jwks.get(ctx, c.JWKSURI, true); err != nil {
		return err
	}
	if ok, err := try(set); ok || err != nil {
		return err
	}
	return errors.New("no key of the key set URL matches")
}

// jwksCache fetches client key sets by URL, with a timeout and a size limit, and keeps
// them briefly.
type jwksCache struct {
	client  *http.Client
	ttl     time.Duration // how long a fetched set is used
	refetch time.Duration // the least time between two fetches of one URL
	now     func() time.Time

	mu      sync.Mutex
	entries map[string]jwksEntry
}

type jwksEntry struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

func newJWKSCache(now func() time.Time) *jwksCache {
	return &jwksCache{
		client:  &http.Client{Timeout: 5 * time.Second},
		ttl:     5 * time.Minute,
		refetch: 30 * time.Second,
		now:     now,
		entries: map[string]jwksEntry{},
	}
}

// get returns the key set at u, fetched again when the cached one is older than the TTL,
// or, with fresh, older than the re-fetch interval.
func (c *jwksCache) get(ctx context.Context, u string, fresh bool) (*jose.JSONWebKeySet, error) {
	c.mu.Lock()
	e, ok := c.entries[u]
	c.mu.Unlock()
	age := c.now().Sub(e.fetched)
	if ok && age < c.ttl && (!fresh || age < c.refetch) {
		return e.set, nil
	}
	set, err := c.fetch(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("key set URL: %w", err)
	}
	c.mu.Lock()
	if len(c.entries) > 1000 {
		clear(c.entries)
	}
	c.entries[u] = jwksEntry{set: set, fetched: c.now()}
	c.mu.Unlock()
	return set, nil
}

func (c *jwksCache) fetch(ctx context.Context, u string) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, admin.MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	return admin.ParseJWKS(body)
}
