package idp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// clientKey is a client's key pair for private_key_jwt.
type clientKey struct {
	signer jose.Signer
	jwks   string // the public key set, JSON
}

// newRSAClientKey makes an RS256 key whose signer comes from zitadel's client package,
// as a relying party built on it would load its key.
func newRSAClientKey(t *testing.T, kid string) clientKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	signer, err := client.NewSignerFromPrivateKeyByte(pemKey, kid)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{signer: signer, jwks: jwksOf(t, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})}
}

// newECClientKey makes an ES256 key.
func newECClientKey(t *testing.T, kid string) clientKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{signer: signer, jwks: jwksOf(t, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})}
}

func jwksOf(t *testing.T, keys ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertion signs a client assertion for clientID; mutate adjusts its claims.
func (k clientKey) assertion(t *testing.T, clientID, aud string, mutate ...func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": randString(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
	for _, m := range mutate {
		m(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// postJSONForm posts form to u and decodes the JSON answer.
func postJSONForm(t *testing.T, u string, form url.Values, out any) int {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func assertionForm(a string) url.Values {
	return url.Values{"client_assertion": {a}, "client_assertion_type": {oidc.ClientAssertionTypeJWTAssertion}}
}

// signInForCode runs a sign-in from authURL to the code.
func signInForCode(t *testing.T, e *env, authURL, email string) string {
	t.Helper()
	b := e.newBrowser()
	p := b.Login(b.Get(authURL), email, password)
	q := p.RedirectParams(t)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return q.Get("code")
}

// TestPrivateKeyJWT_RFC7523 covers private_key_jwt client authentication (RFC 7523 §2.2,
// §3; OIDC Core §9) with zitadel's relying-party library: the code flow and
// client_credentials, a replayed jti, a wrong audience, an unregistered key, an exp too
// far ahead, and keys fetched from a JWKS URL.
func TestPrivateKeyJWT_RFC7523(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			ctx := context.Background()
			e.createUser("pk@example.com", password)
			key := newRSAClientKey(t, "rp-key-1")
			app := e.createClient(admin.NewClient{
				RedirectURIs: []string{"https://pk.example.com/cb"}, SkipConsent: true,
				GrantTypes:              []string{"authorization_code", "refresh_token", "client_credentials"},
				Scopes:                  []string{"openid", "profile", "email", "offline_access", "api:read"},
				TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks,
			})
			if app.Secret != "" {
				t.Fatal("a private_key_jwt client was given a secret")
			}
			tokenURL := e.issuer + "/oauth/token"

			t.Run("discovery advertises private_key_jwt and PAR", func(t *testing.T) {
				var disco map[string]any
				getJSON(t, e.issuer+"/.well-known/openid-configuration", &disco)
				methods, _ := json.Marshal(disco["token_endpoint_auth_methods_supported"])
				algs, _ := json.Marshal(disco["token_endpoint_auth_signing_alg_values_supported"])
				if !strings.Contains(string(methods), `"private_key_jwt"`) || !strings.Contains(string(algs), `"ES256"`) || !strings.Contains(string(algs), `"RS256"`) {
					t.Fatalf("discovery: methods %s, algs %s", methods, algs)
				}
				if disco["pushed_authorization_request_endpoint"] != e.issuer+"/par" {
					t.Fatalf("pushed_authorization_request_endpoint = %v", disco["pushed_authorization_request_endpoint"])
				}
			})

			party, err := rp.NewRelyingPartyOIDC(ctx, e.issuer, app.ID, "", app.RedirectURI,
				[]string{"openid", "email", "offline_access"}, rp.WithAuthStyle(oauth2.AuthStyleInParams))
			if err != nil {
				t.Fatal(err)
			}

			t.Run("code flow authenticated with private_key_jwt", func(t *testing.T) {
				verifier, challenge := pkce()
				code := signInForCode(t, e, rp.AuthURL("st", party, rp.WithCodeChallenge(challenge)), "pk@example.com")
				// The token endpoint URL as audience (RFC 7523 §3).
				a := key.assertion(t, app.ID, tokenURL)
				tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, party, rp.WithCodeVerifier(verifier), rp.WithClientAssertionJWT(a))
				if err != nil {
					t.Fatalf("code exchange: %v", err)
				}
				if tokens.IDTokenClaims.Subject == "" || tokens.RefreshToken == "" {
					t.Fatalf("tokens = %+v", tokens)
				}
				// The refresh grant, the issuer as audience.
				var tr tokenResponse
				form := assertionForm(key.assertion(t, app.ID, e.issuer))
				form.Set("grant_type", "refresh_token")
				form.Set("refresh_token", tokens.RefreshToken)
				if st := postJSONForm(t, tokenURL, form, &tr); st != http.StatusOK || tr.AccessToken == "" {
					t.Fatalf("refresh with private_key_jwt: %d %+v", st, tr)
				}
				// Introspection and revocation take the assertion too, with their own
				// URL as audience.
				var intro map[string]any
				form = assertionForm(key.assertion(t, app.ID, e.issuer+"/oauth/introspect"))
				form.Set("token", tr.AccessToken)
				if st := postJSONForm(t, e.issuer+"/oauth/introspect", form, &intro); st != http.StatusOK || intro["active"] != true {
					t.Fatalf("introspection with private_key_jwt: %d %v", st, intro)
				}
				form = assertionForm(key.assertion(t, app.ID, e.issuer+"/revoke"))
				form.Set("token", tokens.RefreshToken)
				if st := postJSONForm(t, e.issuer+"/revoke", form, nil); st != http.StatusOK {
					t.Fatalf("revocation with private_key_jwt: %d", st)
				}
				// Without any authentication the client is refused.
				form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {app.ID}}
				if st := postJSONForm(t, tokenURL, form, &tr); st == http.StatusOK {
					t.Fatal("refresh without client authentication accepted")
				}
			})

			t.Run("client_credentials authenticated with private_key_jwt", func(t *testing.T) {
				ccParty, err := rp.NewRelyingPartyOIDC(ctx, e.issuer, app.ID, "", app.RedirectURI,
					[]string{"api:read"}, rp.WithAuthStyle(oauth2.AuthStyleInParams))
				if err != nil {
					t.Fatal(err)
				}
				tok, err := rp.ClientCredentials(ctx, ccParty, assertionForm(key.assertion(t, app.ID, tokenURL)))
				if err != nil || tok.AccessToken == "" {
					t.Fatalf("client_credentials: %v", err)
				}
			})

			refused := func(t *testing.T, a string, why string) {
				t.Helper()
				form := assertionForm(a)
				form.Set("grant_type", "client_credentials")
				form.Set("scope", "api:read")
				var tr tokenResponse
				st := postJSONForm(t, tokenURL, form, &tr)
				if st != http.StatusUnauthorized || tr.Error != "invalid_client" {
					t.Fatalf("%s: status %d, %+v; want 401 invalid_client", why, st, tr)
				}
			}

			t.Run("replayed assertion (same jti) is invalid_client", func(t *testing.T) {
				a := key.assertion(t, app.ID, tokenURL)
				form := assertionForm(a)
				form.Set("grant_type", "client_credentials")
				form.Set("scope", "api:read")
				var tr tokenResponse
				if st := postJSONForm(t, tokenURL, form, &tr); st != http.StatusOK {
					t.Fatalf("first use: %d %+v", st, tr)
				}
				refused(t, a, "replay")
				// A new assertion with the same jti is a replay too.
				var claims struct {
					JTI string `json:"jti"`
				}
				_ = json.Unmarshal(payloadOf(t, a), &claims)
				refused(t, key.assertion(t, app.ID, e.issuer, func(c map[string]any) { c["jti"] = claims.JTI }), "new assertion, same jti")
			})

			t.Run("wrong audience is refused", func(t *testing.T) {
				refused(t, key.assertion(t, app.ID, "https://other.example.com/token"), "wrong audience")
			})

			t.Run("key not registered is refused", func(t *testing.T) {
				other := newRSAClientKey(t, "rp-key-1") // same kid, another key
				refused(t, other.assertion(t, app.ID, tokenURL), "unregistered key")
				other = newRSAClientKey(t, "unknown-kid")
				refused(t, other.assertion(t, app.ID, tokenURL), "unknown kid")
			})

			t.Run("exp bounded, jti and iss = sub required", func(t *testing.T) {
				refused(t, key.assertion(t, app.ID, tokenURL, func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }), "exp an hour ahead")
				refused(t, key.assertion(t, app.ID, tokenURL, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "expired")
				refused(t, key.assertion(t, app.ID, tokenURL, func(c map[string]any) { delete(c, "jti") }), "no jti")
				refused(t, key.assertion(t, app.ID, tokenURL, func(c map[string]any) { c["sub"] = "someone" }), "sub != iss")
			})

			t.Run("a client_secret client cannot use an assertion", func(t *testing.T) {
				sec := e.createClient(admin.NewClient{GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"}})
				refused(t, key.assertion(t, sec.ID, tokenURL), "secret client")
			})

			t.Run("keys by JWKS URL", func(t *testing.T) {
				ec := newECClientKey(t, "ec-1")
				hits := 0
				jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits++
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(ec.jwks))
				}))
				defer jwksSrv.Close()
				byURL := e.createClient(admin.NewClient{GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"},
					TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: jwksSrv.URL + "/jwks.json"})
				for i := range 2 {
					form := assertionForm(ec.assertion(t, byURL.ID, tokenURL))
					form.Set("grant_type", "client_credentials")
					var tr tokenResponse
					if st := postJSONForm(t, tokenURL, form, &tr); st != http.StatusOK || tr.AccessToken == "" {
						t.Fatalf("assertion %d with a key from the JWKS URL: %d %+v", i, st, tr)
					}
				}
				if hits != 1 {
					t.Fatalf("JWKS URL fetched %d times, want 1 (cached)", hits)
				}
				refused(t, key.assertion(t, byURL.ID, tokenURL), "key not in the JWKS URL")
			})
		})
	}
}

