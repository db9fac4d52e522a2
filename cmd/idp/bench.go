package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/cmd/idp/internal/bench"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/storage"
)

// benchDefaultRedirectURI is the redirect URI of the seeded web client; the bench reads
// the code from the redirect and never follows it.
const benchDefaultRedirectURI = "https://bench.example.com/callback"

func newBenchCmd(a *app) *cobra.Command {
	var (
		issuer, label, metricsURL                 string
		scenarios                                 []string
		concurrency, requests, people, rounds     int
		duration                                  time.Duration
		seed, noSeed, forwardedFor                bool
		asJSON                                    bool
		credentialsFile, saveCredentials, jsonOut string
		creds                                     bench.Credentials
		username, password, introspectWith        string
		accessTokenFormat                         string
	)
	cmd := &cobra.Command{
		Use:   "bench --issuer URL [flags]",
		Short: "Measure an issuer under load",
		Long: `Drive an OpenID Connect issuer with concurrent workers and print, per scenario, the
operations per second, the median (p50) and 99th-percentile (p99) latency and the errors.

Scenarios, run in this order (--scenarios picks some):
  client_credentials  a token for the service client
  introspection       introspection of one token, by the client it was issued to
  refresh             refresh-token rotation, each worker following its own chain
  password            a full browser-like sign-in: /authorize, the password form with its
                      CSRF token, consent if asked, the code exchanged for tokens
  password_totp       the same with a TOTP code, each person used at most once per 30 s
                      step (no code is reused), so seed enough people for the rate
  sso                 /authorize on an existing session, and the code exchange

By default the bench seeds its own people and clients in openidp's database (--database
or --data-dir, and IDP_ENCRYPTION_KEY to seal the TOTP seeds, as for "idp serve"):
--people people with a password and as many more with TOTP as well. Against another
issuer, or to reuse a seed, give --no-seed and the credentials: --client-id and
--client-secret (client_credentials, introspection), --app-client-id,
--app-client-secret, --redirect-uri, --username and --password (sign-ins, refresh), or
--credentials FILE as written by --save-credentials. These are test credentials: they
appear in the process list.

--access-token-format sets the seeded clients' access tokens: jwt (the provider's
default: a signed JWT, one signature per token) or opaque (an encrypted reference, no
signature). The table's last column says which format each scenario was given, for any
issuer; compare two providers at the same format.

openidp allows 60 authorization requests a minute per address: start the server with
--trusted-proxies 127.0.0.1 and give --forwarded-for, and each sign-in claims its own
address of 198.18.0.0/15 (the range RFC 2544 sets aside for benchmarks).

When the server's /metrics has openidp_store_commits_total, the store commits per 1,000
operations are reported, and when it has process_cpu_seconds_total, the server's CPU
time per operation; otherwise n/a. On a shared machine the CPU per operation is the
steadier figure to compare two builds by. When it has openidp_store_flushes_total and
openidp_store_flush_seconds_total (SQLite), the flush column is the mean time the disk
took to flush a commit during the scenario (- when there were none): a slower disk,
not a slower build, shows there.

--rounds N runs the scenarios N times over (each in order, then again) and reports each
scenario's median round, with every round's operations per second (and CPU per
operation) below the table.
docs/performance.md gives the method.`,
		Example: `  idp bench --database sqlite:./idp-data/idp.db --issuer http://127.0.0.1:8080 --forwarded-for
  idp bench --issuer http://localhost:9998 --no-seed --scenarios client_credentials \
      --client-id sid1 --client-secret verysecret --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if issuer == "" {
				return usageErrorf("--issuer is required")
			}
			for _, s := range scenarios {
				if !slices.Contains(bench.Scenarios, s) {
					return usageErrorf("unknown scenario %q: use %s", s, strings.Join(bench.Scenarios, ", "))
				}
			}
			if concurrency < 1 || people < 1 || requests < 0 || duration <= 0 {
				return usageErrorf("--concurrency and --people must be at least 1, --duration positive and --requests not negative")
			}
			if introspectWith != bench.IntrospectService && introspectWith != bench.IntrospectApp {
				return usageErrorf("--introspect-with must be %s or %s", bench.IntrospectService, bench.IntrospectApp)
			}
			if accessTokenFormat != admin.AccessTokenJWT && accessTokenFormat != admin.AccessTokenOpaque {
				return usageErrorf("--access-token-format must be %s or %s", admin.AccessTokenJWT, admin.AccessTokenOpaque)
			}
			if noSeed {
				seed = false
			}
			if !seed && cmd.Flags().Changed("access-token-format") {
				return usageErrorf("--access-token-format sets the seeded clients' format: it needs seeding (no --no-seed)")
			}
			if credentialsFile != "" && seed {
				return usageErrorf("--credentials reuses credentials: give --no-seed as well")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()

			c := &creds
			switch {
			case seed:
				var err error
				if c, err = seedBench(ctx, a, issuer, people, creds.RedirectURI, accessTokenFormat); err != nil {
					return err
				}
			case credentialsFile != "":
				data, err := os.ReadFile(credentialsFile)
				if err != nil {
					return fmt.Errorf("read credentials: %w", err)
				}
				c = &bench.Credentials{}
				if err := json.Unmarshal(data, c); err != nil {
					return fmt.Errorf("read credentials %s: %w", credentialsFile, err)
				}
			default:
				if username != "" {
					c.People = []bench.Person{{Email: username, Password: password}}
				}
			}
			if cmd.Flags().Changed("introspect-with") || c.IntrospectWith == "" {
				c.IntrospectWith = introspectWith
			}
			if saveCredentials != "" {
				data, err := json.MarshalIndent(c, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(saveCredentials, append(data, '\n'), 0o600); err != nil {
					return fmt.Errorf("save credentials: %w", err)
				}
			}
			results, err := bench.Run(ctx, bench.Options{
				Issuer: issuer, Scenarios: scenarios, Concurrency: concurrency, Duration: duration,
				Requests: requests, Rounds: rounds, Credentials: c, MetricsURL: metricsURL, ForwardedFor: forwardedFor,
			})
			if err != nil {
				return err
			}
			rep := bench.Report{Issuer: issuer, Concurrency: concurrency, Label: label, Results: results,
				Ratios: bench.Ratios(results)}
			if jsonOut != "" {
				f, err := os.Create(jsonOut)
				if err != nil {
					return fmt.Errorf("write report: %w", err)
				}
				err = bench.WriteJSON(f, rep)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("write report: %w", err)
				}
			}
			if asJSON {
				return bench.WriteJSON(a.stdout, rep)
			}
			return bench.WriteText(a.stdout, rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "", "issuer URL to drive (env IDP_ISSUER)")
	f.StringSliceVar(&scenarios, "scenarios", nil, "scenarios to run, comma-separated (default all: "+strings.Join(bench.Scenarios, ",")+")")
	f.IntVar(&concurrency, "concurrency", 8, "concurrent workers, each with one request in flight")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long each scenario runs")
	f.IntVar(&requests, "requests", 0, "run each scenario for exactly this many operations instead of --duration")
	f.IntVar(&rounds, "rounds", 1, "run the scenarios this many times, one round after the other, and report each one's median round")
	f.IntVar(&people, "people", 1000, "people to seed with a password, and as many with TOTP as well")
	f.BoolVar(&seed, "seed", true, "seed people and clients in the database first")
	f.BoolVar(&noSeed, "no-seed", false, "seed nothing: use the credentials given")
	f.BoolVar(&forwardedFor, "forwarded-for", false, "send each sign-in from its own X-Forwarded-For address in 198.18.0.0/15")
	f.StringVar(&metricsURL, "metrics-url", "", `where to read openidp_store_commits_total and process_cpu_seconds_total (default <issuer>/metrics; "-" for nowhere)`)
	f.StringVar(&label, "label", "", `a line printed above the table, e.g. "SQLite, loaded machine"`)
	f.StringVar(&credentialsFile, "credentials", "", "read the credentials from this JSON file (see --save-credentials)")
	f.StringVar(&saveCredentials, "save-credentials", "", "write the credentials used (seeded or given) to this JSON file, mode 0600")
	f.StringVar(&creds.Service.ID, "client-id", "", "client_credentials client")
	f.StringVar(&creds.Service.Secret, "client-secret", "", "its secret")
	f.StringVar(&creds.Scope, "scope", "", "scope asked with client_credentials")
	f.StringVar(&creds.App.ID, "app-client-id", "", "web client of the sign-ins and refresh chains")
	f.StringVar(&creds.App.Secret, "app-client-secret", "", "its secret")
	f.StringVar(&creds.RedirectURI, "redirect-uri", benchDefaultRedirectURI, "its redirect URI (registered for the seeded client; never followed)")
	f.StringVar(&username, "username", "", "person who signs in (password, refresh, sso)")
	f.StringVar(&password, "password", "", "their password")
	f.StringVar(&introspectWith, "introspect-with", bench.IntrospectService,
		`who introspects, and so whose token: "service" (a client_credentials token) or "app" (a token from a sign-in)`)
	f.StringVar(&accessTokenFormat, "access-token-format", admin.AccessTokenJWT, "access tokens of the seeded clients: jwt or opaque")
	f.StringVar(&jsonOut, "json-out", "", "also write the report as JSON to this file")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// seedBench seeds the people and clients of a bench run in the database, through the
// operator actions as the other commands do, with clients of the access-token format
// tokenFormat, and returns their credentials.
func seedBench(ctx context.Context, a *app, issuer string, people int, redirectURI, tokenFormat string) (*bench.Credentials, error) {
	sealer, err := a.sealer(false)
	if err != nil {
		return nil, err
	}
	var creds *bench.Credentials
	err = a.withStore(ctx, migrated, func(ctx context.Context, store storage.Storage) error {
		s := &bench.Seeder{Admin: a.newAdmin(store), Factors: store, Sealer: sealer, Issuer: issuer, AccessTokenFormat: tokenFormat}
		start := time.Now()
		var err error
		if creds, err = s.Seed(ctx, people, redirectURI); err != nil {
			return err
		}
		a.logger.InfoContext(ctx, "bench seeded", "people", people, "with_totp", people, "took", time.Since(start).Round(time.Millisecond))
		return nil
	})
	return creds, err
}
