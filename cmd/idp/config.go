package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/backchannel"
	"github.com/openidp/idp/idp/keys"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/backends"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// installDefaultLogger makes the command's logger the process-wide slog default too, for
// libraries that log through it (zitadel/oidc). main sets it; tests leave it off so that
// they never change process-wide state.
var installDefaultLogger bool

// cliActor is the actor recorded in audit events of changes made with this command.
const cliActor = "cli"

// Environment variables read by every command.
const (
	envEncryptionKey     = "IDP_ENCRYPTION_KEY"
	envEncryptionKeysOld = "IDP_ENCRYPTION_KEYS_OLD"
)

// devKeyFile is the name, inside the data directory, of the development encryption key.
const devKeyFile = "encryption.key"

// envFlags lists the flags that fall back to an environment variable when not given on
// the command line (the flag wins). A command without the flag ignores the variable.
var envFlags = []struct{ flag, env string }{
	{"database", "IDP_DATABASE"},
	{"data-dir", "IDP_DATA_DIR"},
	{"log-level", "IDP_LOG_LEVEL"},
	{"log-format", "IDP_LOG_FORMAT"},
	{"dev", "IDP_DEV"},
	{"addr", "IDP_ADDR"},
	{"metrics-addr", "IDP_METRICS_ADDR"},
	{"issuer", "IDP_ISSUER"},
	{"display-name", "IDP_DISPLAY_NAME"},
	{"session-lifetime", "IDP_SESSION_LIFETIME"},
	{"session-idle", "IDP_SESSION_IDLE"},
	{"key-retention", "IDP_KEY_RETENTION"},
	{"key-publish-delay", "IDP_KEY_PUBLISH_DELAY"},
	{"jwks-max-age", "IDP_JWKS_MAX_AGE"},
	{"discovery-max-age", "IDP_DISCOVERY_MAX_AGE"},
	{"max-sessions", "IDP_MAX_SESSIONS"},
	{"admin-console", "IDP_ADMIN_CONSOLE"},
	{"admin-console-phishing-resistant", "IDP_ADMIN_CONSOLE_PHISHING_RESISTANT"},
	{"admin-console-max-age", "IDP_ADMIN_CONSOLE_MAX_AGE"},
	{"audit-retention", "IDP_AUDIT_RETENTION"},
	{"audit-checkpoint-interval", "IDP_AUDIT_CHECKPOINT_INTERVAL"},
	{"audit-checkpoint-file", "IDP_AUDIT_CHECKPOINT_FILE"},
	{"refresh-reuse-grace", "IDP_REFRESH_REUSE_GRACE"},
	{"mfa-grace-logins", "IDP_MFA_GRACE_LOGINS"},
	{"mfa-grace-period", "IDP_MFA_GRACE_PERIOD"},
	{"trusted-proxies", "IDP_TRUSTED_PROXIES"},
	{"proxy-header", "IDP_PROXY_HEADER"},
	{"password-hash-memory", "IDP_PASSWORD_HASH_MEMORY"},
	{"timer-slack", "IDP_TIMER_SLACK"},
	{"login-attempts", "IDP_LOGIN_ATTEMPTS"},
	{"login-attempts-per-ip", "IDP_LOGIN_ATTEMPTS_PER_IP"},
	{"mfa-attempts", "IDP_MFA_ATTEMPTS"},
	{"mfa-max-failures", "IDP_MFA_MAX_FAILURES"},
	{"code-sends-per-destination", "IDP_CODE_SENDS_PER_DESTINATION"},
	{"code-sends-per-ip", "IDP_CODE_SENDS_PER_IP"},
}

// app is the state shared by every command: the injected streams and the global settings.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	database  string
	dataDir   string
	logLevel  string
	logFormat string

	logger *slog.Logger

	// backchannel announces sessions ended by admin commands to relying parties; run
	// waits for its deliveries before the process exits.
	backchannel *backchannel.Notifier

	// devKeyWarned is set once the development-key warning was printed: a command builds
	// the sealer more than once, and the warning is shown once per run.
	devKeyWarned bool
}

