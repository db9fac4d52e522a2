package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/storage"
)

// auditEventJSON is an audit event as printed by `audit list --json`.
type auditEventJSON struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Result    string    `json:"result"`
	UserID    string    `json:"user_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit trail",
		Long:  "Read the audit trail: sign-ins, token issuance and every administrative change.",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(newAuditListCmd(a))
	return cmd
}

func newAuditListCmd(a *app) *cobra.Command {
	var (
		user, client, typ, since string
		limit                    int
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events",
		Long: `List audit events, oldest first: the newest --limit events matching the filters.

--since takes an RFC 3339 time (2025-01-31T12:00:00Z) or a duration meaning that long
ago (90m, 24h).`,
		Example: `  idp audit list --since 24h
  idp audit list --user ada@example.com --type login.password --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			f := storage.AuditFilter{ClientID: client, Type: typ, Limit: limit}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			ctx := cmd.Context()
			store, err := a.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer store.Close()
			if user != "" {
				f.UserID = user
				if strings.Contains(user, "@") {
					u, err := a.newAdmin(store, nil).FindUser(ctx, user)
					if err != nil {
						return err
					}
					f.UserID = u.ID
				}
			}
			events, err := store.ListAudit(ctx, f)
			if err != nil {
				return fmt.Errorf("list audit events: %w", err)
			}
			if asJSON {
				out := make([]auditEventJSON, 0, len(events))
				for _, e := range events {
					out = append(out, auditEventJSON{
						ID: e.ID, Time: e.Time.UTC(), Type: e.Type, Result: e.Result, UserID: e.UserID,
						ClientID: e.ClientID, IP: e.IP, UserAgent: e.UserAgent, Reason: e.Reason,
					})
				}
				return writeJSON(a.stdout, out)
			}
			emails := map[string]string{}
			if users, err := store.ListUsers(ctx); err == nil {
				for _, u := range users {
					emails[u.ID] = u.Email
				}
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "TIME\tTYPE\tRESULT\tUSER\tCLIENT\tIP\tREASON")
			for _, e := range events {
				who := e.UserID
				if email, ok := emails[who]; ok {
					who = email
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.Result,
					dash(who), dash(e.ClientID), dash(e.IP), e.Reason)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&user, "user", "", "only events of this user (id or e-mail)")
	fl.StringVar(&client, "client", "", "only events of this client id")
	fl.StringVar(&typ, "type", "", "only events of this type, e.g. login.password or admin.user.create")
	fl.StringVar(&since, "since", "", "only events at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	fl.IntVar(&limit, "limit", 100, "show at most the newest N events; 0 for all")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// parseSince parses an RFC 3339 time or a duration meaning that long before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("invalid --since %q: use an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (24h)", s)
	}
	return now.Add(-d), nil
}

// dash shows an empty table cell as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
