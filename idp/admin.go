package idp

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
)

// Grant types a client may be registered for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
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

// Demo seed values (dev mode only).
const (
	DemoUserEmail  = "demo@example.com"
	DemoUserName   = "Demo User"
	DemoClientName = "Demo app"
)

// Admin holds the operator actions shared by the CLI and the admin API. Every change it
// makes is written to the audit trail with the acting operator in the event's Reason.
type Admin struct {
	Store storage.Storage
	Audit *Auditor
	Keys  *Keys            // needed only by RotateKeys
	Now   func() time.Time // time.Now when nil
	// Issuer is the provider's public base URL, from which ResetMFA builds recovery links
	// (ResetOptions.Issuer overrides it).
	Issuer string
	// EndSessions ends every SSO session of a user and returns how many ended. A server
	// that sends back-channel logout sets it; when nil the sessions are deleted from Store.
	EndSessions func(ctx context.Context, userID, reason string) (int, error)
	// Hash hashes a new password; HashPassword when nil. The server passes its gated
	// hashPassword, so that API calls share the memory budget of logins.
	Hash func(ctx context.Context, password string) (string, error)
}

// hashPassword hashes password with a.Hash, or HashPassword.
func (a *Admin) hashPassword(ctx context.Context, password string) (string, error) {
	if a.Hash != nil {
		return a.Hash(ctx, password)
	}
	return HashPassword(password)
}

// NewUser is the input of Admin.CreateUser.
type NewUser struct {
	Email, Name, Password string
}

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
}

// DemoSeed is what Admin.SeedDemo created: the demo user's credentials and the demo
// relying party's client.
type DemoSeed struct {
	Email    string
	Password string
	Client   DemoClient
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// record writes an audit event naming actor as the one who acted.
func (a *Admin) record(ctx context.Context, actor string, e storage.AuditEvent, detail string) {
	if a.Audit == nil {
		return
	}
	if actor == "" {
		actor = "unknown"
	}
	e.Time = a.now()
	e.Reason = strings.TrimSpace("actor=" + actor + " " + detail)
	a.Audit.Record(ctx, e)
}

// CreateUser validates and stores a new user with a hashed password. The e-mail is
// stored lower-cased; a taken e-mail returns an error wrapping storage.ErrAlreadyExists.
func (a *Admin) CreateUser(ctx context.Context, actor string, in NewUser) (*storage.User, error) {
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	hash, err := a.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, err
	}
	now := a.now()
	u := &storage.User{
		ID:           NewID(),
		Email:        email,
		Name:         strings.TrimSpace(in.Name),
		PasswordHash: hash,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := a.Store.CreateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserCreate, Result: ResultFailure},
			fmt.Sprintf("email=%s err=%v", email, err))
		if errors.Is(err, storage.ErrAlreadyExists) {
			return nil, fmt.Errorf("a user with e-mail %s already exists: %w", email, err)
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserCreate, UserID: u.ID, Result: ResultSuccess},
		"email="+email)
	return u, nil
}

// normalizeEmail checks that s is a bare e-mail address and lower-cases it.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("e-mail is required")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", fmt.Errorf("%q is not a valid e-mail address", s)
	}
	return strings.ToLower(addr.Address), nil
}