// usageError is an error in how the command was invoked; it is printed with the usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// usageArgs makes an argument validator's errors usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// asGroup makes cmd a command that only groups the subcommands subs (see groupRunE) and
// returns it.
func asGroup(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = groupRunE
	cmd.AddCommand(subs...)
	return cmd
}

// groupRunE is the RunE of a command that only groups subcommands: it prints the help,
// or fails with a usage error on an unknown subcommand.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// run executes the command line args and returns the process exit code: 0 on success,
// 2 on a usage error (printed with the usage), 1 on any other error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root, a := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetContext(ctx)
	cmd, err := root.ExecuteC()
	if a.backchannel != nil {
		a.backchannel.Wait()
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "\n%s", cmd.UsageString())
		return 2
	}
	return 1
}

// newRoot builds the command tree, reading from stdin and writing to stdout/stderr, and
// returns it with the shared settings it fills in.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) (*cobra.Command, *app) {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "idp",
		Short: "OpenID Connect identity provider",
		Long: `idp is an OpenID Connect identity provider.

Start it for development with "idp serve --dev": it creates a SQLite database and a
development encryption key in ./idp-data and prints demo credentials.

Settings common to every command come from flags or, when a flag is not given, from
IDP_* environment variables. The encryption key that protects signing keys at rest is
read only from the environment: IDP_ENCRYPTION_KEY (base64 of 32 bytes, generate one
with "openssl rand -base64 32"); older keys still needed to decrypt go in
IDP_ENCRYPTION_KEYS_OLD, comma-separated.`,
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRunE,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup(cmd) },
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.database, "database", "",
		"database: sqlite:PATH or a postgres:// URL (env IDP_DATABASE; default sqlite:<data-dir>/idp.db)")
	pf.StringVar(&a.dataDir, "data-dir", "./idp-data",
		"directory for the default SQLite database and development files (env IDP_DATA_DIR)")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error (env IDP_LOG_LEVEL)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json (env IDP_LOG_FORMAT)")

	root.AddCommand(
		newServeCmd(a),
		newMigrateCmd(a),
		newUsersCmd(a),
		newClientsCmd(a),
		newResourcesCmd(a),
		newKeysCmd(a),
		newAuditCmd(a),
		newPolicyCmd(a),
		newBenchCmd(a),
	)
	return root, a
}

