package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage/seal"
)

func newKeysCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "keys",
		Short: "Manage token-signing keys",
		Long:  "Manage the keys that sign ID tokens and JWT access tokens.",
	}, newKeysListCmd(a), newKeysRotateCmd(a), newKeysRotateEncryptionCmd(a))
}

// keyJSON is a signing key in `keys list --json` and `keys rotate --json`.
type keyJSON struct {
	ID          string     `json:"kid"`
	Algorithm   string     `json:"alg"`
	State       keys.State `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func toKeyJSON(k keys.Key) keyJSON {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	return keyJSON{ID: k.ID, Algorithm: string(k.Alg), State: k.State, CreatedAt: k.CreatedAt.UTC(),
		ActivatesAt: k.ActivatesAt.UTC(), RetiredAt: opt(k.RetiredAt), ExpiresAt: opt(k.ExpiresAt)}
}

func newKeysListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the signing keys and their state",
		Long: `List every signing key, newest first, with its state:

  pending  published in the JWKS, signs from SIGNS FROM (after a rotation's publish delay)
  active   published and signing
  retired  no longer signing, published until PUBLISHED UNTIL so that its tokens verify
  expired  no longer published; deleted by the next cleanup`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withExistingAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				list, err := (&keys.Manager{Store: adm.Store}).List(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					out := make([]keyJSON, 0, len(list))
					for _, k := range list {
						out = append(out, toKeyJSON(k))
					}
					return writeJSON(a.stdout, out)
				}
				at := func(t time.Time) string {
					if t.IsZero() {
						return "-"
					}
					return t.UTC().Format(time.RFC3339)
				}
				tw := newTable(a.stdout)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tSIGNS UNTIL\tPUBLISHED UNTIL")
				for _, k := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, k.State, at(k.CreatedAt),
						at(k.ActivatesAt), at(k.RetiredAt), at(k.ExpiresAt))
				}
				return tw.Flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newKeysRotateCmd(a *app) *cobra.Command {
	var (
		retention, publishDelay, jwksMaxAge time.Duration
		asJSON                              bool
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the signing keys",
		Long: `Create a new signing key for every supported algorithm (ES256, RS256) and print
their key ids. The new keys are published in the JWKS at once, by every server, but sign
only after --key-publish-delay (default 1h): until then they are "pending" and the keys
they replace keep signing. That delay must be at least the JWKS max-age the servers
announce (--jwks-max-age, default 10m), so that a verifier holding a cached key set
already knows a key before it meets a token signed with it. The replaced keys then stay
published for --key-retention (default 24h), so tokens they signed still verify; it must
be at least the longest ID-token or access-token lifetime of any client.

--key-publish-delay 0 makes the new keys sign at once (after a suspected key leak);
verifiers with a cached key set must then refetch it when they meet the new kid.

The signing keys are encrypted at rest with IDP_ENCRYPTION_KEY.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if publishDelay < 0 || (publishDelay > 0 && publishDelay < jwksMaxAge) {
				return usageErrorf("--key-publish-delay %s must be at least --jwks-max-age %s (or 0 to sign at once)", publishDelay, jwksMaxAge)
			}
			return a.withSealedAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin, sealer *seal.Sealer) error {
				mgr := &keys.Manager{Store: adm.Store, Sealer: sealer, Retention: retention, PublishDelay: publishDelay}
				adm.Keys = mgr
				ids, err := adm.RotateKeys(ctx, cliActor)
				if err != nil {
					return err
				}
				all, err := mgr.List(ctx)
				if err != nil {
					return err
				}
				var added []keyJSON
				for _, k := range all {
					if slices.Contains(ids, k.ID) {
						added = append(added, toKeyJSON(k))
					}
				}
				if len(added) == 0 {
					return fmt.Errorf("rotated keys %s not found", strings.Join(ids, ", "))
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						KeyIDs []string  `json:"key_ids"`
						Keys   []keyJSON `json:"keys"`
					}{ids, added})
				}
				if added[0].State == keys.StateActive { // --key-publish-delay 0, or nothing to replace
					_, err = fmt.Fprintf(a.stdout, "New signing keys: %s\nThey sign from now on; the keys they replace stay published for %s.\n",
						strings.Join(ids, ", "), retention)
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "New signing keys (pending): %s\nThey are published now and sign from %s (in %s); the keys they replace sign until then and stay published for %s more.\n",
					strings.Join(ids, ", "), added[0].ActivatesAt.Format(time.RFC3339), publishDelay, retention)
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&retention, "key-retention", keys.DefaultRetention,
		"how long replaced keys stay published after they stop signing; at least the longest token lifetime (env IDP_KEY_RETENTION)")
	cmd.Flags().DurationVar(&publishDelay, "key-publish-delay", keys.DefaultPublishDelay,
		"how long the new keys are published before they sign; at least --jwks-max-age, or 0 to sign at once (env IDP_KEY_PUBLISH_DELAY)")
	cmd.Flags().DurationVar(&jwksMaxAge, "jwks-max-age", idp.DefaultJWKSMaxAge,
		"the JWKS max-age the servers announce, which the publish delay must cover (env IDP_JWKS_MAX_AGE)")
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
idempotent: run it again if it was interrupted.

Audit events are not re-keyed: those written before the rotation keep hashes keyed with a
key derived from the old encryption key. Keep the old key for "idp audit verify" (in its
IDP_ENCRYPTION_KEYS_OLD) for as long as those events are retained.`,
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