// FindUser returns the user with that id or e-mail (an argument containing '@' is an
// e-mail, since ids never contain one). A missing user wraps storage.ErrNotFound.
func (a *Admin) FindUser(ctx context.Context, idOrEmail string) (*storage.User, error) {
	key := strings.TrimSpace(idOrEmail)
	if key == "" {
		return nil, invalidf("user id or e-mail is required")
	}
	var (
		u   *storage.User
		err error
	)
	if strings.Contains(key, "@") {
		u, err = a.Store.GetUserByEmail(ctx, strings.ToLower(key))
	} else {
		u, err = a.Store.GetUser(ctx, key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("user %q not found: %w", key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("find user %q: %w", key, err)
	}
	return u, nil
}

// DisableUser disables the user with that id or e-mail, signs them out everywhere
// (deletes all their sessions) and revokes all their tokens.
func (a *Admin) DisableUser(ctx context.Context, actor, idOrEmail string) error {
	u, err := a.FindUser(ctx, idOrEmail)
	if err != nil {
		return err
	}
	now := a.now()
	u.Disabled = true
	u.UpdatedAt = now
	if err := a.Store.UpdateUser(ctx, u); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserDisable, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("err=%v", err))
		return fmt.Errorf("disable user %s: %w", u.ID, err)
	}
	sessions, err := a.endSessions(ctx, u.ID, "account disabled")
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserDisable, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("disabled but sessions not deleted: err=%v", err))
		return fmt.Errorf("delete sessions of user %s: %w", u.ID, err)
	}
	if err := a.Store.RevokeUserTokens(ctx, u.ID, now); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserDisable, UserID: u.ID, Result: ResultFailure},
			fmt.Sprintf("disabled, %d sessions deleted, tokens not revoked: err=%v", sessions, err))
		return fmt.Errorf("revoke tokens of user %s: %w", u.ID, err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminUserDisable, UserID: u.ID, Result: ResultSuccess},
		fmt.Sprintf("email=%s sessions_deleted=%d tokens_revoked=true", u.Email, sessions))
	return nil
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
	var secret string
	if !c.Public {
		secret, c.SecretHash = NewClientSecret()
	}
	c.ID = NewID()
	c.CreatedAt = a.now()
	if err := a.Store.CreateClient(ctx, c); err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminClientCreate, Result: ResultFailure},
			fmt.Sprintf("name=%q err=%v", c.Name, err))
		return nil, "", fmt.Errorf("create client: %w", err)
	}
	kind := "confidential"
	if c.Public {
		kind = "public"
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminClientCreate, ClientID: c.ID, Result: ResultSuccess},
		fmt.Sprintf("name=%q type=%s grants=%s", c.Name, kind, strings.Join(c.GrantTypes, ",")))
	return c, secret, nil
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
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
			return nil
		}
		return fmt.Errorf("unsupported grant type %q (allowed: %s, %s, %s)",
			g, GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials)
	})
	if err != nil {
		return nil, err
	}
	c.GrantTypes = grants
	if c.Public && slices.Contains(grants, GrantClientCredentials) {
		return nil, errors.New("a public client cannot use the client_credentials grant: it has no secret to authenticate with")
	}

	redirects, err := normalizeList(in.RedirectURIs, nil, "redirect URI", func(u string) error {
		return validateRedirectURI(u, "redirect URI", allowHTTP)
	})
	if err != nil {
		return nil, err
	}
	onlyClientCredentials := len(grants) == 1 && grants[0] == GrantClientCredentials
	if len(redirects) == 0 && !onlyClientCredentials {
		return nil, errors.New("at least one redirect URI is required (only a client_credentials-only client may have none)")
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
		c.IDTokenSigningAlg = AlgES256
	case AlgES256, AlgRS256:
		c.IDTokenSigningAlg = alg
	default:
		return nil, fmt.Errorf("unsupported ID token signing algorithm %q (allowed: %s, %s)", in.IDTokenSigningAlg, AlgES256, AlgRS256)
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
// The replaced keys stop signing at once and stay published for a.Keys.Retention.
func (a *Admin) RotateKeys(ctx context.Context, actor string) ([]string, error) {
	if a.Keys == nil {
		return nil, errors.New("rotate keys: no key manager configured")
	}
	ids, err := a.Keys.Rotate(ctx)
	if err != nil {
		a.record(ctx, actor, storage.AuditEvent{Type: EventAdminKeyRotate, Result: ResultFailure},
			fmt.Sprintf("err=%v", err))
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	a.record(ctx, actor, storage.AuditEvent{Type: EventAdminKeyRotate, Result: ResultSuccess},
		"key_ids="+strings.Join(ids, ","))
	return ids, nil
}

// SeedDemo creates the dev-mode demo: user demo@example.com with a random password and
// the confidential client "Demo app" whose redirect URI is <issuer>/demo/callback. It is
// meant for an empty database; it fails if the demo user already exists.
func (a *Admin) SeedDemo(ctx context.Context, issuer string) (*DemoSeed, error) {
	const actor = "dev-seed"
	base := strings.TrimRight(strings.TrimSpace(issuer), "/")
	if base == "" {
		return nil, errors.New("seed demo: issuer is required")
	}
	password := randomToken(12) // 16 base64url characters
	u, err := a.CreateUser(ctx, actor, NewUser{Email: DemoUserEmail, Name: DemoUserName, Password: password})
	if err != nil {
		return nil, fmt.Errorf("seed demo user: %w", err)
	}
	redirect := base + "/demo/callback"
	c, secret, err := a.createClient(ctx, actor, NewClient{
		Name:                   DemoClientName,
		RedirectURIs:           []string{redirect},
		PostLogoutRedirectURIs: []string{base + "/"},
		SkipConsent:            false, // newcomers should see the consent page
		GrantTypes:             []string{GrantAuthorizationCode, GrantRefreshToken},
		Scopes:                 []string{"openid", "profile", "email", "offline_access"},
	}, true)
	if err != nil {
		return nil, fmt.Errorf("seed demo client: %w", err)
	}
	return &DemoSeed{
		Email:    u.Email,
		Password: password,
		Client:   DemoClient{ClientID: c.ID, ClientSecret: secret, RedirectURI: redirect},
	}, nil
}
