package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/storage"
)

func newMigrateCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Long: `Apply the database migrations not yet applied and print how many were applied.

Safe to run again (it then applies none) and from several processes at once. serve and
the other commands also migrate on start; run migrate on its own to upgrade the schema
before rolling out a new version.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), asFound, func(ctx context.Context, store storage.Storage) error {
				n, err := store.Migrate(ctx)
				if err != nil {
					return fmt.Errorf("migrate database: %w", err)
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						Applied int `json:"applied"`
					}{n})
				}
				_, err = fmt.Fprintf(a.stdout, "Applied %d migration(s).\n", n)
				return err
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