// setup applies environment fallbacks to flags not given and builds the logger.
func (a *app) setup(cmd *cobra.Command) error {
	fs := cmd.Flags()
	for _, ef := range envFlags {
		f := fs.Lookup(ef.flag)
		if f == nil || f.Changed {
			continue
		}
		v, ok := os.LookupEnv(ef.env)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(ef.flag, v); err != nil {
			return fmt.Errorf("environment variable %s: %w", ef.env, err)
		}
	}

	var level slog.Level
	switch strings.ToLower(a.logLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return usageErrorf("invalid log level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(a.logFormat) {
	case "text":
		a.logger = slog.New(idp.LogHandler(slog.NewTextHandler(a.stderr, opts)))
	case "json":
		a.logger = slog.New(idp.LogHandler(slog.NewJSONHandler(a.stderr, opts)))
	default:
		return usageErrorf("invalid log format %q: use text or json", a.logFormat)
	}
	if installDefaultLogger {
		slog.SetDefault(a.logger)
	}
	return nil
}

// dsn returns the database to open, creating the data directory for the default one.
func (a *app) dsn() (string, error) {
	if a.database != "" {
		return a.database, nil
	}
	if err := os.MkdirAll(a.dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	return "sqlite:" + filepath.Join(a.dataDir, "idp.db"), nil
}

// onSQLite reports whether the database is SQLite (the default one is).
func (a *app) onSQLite() bool {
	return a.database == "" || strings.HasPrefix(a.database, "sqlite:")
}

// openStore opens the database and, unless mode is asFound, applies pending migrations.
// In mode existing it creates neither the database nor the data directory.
func (a *app) openStore(ctx context.Context, mode storeMode) (storage.Storage, error) {
	var dsn string
	var store storage.Storage
	var err error
	if mode == existing {
		dsn = a.database
		if dsn == "" {
			dsn = "sqlite:" + filepath.Join(a.dataDir, "idp.db")
		}
		store, err = backends.OpenExisting(ctx, dsn)
		if errors.Is(err, sqlite.ErrNoDatabase) {
			return nil, fmt.Errorf(`no database at %s: this command only reads one; check --database or --data-dir, or create it with "idp migrate"`, maskDSN(dsn))
		}
	} else {
		if dsn, err = a.dsn(); err != nil {
			return nil, err
		}
		store, err = backends.Open(ctx, dsn)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", maskDSN(dsn), err)
	}
	// With the encryption key at hand, the events this command appends are keyed. Without
	// it, appending after a keyed event fails (storage.ErrAuditKeyRequired).
	if sealer, err := a.sealer(false); err == nil {
		audit.KeyStore(store, sealer)
	}
	if mode != asFound {
		n, err := store.Migrate(ctx)
		if err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("migrate database: %w", err)
		}
		if n > 0 {
			a.logger.InfoContext(ctx, "database migrated", "applied", n)
		}
	}
	return store, nil
}

// storeMode is how withStore opens the database.
type storeMode int

const (
	migrated storeMode = iota // create it if missing and apply pending migrations: commands that change data
	asFound                   // create it if missing, leave the schema as found: the migrate command applies them itself
	existing                  // open only an existing database, then migrate: commands that only read
)

// withStore opens the database as mode says, runs fn with it and closes it.
func (a *app) withStore(ctx context.Context, mode storeMode, fn func(ctx context.Context, store storage.Storage) error) error {
	store, err := a.openStore(ctx, mode)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(ctx, store)
}

// withAdmin opens and migrates the database, runs fn with the operator actions over it
// (see newAdmin) and closes it.
func (a *app) withAdmin(ctx context.Context, fn func(ctx context.Context, adm *admin.Admin) error) error {
	return a.withStore(ctx, migrated, func(ctx context.Context, store storage.Storage) error {
		return fn(ctx, a.newAdmin(store))
	})
}

// withExistingAdmin is withAdmin for commands that only read: it never creates the
// database (see existing).
func (a *app) withExistingAdmin(ctx context.Context, fn func(ctx context.Context, adm *admin.Admin) error) error {
	return a.withStore(ctx, existing, func(ctx context.Context, store storage.Storage) error {
		return fn(ctx, a.newAdmin(store))
	})
}

// withSealedAdmin is withAdmin for the commands that handle the secrets kept at rest: it
// builds the sealer from the encryption key first (failing without the key, before the
// database is opened) and passes it to fn too.
func (a *app) withSealedAdmin(ctx context.Context, fn func(ctx context.Context, adm *admin.Admin, sealer *seal.Sealer) error) error {
	sealer, err := a.sealer(false)
	if err != nil {
		return err
	}
	return a.withAdmin(ctx, func(ctx context.Context, adm *admin.Admin) error {
		return fn(ctx, adm, sealer)
	})
}

// maskDSN hides the password of a postgres URL (in the user info or a password
// parameter) so the result can be printed and logged.
func maskDSN(dsn string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL hidden)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// newAdmin returns the operator actions over store, auditing through it. It has no key
// manager: a command that rotates the signing keys sets Keys.
func (a *app) newAdmin(store storage.Storage) *admin.Admin {
	auditor := &audit.Auditor{Store: store, Logger: a.logger}
	adm := &admin.Admin{Store: store, Audit: auditor}
	// With the encryption key at hand, sessions ended by a command are announced to
	// relying parties by back-channel logout, signed with the provider's keys, exactly as
	// the server would (IDP_ISSUER names the issuer; default http://localhost:8080).
	if sealer, err := a.sealer(false); err == nil {
		issuer := os.Getenv("IDP_ISSUER")
		if issuer == "" {
			issuer = "http://localhost:8080"
		}
		a.backchannel = &backchannel.Notifier{Store: store, Keys: &keys.Manager{Store: store, Sealer: sealer},
			Issuer: strings.TrimSuffix(issuer, "/"), Logger: a.logger, Audit: auditor}
		adm.EndSessions = a.backchannel.EndUserSessions
	}
	return adm
}

// errNoEncryptionKey explains how to provide the encryption key.
var errNoEncryptionKey = errors.New(`IDP_ENCRYPTION_KEY is not set.
The encryption key protects signing keys at rest. Generate one with

    openssl rand -base64 32

and export it as IDP_ENCRYPTION_KEY (keep it secret and back it up: without it the
stored signing keys cannot be decrypted). For local development only, run
"idp serve --dev", which creates a development key in the data directory`)

// sealer builds the Sealer from IDP_ENCRYPTION_KEY (and IDP_ENCRYPTION_KEYS_OLD). Without
// the variable it falls back to the development key file in the data directory: created
// when dev is set, used when it already exists, and an error otherwise.
func (a *app) sealer(dev bool) (*seal.Sealer, error) {
	var key []byte
	if v := strings.TrimSpace(os.Getenv(envEncryptionKey)); v != "" {
		k, err := seal.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envEncryptionKey, err)
		}
		key = k
	} else {
		path := filepath.Join(a.dataDir, devKeyFile)
		if !dev {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return nil, errNoEncryptionKey
			} else if err != nil {
				return nil, fmt.Errorf("development encryption key: %w", err)
			}
		}
		k, created, err := loadOrCreateDevKey(path)
		if err != nil {
			return nil, err
		}
		key = k
		a.warnDevKey(path, created)
	}
	var older [][]byte
	for i, s := range strings.Split(os.Getenv(envEncryptionKeysOld), ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		k, err := seal.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", envEncryptionKeysOld, i+1, err)
		}
		older = append(older, k)
	}
	s, err := seal.New(key, older...)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return s, nil
}

