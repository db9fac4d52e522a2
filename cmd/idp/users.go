package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// maxPasswordInput bounds how much of stdin is read as a password.
const maxPasswordInput = 4096

// userJSON is a user as printed by --json; never the password hash.
type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Type      string    `json:"type,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u *storage.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Type: u.Type, Groups: u.Groups, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC()}
}

func newUsersCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "users",
		Short: "Manage users",
		Long:  "Create, list and disable the people who can sign in, set their account type and groups, and reset their second factors.",
	}, newUsersCreateCmd(a), newUsersListCmd(a), newUsersDisableCmd(a),
		newUsersSetTypeCmd(a), newUsersSetGroupsCmd(a), newUsersMFACmd(a), newUsersSetPasswordCmd(a), newUsersEnrolmentLinkCmd(a))
}

func newUsersCreateCmd(a *app) *cobra.Command {
	var (
		email, name   string
		accountType   string
		groups        []string
		passwordStdin bool
		noPassword    bool
		enrolLink     bool
		issuer        string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "create --email EMAIL [--name NAME] [--type TYPE] [--groups G1,G2] (--password-stdin | --no-password [--enrolment-link])",
		Short: "Create a user",
		Long: `Create a user who signs in with an e-mail address and a password, or with passkeys only.

The password is read from standard input (one trailing newline is removed), never from
a flag, so that it does not end up in the shell history or the process list.
--password-stdin is required to say so explicitly.

--no-password creates a passkey-only account instead: it has no password and signs in
with a passkey. --enrolment-link then issues the one-time link (valid 24 hours) on
which the person registers their first passkey: it is e-mailed to them when SMTP is
configured (IDP_SMTP_HOST ...) and printed. The link is built on --issuer (env
IDP_ISSUER), the provider's public URL. "idp users enrolment-link" issues a new one.

--type sets the account type, whose MFA policy combines with each client's (see
"idp policy"); --groups the groups the user belongs to.`,
		Example: `  printf '%s\n' "$PASSWORD" | idp users create --email ada@example.com --name "Ada Lovelace" --password-stdin
  printf '%s\n' "$PASSWORD" | idp users create --email bob@example.com --type staff --groups ops,oncall --password-stdin
  idp users create --email cy@example.com --no-password --enrolment-link --issuer https://id.example.com`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case passwordStdin && noPassword:
				return usageErrorf("give either --password-stdin or --no-password, not both")
			case !passwordStdin && !noPassword:
				return usageErrorf("--password-stdin is required: pipe the password on standard input (passwords are never accepted as flags); or --no-password for a passkey-only account")
			case enrolLink && !noPassword:
				return usageErrorf("--enrolment-link goes with --no-password")
			case enrolLink && strings.TrimSpace(issuer) == "":
				return usageErrorf("--issuer (or IDP_ISSUER) is required with --enrolment-link: the link points at the provider")
			}
			if strings.TrimSpace(email) == "" {
				return usageErrorf("--email is required")
			}
			var password string
			if passwordStdin {
				var err error
				if password, err = readPassword(a.stdin); err != nil {
					return err
				}
			}
			mail, err := a.mailer()
			if err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				adm.Mail = mail
				u, err := adm.CreateUserOfType(ctx, cliActor, admin.NewUser{Email: email, Name: name, Password: password, NoPassword: noPassword}, accountType, groups)
				if err != nil {
					return err
				}
				var link *admin.EnrolmentResult
				if enrolLink {
					if link, err = adm.EnrolmentLink(ctx, cliActor, u.ID, issuer); err != nil {
						return fmt.Errorf("user %s created, but: %w", u.Email, err)
					}
				}
				if asJSON {
					out := struct {
						userJSON
						*enrolmentJSON
					}{toUserJSON(u), toEnrolmentJSON(link)}
					return writeJSON(a.stdout, out)
				}
				if _, err = fmt.Fprintf(a.stdout, "Created user %s (id %s).\n", u.Email, u.ID); err != nil {
					return err
				}
				return printEnrolmentLink(a.stdout, link)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&email, "email", "", "e-mail address the user signs in with (required)")
	f.StringVar(&name, "name", "", "display name")
	f.StringVar(&accountType, "type", "", "account type, e.g. staff or customer (default: the default type)")
	f.StringSliceVar(&groups, "groups", nil, "groups the user belongs to (comma-separated)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required, unless --no-password)")
	f.BoolVar(&noPassword, "no-password", false, "create a passkey-only account, without a password")
	f.BoolVar(&enrolLink, "enrolment-link", false, "with --no-password: issue the one-time link on which the person registers a passkey")
	f.StringVar(&issuer, "issuer", "", "public URL of the provider, for the enrolment link (env IDP_ISSUER)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// enrolmentJSON is an enrolment link as printed by --json.
type enrolmentJSON struct {
	EnrolmentLink          string    `json:"enrolment_link"`
	EnrolmentLinkExpiresAt time.Time `json:"enrolment_link_expires_at"`
	EnrolmentLinkMailed    bool      `json:"enrolment_link_mailed"`
}

func toEnrolmentJSON(res *admin.EnrolmentResult) *enrolmentJSON {
	if res == nil {
		return nil
	}
	return &enrolmentJSON{EnrolmentLink: res.Link, EnrolmentLinkExpiresAt: res.ExpiresAt.UTC(), EnrolmentLinkMailed: res.Mailed}
}

// printEnrolmentLink tells the operator about an enrolment link (nothing when nil).
func printEnrolmentLink(w io.Writer, res *admin.EnrolmentResult) error {
	if res == nil {
		return nil
	}
	if res.Mailed {
		if _, err := fmt.Fprintf(w, "Enrolment link e-mailed to %s.\n", res.Email); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "\nEnrolment link (one use, valid until %s):\n\n  %s\n\n", res.ExpiresAt.UTC().Format(time.RFC3339), res.Link); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "On it the person registers a passkey. It will not be shown again.")
	return err
}