// TestPushedAuthorizationRequests_RFC9126 covers PAR: push then authorize with the
// request_uri, single use, expiry, a client that requires PAR, and a push authenticated
// with private_key_jwt.
func TestPushedAuthorizationRequests_RFC9126(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t))
			e.createUser("par@example.com", password)
			app := e.createClient(admin.NewClient{RedirectURIs: []string{"https://par.example.com/cb"}, SkipConsent: true})
			parURL := e.issuer + "/par"

			push := func(t *testing.T, c testClient, extra url.Values) (int, map[string]any) {
				t.Helper()
				form := url.Values{"client_id": {c.ID}, "redirect_uri": {c.RedirectURI}, "response_type": {"code"},
					"scope": {"openid email"}, "state": {"st-par"}}
				if c.Secret != "" {
					form.Set("client_secret", c.Secret)
				}
				for k, v := range extra {
					form[k] = v
				}
				var out map[string]any
				st := postJSONForm(t, parURL, form, &out)
				return st, out
			}
			authorizeURL := func(c testClient, requestURI string) string {
				return e.issuer + "/authorize?" + url.Values{"client_id": {c.ID}, "request_uri": {requestURI}}.Encode()
			}

			t.Run("push then authorize with request_uri", func(t *testing.T) {
				verifier, challenge := pkce()
				st, out := push(t, app, url.Values{"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
				reqURI, _ := out["request_uri"].(string)
				exp, _ := out["expires_in"].(float64)
				if st != http.StatusCreated || !strings.HasPrefix(reqURI, "urn:ietf:params:oauth:request_uri:") || exp <= 0 || exp > 90 {
					t.Fatalf("push: %d %v", st, out)
				}
				b := e.newBrowser()
				p := b.Login(b.Get(authorizeURL(app, reqURI)), "par@example.com", password)
				q := p.RedirectParams(t)
				if q.Get("code") == "" || q.Get("state") != "st-par" {
					t.Fatalf("callback = %v", q)
				}
				tr := e.tokenRequest(app, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
					"redirect_uri": {app.RedirectURI}, "code_verifier": {verifier}})
				if tr.Status != http.StatusOK || tr.IDToken == "" {
					t.Fatalf("token: %+v", tr)
				}

				t.Run("request_uri reused is an error", func(t *testing.T) {
					p := e.newBrowser().Get(authorizeURL(app, reqURI))
					if p.Status != http.StatusBadRequest || p.IsLogin() {
						t.Fatalf("reused request_uri: status %d", p.Status)
					}
				})
			})

			t.Run("expired request_uri is an error", func(t *testing.T) {
				_, out := push(t, app, nil)
				e.clock.Advance(idp.PARLifetime + time.Second)
				p := e.newBrowser().Get(authorizeURL(app, out["request_uri"].(string)))
				if p.Status != http.StatusBadRequest || p.IsLogin() {
					t.Fatalf("expired request_uri: status %d", p.Status)
				}
			})

			t.Run("request_uri of another client is an error", func(t *testing.T) {
				other := e.createClient(admin.NewClient{RedirectURIs: []string{"https://other.example.com/cb"}})
				_, out := push(t, app, nil)
				if p := e.newBrowser().Get(authorizeURL(other, out["request_uri"].(string))); p.Status != http.StatusBadRequest {
					t.Fatalf("another client's request_uri: status %d", p.Status)
				}
			})

			t.Run("push refused: bad secret, unregistered redirect_uri, over-long state", func(t *testing.T) {
				if st, _ := push(t, testClient{ID: app.ID, Secret: "wrong", RedirectURI: app.RedirectURI}, nil); st != http.StatusUnauthorized {
					t.Fatalf("wrong secret: %d", st)
				}
				if st, _ := push(t, app, url.Values{"redirect_uri": {"https://evil.example.com/cb"}}); st != http.StatusBadRequest {
					t.Fatalf("unregistered redirect_uri: %d", st)
				}
				if st, _ := push(t, app, url.Values{"state": {strings.Repeat("s", 4096)}}); st != http.StatusBadRequest {
					t.Fatalf("over-long state: %d", st)
				}
			})

			t.Run("client requiring PAR is refused without it", func(t *testing.T) {
				strict := e.createClient(admin.NewClient{RedirectURIs: []string{"https://strict.example.com/cb"}, SkipConsent: true, RequirePAR: true})
				p := e.newBrowser().Get(e.authURL(strict, nil))
				if p.Status != http.StatusBadRequest || p.IsLogin() {
					t.Fatalf("client requiring PAR without it: status %d", p.Status)
				}
				_, out := push(t, strict, nil)
				signInForCode(t, e, authorizeURL(strict, out["request_uri"].(string)), "par@example.com")
			})

			t.Run("PAR with private_key_jwt client authentication", func(t *testing.T) {
				key := newECClientKey(t, "par-key")
				pk := e.createClient(admin.NewClient{RedirectURIs: []string{"https://pk-par.example.com/cb"}, SkipConsent: true,
					TokenEndpointAuthMethod: "private_key_jwt", JWKS: key.jwks, RequirePAR: true})
				// The PAR endpoint URL as audience (RFC 9126 §2).
				st, out := push(t, pk, assertionForm(key.assertion(t, pk.ID, parURL)))
				if st != http.StatusCreated {
					t.Fatalf("push with private_key_jwt: %d %v", st, out)
				}
				code := signInForCode(t, e, authorizeURL(pk, out["request_uri"].(string)), "par@example.com")
				form := assertionForm(key.assertion(t, pk.ID, e.issuer))
				form.Set("grant_type", "authorization_code")
				form.Set("code", code)
				form.Set("redirect_uri", pk.RedirectURI)
				var tr tokenResponse
				if st := postJSONForm(t, e.issuer+"/oauth/token", form, &tr); st != http.StatusOK || tr.IDToken == "" {
					t.Fatalf("token: %d %+v", st, tr)
				}
				if st, _ := push(t, pk, assertionForm(key.assertion(t, pk.ID, "https://elsewhere.example.com"))); st != http.StatusUnauthorized {
					t.Fatalf("push with a wrong-audience assertion: %d", st)
				}
			})
		})
	}
}