// loadOrCreateDevKey reads the development key at path, creating it (0600) if missing.
func loadOrCreateDevKey(path string) (key []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("create data directory: %w", err)
		}
		key = seal.NewKey()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another process created it first
			return loadOrCreateDevKey(path)
		}
		if err != nil {
			return nil, false, fmt.Errorf("create development encryption key: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("write development encryption key: %w", werr)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read development encryption key: %w", err)
	}
	key, err = seal.ParseKey(string(data))
	if err != nil {
		return nil, false, fmt.Errorf("development encryption key %s: %w", path, err)
	}
	return key, false, nil
}

// warnDevKey prints the loud development-key warning on stderr, once per run.
func (a *app) warnDevKey(path string, created bool) {
	if a.devKeyWarned {
		return
	}
	a.devKeyWarned = true
	verb := "Using"
	if created {
		verb = "Created"
	}
	bar := strings.Repeat("!", 78)
	fmt.Fprintf(a.stderr, `%[1]s
!!  WARNING: DEVELOPMENT ENCRYPTION KEY - FOR DEVELOPMENT ONLY
!!  %[2]s %[3]s because IDP_ENCRYPTION_KEY is not set.
!!  Never run production like this: generate a key with
!!      openssl rand -base64 32
!!  and set it in IDP_ENCRYPTION_KEY.
%[1]s
`, bar, verb, path)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// newTable returns a writer that aligns tab-separated columns; Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// orDash returns s, or dash when s is empty: how an empty value is shown.
func orDash(s, dash string) string {
	if s == "" {
		return dash
	}
	return s
}

// dash shows an empty table cell as "-".
func dash(s string) string { return orDash(s, "-") }

// addJSONFlag adds the --json flag to cmd.
func addJSONFlag(cmd *cobra.Command, dst *bool) {
	cmd.Flags().BoolVar(dst, "json", false, "print JSON instead of text")
}
