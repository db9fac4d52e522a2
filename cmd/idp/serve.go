package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/cache"
)

// demoFileName is the file, inside the data directory, that keeps the dev-mode demo seed.
const demoFileName = "demo.json"

// shutdownTimeout bounds how long in-flight requests may take to finish on shutdown.
const shutdownTimeout = 15 * time.Second

type serveOptions struct {
	dev         bool
	addr        string
	metricsAddr string // "": /metrics on addr; "off": nowhere; else its own listener
	// The admin console at /admin.
	console         bool
	consolePhish    bool
	consoleMaxAge   time.Duration
	issuer          string
	displayName     string
	sessionLifetime time.Duration
	sessionIdle     time.Duration
	keyRetention    time.Duration
	keyPublishDelay time.Duration
	jwksMaxAge      time.Duration
	discoveryMaxAge time.Duration
	maxSessions     int
	auditRetention  time.Duration
	// checkpointEvery and checkpointFile configure the signed audit checkpoints.
	checkpointEvery time.Duration
	checkpointFile  string
	refreshGrace    time.Duration
	graceLogins     int
	gracePeriod     time.Duration
	trustedProxies  proxiesValue // reverse proxies whose proxyHeader is believed
	proxyHeader     string
	hashMemory      byteSize // memory budget of concurrent password hashes
	limits          guessLimits
	// timerSlack is the most timer slack serve's threads sleep with (Linux; 0 leaves it
	// as inherited), on SQLite, or on any database when timerSlackGiven (the flag or its
	// variable was set). See timerslack_linux.go.
	timerSlack      time.Duration
	timerSlackGiven bool
}

// reexecAllowed lets serve execute the program again to set its timer slack: true only
// in main, never when a test runs the commands in its own process.
var reexecAllowed bool

// guessLimits are the guessing and message limits an operator may tune
// (docs/security.md explains each and its default).
type guessLimits struct {
	loginAttempts, loginPerIP, mfaAttempts, mfaMaxFailures, sendsPerDestination, sendsPerAddress int
}

// validate refuses limits that are not positive, and an MFA ceiling above NIST SP
// 800-63B's 100.
func (l guessLimits) validate() error {
	for name, v := range map[string]int{
		"--login-attempts": l.loginAttempts, "--login-attempts-per-ip": l.loginPerIP, "--mfa-attempts": l.mfaAttempts,
		"--mfa-max-failures": l.mfaMaxFailures, "--code-sends-per-destination": l.sendsPerDestination, "--code-sends-per-ip": l.sendsPerAddress,
	} {
		if v < 1 {
			return fmt.Errorf("%s must be at least 1, not %d", name, v)
		}
	}
	if l.mfaMaxFailures > 100 {
		return fmt.Errorf("--mfa-max-failures must be at most 100 (NIST SP 800-63B), not %d", l.mfaMaxFailures)
	}
	return nil
}

// apply copies the limits into cfg; idp.New fills what stays zero with its defaults.
func (l guessLimits) apply(cfg *idp.Config) {
	cfg.LoginLimits.PerAccount, cfg.LoginLimits.PerIP = l.loginAttempts, l.loginPerIP
	cfg.MFA.Limits.LockAfter, cfg.MFA.Limits.MaxFailures = l.mfaAttempts, l.mfaMaxFailures
	cfg.MFA.SendLimits = idp.SendLimits{
		PerDestinationHour: l.sendsPerDestination, PerDestinationDay: 2 * l.sendsPerDestination,
		PerAddressHour: l.sendsPerAddress, PerAddressDay: 3 * l.sendsPerAddress,
	}
}

