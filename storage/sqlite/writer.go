package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// writeJob is one job of the store's group-commit writer. It runs inside the batch's
// transaction; the audit events it appends are chained after *head, which it advances.
type writeJob func(ctx context.Context, tx *sql.Tx, head *chainHead) error

// writerOptions: at most 256 jobs a batch. A batch lingers by yielding the processor —
// it takes in the jobs of requests being worked on, and never waits on an idle
// processor — for at most 1ms. Its commit is made durable by syncWAL while the next
// batch already runs (the store sets Sync).
var writerOptions = groupcommit.Options{MaxBatch: 256, MaxWait: time.Millisecond, Yield: true}

var _ storage.CommitCounter = (*Store)(nil)

// Commits returns how many write transactions the store's writer has run.
func (s *Store) Commits() int64 { return s.w.Commits() }

// write runs job through the writer and waits until its batch has committed and is
// durable.
func (s *Store) write(ctx context.Context, job writeJob) error {
	return s.w.Do(ctx, job)
}

// writeCommitted runs job through the writer and waits until its batch has committed,
// not until it is flushed to the disk (groupcommit.DoCommitted): for the small writes
// of every sign-in (a rate-limit counter, an authorization request, its code's
// redemption, a session's client), which then share the batch's transaction instead of
// paying for one of their own. They are as durable as before (SQLite's NORMAL: they
// survive a crash of the process; the next flush makes them survive a power loss), and
// the tokens issued after them are flushed with them.
func (s *Store) writeCommitted(ctx context.Context, job writeJob) error {
	return s.w.DoCommitted(ctx, job)
}

// runBatch runs jobs in one write transaction (BEGIN IMMEDIATE: it holds the database
// write lock, so the audit chain head read once at its start stays the head). The jobs
// run one after the other, without savepoints: nearly every batch commits whole. When
// a job fails, that transaction is rolled back and the batch runs again with each job
// inside a savepoint, so that the failing job is rolled back alone and the others
// commit. Jobs are deterministic in what the database holds, so running one again is
// safe.
//
// The statements run on a context that cannot be cancelled. modernc's driver starts a
// goroutine for every statement run on a cancellable one, to interrupt it when the
// context ends: for a client_credentials token that was two goroutines, two progress
// handlers and a mutex per token. A batch needs no interruption: its transaction holds
// the write lock from BEGIN IMMEDIATE (a wait for the lock is bounded by busy_timeout),
// and its statements touch a few rows each.
func (s *Store) runBatch(ctx context.Context, jobs []writeJob) []error {
	ctx = context.WithoutCancel(ctx)
	errs := make([]error, len(jobs))
	var jobFailed bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		head, err := s.batchHead(ctx, tx)
		if err != nil {
			return err
		}
		for i, job := range jobs {
			if errs[i] = job(ctx, tx, &head); errs[i] != nil {
				jobFailed = true
				return errs[i]
			}
		}
		return nil
	})
	if err == nil || len(jobs) == 1 || !jobFailed {
		if err != nil {
			for i := range errs {
				errs[i] = err
			}
		}
		return errs
	}
	clear(errs)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		head, err := s.batchHead(ctx, tx)
		if err != nil {
			return err
		}
		for i, job := range jobs {
			if _, err := tx.ExecContext(ctx, savepointSQL); err != nil {
				return err
			}
			saved := head
			if errs[i] = job(ctx, tx, &head); errs[i] != nil {
				head = saved
				if _, err := tx.ExecContext(ctx, rollbackToSQL); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, releaseSQL); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// batchHead returns the audit chain head a batch starts from, keyed with the store's
// current chain key.
func (s *Store) batchHead(ctx context.Context, tx *sql.Tx) (chainHead, error) {
	head, err := auditHead(ctx, tx)
	if err != nil {
		return head, err
	}
	head.key = s.auditKey.Load()
	return head, nil
}

// syncWAL flushes the write-ahead log to the disk (fdatasync): every transaction
// committed before it began is then durable against a power loss, as
// synchronous=FULL would have made it. fsync flushes a file's data whichever descriptor
// wrote it, so a descriptor of its own serves; the log is opened anew each time, so a
// log SQLite recreated is the one flushed.
func (s *Store) syncWAL(context.Context) error {
	start := time.Now()
	err := datasyncPath(s.walPath)
	s.flushNanos.Add(int64(time.Since(start)))
	s.flushes.Add(1)
	if err != nil {
		return fmt.Errorf("flush the write-ahead log: %w", err)
	}
	return nil
}

var _ storage.FlushCounter = (*Store)(nil)

// Flushes returns how many times the write-ahead log was flushed (syncWAL), failed
// flushes included, and the time spent in them.
func (s *Store) Flushes() (int64, time.Duration) {
	return s.flushes.Load(), time.Duration(s.flushNanos.Load())
}

// chainHead is where a batch's next audit event links to: the newest event's hash and
// chain key id ("" when there is none), and the key that keys the batch's events (the
// store's audit chain key when the batch began; nil appends unkeyed, see
// storage.LinkAudit).
type chainHead struct {
	Hash, Key string
	key       *storage.AuditChainKey
}

// The statements every token issue runs (the writer's connection keeps them prepared,
// stmtcache.go).
const (
	auditHeadSQL   = `SELECT hash, chain_key FROM audit_events ORDER BY id DESC LIMIT 1`
	auditInsertSQL = `INSERT INTO audit_events (occurred_at, type, user_id,
		client_id, ip, user_agent, result, reason, prev_hash, hash, chain_key, token_id, family_id, session_id, factor_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	accessTokenInsertSQL  = `INSERT INTO access_tokens (` + accessTokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	refreshTokenInsertSQL = `INSERT INTO refresh_tokens (` + refreshTokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	refreshRotateSQL      = `UPDATE refresh_tokens SET rotated_at = ?, successor_id = ?, successor_sealed = ?
		WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL`
	refreshCurrentSQL = `SELECT EXISTS (SELECT 1 FROM refresh_tokens
		WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL)`
)

// A batch's savepoints, one per job (runBatch).
const (
	savepointSQL  = `SAVEPOINT job`
	rollbackToSQL = `ROLLBACK TO job`
	releaseSQL    = `RELEASE job`
)

// auditHead returns the newest audit event's hash and chain key id, "" when there is none.
func auditHead(ctx context.Context, tx *sql.Tx) (chainHead, error) {
	var head chainHead
	err := tx.QueryRowContext(ctx, auditHeadSQL).Scan(&head.Hash, &head.Key)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chainHead{}, err
	}
	return head, nil
}

// nullable is s, or NULL when s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// appendAuditTx inserts e after *head in tx, linked by storage.LinkAudit under head's
// key, sets e.ID, e.PrevHash, e.ChainKey and e.Hash, and advances *head. A zero e.Time
// is set to now first.
func appendAuditTx(ctx context.Context, tx *sql.Tx, head *chainHead, e *storage.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	linked := *e
	if err := storage.LinkAudit(head.key, head.Hash, head.Key, &linked); err != nil {
		return err
	}
	// The id is the row's rowid (INTEGER PRIMARY KEY): the insert's last_insert_rowid,
	// without RETURNING's result row.
	res, err := tx.ExecContext(ctx, auditInsertSQL,
		e.Time.UnixNano(), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason,
		linked.PrevHash, linked.Hash, linked.ChainKey, nullable(e.TokenID), nullable(e.FamilyID), nullable(e.SessionID), nullable(e.FactorID))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	head.Hash, head.Key = linked.Hash, linked.ChainKey
	return nil
}
