package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/openidp/idp/migrations"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// maxReaders bounds the pool of read-only connections. In WAL mode readers run in
// parallel with each other and with the one writer.
const maxReaders = 8

// busyTimeout is how long a statement waits for the write lock before SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a storage.Storage backed by one SQLite database file. It is safe for
// concurrent use by many goroutines and by several processes sharing the file.
//
// It holds two pools on the file: db, one connection that every write goes through
// (SQLite has one writer at a time anyway; one connection lets writers queue in Go
// instead of spinning on SQLITE_BUSY), and rdb, read-only connections (query_only) for
// the methods that only read. In WAL mode a reader sees every transaction committed
// before its statement began, so a read after a write returns sees the write; reads
// inside a write transaction stay on that transaction.
type Store struct {
	db  *sql.DB // the writer: one connection, transactions BEGIN IMMEDIATE
	rdb *sql.DB // the readers: read-only connections

	// auditKey keys the audit chain (SetAuditChainKey); nil appends unkeyed.
	auditKey atomic.Pointer[storage.AuditChainKey]

	// w is the group-commit writer: token issues and audit appends of concurrent
	// requests share its transactions (writer.go).
	w *groupcommit.Writer[writeJob]
	// walPath is the database's write-ahead log, which syncWAL flushes to disk.
	walPath string
	// flushes and flushNanos count syncWAL's flushes and the time spent in them
	// (storage.FlushCounter).
	flushes, flushNanos atomic.Int64
	// ckpt is the background checkpointer (checkpoint.go).
	ckpt *checkpointer
}

var (
	_ storage.Storage       = (*Store)(nil)
	_ storage.PoolStatser   = (*Store)(nil)
	_ storage.ChangeWatcher = (*Store)(nil)
)

// Open opens (creating if needed) the SQLite database at path, creating its parent
// directory if missing. It does not migrate: call Migrate before first use. path must
// name a file; ":memory:" is not supported because every pooled connection would see
// its own database.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, false)
}

// ErrNoDatabase is returned by OpenExisting when there is no database file at the path.
var ErrNoDatabase = errors.New("database does not exist")

// OpenExisting opens the SQLite database at path like Open, but only an existing file:
// it creates neither the file nor its directory, and fails with ErrNoDatabase when the
// file is missing. For commands that only read.
func OpenExisting(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, true)
}

