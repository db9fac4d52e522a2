package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// writeJob is one job of the store's group-commit writer. It runs inside the batch's
// transaction; the audit events it appends are chained after *head, which it advances.
type writeJob func(ctx context.Context, tx pgx.Tx, head *chainHead) error

// writerOptions bound a batch: at most 256 jobs, and a batch that already holds several
// jobs waits at most 1ms for more.
var writerOptions = groupcommit.Options{MaxBatch: 256, MaxWait: time.Millisecond}

var _ storage.CommitCounter = (*Store)(nil)

// Commits returns how many write transactions the store's writer has run.
func (s *Store) Commits() int64 { return s.w.Commits() }

// write runs job through the writer and waits until its batch has committed.
func (s *Store) write(ctx context.Context, job writeJob) error {
	return s.w.Do(ctx, job)
}

// runBatch runs jobs in one transaction. It takes the audit advisory lock (auditLockKey)
// and reads the chain head once for the whole batch — not once per request — so the
// processes of a cluster serialise on it once per batch. A failing job must not fail
// the others: the batch first runs without savepoints (two round trips fewer per job);
// if a job fails, that transaction is rolled back and the batch runs again with each job
// in a savepoint, so the failing job is rolled back alone and the others commit.
func (s *Store) runBatch(ctx context.Context, jobs []writeJob) []error {
	if len(jobs) > 1 {
		if errs, ok := s.runBatchTx(ctx, jobs, false); ok {
			return errs
		}
	}
	errs, _ := s.runBatchTx(ctx, jobs, true)
	return errs
}

// errJobFailed rolls back a batch run without savepoints in which a job failed.
var errJobFailed = errors.New("a job of the batch failed")

// runBatchTx runs jobs in one transaction, each in a savepoint when savepoints is set.
// Without savepoints, a failing job rolls everything back and ok is false: the caller
// runs the batch again with savepoints. Otherwise it returns one error per job.
func (s *Store) runBatchTx(ctx context.Context, jobs []writeJob, savepoints bool) (errs []error, ok bool) {
	errs = make([]error, len(jobs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return err
		}
		head := chainHead{key: s.auditKey.Load()}
		err := tx.QueryRow(ctx, `SELECT hash, chain_key FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&head.Hash, &head.Key)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if len(jobs) == 1 {
			// No one else to protect: a failure rolls the transaction back.
			errs[0] = jobs[0](ctx, tx, &head)
			return errs[0]
		}
		for i, job := range jobs {
			if !savepoints {
				if errs[i] = job(ctx, tx, &head); errs[i] != nil {
					return errJobFailed
				}
				continue
			}
			if _, err := tx.Exec(ctx, `SAVEPOINT job`); err != nil {
				return err
			}
			saved := head
			if errs[i] = job(ctx, tx, &head); errs[i] != nil {
				head = saved
				if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT job`); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT job`); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errJobFailed) {
		return nil, false
	}
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs, true
}

// chainHead is where a batch's next audit event links to: the newest event's hash and
// chain key id ("" when there is none), and the key that keys the batch's events (the
// store's audit chain key when the batch began; nil appends unkeyed, see
// storage.LinkAudit).
type chainHead struct {
	Hash, Key string
	key       *storage.AuditChainKey
}

// nullable is s, or NULL when s is empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// appendAuditTx inserts e after *head in tx, linked by storage.LinkAudit under head's
// key, sets e.ID, e.PrevHash, e.ChainKey and e.Hash, and advances *head. The time is stored with microsecond precision, which is what the hash
// covers; a zero e.Time is set to now first.
func appendAuditTx(ctx context.Context, tx pgx.Tx, head *chainHead, e *storage.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	linked := *e
	if err := storage.LinkAudit(head.key, head.Hash, head.Key, &linked); err != nil {
		return err
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO audit_events
		(time, type, user_id, client_id, ip, user_agent, result, reason, prev_hash, hash, chain_key,
		 token_id, family_id, session_id, factor_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		ts(e.Time.Truncate(time.Microsecond)), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent,
		e.Result, e.Reason, linked.PrevHash, linked.Hash, linked.ChainKey, nullable(e.TokenID), nullable(e.FamilyID),
		nullable(e.SessionID), nullable(e.FactorID)).Scan(&id); err != nil {
		return err
	}
	e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	head.Hash, head.Key = linked.Hash, linked.ChainKey
	return nil
}
