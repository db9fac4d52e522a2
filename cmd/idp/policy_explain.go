package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/consent"
	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// addPolicyExplain adds `idp policy explain` to the policy command.
func addPolicyExplain(cmd *cobra.Command, a *app) {
	var (
		user, client      string
		acr, essentialACR []string
		maxAge            time.Duration
		maxAgeSet         bool
		promptLogin       bool
		asJSON            bool
		dev               bool
	)
	explain := &cobra.Command{
		Use:   "explain --user U --client C",
		Short: "Show what a login by a person to a client must prove, and why",
		Long: `Evaluate the client's policy, the person's account-type policy and the given request
parameters exactly as a login would, and print the resulting requirement, the rule behind
each part of it, and what a fresh login will ask for. Nothing is changed.

The factor kinds the server offers are taken from the same IDP_* settings as serve
(SMTP for e-mail codes, IDP_SMS_PROVIDER for SMS; TOTP, backup codes and WebAuthn always).
With --dev (or IDP_DEV), as for "idp serve --dev": e-mail and SMS codes are offered,
written to the log, unless SMTP or an SMS provider is configured.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || client == "" {
				return usageErrorf("--user and --client are required")
			}
			return a.withExistingAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				params := consent.AuthParams{ACRValues: acr, EssentialACR: essentialACR, PromptLogin: promptLogin}
				if maxAgeSet = cmd.Flags().Changed("max-age"); maxAgeSet {
					secs := int64(maxAge / time.Second)
					params.MaxAge = &secs
				}
				ex, err := adm.Explain(ctx, user, client, params, availableKinds(a, dev))
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, ex)
				}
				r := ex.Requirement
				w := a.stdout
				fmt.Fprintf(w, "Login by %s (account type %s) to %s\n", ex.User, orDash(ex.AccountType, "(default)"), ex.Client)
				if ex.Unsatisfiable != "" {
					fmt.Fprintf(w, "  cannot be satisfied: %s\n", ex.Unsatisfiable)
				} else {
					fmt.Fprintf(w, "  second factor:        %s\n", r.Mode)
					fmt.Fprintf(w, "  factors that count:   %s\n", orDash(storage.JoinFactorKinds(r.Kinds, ", "), "any"))
					fmt.Fprintf(w, "  phishing-resistant:   %t\n", r.PhishingResistant)
					fmt.Fprintf(w, "  re-check factor after: %s\n", durOrDash(r.MFAMaxAge))
					if r.HasPasswordMaxAge {
						fmt.Fprintf(w, "  password max age:     %s\n", r.PasswordMaxAge)
					}
					fmt.Fprintf(w, "  fresh login (prompt): %t\n", r.Fresh)
					fmt.Fprintf(w, "  remember device:      %s\n", durOrDash(r.RememberDevice))
					fmt.Fprintf(w, "  acr reached:          %s\n", r.ACR)
					fmt.Fprintf(w, "  enrolled factors:     %s\n", orDash(storage.JoinFactorKinds(ex.Enrolled, ", "), "none"))
				}
				fmt.Fprintf(w, "Outcome: %s\nWhy:\n", ex.Outcome)
				for _, reason := range r.Reasons {
					fmt.Fprintf(w, "  - %s\n", reason)
				}
				return nil
			})
		},
	}
	f := explain.Flags()
	f.StringVar(&user, "user", "", "the person: user id or e-mail")
	f.StringVar(&client, "client", "", "the client id")
	f.StringSliceVar(&acr, "acr", nil, "acr_values the request would carry (comma-separated or repeated)")
	f.StringSliceVar(&essentialACR, "essential-acr", nil, "acr values of an essential acr claim (claims parameter)")
	f.DurationVar(&maxAge, "max-age", 0, "max_age the request would carry")
	f.BoolVar(&promptLogin, "prompt-login", false, "the request carries prompt=login")
	f.BoolVar(&dev, "dev", false, "evaluate as a server started with --dev, whose e-mail and SMS codes go to the log (env IDP_DEV)")
	addJSONFlag(explain, &asJSON)
	cmd.AddCommand(explain)
}

// availableKinds are the factor kinds a server started with the same settings (and dev
// mode when dev is set) offers.
func availableKinds(a *app, dev bool) []storage.FactorKind {
	issuer := os.Getenv("IDP_ISSUER")
	if issuer == "" {
		issuer = "http://localhost:8080"
	}
	cfg, err := mfaConfigFromEnv(a.logger, dev)
	if err != nil {
		// Invalid sender settings: a server would not start; explain without senders.
		a.logger.Warn("second-factor settings", "err", err)
		cfg.SMSSender, cfg.EmailSender = nil, nil
	}
	return idp.OfferedKinds(issuer, cfg)
}

func durOrDash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.String()
}
