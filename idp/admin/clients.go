package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/idp/secret"
	"github.com/openidp/idp/storage"
)

// Grant types a client may be registered for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628) of TVs and CLIs, for
	// public and confidential clients; such a client needs no redirect URI.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// Access-token formats a client may be registered for.
const (
	AccessTokenJWT    = "jwt"
	AccessTokenOpaque = "opaque"
)

// Defaults applied by Admin.CreateClient to fields left empty.
const (
	DefaultAccessTokenLifetime  = 15 * time.Minute
	DefaultIDTokenLifetime      = time.Hour
	DefaultRefreshTokenLifetime = 720 * time.Hour
)

// DefaultClientGrants and DefaultClientScopes are what a client gets when it names none.
var (
	DefaultClientGrants = []string{GrantAuthorizationCode, GrantRefreshToken}
	DefaultClientScopes = []string{"openid", "profile", "email", "offline_access"}
)

// scopePattern is what a scope name may look like: the standard scopes (openid, profile,
// email, phone, address, offline_access, account) and any custom scope match it.
var scopePattern = regexp.MustCompile(`^[a-z0-9:._-]+$`)

// NewClient is the input of Admin.CreateClient. Zero values take the documented defaults.
type NewClient struct {
	Name                                 string
	RedirectURIs, PostLogoutRedirectURIs []string
	Public, SkipConsent                  bool
	GrantTypes, Scopes                   []string
	AccessTokenFormat, IDTokenSigningAlg string
	AccessTokenLifetime, IDTokenLifetime time.Duration
	RefreshTokenLifetime                 time.Duration
	// BackchannelLogoutURI receives OIDC Back-Channel Logout tokens: https, or http on a
	// loopback host. Empty for none.
	BackchannelLogoutURI string
	// TokenEndpointAuthMethod is "" (a client secret, or none for public clients) or
	// "private_key_jwt" (RFC 7523), which needs JWKS or JWKSURI and issues no secret.
	TokenEndpointAuthMethod string
	// JWKS is the client's public key set (JSON) for private_key_jwt.
	JWKS string
	// JWKSURI is where the client publishes its key set for private_key_jwt: https, or
	// http on a loopback host.
	JWKSURI string
	// RequirePAR: the client must push its authorization requests (RFC 9126).
	RequirePAR bool
}

// MaxJWKSSize bounds a client's key set, registered or fetched.
const MaxJWKSSize = 64 << 10

// ParseJWKS parses a client's public key set: JSON, at most MaxJWKSSize bytes, with at
// least one key, all of them valid public signature keys.
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	if len(data) > MaxJWKSSize {
		return nil, fmt.Errorf("key set is larger than %d bytes", MaxJWKSSize)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("key set is not a JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("key set has no keys")
	}
	for i, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, fmt.Errorf("key %d (kid %q) is not a valid public key", i, k.KeyID)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("key %d (kid %q) is not a signature key (use %q)", i, k.KeyID, k.Use)
		}
	}
	return &set, nil
}

// CreateClient validates and registers a client. It returns the client and, for a
// confidential client, its secret: the only time the secret is available, since only
// its hash is stored. On a validation error nothing is written.
func (a *Admin) CreateClient(ctx context.Context, actor string, in NewClient) (*storage.Client, string, error) {
	return a.createClient(ctx, actor, in, false)
}

// createClient is CreateClient; allowHTTP accepts plain-http redirect URIs on any host
// (used only for the dev-mode demo client, whose issuer may be http on a LAN address).
func (a *Admin) createClient(ctx context.Context, actor string, in NewClient, allowHTTP bool) (*storage.Client, string, error) {
	c, err := buildClient(in, allowHTTP)
	if err != nil {
		return nil, "", err
	}
	var clientSecret string
	if !c.Public && c.TokenEndpointAuthMethod == "" {
		clientSecret, c.SecretHash = secret.NewClientSecret()
	}
	c.ID = secret.NewID()
	c.CreatedAt = a.now()
	kind := "confidential"
	if c.Public {
		kind = "public"
	}
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientCreate, ClientID: c.ID, Result: audit.ResultSuccess},
		fmt.Sprintf("name=%q type=%s grants=%s", c.Name, kind, strings.Join(c.GrantTypes, ","))); err != nil {
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	if err := a.Store.CreateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminClientCreate, ClientID: c.ID, Result: audit.ResultFailure},
			fmt.Sprintf("name=%q err=%v", c.Name, err))
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	return c, clientSecret, nil
}

// CheckClient validates in as CreateClient does, without writing anything.
func CheckClient(in NewClient) error {
	_, err := buildClient(in, false)
	return err
}

