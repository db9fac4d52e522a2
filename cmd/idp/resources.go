package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

func newResourcesCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "resources",
		Short: "Manage resources (RFC 8707 resource indicators)",
		Long: `Register the protected resources (APIs) that clients may ask tokens for with the
resource parameter (RFC 8707). An access token requested for a resource has the
resource's URI as its audience (aud); a request naming an unregistered resource, or one
the client is not allowed, is refused with invalid_target.`,
	}, newResourcesCreateCmd(a), newResourcesListCmd(a), newResourcesDeleteCmd(a))
}

func newResourcesCreateCmd(a *app) *cobra.Command {
	var (
		in     admin.NewResource
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "create --uri URI --clients ID,... [flags]",
		Short: "Register a resource",
		Long: `Register a resource. Its URI is what clients send as the resource parameter and what
access tokens for it carry as aud: an absolute URI without a fragment or query
(RFC 8707 §2), compared exactly (https://api.example.com and https://api.example.com/
are different resources).

--clients lists the client ids that may obtain tokens for it; at least one is required.
--scopes lists scopes that must all be among a token's scopes for the token to be issued
for the resource; a request without them is refused with invalid_target.`,
		Example: `  idp resources create --uri https://api.example.com/ --name "Orders API" --clients CLIENT_ID --scopes orders:read
  idp resources create --uri urn:example:billing --clients ID1,ID2 --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(in.URI) == "" {
				return usageErrorf("--uri is required")
			}
			if len(in.AllowedClients) == 0 {
				return usageErrorf("--clients is required")
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				r, err := adm.CreateResource(ctx, cliActor, in)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, admin.ToResourceView(r))
				}
				_, err = fmt.Fprintf(a.stdout, "Registered resource %s for clients %s.\n", r.URI, strings.Join(r.AllowedClients, ", "))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.URI, "uri", "", "the resource's URI: absolute, no fragment or query (required)")
	f.StringVar(&in.Name, "name", "", "display name")
	f.StringSliceVar(&in.AllowedClients, "clients", nil, "ids of the clients that may obtain tokens for it (required; repeatable or comma-separated)")
	f.StringSliceVar(&in.RequiredScopes, "scopes", nil, "scopes a token for it must carry (repeatable or comma-separated)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newResourcesListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List resources",
		Long:  "List every registered resource, oldest first.",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withExistingAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				rs, err := adm.ListResources(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]admin.ResourceView, 0, len(rs))
					for i := range rs {
						out = append(out, admin.ToResourceView(&rs[i]))
					}
					return writeJSON(a.stdout, out)
				}
				tw := newTable(a.stdout)
				fmt.Fprintln(tw, "URI\tNAME\tCLIENTS\tREQUIRED SCOPES\tCREATED")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.URI, r.Name, strings.Join(r.AllowedClients, ","),
						strings.Join(r.RequiredScopes, ","), r.CreatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newResourcesDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete URI",
		Short: "Remove a resource",
		Long: `Remove a resource: no new token is issued for it, also not by refreshing a grant that
was authorized for it. Access tokens already issued stay valid until they expire.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				err := adm.DeleteResource(ctx, cliActor, args[0])
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("no resource %s", args[0])
				}
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "Removed resource %s.\n", args[0])
				return err
			})
		},
	}
}