func open(ctx context.Context, path string, existing bool) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	name := path
	if existing {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open sqlite: %s: %w", path, ErrNoDatabase)
		} else if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		// An SQLite URI with mode=rw never creates the file, even should it vanish
		// after the check above.
		name = "file:" + (&url.URL{Path: path}).EscapedPath()
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite: create directory: %w", err)
		}
	}
	q := url.Values{}
	if existing {
		q.Set("mode", "rw")
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(ON)")
	// NORMAL: in WAL mode a commit is written to the WAL before it returns (it survives a
	// crash of the process) and fsynced at the next checkpoint. The group-commit
	// writer's batches — every token and every audit event — are fsynced before they are
	// answered (syncWAL), so they survive a power loss too; that fsync also covers the
	// WAL frames written before it.
	q.Add("_pragma", "synchronous(NORMAL)")
	rq := cloneValues(q)
	q.Add("_pragma", "journal_mode(WAL)")
	// The writer's batches run each job in a savepoint, whose statement journal (the
	// pages' images before the savepoint) SQLite spills to a temporary file once it passes
	// 64 KiB: in memory it costs no write system calls in the serial writer. Only the
	// rollback of a savepoint reads it; the WAL alone makes a commit durable, so this
	// changes no durability.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Checkpoints (copying committed pages from the WAL into the database file, and
	// fsyncing it) run in the background (checkpointer), off the writer's path: a
	// checkpoint in a commit would hold up every request waiting on that batch. The
	// writer checkpoints by itself only past 20,000 pages (80 MiB with 4 KiB pages),
	// should the background checkpoints stop. A checkpoint changes no durability: it
	// only moves committed pages.
	cq := cloneValues(q)
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerAutoCheckpoint))
	// Write transactions take the write lock up front, so a transaction never has to
	// upgrade a read snapshot (which fails with SQLITE_BUSY instead of waiting).
	q.Set("_txlock", "immediate")
	db, err := sql.Open(driverName, name+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, walPath: path + "-wal"}
	// The writer's first connection creates the file and turns WAL on before any
	// reader opens it.
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// Readers: query_only refuses any write, so a method moved to rdb by mistake
	// fails loudly instead of writing around the writer.
	rq.Add("_pragma", "query_only(1)")
	rdb, err := sql.Open(driverName, name+"?"+rq.Encode())
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	rdb.SetMaxOpenConns(maxReaders)
	rdb.SetMaxIdleConns(maxReaders)
	s.rdb = rdb
	cdb, err := sql.Open(driverName, name+"?"+cq.Encode())
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	s.startCheckpointer(cdb)
	opt := writerOptions
	opt.Sync = s.syncWAL
	s.w = groupcommit.New(s.runBatch, opt)
	var one int
	if err := rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite: readers: %w", err)
	}
	return s, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Close stops the writer and the checkpointer and closes the database handles (and with
// them the statements their connections keep).
func (s *Store) Close() error {
	if s.w != nil {
		s.w.Close() // waits for the batches in flight, which use db
	}
	cerr := s.stopCheckpointer()
	var rerr error
	if s.rdb != nil {
		rerr = s.rdb.Close()
	}
	return errors.Join(s.db.Close(), rerr, cerr)
}

// PoolStats reports the database/sql connection pools, the writer's and the readers'
// together.
func (s *Store) PoolStats() storage.PoolStats {
	w, r := s.db.Stats(), s.rdb.Stats()
	return storage.PoolStats{
		Open: w.OpenConnections + r.OpenConnections, InUse: w.InUse + r.InUse,
		Idle: w.Idle + r.Idle, MaxOpen: w.MaxOpenConnections + r.MaxOpenConnections,
	}
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Migrate applies the embedded SQLite migrations not yet applied and returns how many
// it applied. The whole run happens in one BEGIN IMMEDIATE transaction, so a second
// process migrating at the same time waits for the first and then finds nothing to do.
func (s *Store) Migrate(ctx context.Context) (applied int, err error) {
	ms, err := migrations.Load("sqlite")
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	// database/sql cannot begin an IMMEDIATE transaction on its own terms, so the
	// transaction is driven by statements on this one connection.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("migrate: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// The context may be the reason we are here; roll back regardless.
			if _, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				// A broken connection must not return to the pool mid-transaction.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
	}()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("migrate: read applied versions: %w", err)
		}
		done[v] = true
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("migrate: read applied versions: %w", err)
	}

	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		if _, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.Version, m.Name, time.Now().UnixNano()); err != nil {
			return 0, fmt.Errorf("migrate: record %s: %w", m.Name, err)
		}
		applied++
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("migrate: commit: %w", err)
	}
	committed = true
	return applied, nil
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE, see Open), committing when fn
// returns nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUnique reports whether err is a violated UNIQUE or PRIMARY KEY constraint.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// wrap annotates err with op, mapping unique-constraint violations onto
// storage.ErrAlreadyExists and sql.ErrNoRows onto storage.ErrNotFound.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	case isUnique(err):
		return fmt.Errorf("%s: %w (%v)", op, storage.ErrAlreadyExists, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// rowQueryer runs a single-row query: *sql.DB, *sql.Tx.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conflictOrNotFound tells why a conditional write matched no row: storage.ErrConflict
// when the row exists (existsQuery is a SELECT EXISTS (...) for it), else
// storage.ErrNotFound.
func conflictOrNotFound(ctx context.Context, q rowQueryer, existsQuery string, args ...any) error {
	var exists bool
	if err := q.QueryRowContext(ctx, existsQuery, args...).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return storage.ErrConflict
	}
	return storage.ErrNotFound
}

// mustAffect returns storage.ErrNotFound when res changed no row.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}