// buildClient validates in and returns the client it describes, defaults applied, with
// no ID, secret or creation time yet.
func buildClient(in NewClient, allowHTTP bool) (*storage.Client, error) {
	c := &storage.Client{
		Name:        strings.TrimSpace(in.Name),
		Public:      in.Public,
		SkipConsent: in.SkipConsent,
	}
	if c.Name == "" {
		return nil, errors.New("client name is required")
	}

	grants, err := normalizeList(in.GrantTypes, DefaultClientGrants, "grant type", func(g string) error {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantDeviceCode:
			return nil
		}
		return fmt.Errorf("unsupported grant type %q (allowed: %s, %s, %s, %s)",
			g, GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantDeviceCode)
	})
	if err != nil {
		return nil, err
	}
	c.GrantTypes = grants
	switch m := strings.TrimSpace(in.TokenEndpointAuthMethod); m {
	case "", "client_secret_basic", "client_secret_post":
		if in.JWKS != "" || in.JWKSURI != "" {
			return nil, errors.New("a key set (--jwks, --jwks-uri) is only for --auth-method private_key_jwt")
		}
	case storage.AuthMethodPrivateKeyJWT:
		if c.Public {
			return nil, errors.New("a public client cannot use private_key_jwt")
		}
		c.TokenEndpointAuthMethod = m
		switch {
		case (in.JWKS == "") == (in.JWKSURI == ""):
			return nil, errors.New("private_key_jwt needs exactly one of a key set (--jwks) and a key set URL (--jwks-uri)")
		case in.JWKS != "":
			if _, err := ParseJWKS([]byte(in.JWKS)); err != nil {
				return nil, fmt.Errorf("invalid key set: %w", err)
			}
			c.JWKS = in.JWKS
		default:
			u := strings.TrimSpace(in.JWKSURI)
			if err := validateRedirectURI(u, "key set URL", allowHTTP); err != nil {
				return nil, err
			}
			c.JWKSURI = u
		}
	default:
		return nil, fmt.Errorf("unsupported token endpoint auth method %q (allowed: client_secret_basic, client_secret_post, %s)", m, storage.AuthMethodPrivateKeyJWT)
	}
	c.RequirePAR = in.RequirePAR
	if c.Public && slices.Contains(grants, GrantClientCredentials) {
		return nil, errors.New("a public client cannot use the client_credentials grant: it has no secret to authenticate with")
	}

	redirects, err := normalizeList(in.RedirectURIs, nil, "redirect URI", func(u string) error {
		return validateRedirectURI(u, "redirect URI", allowHTTP)
	})
	if err != nil {
		return nil, err
	}
	if len(redirects) == 0 && slices.Contains(grants, GrantAuthorizationCode) {
		return nil, errors.New("at least one redirect URI is required (only a client without the authorization_code grant may have none)")
	}
	c.RedirectURIs = redirects

	postLogout, err := normalizeList(in.PostLogoutRedirectURIs, nil, "post-logout redirect URI", func(u string) error {
		return validateRedirectURI(u, "post-logout redirect URI", allowHTTP)
	})
	if err != nil {
		return nil, err
	}
	c.PostLogoutRedirectURIs = postLogout

	if u := strings.TrimSpace(in.BackchannelLogoutURI); u != "" {
		if err := validateRedirectURI(u, "back-channel logout URI", allowHTTP); err != nil {
			return nil, err
		}
		c.BackchannelLogoutURI = u
	}

	scopes, err := normalizeList(in.Scopes, DefaultClientScopes, "scope", func(s string) error {
		if !scopePattern.MatchString(s) {
			return fmt.Errorf("invalid scope %q: a scope is made of a-z, 0-9, ':', '.', '_' and '-'", s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.Scopes = scopes

	switch f := strings.ToLower(strings.TrimSpace(in.AccessTokenFormat)); f {
	case "":
		c.AccessTokenFormat = AccessTokenJWT
	case AccessTokenJWT, AccessTokenOpaque:
		c.AccessTokenFormat = f
	default:
		return nil, fmt.Errorf("unsupported access token format %q (allowed: %s, %s)", in.AccessTokenFormat, AccessTokenJWT, AccessTokenOpaque)
	}
	switch alg := strings.ToUpper(strings.TrimSpace(in.IDTokenSigningAlg)); alg {
	case "":
		c.IDTokenSigningAlg = keys.AlgES256
	case keys.AlgES256, keys.AlgRS256:
		c.IDTokenSigningAlg = alg
	default:
		return nil, fmt.Errorf("unsupported ID token signing algorithm %q (allowed: %s, %s)", in.IDTokenSigningAlg, keys.AlgES256, keys.AlgRS256)
	}

	lifetimes := []struct {
		name string
		in   time.Duration
		def  time.Duration
		out  *time.Duration
	}{
		{"access token", in.AccessTokenLifetime, DefaultAccessTokenLifetime, &c.AccessTokenLifetime},
		{"ID token", in.IDTokenLifetime, DefaultIDTokenLifetime, &c.IDTokenLifetime},
		{"refresh token", in.RefreshTokenLifetime, DefaultRefreshTokenLifetime, &c.RefreshTokenLifetime},
	}
	for _, l := range lifetimes {
		switch {
		case l.in < 0:
			return nil, fmt.Errorf("%s lifetime must be positive, got %s", l.name, l.in)
		case l.in == 0:
			*l.out = l.def
		default:
			*l.out = l.in
		}
	}
	return c, nil
}

// normalizeList trims the items of in, drops empty ones and duplicates, checks each with
// valid and returns def (copied) when nothing is left.
func normalizeList(in, def []string, what string, valid func(string) error) ([]string, error) {
	var out []string
	for _, v := range in {
		v = strings.TrimSpace(v)
		if v == "" || slices.Contains(out, v) {
			continue
		}
		if err := valid(v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 && def != nil {
		return slices.Clone(def), nil
	}
	return out, nil
}

// validateRedirectURI accepts an absolute URI without fragment that is https, or http on
// a loopback host (localhost, 127.0.0.1, [::1]) — or any http host when allowHTTP.
// what names the kind of URI in error messages.
func validateRedirectURI(raw, what string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid %s %q: %w", what, raw, err)
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("invalid %s %q: must be an absolute URL such as https://app.example.com/callback", what, raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("invalid %s %q: must not contain a fragment (#...)", what, raw)
	}
	if u.User != nil {
		return fmt.Errorf("invalid %s %q: must not contain user info", what, raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
			return nil
		}
		if allowHTTP {
			return nil
		}
		return fmt.Errorf("invalid %s %q: http is allowed only for localhost, 127.0.0.1 and [::1]; use https", what, raw)
	default:
		return fmt.Errorf("invalid %s %q: scheme must be https (or http for loopback hosts), not %q", what, raw, u.Scheme)
	}
}

// RotateKeys adds a new signing key for every supported algorithm and returns their ids.
// The new keys are published at once and sign after a.Keys.PublishDelay; the keys they
// replace sign until then and stay published for a.Keys.Retention after that. It refuses
// a retention shorter than the longest ID-token or access-token lifetime of any client:
// tokens signed just before the switch would stop verifying before they expire.
//
// The keys are made first (keys.Manager.PrepareRotation), their ids written to the
// audit trail, and only then stored: no key is added when the event cannot be written.
func (a *Admin) RotateKeys(ctx context.Context, actor string) ([]string, error) {
	if a.Keys == nil {
		return nil, errors.New("rotate keys: no key manager configured")
	}
	err := a.checkKeyRetention(ctx)
	var rot *keys.Rotation
	if err == nil {
		rot, err = a.Keys.PrepareRotation(ctx)
	}
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminKeyRotate, Result: audit.ResultFailure},
			fmt.Sprintf("err=%v", err))
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	ids := rot.IDs()
	detail := "key_ids=" + strings.Join(ids, ",")
	if err := a.writeAhead(ctx, actor, storage.AuditEvent{Type: audit.EventAdminKeyRotate, Result: audit.ResultSuccess}, detail); err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	if err := a.Keys.StoreRotation(ctx, rot); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: audit.EventAdminKeyRotate, Result: audit.ResultFailure},
			fmt.Sprintf("%s; err=%v", detail, err))
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	return ids, nil
}

// checkKeyRetention fails when a.Keys.Retention is shorter than a client's ID-token or
// access-token lifetime.
func (a *Admin) checkKeyRetention(ctx context.Context) error {
	clients, err := a.Store.ListClients(ctx)
	if err != nil {
		return fmt.Errorf("list clients: %w", err)
	}
	for _, c := range clients {
		for _, l := range []struct {
			name     string
			lifetime time.Duration
			def      time.Duration
		}{
			{"ID token", c.IDTokenLifetime, DefaultIDTokenLifetime},
			{"access token", c.AccessTokenLifetime, DefaultAccessTokenLifetime},
		} {
			if l.lifetime <= 0 {
				l.lifetime = l.def
			}
			if a.Keys.Retention < l.lifetime {
				return fmt.Errorf("key retention %s is shorter than the %s lifetime %s of client %s: raise --key-retention (IDP_KEY_RETENTION) to at least %s",
					a.Keys.Retention, l.name, l.lifetime, c.ID, l.lifetime)
			}
		}
	}
	return nil
}
