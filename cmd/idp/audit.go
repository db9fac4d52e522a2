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

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
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
	ChainKey  string    `json:"chain_key,omitempty"`
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

Every event is chained to the one before it by a keyed hash (HMAC under a key derived
from the encryption key), so editing, deleting or inserting a row is detected by "idp
audit verify"; signed checkpoints ("idp audit checkpoint", exported with "idp audit
checkpoints export") anchor the chain outside the database. "idp audit export" writes the events as JSON Lines
for a SIEM, and "idp audit prune" applies a retention period.`,
	}, newAuditListCmd(a), newAuditVerifyCmd(a), newAuditCheckpointCmd(a), newAuditCheckpointsCmd(a),
		newAuditExportCmd(a), newAuditPruneCmd(a))
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
							PrevHash: e.PrevHash, Hash: e.Hash, ChainKey: e.ChainKey,
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
	var (
		asJSON      bool
		checkpoints string
	)
	cmd := &cobra.Command{
		Use:   "verify [--checkpoints FILE]",
		Short: "Check the audit trail's keyed hash chain and its signed checkpoints",
		Long: `Recompute the hash chain of the audit trail, oldest event first, check every signed
checkpoint against it, and report whether it is intact.

Every event stores the hash of the event before it and its own hash: an HMAC-SHA256 over
its fields under the audit chain key, which is derived from the encryption key and never
stored (so this command needs IDP_ENCRYPTION_KEY, and IDP_ENCRYPTION_KEYS_OLD for events
keyed before a rotation). An edited row no longer matches its hash; a deleted or inserted
row breaks the link to its neighbour; and without the key nobody can recompute the chain.
Events written before the chain was keyed carry a plain SHA-256 and are accepted only up
to the audit.chain_keyed marker; an unkeyed event after it is reported as a downgrade.

Events removed by "idp audit prune" are expected: the chain is checked from the oldest
retained event, whose predecessor's hash the prune recorded in an audit.retention event.
Events written before the chain existed carry no hash and are counted but not checked.

Each signed checkpoint (see "idp audit checkpoint") must carry a valid signature of one
of the provider's signing keys, and the chain must still hold the event it names with
the hash it signed. --checkpoints FILE checks an exported copy ("idp audit checkpoints
export") as well: a history rewritten in the database, checkpoints included, even by
someone holding the keys, does not match the copy kept outside.

Exits 0 and prints "audit chain intact: N events" when everything verifies; exits 1
naming the first problem otherwise.`,
		Example: `  idp audit verify
  idp audit verify --checkpoints /backup/audit-checkpoints.jsonl --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fileLines []audit.CheckpointLine
			if checkpoints != "" {
				var err error
				if fileLines, err = readCheckpointLines(checkpoints); err != nil {
					return usageError{err}
				}
			}
			sealer, err := a.sealer(false)
			if err != nil {
				return fmt.Errorf("the audit chain is keyed with a key derived from the encryption key: %w", err)
			}
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				res, err := audit.VerifyChain(ctx, store, audit.ChainKeysOf(sealer))
				if err != nil {
					return err
				}
				signing, err := store.ListSigningKeys(ctx)
				if err != nil {
					return fmt.Errorf("list signing keys: %w", err)
				}
				stored, err := audit.StoredCheckpoints(ctx, store)
				if err != nil {
					return err
				}
				audit.VerifyCheckpoints(&res, "database", stored, signing)
				if checkpoints != "" {
					audit.VerifyCheckpoints(&res, checkpoints, fileLines, signing)
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
					if res.Keyed > 0 {
						fmt.Fprintf(w, "  %d keyed events from event %d (keys %s)\n", res.Keyed, res.KeyedFrom, strings.Join(res.ChainKeys, ", "))
					}
					if n := res.Checked - res.Keyed; n > 0 {
						fmt.Fprintf(w, "  %d older events predate the keyed chain: checked with the unkeyed hash\n", n)
					}
					if res.Anchor != "" {
						fmt.Fprintf(w, "  starts after an event removed by retention, hash %s\n", res.Anchor)
					}
					if res.Unchained > 0 {
						fmt.Fprintf(w, "  %d older events predate the hash chain and were not checked\n", res.Unchained)
					}
					for _, c := range res.Checkpoints {
						fmt.Fprintf(w, "  checkpoints (%s): %d match the chain, %d of pruned events", c.Source, c.Checked, c.Pruned)
						if c.NewestEventID > 0 {
							fmt.Fprintf(w, "; the newest covers event %d, signed %s", c.NewestEventID, c.NewestAt.Format(time.RFC3339))
						}
						fmt.Fprintln(w)
						if c.SignatureUnchecked > 0 {
							fmt.Fprintf(w, "  %d checkpoints (%s) are signed by keys no longer in the database: signature not checked\n",
								c.SignatureUnchecked, c.Source)
						}
					}
				}
				if !res.Intact {
					return fmt.Errorf("audit chain broken at event %d (%d events verified): %s: %s",
						res.BrokenID, res.Checked, res.Problem, res.Reason)
				}
				if !res.AnchorRecorded {
					fmt.Fprintf(a.stderr, "Warning: the chain starts after hash %s, which no audit.retention event records: "+
						"events before event %d were removed without \"idp audit prune\"\n", res.Anchor, res.FirstID)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&checkpoints, "checkpoints", "", "also check the exported checkpoints in this JSON Lines file")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// readCheckpointLines reads a JSON Lines file of checkpoints (as exported).
func readCheckpointLines(path string) ([]audit.CheckpointLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoints: %w", err)
	}
	defer f.Close()
	var out []audit.CheckpointLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l audit.CheckpointLine
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.JWS == "" {
			return nil, fmt.Errorf("--checkpoints %s line %d is not an exported checkpoint (want a JSON object with event_id, hash and jws)", path, n)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--checkpoints: %w", err)
	}
	return out, nil
}