// mailer returns the e-mail sender configured by IDP_SMTP_* (nil when IDP_SMTP_HOST is
// not set), for e-mailing enrolment links.
func (a *app) mailer() (func(ctx context.Context, to, subject, body string) error, error) {
	if os.Getenv("IDP_SMTP_HOST") == "" {
		return nil, nil
	}
	cfg, err := mfaConfigFromEnv(a.logger, false)
	if err != nil {
		return nil, err
	}
	if cfg.EmailSender == nil {
		return nil, nil
	}
	return cfg.EmailSender.Send, nil
}

func newUsersEnrolmentLinkCmd(a *app) *cobra.Command {
	var (
		issuer string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "enrolment-link USER [--issuer URL]",
		Short: "Issue a one-time link on which a user registers a passkey",
		Long: `Issue a one-time link, valid 24 hours, on which the user with that id or e-mail
registers a passkey without a password: for passkey-only accounts ("idp users create
--no-password"). It is e-mailed to the person when SMTP is configured (IDP_SMTP_HOST
...) and printed; it is never stored or logged. The link is built on --issuer (env
IDP_ISSUER), the provider's public URL.`,
		Example: `  idp users enrolment-link cy@example.com --issuer https://id.example.com`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(issuer) == "" {
				return usageErrorf("--issuer (or IDP_ISSUER) is required: the link points at the provider")
			}
			mail, err := a.mailer()
			if err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				adm.Mail = mail
				res, err := adm.EnrolmentLink(ctx, cliActor, args[0], issuer)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, toEnrolmentJSON(res))
				}
				return printEnrolmentLink(a.stdout, res)
			})
		},
	}
	cmd.Flags().StringVar(&issuer, "issuer", "", "public URL of the provider, for the link (env IDP_ISSUER)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// readPassword reads a password from r, removing one trailing newline.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no standard input to read the password from")
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPasswordInput+1))
	if err != nil {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	if len(data) > maxPasswordInput {
		return "", fmt.Errorf("password on standard input is longer than %d bytes", maxPasswordInput)
	}
	s := strings.TrimSuffix(string(data), "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", errors.New("no password on standard input")
	}
	return s, nil
}

func newUsersListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Long:  "List every user, oldest first.",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				users, err := store.ListUsers(ctx)
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				if asJSON {
					out := make([]userJSON, 0, len(users))
					for i := range users {
						out = append(out, toUserJSON(&users[i]))
					}
					return writeJSON(a.stdout, out)
				}
				tw := newTable(a.stdout)
				fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tTYPE\tGROUPS\tDISABLED\tCREATED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", u.ID, u.Email, u.Name, dash(u.Type), dash(strings.Join(u.Groups, ",")),
						u.Disabled, u.CreatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newUsersDisableCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "disable USER",
		Short: "Disable a user and sign them out everywhere",
		Long: `Disable a user, given by id or e-mail: they can no longer sign in, every session
they have is ended and every token issued to them is revoked.`,
		Example: "  idp users disable ada@example.com",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				u, err := adm.FindUser(ctx, args[0])
				if err != nil {
					return err
				}
				if err := adm.DisableUser(ctx, cliActor, u.ID); err != nil {
					return err
				}
				u.Disabled = true
				if asJSON {
					return writeJSON(a.stdout, toUserJSON(u))
				}
				_, err = fmt.Fprintf(a.stdout, "Disabled user %s (id %s): sessions ended, tokens revoked.\n", u.Email, u.ID)
				return err
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newUsersSetTypeCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set-type USER TYPE",
		Short: "Set a user's account type",
		Long: `Set the account type of a user, given by id or e-mail. The type's MFA policy (see
"idp policy list") combines with each client's at the next login. An empty TYPE ('')
puts the user back in the default type.`,
		Example: "  idp users set-type ada@example.com staff",
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				u, err := adm.SetUserType(ctx, cliActor, args[0], args[1])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, toUserJSON(u))
				}
				_, err = fmt.Fprintf(a.stdout, "User %s now has account type %s.\n", u.Email, orDash(u.Type, "(default)"))
				return err
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newUsersSetGroupsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set-groups USER GROUP[,GROUP...]",
		Short: "Replace a user's groups",
		Long: `Replace the groups of a user, given by id or e-mail, with the comma-separated list.
An empty list ('') removes the user from every group.`,
		Example: "  idp users set-groups ada@example.com ops,oncall",
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				u, err := adm.SetUserGroups(ctx, cliActor, args[0], splitList(args[1]))
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, toUserJSON(u))
				}
				_, err = fmt.Fprintf(a.stdout, "User %s is now in groups: %s.\n", u.Email, orDash(strings.Join(u.Groups, ", "), "none"))
				return err
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newUsersMFACmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "mfa",
		Short: "Manage a user's second factors",
	}, newUsersMFAResetCmd(a))
}

// mfaResetJSON is what `users mfa reset --json` prints.
type mfaResetJSON struct {
	UserID                string     `json:"user_id"`
	Email                 string     `json:"email"`
	FactorsRemoved        int64      `json:"factors_removed"`
	SessionsEnded         int        `json:"sessions_ended"`
	DevicesRemoved        int64      `json:"devices_removed"`
	TokensRevoked         bool       `json:"tokens_revoked"`
	RecoveryLink          string     `json:"recovery_link,omitempty"`
	RecoveryLinkExpiresAt *time.Time `json:"recovery_link_expires_at,omitempty"`
}

