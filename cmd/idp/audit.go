package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp/audit"
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
	TokenID   string    `json:"token_id,omitempty"`
	FamilyID  string    `json:"family_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	FactorID  string    `json:"factor_id,omitempty"`
	PrevHash  string    `json:"prev_hash,omitempty"`
	Hash      string    `json:"hash,omitempty"`
}

// auditIDs is the ids an event concerns, for the table of `audit list`: "-" when none.
func auditIDs(e storage.AuditEvent) string {
	var ids []string
	for _, f := range []struct{ k, v string }{{"token", e.TokenID}, {"family", e.FamilyID}, {"session", e.SessionID}, {"factor", e.FactorID}} {
		if f.v != "" {
			ids = append(ids, f.k+"="+f.v)
		}
	}
	return dash(strings.Join(ids, " "))
}

func newAuditCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "audit",
		Short: "Read, verify, export and prune the audit trail",
		Long: `Read the audit trail: sign-ins, token issuance and every administrative change.

Every event is hash-chained to the one before it, so editing, deleting or inserting a
row is detected by "idp audit verify". "idp audit export" writes the events as JSON Lines
for a SIEM, and "idp audit prune" applies a retention period.`,
	}, newAuditListCmd(a), newAuditVerifyCmd(a), newAuditExportCmd(a), newAuditPruneCmd(a))
}

func newAuditListCmd(a *app) *cobra.Command {
	var (
		user, client, typ, since string
		token                    string
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
			if typ != "" {
				known, ok := audit.KnownType(typ)
				if !ok {
					return usageErrorf("unknown event type %q; the event types are:\n  %s",
						typ, strings.Join(audit.EventTypes, "\n  "))
				}
				typ = known
			}
			f := storage.AuditFilter{ClientID: client, Type: typ, TokenID: token, Limit: limit}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				f.Since = t
			}
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				if user != "" {
					f.UserID = user
					if strings.Contains(user, "@") {
						u, err := a.newAdmin(store).FindUser(ctx, user)
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
							TokenID: e.TokenID, FamilyID: e.FamilyID, SessionID: e.SessionID, FactorID: e.FactorID,
							PrevHash: e.PrevHash, Hash: e.Hash,
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
				fmt.Fprintln(tw, "TIME\tTYPE\tRESULT\tUSER\tCLIENT\tIP\tIDS\tREASON")
				for _, e := range events {
					who := e.UserID
					if email, ok := emails[who]; ok {
						who = email
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.Result,
						dash(who), dash(e.ClientID), dash(e.IP), auditIDs(e), e.Reason)
				}
				return tw.Flush()
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&user, "user", "", "only events of this user (id or e-mail)")
	fl.StringVar(&client, "client", "", "only events of this client id")
	fl.StringVar(&token, "token", "", "only events of this token id (an access token's jti, a refresh token's id)")
	fl.StringVar(&typ, "type", "", "only events of this type, e.g. login.password or admin.user.create (enrol and enroll are both accepted)")
	fl.StringVar(&since, "since", "", "only events at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	fl.IntVar(&limit, "limit", 100, "show at most the newest N events; 0 for all")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// parseSince parses an RFC 3339 time or a duration meaning that long before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	return parseTimeFlag("--since", s, now)
}

// parseTimeFlag parses the value of flag: an RFC 3339 time or a duration meaning that
// long before now.
func parseTimeFlag(flag, s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("invalid %s %q: use an RFC 3339 time (2025-01-31T12:00:00Z) or a duration ago (24h)", flag, s)
	}
	return now.Add(-d), nil
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain",
		Long: `Recompute the hash chain of the audit trail, oldest event first, and report whether it
is intact.

Every event stores the hash of the event before it and its own hash over its fields. An
edited row no longer matches its hash; a deleted or inserted row breaks the link to its
neighbour. Events removed by "idp audit prune" are expected: the chain is checked from
the oldest retained event, whose predecessor's hash the prune recorded in an
audit.retention event. Events written before the chain existed (before the upgrade that
added it) carry no hash and are counted but not checked.

Exits 0 and prints "audit chain intact: N events" when every event verifies; exits 1
naming the first broken event otherwise. Keep the printed head hash (or an export) outside
the database: the chain cannot detect someone who rewrites it entirely.`,
		Example: `  idp audit verify
  idp audit verify --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				res, err := audit.VerifyChain(ctx, store)
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeJSON(a.stdout, res); err != nil {
						return err
					}
				} else if res.Intact {
					w := a.stdout
					fmt.Fprintf(w, "audit chain intact: %d events\n", res.Checked)
					if res.Checked > 0 {
						fmt.Fprintf(w, "  events %d to %d, head hash %s\n", res.FirstID, res.LastID, res.Head)
					}
					if res.Anchor != "" {
						fmt.Fprintf(w, "  starts after an event removed by retention, hash %s\n", res.Anchor)
					}
					if res.Unchained > 0 {
						fmt.Fprintf(w, "  %d older events predate the hash chain and were not checked\n", res.Unchained)
					}
				}
				if !res.Intact {
					return fmt.Errorf("audit chain broken at event %d (%d events before it verified): %s",
						res.BrokenID, res.Checked, res.Reason)
				}
				if !res.AnchorRecorded {
					fmt.Fprintf(a.stderr, "Warning: the chain starts after hash %s, which no audit.retention event records: "+
						"events before event %d were removed without \"idp audit prune\"\n", res.Anchor, res.FirstID)
				}
				return nil
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// auditLineJSON is one line of `audit export`: every field, always present, so that a
// SIEM can index the events and recompute their hashes.
type auditLineJSON struct {
	ID        int64  `json:"id"`
	Time      string `json:"time"` // RFC 3339 with nanoseconds, UTC
	Type      string `json:"type"`
	UserID    string `json:"user_id"`
	ClientID  string `json:"client_id"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Result    string `json:"result"`
	Reason    string `json:"reason"`
	TokenID   string `json:"token_id"`
	FamilyID  string `json:"family_id"`
	SessionID string `json:"session_id"`
	FactorID  string `json:"factor_id"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
}