func newServeCmd(a *app) *cobra.Command {
	o := serveOptions{hashMemory: idp.DefaultPasswordHashMemory}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the identity provider",
		Long: `Run the identity provider's HTTP server.

serve opens the database, applies pending migrations, makes sure signing keys exist and
serves the OpenID Connect endpoints until it receives SIGINT or SIGTERM, then finishes
in-flight requests (for at most 15s) and exits.

With --dev (development only), a missing IDP_ENCRYPTION_KEY is replaced by a key file in
the data directory, http issuers are accepted on any host, and an empty database is
seeded with a demo user and a demo client, whose credentials are printed at start-up.`,
		Example: `  idp serve --dev
  IDP_ENCRYPTION_KEY=... idp serve --issuer https://id.example.com --database postgres://idp@db/idp`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("issuer") && cmd.Flags().Changed("addr") {
				o.issuer = issuerForAddr(o.addr, o.issuer)
			}
			o.timerSlackGiven = cmd.Flags().Changed("timer-slack")
			return a.serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dev, "dev", false, "development mode: dev encryption key, demo user and client (env IDP_DEV)")
	f.StringVar(&o.addr, "addr", ":8080", "address to listen on (env IDP_ADDR)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "",
		"serve Prometheus /metrics on this address instead of --addr; \"off\" serves none (env IDP_METRICS_ADDR)")
	f.StringVar(&o.issuer, "issuer", "http://localhost:8080",
		"public base URL of the provider (env IDP_ISSUER; when only --addr is given, http://localhost:<its port>)")
	f.StringVar(&o.displayName, "display-name", "",
		"name people see: authenticator-app label, e-mail subjects, SMS texts, page titles (env IDP_DISPLAY_NAME; default the issuer's host)")
	f.DurationVar(&o.sessionLifetime, "session-lifetime", 24*time.Hour, "absolute lifetime of a sign-in session (env IDP_SESSION_LIFETIME)")
	f.DurationVar(&o.sessionIdle, "session-idle", 2*time.Hour, "a session unused this long ends (env IDP_SESSION_IDLE)")
	f.DurationVar(&o.auditRetention, "audit-retention", 0, "delete audit events older than this, once a day, e.g. 8760h; 0 keeps everything (env IDP_AUDIT_RETENTION)")
	f.DurationVar(&o.checkpointEvery, "audit-checkpoint-interval", 5*time.Minute, "sign a checkpoint of the audit chain's head this often (when it moved); 0 turns it off (env IDP_AUDIT_CHECKPOINT_INTERVAL)")
	f.StringVar(&o.checkpointFile, "audit-checkpoint-file", "", "also append each signed audit checkpoint to this file as a JSON line (\"-\" for standard output), to keep copies outside the database (env IDP_AUDIT_CHECKPOINT_FILE)")
	f.BoolVar(&o.console, "admin-console", true, "serve the admin console at /admin, for accounts of type admin with a second factor; --admin-console=false switches it off (env IDP_ADMIN_CONSOLE)")
	f.BoolVar(&o.consolePhish, "admin-console-phishing-resistant", false, "the admin console requires a security key or passkey (WebAuthn) as second factor (env IDP_ADMIN_CONSOLE_PHISHING_RESISTANT)")
	f.DurationVar(&o.consoleMaxAge, "admin-console-max-age", idp.DefaultConsoleMaxAge, "the admin console asks for the second factor again when the session's check is older than this (env IDP_ADMIN_CONSOLE_MAX_AGE)")
	f.DurationVar(&o.refreshGrace, "refresh-reuse-grace", idp.DefaultRefreshReuseGrace,
		"how long the same client may retry a refresh token it just rotated and get the same successor instead of a family revocation; 0 = off (env IDP_REFRESH_REUSE_GRACE)")
	f.IntVar(&o.maxSessions, "max-sessions", 5, "most SSO sessions a person may have at once; the oldest ends (env IDP_MAX_SESSIONS)")
	f.IntVar(&o.graceLogins, "mfa-grace-logins", 0, "logins allowed without a second factor that policy requires, before enrolment is forced; 0 = none (env IDP_MFA_GRACE_LOGINS)")
	f.DurationVar(&o.gracePeriod, "mfa-grace-period", 0, "time allowed without a required second factor, from the first such login; 0 = none (env IDP_MFA_GRACE_PERIOD)")
	f.DurationVar(&o.timerSlack, "timer-slack", time.Microsecond,
		"Linux: the most a sleeping thread of the server may wake late (its timer slack; the kernel's default is 50µs); set on SQLite, and on PostgreSQL only when given; 0 leaves it as inherited (env IDP_TIMER_SLACK)")
	f.Var(&o.hashMemory, "password-hash-memory",
		"memory for password hashes running at once (19MiB each; more wait briefly, then get 503); also sets the Go memory limit to this plus 64MiB unless GOMEMLIMIT is set (env IDP_PASSWORD_HASH_MEMORY)")
	f.Var(&o.trustedProxies, "trusted-proxies",
		"reverse proxies (comma-separated CIDRs or addresses) whose --proxy-header gives the client address; from any other peer it is ignored (env IDP_TRUSTED_PROXIES)")
	f.StringVar(&o.proxyHeader, "proxy-header", idp.HeaderXForwardedFor,
		"header the trusted proxies write the client address into: X-Forwarded-For or Forwarded (RFC 7239); the other is ignored (env IDP_PROXY_HEADER)")
	f.IntVar(&o.limits.loginAttempts, "login-attempts", 5,
		"wrong passwords for one account from one address (or one known browser) before it must wait 15m, doubling (env IDP_LOGIN_ATTEMPTS)")
	f.IntVar(&o.limits.loginPerIP, "login-attempts-per-ip", 50, "wrong passwords per 15m from one address, any accounts (env IDP_LOGIN_ATTEMPTS_PER_IP)")
	f.IntVar(&o.limits.mfaAttempts, "mfa-attempts", 5,
		"wrong second-factor answers for one account from one address (or one known browser) before it must wait 1m, doubling up to 1h (env IDP_MFA_ATTEMPTS)")
	f.IntVar(&o.limits.mfaMaxFailures, "mfa-max-failures", 100,
		"consecutive wrong second-factor answers, from anywhere but a known browser, that lock the account's second factors until an administrator resets them; at most 100 (env IDP_MFA_MAX_FAILURES)")
	f.IntVar(&o.limits.sendsPerDestination, "code-sends-per-destination", 5,
		"e-mail/SMS codes per hour to one address or number (twice that per day) (env IDP_CODE_SENDS_PER_DESTINATION)")
	f.IntVar(&o.limits.sendsPerAddress, "code-sends-per-ip", 10,
		"e-mail/SMS codes per hour requested from one client address (three times that per day) (env IDP_CODE_SENDS_PER_IP)")
	f.DurationVar(&o.keyRetention, "key-retention", keys.DefaultRetention,
		"how long a replaced signing key stays published after it stops signing; at least the longest token lifetime (env IDP_KEY_RETENTION)")
	f.DurationVar(&o.keyPublishDelay, "key-publish-delay", keys.DefaultPublishDelay,
		"how long a key rotated in by this process is published before it signs; at least --jwks-max-age (env IDP_KEY_PUBLISH_DELAY)")
	f.DurationVar(&o.jwksMaxAge, "jwks-max-age", idp.DefaultJWKSMaxAge,
		"Cache-Control max-age of the published key set (/keys) (env IDP_JWKS_MAX_AGE)")
	f.DurationVar(&o.discoveryMaxAge, "discovery-max-age", idp.DefaultDiscoveryMaxAge,
		"Cache-Control max-age of the discovery document (env IDP_DISCOVERY_MAX_AGE)")
	cmd.Long += mfaEnvHelp()
	return cmd
}