func newUsersMFAResetCmd(a *app) *cobra.Command {
	var (
		reason, issuer            string
		keepFactors, recoveryLink bool
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "reset USER --reason REASON [--keep-factors] [--recovery-link]",
		Short: "Reset the second factors of a user who lost theirs",
		Long: `Reset the second factors of a user, given by id or e-mail: remove every factor and
backup code (unless --keep-factors), end every session, forget every remembered device,
revoke every token and lift an MFA lockout. --reason is mandatory and goes into the
audit trail.

--recovery-link also prints a one-time link, valid 24 hours, that signs the person in
with their password so they can enrol a new factor. Hand it to them over a channel you
trust; it is printed only this once and never stored or logged. The link is built on
--issuer (env IDP_ISSUER), the provider's public URL.

Relying parties the person's sessions signed in to are sent back-channel logout tokens,
issued as --issuer (default http://localhost:8080), when IDP_ENCRYPTION_KEY is set (the
tokens are signed with the provider's keys); without it sessions are only deleted.`,
		Example: `  idp users mfa reset ada@example.com --reason "lost phone, ticket 4711"
  idp users mfa reset ada@example.com --reason "ticket 4711" --recovery-link --issuer https://id.example.com`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf("--reason is required: say why, for the audit trail")
			}
			if recoveryLink && strings.TrimSpace(issuer) == "" {
				return usageErrorf("--issuer (or IDP_ISSUER) is required with --recovery-link: the link points at the provider")
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				if a.backchannel != nil && strings.TrimSpace(issuer) != "" {
					a.backchannel.Issuer = strings.TrimSuffix(strings.TrimSpace(issuer), "/")
				}
				res, err := adm.ResetMFA(ctx, cliActor, args[0], reason,
					admin.ResetOptions{RemoveFactors: !keepFactors, RecoveryLink: recoveryLink, Issuer: issuer})
				if err != nil {
					return err
				}
				if asJSON {
					out := mfaResetJSON{
						UserID: res.UserID, Email: res.Email, FactorsRemoved: res.FactorsRemoved, SessionsEnded: res.SessionsEnded,
						DevicesRemoved: res.DevicesRemoved, TokensRevoked: true, RecoveryLink: res.RecoveryLink,
					}
					if res.RecoveryLink != "" {
						t := res.RecoveryExpiresAt.UTC()
						out.RecoveryLinkExpiresAt = &t
					}
					return writeJSON(a.stdout, out)
				}
				w := a.stdout
				fmt.Fprintf(w, "Reset MFA of %s (id %s):\n", res.Email, res.UserID)
				fmt.Fprintf(w, "  factors removed:   %d\n", res.FactorsRemoved)
				fmt.Fprintf(w, "  sessions ended:    %d\n", res.SessionsEnded)
				fmt.Fprintf(w, "  devices forgotten: %d\n", res.DevicesRemoved)
				fmt.Fprintf(w, "  tokens revoked:    yes\n")
				if res.RecoveryLink == "" {
					return nil
				}
				fmt.Fprintf(w, "\nRecovery link (one use, valid until %s):\n\n  %s\n\n", res.RecoveryExpiresAt.UTC().Format(time.RFC3339), res.RecoveryLink)
				_, err = fmt.Fprintln(w, "Give it to the person now: it will not be shown again.")
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why the reset is done, for the audit trail (required)")
	f.BoolVar(&keepFactors, "keep-factors", false, "keep the enrolled factors (only end sessions, forget devices, revoke tokens)")
	f.BoolVar(&recoveryLink, "recovery-link", false, "print a one-time recovery link valid 24 hours")
	f.StringVar(&issuer, "issuer", "", "public URL of the provider, for the recovery link (env IDP_ISSUER)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newUsersSetPasswordCmd(a *app) *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "set-password USER --password-stdin",
		Short: "Replace a user's password (ends their sessions, forgets their devices)",
		Long: `Replace the password of the user with that id or e-mail, read from standard input.
Every session of the person ends (relying parties get back-channel logout tokens when
IDP_ENCRYPTION_KEY is set) and every remembered device is forgotten, since whoever knew
the old password may hold them.`,
		Example: `  printf '%s' 'new long passphrase' | idp users set-password ada@example.com --password-stdin`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwordStdin {
				return usageErrorf("--password-stdin is required: passwords are never taken as flags")
			}
			password, err := readPassword(a.stdin)
			if err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *admin.Admin) error {
				if err := adm.SetPassword(ctx, cliActor, args[0], password); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.stdout, "Password replaced; sessions ended and remembered devices forgotten.")
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
	return cmd
}
