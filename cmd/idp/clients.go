package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
)

// clientJSON is a client as printed by `clients list --json`: the admin API's view,
// never its secret or hash.
type clientJSON = admin.ClientView

func newClientsCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "clients",
		Short: "Manage clients (relying parties)",
		Long:  "Register and list the applications that sign people in through the provider, and set their MFA policies.",
	}, newClientsCreateCmd(a), newClientsListCmd(a), newClientsPolicyCmd(a))
}

func newClientsCreateCmd(a *app) *cobra.Command {
	var (
		in       admin.NewClient
		asJSON   bool
		jwksFile string
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --redirect-uri URI [flags]",
		Short: "Register a client",
		Long: `Register a client (relying party) and print its client id and, for a confidential
client, its client secret. The secret is shown only this once: only its hash is stored.

Redirect URIs must be absolute https URLs without a fragment; http is accepted only for
localhost, 127.0.0.1 and [::1]. A client without the authorization_code grant (e.g.
client_credentials only, or a TV or CLI with the device grant
urn:ietf:params:oauth:grant-type:device_code, RFC 8628) needs no redirect URI. A public client (--public: browser or native app, no secret, PKCE
required) cannot use client_credentials.

--backchannel-logout-uri registers the URL that receives OIDC Back-Channel Logout tokens
when a session the client signed in through ends (https, or http on a loopback host).
Set the client's MFA policy afterwards with "idp clients policy set".

--auth-method private_key_jwt registers a confidential client without a secret: it
authenticates with JWTs signed by its private key (RFC 7523), whose public keys are
given by value (--jwks FILE, a JWKS JSON) or by URL (--jwks-uri). --require-par makes
the client push its authorization requests first (RFC 9126).`,
		Example: `  idp clients create --name "My app" --redirect-uri https://app.example.com/callback
  idp clients create --name "CLI" --public --redirect-uri http://127.0.0.1:8400/callback
  idp clients create --name "Batch job" --grants client_credentials --scopes api:read --json
  idp clients create --name "TV app" --public --grants urn:ietf:params:oauth:grant-type:device_code,refresh_token
  idp clients create --name "Signed" --redirect-uri https://app.example.com/cb --auth-method private_key_jwt --jwks-uri https://app.example.com/jwks.json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(in.Name) == "" {
				return usageErrorf("--name is required")
			}
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return fmt.Errorf("--jwks: %w", err)
				}
				in.JWKS = string(b)
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				c, secret, err := adm.CreateClient(ctx, cliActor, in)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						ClientID     string `json:"client_id"`
						ClientSecret string `json:"client_secret,omitempty"`
					}{c.ID, secret})
				}
				fmt.Fprintf(a.stdout, "Created client %q.\n", c.Name)
				fmt.Fprintf(a.stdout, "  Client ID:     %s\n", c.ID)
				if c.Public {
					fmt.Fprintf(a.stdout, "  Public client: no secret; it must use PKCE (S256).\n")
					return nil
				}
				if c.TokenEndpointAuthMethod == storage.AuthMethodPrivateKeyJWT {
					_, err = fmt.Fprintf(a.stdout, "  Authenticates with private_key_jwt: no secret.\n")
					return err
				}
				fmt.Fprintf(a.stdout, "  Client secret: %s\n", secret)
				_, err = fmt.Fprintf(a.stdout, "Store the client secret now: it will not be shown again.\n")
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Name, "name", "", "display name shown on the consent page (required)")
	f.StringSliceVar(&in.RedirectURIs, "redirect-uri", nil, "allowed redirect URI (repeatable or comma-separated)")
	f.StringSliceVar(&in.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "allowed post-logout redirect URI (repeatable or comma-separated)")
	f.BoolVar(&in.Public, "public", false, "public client: no secret, PKCE required")
	f.BoolVar(&in.SkipConsent, "skip-consent", false, "first-party client: never show the consent page")
	f.StringSliceVar(&in.GrantTypes, "grants", slices.Clone(admin.DefaultClientGrants),
		"grant types: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code")
	f.StringSliceVar(&in.Scopes, "scopes", slices.Clone(admin.DefaultClientScopes),
		"scopes the client may request: openid, profile, email, phone, address, offline_access, account or custom [a-z0-9:._-]+")
	f.StringVar(&in.BackchannelLogoutURI, "backchannel-logout-uri", "", "URL that receives back-channel logout tokens (https, or http on loopback)")
	f.StringVar(&in.AccessTokenFormat, "access-token-format", admin.AccessTokenJWT, "access token format: jwt or opaque")
	f.StringVar(&in.IDTokenSigningAlg, "signing-alg", keys.AlgES256, "ID token signing algorithm: ES256 or RS256")
	f.DurationVar(&in.AccessTokenLifetime, "access-token-lifetime", admin.DefaultAccessTokenLifetime, "access token lifetime")
	f.DurationVar(&in.IDTokenLifetime, "id-token-lifetime", admin.DefaultIDTokenLifetime, "ID token lifetime")
	f.DurationVar(&in.RefreshTokenLifetime, "refresh-token-lifetime", admin.DefaultRefreshTokenLifetime, "refresh token lifetime")
	f.StringVar(&in.TokenEndpointAuthMethod, "auth-method", "", "token endpoint authentication: client_secret_basic (default) or private_key_jwt")
	f.StringVar(&jwksFile, "jwks", "", "file holding the client's public keys (JWKS JSON), for private_key_jwt")
	f.StringVar(&in.JWKSURI, "jwks-uri", "", "URL of the client's public keys (JWKS), for private_key_jwt")
	f.BoolVar(&in.RequirePAR, "require-par", false, "the client must use pushed authorization requests (RFC 9126)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newClientsListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Long:  "List every registered client, oldest first. Secrets are never shown.",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				clients, err := store.ListClients(ctx)
				if err != nil {
					return fmt.Errorf("list clients: %w", err)
				}
				if asJSON {
					out := make([]clientJSON, 0, len(clients))
					for i := range clients {
						out = append(out, admin.ToClientView(&clients[i]))
					}
					return writeJSON(a.stdout, out)
				}
				tw := newTable(a.stdout)
				fmt.Fprintln(tw, "ID\tNAME\tTYPE\tGRANTS\tREDIRECT URIS\tCREATED")
				for _, c := range clients {
					kind := "confidential"
					if c.Public {
						kind = "public"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, kind,
						strings.Join(c.GrantTypes, ","), strings.Join(c.RedirectURIs, " "),
						c.CreatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
