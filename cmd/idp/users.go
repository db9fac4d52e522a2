package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/storage"
)

// maxPasswordInput bounds how much of stdin is read as a password.
const maxPasswordInput = 4096

// userJSON is a user as printed by --json; never the password hash.
type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u *storage.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Name: u.Name, Disabled: u.Disabled, CreatedAt: u.CreatedAt.UTC()}
}

func newUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage users",
		Long:  "Create, list and disable the people who can sign in.",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(newUsersCreateCmd(a), newUsersListCmd(a), newUsersDisableCmd(a))
	return cmd
}

func newUsersCreateCmd(a *app) *cobra.Command {
	var (
		email, name   string
		passwordStdin bool
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "create --email EMAIL [--name NAME] --password-stdin",
		Short: "Create a user",
		Long: `Create a user who signs in with an e-mail address and a password.

The password is read from standard input (one trailing newline is removed), never from
a flag, so that it does not end up in the shell history or the process list.
--password-stdin is required to say so explicitly.`,
		Example: `  printf '%s\n' "$PASSWORD" | idp users create --email ada@example.com --name "Ada Lovelace" --password-stdin`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !passwordStdin {
				return usageErrorf("--password-stdin is required: pipe the password on standard input (passwords are never accepted as flags)")
			}
			if strings.TrimSpace(email) == "" {
				return usageErrorf("--email is required")
			}
			password, err := readPassword(a.stdin)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			store, err := a.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer store.Close()
			u, err := a.newAdmin(store, nil).CreateUser(ctx, cliActor, idp.NewUser{Email: email, Name: name, Password: password})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, toUserJSON(u))
			}
			_, err = fmt.Fprintf(a.stdout, "Created user %s (id %s).\n", u.Email, u.ID)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&email, "email", "", "e-mail address the user signs in with (required)")
	f.StringVar(&name, "name", "", "display name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
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
			ctx := cmd.Context()
			store, err := a.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer store.Close()
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
			fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tDISABLED\tCREATED")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", u.ID, u.Email, u.Name, u.Disabled, u.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
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
			ctx := cmd.Context()
			store, err := a.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer store.Close()
			admin := a.newAdmin(store, nil)
			u, err := admin.FindUser(ctx, args[0])
			if err != nil {
				return err
			}
			if err := admin.DisableUser(ctx, cliActor, u.ID); err != nil {
				return err
			}
			u.Disabled = true
			if asJSON {
				return writeJSON(a.stdout, toUserJSON(u))
			}
			_, err = fmt.Fprintf(a.stdout, "Disabled user %s (id %s): sessions ended, tokens revoked.\n", u.Email, u.ID)
			return err
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}