// issuerForAddr returns the localhost issuer for the port of addr, or def when addr has
// no usable port.
func issuerForAddr(addr, def string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return def
	}
	return "http://localhost:" + port
}

func (a *app) serve(ctx context.Context, o serveOptions) error {
	if err := o.limits.validate(); err != nil {
		return err
	}
	if o.checkpointEvery < 0 {
		return usageErrorf("--audit-checkpoint-interval must not be negative")
	}
	if o.timerSlack < 0 {
		return usageErrorf("--timer-slack must not be negative")
	}
	// The slack pays on SQLite, whose flush blocks in this process; on PostgreSQL it only
	// costs the monitor thread's wake-ups (docs/performance.md), so there it is set only
	// when asked for.
	if o.timerSlack > 0 && reexecAllowed && (o.timerSlackGiven || a.onSQLite()) {
		// Before anything is opened: on success this executes the program again.
		if err := reexecWithTimerSlack(o.timerSlack); err != nil {
			a.logger.WarnContext(ctx, "timer slack not set: the runtime may hand the processor around on every database flush", "err", err)
		} else if runtime.GOOS == "linux" {
			a.logger.DebugContext(ctx, "timer slack", "max", o.timerSlack)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The protocol library opens OpenTelemetry spans on every request. openidp exports
	// no traces: a no-op provider makes those spans free, where the default global one
	// allocates each of them (6% of the bytes allocated per client_credentials token).
	otel.SetTracerProvider(noop.NewTracerProvider())

	sealer, err := a.sealer(o.dev)
	if err != nil {
		return err
	}
	mfaCfg, err := mfaConfigFromEnv(a.logger, o.dev)
	if err != nil {
		return err
	}
	mfaCfg.Grace = idp.GracePeriod{Logins: o.graceLogins, Period: o.gracePeriod}
	cfg := idp.Config{
		MFA:             mfaCfg,
		Issuer:          o.issuer,
		DisplayName:     o.displayName,
		Sealer:          sealer,
		Logger:          a.logger,
		DevMode:         o.dev,
		SessionLifetime: o.sessionLifetime,
		SessionIdle:     o.sessionIdle,
		KeyRetention:    o.keyRetention,
		KeyPublishDelay: o.keyPublishDelay,
		JWKSMaxAge:      o.jwksMaxAge,
		DiscoveryMaxAge: o.discoveryMaxAge,
		MaxSessions:     o.maxSessions,
		AuditRetention:  o.auditRetention,
		// 0 turns the window off; in the Config that is a negative value.
		RefreshReuseGrace: cmp.Or(o.refreshGrace, -1),
		TrustedProxies:    o.trustedProxies.prefixes,
		ProxyHeader:       o.proxyHeader,

		PasswordHashMemory: int64(o.hashMemory),

		NoMetricsEndpoint: o.metricsAddr != "",

		Console: idp.ConsoleConfig{Disabled: !o.console, PhishingResistant: o.consolePhish, MaxAge: o.consoleMaxAge},
	}
	o.limits.apply(&cfg)
	// Every setting is checked before the database is opened or migrated.
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("start provider: %w", err)
	}
	setMemoryLimit(a.logger, int64(o.hashMemory))

	dsn, err := a.dsn()
	if err != nil {
		return err
	}
	store, err := a.openStore(ctx, asFound)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			a.logger.Error("close database", "err", err)
		}
	}()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	a.logger.InfoContext(ctx, "database migrated", "applied", applied)

	var demo *admin.DemoSeed
	if o.dev {
		demo, err = a.devDemo(ctx, store, o.issuer)
		if err != nil {
			return err
		}
	}

	if demo != nil {
		cfg.Demo = &demo.Client
	}
	// Clients, signing keys and account types' policies are served from memory,
	// dropped when any process changes them (storage/cache); the watcher stops before
	// the store closes.
	cached := cache.New(store, cache.Options{Logger: a.logger})
	cacheCtx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
	cacheDone := make(chan struct{})
	go func() {
		defer close(cacheDone)
		if err := cached.Run(cacheCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error("cache watcher", "err", err)
		}
	}()
	defer func() { stopCache(); <-cacheDone }()
	srv, err := idp.New(ctx, cached, cfg)
	if err != nil {
		return fmt.Errorf("start provider: %w", err)
	}

	ln, activated, err := listen(o.addr)
	if err != nil {
		return err
	}
	if activated {
		a.logger.InfoContext(ctx, "serving on the socket passed by socket activation; --addr is not used", "addr", ln.Addr().String())
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}

	if o.metricsAddr != "" && o.metricsAddr != "off" {
		mln, err := listenTCP(o.metricsAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s (metrics): %w", o.metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.Metrics().Handler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second,
			ErrorLog: slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn)}
		go func() {
			if err := ms.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("serve metrics", "err", err)
			}
		}()
		defer func() { _ = ms.Close() }()
		a.logger.InfoContext(ctx, "serving metrics", "addr", mln.Addr().String())
	}

	checkpointer := &audit.Checkpointer{Store: store, Keys: srv.Keys(), Issuer: o.issuer, Logger: a.logger}
	switch o.checkpointFile {
	case "":
	case "-":
		checkpointer.Hook = a.stdout
	default:
		f, err := os.OpenFile(o.checkpointFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("audit checkpoint file: %w", err)
		}
		defer f.Close()
		checkpointer.Hook = f
	}

	cleanupCtx, stopCleanup := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { srv.RunCleanup(cleanupCtx, time.Minute) })
	wg.Go(func() { checkpointer.Run(cleanupCtx, o.checkpointEvery) })
	defer func() { stopCleanup(); wg.Wait() }() // before the store closes

	a.printBanner(o, dsn, ln.Addr().String(), demo)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	a.logger.InfoContext(ctx, "listening", "addr", ln.Addr().String(), "issuer", o.issuer)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process
	a.logger.Info("shutting down", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	// Logout tokens still on their way to relying parties are delivered (each bounded).
	srv.Backchannel().Wait()
	// Password-reset links being mailed are sent (each bounded).
	srv.WaitPasswordResets()
	a.logger.Info("stopped")
	return nil
}