func newAuditExportCmd(a *app) *cobra.Command {
	var since, until, output string
	cmd := &cobra.Command{
		Use:   "export --since T [--until T] [--output FILE]",
		Short: "Export audit events as JSON Lines (for a SIEM)",
		Long: `Write the audit events at or after --since (and before --until, if given) as JSON Lines:
one JSON object per line, in chain order, with the keys id, time (RFC 3339, UTC, with
nanoseconds), type, user_id, client_id, ip, user_agent, result, reason, token_id,
family_id, session_id, factor_id (the ids the event concerns, "" when none), prev_hash
and hash. Every key is always present.

--since and --until take an RFC 3339 time (2025-01-31T12:00:00Z) or a duration meaning
that long ago (24h). Consecutive exports with --until of one equal to --since of the next
neither miss nor repeat an event. The lines go to standard output, or to --output FILE
(created with mode 0600, replaced if it exists).`,
		Example: `  idp audit export --since 24h > audit.jsonl
  idp audit export --since 2025-01-01T00:00:00Z --until 2025-02-01T00:00:00Z --output january.jsonl`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since == "" {
				return usageErrorf("--since is required (use e.g. --since 24h, or --since 1970-01-01T00:00:00Z for everything)")
			}
			now := time.Now()
			from, err := parseTimeFlag("--since", since, now)
			if err != nil {
				return usageError{err}
			}
			var to time.Time
			if until != "" {
				if to, err = parseTimeFlag("--until", until, now); err != nil {
					return usageError{err}
				}
				if !to.After(from) {
					return usageErrorf("--until must be after --since")
				}
			}
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				events, err := store.ListAudit(ctx, storage.AuditFilter{Since: from})
				if err != nil {
					return fmt.Errorf("list audit events: %w", err)
				}
				w := a.stdout
				var f *os.File
				if output != "" {
					f, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
					if err != nil {
						return fmt.Errorf("export audit events: %w", err)
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriter(w)
				enc := json.NewEncoder(bw)
				enc.SetEscapeHTML(false)
				n := 0
				for _, e := range events {
					if !to.IsZero() && !e.Time.Before(to) {
						continue
					}
					if err := enc.Encode(auditLineJSON{
						ID: e.ID, Time: e.Time.UTC().Format(time.RFC3339Nano), Type: e.Type, UserID: e.UserID,
						ClientID: e.ClientID, IP: e.IP, UserAgent: e.UserAgent, Result: e.Result, Reason: e.Reason,
						TokenID: e.TokenID, FamilyID: e.FamilyID, SessionID: e.SessionID, FactorID: e.FactorID,
						PrevHash: e.PrevHash, Hash: e.Hash,
					}); err != nil {
						return fmt.Errorf("export audit events: %w", err)
					}
					n++
				}
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("export audit events: %w", err)
				}
				if f != nil {
					if err := f.Close(); err != nil {
						return fmt.Errorf("export audit events: %w", err)
					}
					fmt.Fprintf(a.stdout, "Exported %d audit events to %s.\n", n, output)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&since, "since", "", "export events at or after this time (RFC 3339) or this long ago (e.g. 24h) (required)")
	fl.StringVar(&until, "until", "", "export only events before this time (RFC 3339) or this long ago")
	fl.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func newAuditPruneCmd(a *app) *cobra.Command {
	var (
		olderThan time.Duration
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "prune --older-than DURATION",
		Short: "Delete audit events older than the retention period",
		Long: `Apply the audit retention period: delete the events older than --older-than (8760h is
one year), then record an audit.retention event with how many were removed and the hash
of the newest removed event. That hash is where "idp audit verify" finds the retained
chain starting, so the removal stays verifiable.

Export the events first ("idp audit export") if they must be kept elsewhere.`,
		Example: `  idp audit export --since 1970-01-01T00:00:00Z --until 8760h --output archive.jsonl
  idp audit prune --older-than 8760h`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("older-than") {
				return usageErrorf("--older-than is required, e.g. --older-than 8760h for one year")
			}
			if olderThan <= 0 {
				return usageErrorf("--older-than must be positive")
			}
			return a.withStore(cmd.Context(), migrated, func(ctx context.Context, store storage.Storage) error {
				now := time.Now()
				res, err := audit.Prune(ctx, store, cliActor, now.Add(-olderThan), now)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, res)
				}
				fmt.Fprintf(a.stdout, "Removed %d audit events older than %s.\n", res.Removed, res.Before.Format(time.RFC3339))
				if res.NewestRemovedHash != "" {
					fmt.Fprintf(a.stdout, "The retained chain starts after hash %s (recorded in audit event %d).\n",
						res.NewestRemovedHash, res.EventID)
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "delete events older than this (e.g. 8760h for one year) (required)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}