// TestUsedAssertionsAcrossProcesses: an assertion accepted by one process is a replay for
// another sharing the database.
func TestUsedAssertionsAcrossProcesses(t *testing.T) {
	for _, be := range clusterBackends {
		t.Run(be.name, func(t *testing.T) {
			st1, st2 := be.open(t)
			e1 := newEnv(t, st1)
			e2 := newEnv(t, st2, func(c *idp.Config) { c.Sealer = e1.sealer })
			key := newECClientKey(t, "k")
			c := e1.createClient(admin.NewClient{GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"},
				TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: key.jwks})
			a := key.assertion(t, c.ID, e1.issuer)
			form := assertionForm(a)
			form.Set("grant_type", "client_credentials")
			var tr tokenResponse
			if st := postJSONForm(t, e1.issuer+"/oauth/token", form, &tr); st != http.StatusOK {
				t.Fatalf("first process: %d %+v", st, tr)
			}
			// The second process has another issuer URL: the assertion names the first,
			// so the audience is rewritten to the second's token endpoint with a new
			// signature but the same jti.
			var jti string
			_ = json.Unmarshal(payloadOf(t, a), &struct {
				JTI *string `json:"jti"`
			}{&jti})
			a2 := key.assertion(t, c.ID, e2.issuer, func(m map[string]any) { m["jti"] = jti })
			form = assertionForm(a2)
			form.Set("grant_type", "client_credentials")
			if st := postJSONForm(t, e2.issuer+"/oauth/token", form, &tr); st != http.StatusUnauthorized || !slices.Contains([]string{"invalid_client"}, tr.Error) {
				t.Fatalf("replay in the second process: %d %+v", st, tr)
			}
		})
	}
}

func payloadOf(t *testing.T, compact string) []byte {
	t.Helper()
	jws, err := jose.ParseSignedCompact(compact, idp.ClientAssertionSigningAlgs)
	if err != nil {
		t.Fatal(err)
	}
	return jws.UnsafePayloadWithoutVerification()
}
