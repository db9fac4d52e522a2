package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage/seal"
)

func newKeysCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "keys",
		Short: "Manage token-signing keys",
		Long:  "Manage the keys that sign ID tokens and JWT access tokens.",
	}, newKeysRotateCmd(a), newKeysRotateEncryptionCmd(a))
}

func newKeysRotateCmd(a *app) *cobra.Command {
	var (
		retention time.Duration
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the signing keys",
		Long: `Create a new signing key for every supported algorithm (ES256, RS256) and print
their key ids. Running servers sign with the new keys at once; the keys they replace stay
in the published key set for --key-retention, so tokens they signed still verify.

The signing keys are encrypted at rest with IDP_ENCRYPTION_KEY.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSealedAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin, sealer *seal.Sealer) error {
				adm.Keys = &keys.Manager{Store: adm.Store, Sealer: sealer, Retention: retention}
				ids, err := adm.RotateKeys(ctx, cliActor)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						KeyIDs []string `json:"key_ids"`
					}{ids})
				}
				_, err = fmt.Fprintf(a.stdout, "New signing keys: %s\nThe keys they replace stay published for %s.\n",
					strings.Join(ids, ", "), retention)
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&retention, "key-retention", 24*time.Hour,
		"how long replaced keys stay published; at least the longest token lifetime (env IDP_KEY_RETENTION)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newKeysRotateEncryptionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate-encryption",
		Short: "Re-encrypt every secret at rest under the current encryption key",
		Long: `Re-encrypt the signing keys, second-factor secrets (TOTP seeds, WebAuthn credentials)
and server secrets under IDP_ENCRYPTION_KEY, opening them with the keys in
IDP_ENCRYPTION_KEYS_OLD.

To rotate the encryption key: set the new key in IDP_ENCRYPTION_KEY and the old one in
IDP_ENCRYPTION_KEYS_OLD on every process, restart them, run this command once, then
remove the old key from IDP_ENCRYPTION_KEYS_OLD and restart again. The command is
idempotent: run it again if it was interrupted.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withSealedAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin, sealer *seal.Sealer) error {
				res, err := adm.Reencrypt(ctx, cliActor, sealer)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, res)
				}
				_, err = fmt.Fprintf(a.stdout, "Re-encrypted under key %s: %d signing keys, %d factor secrets, %d server secrets (%d already current).\n",
					sealer.CurrentKeyID(), res.SigningKeys, res.Factors, res.ServerSecrets, res.Unchanged)
				return err
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
