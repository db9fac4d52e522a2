package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// MFA policies: per client (`idp clients policy ...`) and per account type
// (`idp policy ...`). At login the two combine, the stricter rule winning item by item;
// `idp policy explain` shows the result for one person and client.

// policyJSON is an MFA policy as printed by --json: the admin API's view (durations in
// whole seconds).
type policyJSON = admin.PolicyView

// policyFlags are the flags that change an MFA policy.
type policyFlags struct {
	mfa               string
	factors           []string
	phishingResistant bool
	maxAge            time.Duration
	rememberDevice    time.Duration
}

var policyFlagNames = []string{"mfa", "factors", "phishing-resistant", "max-age", "remember-device"}

// policyFlagsUsage is the policy flags in a command's usage line.
const policyFlagsUsage = "[--mfa off|optional|required] [--factors K1,K2] [--phishing-resistant] [--max-age D] [--remember-device D]"

func (p *policyFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.mfa, "mfa", "", "second factor: off, optional (ask when the person has one) or required")
	f.StringSliceVar(&p.factors, "factors", nil,
		"factor kinds that count: "+storage.JoinFactorKinds(admin.PolicyFactorKinds, ",")+" (comma-separated; '' for all)")
	f.BoolVar(&p.phishingResistant, "phishing-resistant", false, "only WebAuthn counts as the second factor")
	f.DurationVar(&p.maxAge, "max-age", 0, "ask for the second factor again after this long, e.g. 12h (0: never)")
	f.DurationVar(&p.rememberDevice, "remember-device", 0, `allow "remember this device" for this long, e.g. 720h (0: not allowed)`)
}

// check fails with a usage error when no policy flag was given.
func (p *policyFlags) check(cmd *cobra.Command) error {
	for _, name := range policyFlagNames {
		if cmd.Flags().Changed(name) {
			return nil
		}
	}
	return usageErrorf("nothing to change: give at least one of --%s", strings.Join(policyFlagNames, ", --"))
}

// factorKinds converts the --factors values; nil stays nil.
func factorKinds(names []string) []storage.FactorKind {
	if names == nil {
		return nil
	}
	kinds := make([]storage.FactorKind, len(names))
	for i, n := range names {
		kinds[i] = storage.FactorKind(n)
	}
	return kinds
}

// apply returns base with the flags given on the command line changed.
func (p *policyFlags) apply(cmd *cobra.Command, base storage.MFAPolicy) storage.MFAPolicy {
	f := cmd.Flags()
	if f.Changed("mfa") {
		base.MFA = p.mfa
	}
	if f.Changed("factors") {
		base.Factors = factorKinds(p.factors)
	}
	if f.Changed("phishing-resistant") {
		base.PhishingResistant = p.phishingResistant
	}
	if f.Changed("max-age") {
		base.MaxAge = p.maxAge
	}
	if f.Changed("remember-device") {
		base.RememberDevice = p.rememberDevice
	}
	return base
}

// shortDuration prints 12h0m0s as 12h and 0 as zero.
func shortDuration(d time.Duration, zero string) string {
	if d == 0 {
		return zero
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// printPolicy writes p as indented lines.
func printPolicy(w io.Writer, p storage.MFAPolicy) {
	j := admin.ToPolicyView(p)
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "  mfa:                %s\n", j.MFA)
	fmt.Fprintf(w, "  factors:            %s\n", orDash(storage.JoinFactorKinds(j.Factors, ", "), "any"))
	fmt.Fprintf(w, "  phishing resistant: %s\n", yes[p.PhishingResistant])
	fmt.Fprintf(w, "  max age:            %s\n", shortDuration(p.MaxAge, "none"))
	fmt.Fprintf(w, "  remember device:    %s\n", shortDuration(p.RememberDevice, "not allowed"))
}

// policyRow is p as table cells: MFA, FACTORS, PHISHING-RESISTANT, MAX-AGE, REMEMBER-DEVICE.
func policyRow(p storage.MFAPolicy) string {
	j := admin.ToPolicyView(p)
	return fmt.Sprintf("%s\t%s\t%t\t%s\t%s", j.MFA, orDash(storage.JoinFactorKinds(j.Factors, ","), "any"), p.PhishingResistant,
		shortDuration(p.MaxAge, "-"), shortDuration(p.RememberDevice, "-"))
}

// --- idp clients policy ---

func newClientsPolicyCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "policy",
		Short: "Show or change a client's MFA policy",
	}, newClientsPolicySetCmd(a), newClientsPolicyShowCmd(a))
}

