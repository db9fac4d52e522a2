package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// Advisory-lock keys of this package. Any constant works as long as nothing else in the
// database uses it; these spell "idp-migr" and "idp-keys" in ASCII.
const (
	migrateLockKey int64 = 0x6964702d6d696772
	signingKeyLock int32 = 0x6b657973
)

// Store is a storage.Storage backed by a PostgreSQL database.
//
// Statements are prepared once per connection: pgx's default query mode,
// QueryExecModeCacheStatement, prepares each query text on first use on a connection
// and keeps it in a per-connection cache (512 statements by default), so the hot
// queries are parsed and planned once per connection, not once per call.
type Store struct {
	pool *pgxpool.Pool
	// auditKey keys the audit chain (SetAuditChainKey); nil appends unkeyed.
	auditKey atomic.Pointer[storage.AuditChainKey]
	// listenConfig configures the dedicated connection of WatchChanges.
	listenConfig *pgx.ConnConfig
	// w is the group-commit writer: token issues and audit appends of concurrent
	// requests share its transactions (writer.go).
	w *groupcommit.Writer[writeJob]
	// lastHead is the audit chain head (hash, chain key id) the writer's last pipelined
	// batch committed, which the next batch assumes (runPipelined); nil when unknown.
	lastHead atomic.Pointer[[2]string]
}

var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.PoolStatser   = (*Store)(nil)
	_ storage.ChangeWatcher = (*Store)(nil)
)

// Open connects to the PostgreSQL database at url (a postgres:// URL or a key=value
// connection string) and checks that it answers. It does not migrate: call Migrate.
func Open(ctx context.Context, url string) (*Store, error) {
	return open(ctx, url, nil)
}

// open is Open, with configure (when not nil) applied to the pool's configuration
// (tests: a tracer), not to the change listener's connection.
func open(ctx context.Context, url string, configure func(*pgxpool.Config)) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included: keep it out.
		return nil, errors.New("postgres: invalid connection URL")
	}
	listenConfig := cfg.ConnConfig.Copy()
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: create pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, listenConfig: listenConfig}
	s.w = groupcommit.New(s.runBatch, writerOptions)
	return s, nil
}

// PoolStats reports the pgx connection pool: Open is its total connections, InUse the
// acquired ones.
func (s *Store) PoolStats() storage.PoolStats {
	st := s.pool.Stat()
	return storage.PoolStats{Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), MaxOpen: int(st.MaxConns())}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.w.Close()
	s.pool.Close()
	return nil
}

