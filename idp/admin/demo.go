package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/openidp/idp/idp/secret"
)

// Demo seed values (dev mode only).
const (
	DemoUserEmail  = "demo@example.com"
	DemoUserName   = "Demo User"
	DemoClientName = "Demo app"
)

// DemoClient is the client the demo relying party signs in with.
type DemoClient struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string // must be <issuer>/demo/callback
}

// DemoSeed is what Admin.SeedDemo created: the demo user's credentials and the demo
// relying party's client.
type DemoSeed struct {
	Email    string
	Password string
	Client   DemoClient
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
	password := secret.Token(12) // 16 base64url characters
	u, err := a.CreateUser(ctx, actor, NewUser{Email: DemoUserEmail, Name: DemoUserName, Password: password})
	if err != nil {
		return nil, fmt.Errorf("seed demo user: %w", err)
	}
	redirect := base + "/demo/callback"
	c, clientSecret, err := a.createClient(ctx, actor, NewClient{
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
		Client:   DemoClient{ClientID: c.ID, ClientSecret: clientSecret, RedirectURI: redirect},
	}, nil
}
