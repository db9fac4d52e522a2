package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
)

// JWT access tokens (RFC 9068).
//
// op signs its own JWT access tokens with the header typ "JWT" (op.SignerFromKey); RFC
// 9068 §2.1 asks for "at+jwt", so that a resource server can never mistake an ID token
// for an access token. op offers no hook into that header, so we mint the token
// ourselves and hand it to op:
//
//  1. Every client reports op.AccessTokenTypeBearer (client.AccessTokenType), so op
//     never builds a JWT access token; for an opaque token it calls
//     Crypto.Encrypt(tokenID + ":" + subject) right after our CreateAccessToken /
//     CreateAccessAndRefreshTokens returned tokenID (op.CreateAccessToken).
//  2. For a client that gets JWT access tokens, opStorage mints the JWT in those
//     storage calls, where it has the context, the client and the stored record: it
//     builds the claims before the write and signs them while the store writes the
//     token (storage.TokenIssue.WhileWriting), then leaves the token under its id in
//     accessTokenJWTs.
//  3. tokenCrypto.Encrypt, given "<that id>:<subject>", returns the JWT instead of an
//     encrypted envelope; any other value (opaque tokens, authorization codes) is
//     encrypted as op would.
//
// op then computes the ID token's at_hash over the token it was given, and verifies it
// at userinfo, introspection and revocation as any JWT access token (op does not look at
// typ). ID tokens are still signed by op, with typ "JWT".

// accessTokenJWTTyp is the JWS typ header of access tokens (RFC 9068 §2.1).
const accessTokenJWTTyp = "at+jwt"

// mintedTTL bounds how long a minted token waits for tokenCrypto.Encrypt. op calls it
// straight after the storage call that minted it; the bound only keeps a token whose
// response failed from staying in memory.
const mintedTTL = time.Minute

// accessTokenJWTs holds minted JWT access tokens from the storage call that minted them
// until op asks tokenCrypto for the token value, by token id (a random id, never reused).
type accessTokenJWTs struct{ m sync.Map } // token id -> string

func (a *accessTokenJWTs) put(id, token string) {
	a.m.Store(id, token)
	time.AfterFunc(mintedTTL, func() { a.m.Delete(id) })
}

func (a *accessTokenJWTs) take(id string) (string, bool) {
	v, ok := a.m.LoadAndDelete(id)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// tokenCrypto is op's Crypto (AES-256-GCM envelopes for codes and opaque tokens), except
// that it answers the access tokens opStorage minted (see above).
type tokenCrypto struct {
	op.Crypto
	minted *accessTokenJWTs
}

// newTokenCrypto returns the Crypto op.NewProvider would build from key, in front of
// minted.
func newTokenCrypto(key [32]byte, minted *accessTokenJWTs) tokenCrypto {
	gcm := op.NewAES256GCMCrypto(key, "")
	return tokenCrypto{
		Crypto: op.NewCompositeCrypto(gcm, []op.Decrypter{gcm, op.NewAESCrypto(key)}),
		minted: minted,
	}
}

// Encrypt returns the minted JWT when s is "<token id>:<subject>" of a token opStorage
// minted; otherwise it encrypts s.
func (c tokenCrypto) Encrypt(s string) (string, error) {
	if id, _, ok := strings.Cut(s, ":"); ok {
		if token, ok := c.minted.take(id); ok {
			return token, nil
		}
	}
	return c.Crypto.Encrypt(s)
}

// accessTokenClaims are the claims of a JWT access token: RFC 9068 §2.2 (iss, exp, aud,
// sub, client_id, iat, jti; auth_time, acr, amr for a person's token, §2.2.1; scope as
// a space-separated string, §2.2.3) and sid, the session it was issued in.
type accessTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	JWTID    string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	SID      string   `json:"sid,omitempty"`
}

// newAccessTokenClaims returns the claims of the stored access token at, whose subject is
// sub (the person, or the client itself for client_credentials).
func newAccessTokenClaims(issuer, sub string, at *storage.AccessToken) accessTokenClaims {
	c := accessTokenClaims{
		Issuer: issuer, Subject: sub, Audience: at.Audience, Expiry: at.ExpiresAt.Unix(),
		IssuedAt: at.CreatedAt.Unix(), JWTID: at.ID, ClientID: at.ClientID, Scope: strings.Join(at.Scopes, " "),
	}
	if len(c.Audience) == 0 {
		c.Audience = []string{at.ClientID}
	}
	if at.UserID != "" {
		c.AuthTime, c.ACR, c.AMR, c.SID = at.AuthTime.Unix(), at.ACR, at.AMR, at.SessionID
	}
	return c
}

// mintAccessToken prepares the JWT access token for the stored token at, issued to c
// with subject sub, when c gets JWT access tokens: it picks the key of the client's
// algorithm (as its ID tokens are signed) and builds the claims, and returns the function
// that signs them and leaves the token for tokenCrypto. The caller hands that function
// to the store as storage.TokenIssue.WhileWriting: the write is queued without waiting
// for the signature (a fifth of a token's CPU), and the signature is made while the
// store writes. A client with opaque access tokens gets nil: op encrypts its token as
// usual.
func (s *opStorage) mintAccessToken(ctx context.Context, c *client, sub string, at *storage.AccessToken) (func() error, error) {
	if !c.jwtAccessTokens() {
		return nil, nil
	}
	alg := c.c.IDTokenSigningAlg
	if alg == "" {
		alg = keys.AlgES256
	}
	k, err := s.keys.Active(ctx, alg)
	if err != nil {
		return nil, fmt.Errorf("access token signing key: %w", err)
	}
	signer, err := s.accessTokenSigner(k)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(newAccessTokenClaims(s.issuer, sub, at))
	if err != nil {
		return nil, fmt.Errorf("access token claims: %w", err)
	}
	return func() error {
		jws, err := signer.Sign(payload)
		if err != nil {
			return fmt.Errorf("%w: %w", errAccessTokenSign, err)
		}
		token, err := jws.CompactSerialize()
		if err != nil {
			return fmt.Errorf("%w: serialize: %w", errAccessTokenSign, err)
		}
		s.minted.put(at.ID, token)
		return nil
	}, nil
}

// errAccessTokenSign marks a JWT access token that was written, with its audit event,
// but could not be signed (mintAccessToken's function, run after the write).
var errAccessTokenSign = errors.New("sign access token")

// accessTokenSigner returns the signer of access tokens with k, built once per key: the
// key set is still read for every token (which key signs is decided anew), only the
// signer of a key id is kept, as its key material never changes. A jose.Signer is safe
// for concurrent use.
func (s *opStorage) accessTokenSigner(k *keys.Key) (jose.Signer, error) {
	if v, ok := s.signers.Load(k.ID); ok {
		return v.(jose.Signer), nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType(accessTokenJWTTyp))
	if err != nil {
		return nil, fmt.Errorf("access token signer: %w", err)
	}
	v, _ := s.signers.LoadOrStore(k.ID, signer)
	return v.(jose.Signer), nil
}