func newClientsPolicySetCmd(a *app) *cobra.Command {
	var (
		pf     policyFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "set CLIENT " + policyFlagsUsage,
		Short: "Change a client's MFA policy",
		Long: `Change what a login to a client must prove. Only the settings given change; the others
keep their current value. The account type's policy (see "idp policy") combines with
it at login: the stricter rule wins.`,
		Example: `  idp clients policy set CLIENT_ID --mfa required --factors totp,webauthn --max-age 12h
  idp clients policy set CLIENT_ID --phishing-resistant --remember-device 0`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pf.check(cmd); err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				c, err := adm.FindClient(ctx, args[0])
				if err != nil {
					return err
				}
				stored, err := adm.SetClientPolicy(ctx, cliActor, c.ID, pf.apply(cmd, c.Policy))
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, admin.ToPolicyView(*stored))
				}
				fmt.Fprintf(a.stdout, "MFA policy of client %q (%s) is now:\n", c.Name, c.ID)
				printPolicy(a.stdout, *stored)
				return nil
			})
		},
	}
	pf.add(cmd)
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newClientsPolicyShowCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CLIENT",
		Short: "Show a client's MFA policy",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withExistingAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				c, err := adm.FindClient(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, admin.ToPolicyView(c.Policy))
				}
				fmt.Fprintf(a.stdout, "MFA policy of client %q (%s):\n", c.Name, c.ID)
				printPolicy(a.stdout, c.Policy)
				return nil
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// --- idp policy ---

// newPolicyCmd is `idp policy`: account-type policies, and `explain`.
func newPolicyCmd(a *app) *cobra.Command {
	cmd := asGroup(&cobra.Command{
		Use:   "policy",
		Short: "Manage MFA policies per account type",
		Long: `Manage the MFA policy of each account type (set a user's type with "idp users
set-type"). At login the account type's policy and the client's ("idp clients policy")
combine: the stricter rule wins, item by item.`,
	}, newPolicySetTypeCmd(a), newPolicyListCmd(a))
	addPolicyExplain(cmd, a)
	return cmd
}

// typePolicyJSON is an account type's policy as printed by --json.
type typePolicyJSON struct {
	Type   string     `json:"type"`
	Policy policyJSON `json:"policy"`
}

func newPolicySetTypeCmd(a *app) *cobra.Command {
	var (
		pf     policyFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "set-type TYPE " + policyFlagsUsage,
		Short: "Set the MFA policy of an account type",
		Long: `Set what a login by a person of an account type must prove. Only the settings given
change; a type without a policy starts from the defaults (MFA optional, any factor, no
re-check, no remembered devices).`,
		Example: `  idp policy set-type admin --mfa required --phishing-resistant --max-age 8h
  idp policy set-type staff --mfa required --remember-device 720h`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pf.check(cmd); err != nil {
				return err
			}
			return a.withStore(cmd.Context(), migrated, func(ctx context.Context, store storage.Storage) error {
				typ := strings.ToLower(strings.TrimSpace(args[0]))
				var base storage.MFAPolicy
				if cur, err := store.GetTypePolicy(ctx, typ); err == nil {
					base = *cur
				} else if !errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("load policy of account type %s: %w", typ, err)
				}
				stored, err := a.newAdmin(store).SetTypePolicy(ctx, cliActor, typ, pf.apply(cmd, base))
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, typePolicyJSON{Type: typ, Policy: admin.ToPolicyView(*stored)})
				}
				fmt.Fprintf(a.stdout, "MFA policy of account type %s is now:\n", typ)
				printPolicy(a.stdout, *stored)
				return nil
			})
		},
	}
	pf.add(cmd)
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// clientPolicyJSON is a client's policy as printed by `policy list --json`.
type clientPolicyJSON struct {
	ClientID string     `json:"client_id"`
	Name     string     `json:"name"`
	Policy   policyJSON `json:"policy"`
}

func newPolicyListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the MFA policies of every account type and client",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				byType, err := store.ListTypePolicies(ctx)
				if err != nil {
					return fmt.Errorf("list account-type policies: %w", err)
				}
				clients, err := store.ListClients(ctx)
				if err != nil {
					return fmt.Errorf("list clients: %w", err)
				}
				types := make([]string, 0, len(byType))
				for t := range byType {
					types = append(types, t)
				}
				sort.Strings(types)
				if asJSON {
					out := struct {
						AccountTypes []typePolicyJSON   `json:"account_types"`
						Clients      []clientPolicyJSON `json:"clients"`
					}{AccountTypes: []typePolicyJSON{}, Clients: []clientPolicyJSON{}}
					for _, t := range types {
						out.AccountTypes = append(out.AccountTypes, typePolicyJSON{Type: t, Policy: admin.ToPolicyView(byType[t])})
					}
					for _, c := range clients {
						out.Clients = append(out.Clients, clientPolicyJSON{ClientID: c.ID, Name: c.Name, Policy: admin.ToPolicyView(c.Policy)})
					}
					return writeJSON(a.stdout, out)
				}
				tw := newTable(a.stdout)
				fmt.Fprintln(tw, "ACCOUNT TYPE\tMFA\tFACTORS\tPHISHING-RESISTANT\tMAX-AGE\tREMEMBER-DEVICE")
				for _, t := range types {
					fmt.Fprintf(tw, "%s\t%s\n", t, policyRow(byType[t]))
				}
				if len(types) == 0 {
					fmt.Fprintln(tw, "(none: every account type uses the defaults)")
				}
				fmt.Fprintln(tw)
				fmt.Fprintln(tw, "CLIENT\tMFA\tFACTORS\tPHISHING-RESISTANT\tMAX-AGE\tREMEMBER-DEVICE")
				for _, c := range clients {
					fmt.Fprintf(tw, "%s (%s)\t%s\n", c.Name, c.ID, policyRow(c.Policy))
				}
				return tw.Flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