// Migrate applies the embedded migrations not yet recorded in schema_migrations, all in
// one transaction holding a transaction-scoped advisory lock, so a second process
// migrating at the same time waits and then finds nothing left to apply.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	all, err := migrations.Load("postgres")
	if err != nil {
		return 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	applied := 0
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		applied = 0 // in case BeginFunc is ever retried
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		rows, _ := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done := make(map[int]bool, len(versions))
		for _, v := range versions {
			done[v] = true
		}
		for _, m := range all {
			if done[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`,
				m.Version, m.Name); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, err)
			}
			applied++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: migrate: %w", err)
	}
	return applied, nil
}

// DeleteExpired removes auth requests, code grants, sessions, access and refresh tokens
// that expired before now, rate-limit counters whose window closed by now, retired
// signing keys past their expiry, MFA challenges, remembered devices and password-reset links that expired
// before now, attempt counters whose window and back-off are over, and the session
// clients of sessions that no longer exist. It returns the number of rows removed,
// session clients not counted. Attempt counters without a window, the old failure
// counters and server secrets never expire.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	stmts := []struct{ what, sql string }{
		{"auth requests", `DELETE FROM auth_requests WHERE expires_at < $1`},
		{"code grants", `DELETE FROM code_grants WHERE expires_at < $1`},
		{"sessions", `DELETE FROM sessions WHERE expires_at < $1`},
		{"access tokens", `DELETE FROM access_tokens WHERE expires_at < $1`},
		{"refresh tokens", `DELETE FROM refresh_tokens WHERE expires_at < $1`},
		{"rate limits", `DELETE FROM rate_limits
			WHERE window_start + (window_ns / 1000) * interval '1 microsecond' <= $1`},
		{"signing keys", `DELETE FROM signing_keys WHERE expires_at < $1`},
		{"challenges", `DELETE FROM challenges WHERE expires_at < $1`},
		{"devices", `DELETE FROM devices WHERE expires_at < $1`},
		{"password resets", `DELETE FROM password_resets WHERE expires_at < $1`},
		// Kept a day past expiry, so that a late poll is still told expired_token.
		{"device authorizations", `DELETE FROM device_authorizations WHERE expires_at < $1::timestamptz - interval '1 day'`},
		{"used assertions", `DELETE FROM used_assertions WHERE expires_at < $1`},
		{"pushed requests", `DELETE FROM pushed_requests WHERE expires_at < $1`},
	}
	var total int64
	// Attempt counters keep their instants as unix nanoseconds.
	tag, err := s.pool.Exec(ctx, `DELETE FROM attempt_counters WHERE window_end < $1 AND blocked_until < $1`, now.UnixNano())
	if err != nil {
		return total, fmt.Errorf("postgres: delete expired attempt counters: %w", err)
	}
	total += tag.RowsAffected()
	for _, st := range stmts {
		tag, err := s.pool.Exec(ctx, st.sql, ts(now))
		if err != nil {
			return total, fmt.Errorf("postgres: delete expired %s: %w", st.what, err)
		}
		total += tag.RowsAffected()
	}
	// Runs after the sessions went (each statement above commits on its own), so it also
	// catches a pair that a concurrent AddSessionClient added to an expiring session.
	if _, err := s.pool.Exec(ctx, `DELETE FROM session_clients sc
		WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = sc.session_id)`); err != nil {
		return total, fmt.Errorf("postgres: delete expired session clients: %w", err)
	}
	return total, nil
}

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// wrapErr maps a pgx error onto the storage sentinels and adds what was being done.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, storage.ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("postgres: %s: %w (%s)", op, storage.ErrAlreadyExists, pgErr.ConstraintName)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// rowQueryer runs a single-row query: the pool, a transaction.
type rowQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// conflictOrNotFound is the error of operation op when a conditional write matched no
// row: storage.ErrConflict when the row exists (existsQuery is a SELECT EXISTS (...) for
// it), else storage.ErrNotFound.
func conflictOrNotFound(ctx context.Context, q rowQueryer, op, existsQuery string, args ...any) error {
	var exists bool
	if err := q.QueryRow(ctx, existsQuery, args...).Scan(&exists); err != nil {
		return wrapErr(op, err)
	}
	if !exists {
		return notFound(op)
	}
	return fmt.Errorf("postgres: %s: %w", op, storage.ErrConflict)
}

// notFound is the error of an update or delete that matched no row.
func notFound(op string) error {
	return fmt.Errorf("postgres: %s: %w", op, storage.ErrNotFound)
}

// ts is a time.Time query argument for a timestamptz column: the zero time is NULL.
type ts time.Time

// TimestamptzValue implements pgtype.TimestamptzValuer.
func (t ts) TimestamptzValue() (pgtype.Timestamptz, error) {
	if time.Time(t).IsZero() {
		return pgtype.Timestamptz{}, nil
	}
	return pgtype.Timestamptz{Time: time.Time(t), Valid: true}, nil
}

// tsDest is a scan destination for a timestamptz column: NULL scans as the zero time,
// anything else as a UTC time.
type tsDest struct{ t *time.Time }

// scanTS returns a scan destination that stores into t.
func scanTS(t *time.Time) tsDest { return tsDest{t} }

// ScanTimestamptz implements pgtype.TimestamptzScanner.
func (d tsDest) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*d.t = time.Time{}
		return nil
	}
	if v.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("infinite timestamp not supported")
	}
	*d.t = v.Time.UTC()
	return nil
}