// printBanner prints where the provider runs and, in dev mode, how to try it.
func (a *app) printBanner(o serveOptions, dsn, addr string, demo *admin.DemoSeed) {
	issuer := strings.TrimRight(o.issuer, "/")
	w := a.stdout
	fmt.Fprintf(w, "OpenIDP identity provider is running\n")
	fmt.Fprintf(w, "  Issuer:     %s\n", issuer)
	fmt.Fprintf(w, "  Discovery:  %s/.well-known/openid-configuration\n", issuer)
	fmt.Fprintf(w, "  Database:   %s\n", maskDSN(dsn))
	fmt.Fprintf(w, "  Listening:  %s\n", addr)
	if !o.dev {
		return
	}
	fmt.Fprintf(w, "\nDevelopment mode: do not use in production.\n")
	if demo == nil {
		fmt.Fprintf(w, "  No demo client this time: the log above says why.\n")
		return
	}
	fmt.Fprintf(w, "  Demo user:      %s\n", demo.Email)
	fmt.Fprintf(w, "  Demo password:  %s\n", demo.Password)
	fmt.Fprintf(w, "  Demo client ID: %s\n", demo.Client.ClientID)
	fmt.Fprintf(w, "\n  Open %s/ and click Sign in.\n", issuer)
}

// demoFile is the dev-mode demo seed as kept in <data-dir>/demo.json.
//
// This file exists only in dev mode. It holds the demo user's password and the demo
// client's secret in plain text (mode 0600) so that later dev starts on the same, no
// longer empty, database print the same credentials and serve the same demo client.
type demoFile struct {
	Issuer       string `json:"issuer"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
}

// devDemo seeds the demo on an empty database and saves it to demo.json, or reloads the
// seed saved by an earlier dev start. It returns nil when no usable demo exists.
func (a *app) devDemo(ctx context.Context, store storage.Storage, issuer string) (*admin.DemoSeed, error) {
	path := filepath.Join(a.dataDir, demoFileName)
	users, err := store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	clients, err := store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	if len(users) == 0 && len(clients) == 0 {
		seed, err := a.newAdmin(store).SeedDemo(ctx, issuer)
		if err != nil {
			return nil, err
		}
		if err := writeDemoFile(path, issuer, seed); err != nil {
			return nil, err
		}
		a.logger.InfoContext(ctx, "seeded demo user and client", "email", seed.Email, "client_id", seed.Client.ClientID)
		return seed, nil
	}

	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		a.logger.InfoContext(ctx, "no demo: the database is not empty and has no saved demo", "file", path)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read demo seed: %w", err)
	}
	var df demoFile
	if err := json.Unmarshal(data, &df); err != nil {
		return nil, fmt.Errorf("read demo seed %s: %w", path, err)
	}
	c, err := store.GetClient(ctx, df.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		a.logger.WarnContext(ctx, "no demo: the saved demo client is not in this database", "file", path)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load demo client: %w", err)
	}
	if want := strings.TrimRight(issuer, "/") + "/demo/callback"; !slices.Contains(c.RedirectURIs, want) {
		a.logger.WarnContext(ctx, "no demo: the saved demo client was created for another issuer",
			"file", path, "issuer", df.Issuer)
		return nil, nil
	}
	return &admin.DemoSeed{
		Email:    df.Email,
		Password: df.Password,
		Client:   admin.DemoClient{ClientID: df.ClientID, ClientSecret: df.ClientSecret, RedirectURI: df.RedirectURI},
	}, nil
}

// writeDemoFile saves seed to path with mode 0600, replacing any earlier file.
func writeDemoFile(path, issuer string, seed *admin.DemoSeed) error {
	data, err := json.MarshalIndent(demoFile{
		Issuer:       issuer,
		Email:        seed.Email,
		Password:     seed.Password,
		ClientID:     seed.Client.ClientID,
		ClientSecret: seed.Client.ClientSecret,
		RedirectURI:  seed.Client.RedirectURI,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode demo seed: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".demo-*.json") // created 0600
	if err != nil {
		return fmt.Errorf("save demo seed: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("save demo seed: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save demo seed: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save demo seed: %w", err)
	}
	return nil
}