// cliIssuer is the issuer a command names in what it signs: IDP_ISSUER, as the server.
func cliIssuer() string {
	if v := os.Getenv("IDP_ISSUER"); v != "" {
		return strings.TrimSuffix(v, "/")
	}
	return "http://localhost:8080"
}

func newAuditCheckpointCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of the audit chain's newest event now",
		Long: `Sign the audit chain's newest event (its id, hash and the number of events) with the
provider's signing key and store the checkpoint. The server does this on its own every
--audit-checkpoint-interval (5 minutes by default). Keep copies outside the database
("idp audit checkpoints export", or idp serve --audit-checkpoint-file): "idp audit verify
--checkpoints FILE" then detects a history rewritten after them.

On a trail whose newest event predates the keyed chain, it first appends the
audit.chain_keyed marker, which starts it. Needs IDP_ENCRYPTION_KEY; IDP_ISSUER names
the issuer in the checkpoint.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sealer, err := a.sealer(false)
			if err != nil {
				return err
			}
			return a.withStore(cmd.Context(), migrated, func(ctx context.Context, store storage.Storage) error {
				km := &keys.Manager{Store: store, Sealer: sealer}
				if err := km.Ensure(ctx); err != nil {
					return fmt.Errorf("signing keys: %w", err)
				}
				cp := &audit.Checkpointer{Store: store, Keys: km, Issuer: cliIssuer(), Logger: a.logger}
				line, err := cp.Checkpoint(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, line)
				}
				fmt.Fprintf(a.stdout, "Signed a checkpoint of audit event %d, hash %s.\n", line.EventID, line.Hash)
				return nil
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

func newAuditCheckpointsCmd(a *app) *cobra.Command {
	return asGroup(&cobra.Command{
		Use:   "checkpoints",
		Short: "Export the signed checkpoints of the audit chain",
	}, newAuditCheckpointsExportCmd(a))
}

func newAuditCheckpointsExportCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [--output FILE]",
		Short: "Write the signed audit checkpoints as JSON Lines",
		Long: `Write every signed checkpoint as JSON Lines, oldest first: one object per line with
event_id, hash, created_at, jws (the signed checkpoint) and jwk (the public key that
signed it, so the copy can be checked after the key has left the database).

Keep the file outside the database (another host, write-once storage): "idp audit verify
--checkpoints FILE" checks the chain against it. Checkpoints of events removed by
retention are no longer in the database; keep the older exports.`,
		Example: `  idp audit checkpoints export --output /backup/audit-checkpoints.jsonl`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), existing, func(ctx context.Context, store storage.Storage) error {
				lines, err := audit.StoredCheckpoints(ctx, store)
				if err != nil {
					return err
				}
				signing, err := store.ListSigningKeys(ctx)
				if err != nil {
					return fmt.Errorf("list signing keys: %w", err)
				}
				if err := audit.AttachSignerKeys(lines, signing); err != nil {
					return err
				}
				w := a.stdout
				var f *os.File
				if output != "" {
					f, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
					if err != nil {
						return fmt.Errorf("export audit checkpoints: %w", err)
					}
					defer f.Close()
					w = f
				}
				bw := bufio.NewWriter(w)
				enc := json.NewEncoder(bw)
				enc.SetEscapeHTML(false)
				for _, l := range lines {
					if err := enc.Encode(l); err != nil {
						return fmt.Errorf("export audit checkpoints: %w", err)
					}
				}
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("export audit checkpoints: %w", err)
				}
				if f != nil {
					if err := f.Close(); err != nil {
						return fmt.Errorf("export audit checkpoints: %w", err)
					}
					fmt.Fprintf(a.stdout, "Exported %d audit checkpoints to %s.\n", len(lines), output)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func newAuditExportCmd(a *app) *cobra.Command {
	var since, until, output string
	cmd := &cobra.Command{
		Use:   "export --since T [--until T] [--output FILE]",
		Short: "Export audit events as JSON Lines (for a SIEM)",
		Long: `Write the audit events at or after --since (and before --until, if given) as JSON Lines:
one JSON object per line, in chain order, with the keys id, time (RFC 3339, UTC, with
nanoseconds), type, user_id, client_id, ip, user_agent, result, reason, token_id,
family_id, session_id, factor_id (the ids the event concerns, "" when none), prev_hash,
hash and chain_key (the id of the audit chain key, "" for events written before the chain
was keyed). Every key is always present. Recomputing a keyed hash needs the audit chain
key, which only the provider (and "idp audit verify") derives from the encryption key.

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
					if err := enc.Encode(admin.NewAuditLine(e)); err != nil {
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
