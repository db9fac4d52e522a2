package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// writeJob is one job of the store's group-commit writer. run runs it statement by
// statement inside the batch's transaction; the audit events it appends are chained
// after *head, which it advances. queue, when set, queues the same statements on a
// pgx.Batch instead, so that every job of a batch goes to the server in one round trip
// (see runPipelined).
type writeJob struct {
	run   func(ctx context.Context, tx pgx.Tx, head *chainHead) error
	queue queueFunc
}

// queueFunc queues a job's statements on b, its audit events linked after *head (which
// it advances). A conditional statement that must match a row is checked by the server
// (required: SQLSTATE OI002 when it matched nothing), which fails the whole
// transaction; the batch is then run again statement by statement, which tells why.
// Callbacks only read what the statements return: done, called only once the batch has
// committed, copies it (audit ids, counts) into the job's values.
type queueFunc func(b *pgx.Batch, head *chainHead) (done func(), err error)

// writerOptions bound a batch: at most 256 jobs, and a batch that already holds several
// jobs waits at most 250µs for more. A longer linger (1ms before) mostly kept the
// waiting requests waiting: with 8 clients it gave ~2,450 client_credentials tokens/s
// against ~3,200–3,500/s, at ~130 instead of ~220 commits per 1,000 tokens. (Go rounds
// a timer wait under a millisecond up to one when the processor idles, so the 250µs
// linger lasts 400–500µs on average; 100µs or the yielding linger measured better with
// opaque access tokens and worse with JWTs: docs/performance.md.)
var writerOptions = groupcommit.Options{MaxBatch: 256, MaxWait: 250 * time.Microsecond}

var _ storage.CommitCounter = (*Store)(nil)

// Commits returns how many write transactions the store's writer has run.
func (s *Store) Commits() int64 { return s.w.Commits() }

// write runs job through the writer and waits until its batch has committed.
func (s *Store) write(ctx context.Context, job writeJob) error {
	return s.w.Do(ctx, job)
}

// runBatch runs jobs in one transaction. It takes the audit advisory lock (auditLockKey)
// and reads the chain head once for the whole batch — not once per request — so the
// processes of a cluster serialise on it once per batch.
//
// The fast path (runPipelined) sends the whole batch and its commit in one round trip
// when the head can be foreseen (runOneTrip), in three when it must be read first
// (runFromHead). A failing job must not fail the others: if any statement fails, or a
// conditional one matches nothing, that transaction is rolled back and the batch runs
// again statement by statement with each job in a savepoint, so the failing job is
// rolled back alone (with its precise error) and the others commit. A batch whose
// outcome is unknown (a failed COMMIT, a connection lost after the batch was sent) is
// not run again.
func (s *Store) runBatch(ctx context.Context, jobs []writeJob) []error {
	pipelined := true
	for _, j := range jobs {
		pipelined = pipelined && j.queue != nil
	}
	if pipelined {
		retry, err := s.runPipelined(ctx, jobs)
		if err == nil || !retry {
			errs := make([]error, len(jobs))
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
	} else if len(jobs) > 1 {
		if errs, ok := s.runBatchTx(ctx, jobs, false); ok {
			return errs
		}
	}
	errs, _ := s.runBatchTx(ctx, jobs, true)
	return errs
}

// lockAndHead queues, on b, the audit advisory lock and the read of the chain head into
// head. They are two statements, not one: under READ COMMITTED each statement reads its
// own snapshot, and the head must be read by a statement that starts after the lock is
// held, or it could miss an event another process committed while this one waited.
func lockAndHead(b *pgx.Batch, head *chainHead) {
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditLockKey)
	b.Queue(headSQL).QueryRow(func(row pgx.Row) error { return scanHead(row, head) })
}

const headSQL = `SELECT hash, chain_key FROM audit_events ORDER BY id DESC LIMIT 1`

// scanHead reads the newest event's hash and chain key into head ("" when there is none).
func scanHead(row pgx.Row, head *chainHead) error {
	head.Hash, head.Key = "", ""
	if err := row.Scan(&head.Hash, &head.Key); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return nil
}

// errHeadMoved fails a speculative batch whose chain head was not the one it assumed.
var errHeadMoved = errors.New("the audit chain head moved")

// runPipelined runs jobs in one transaction with every job's statements pipelined. It
// returns nil once the transaction has committed. retry is true when nothing was
// stored (the batch may run again, job by job), false when the outcome is unknown (the
// jobs must not run again).
//
// When the store knows the head its previous batch left (s.lastHead), it speculates
// that no one appended since and sends the batch with its commit in one round trip
// (runOneTrip). When it does not, or another process (or retention) moved the head
// meanwhile, it reads the head under the lock first (runFromHead).
func (s *Store) runPipelined(ctx context.Context, jobs []writeJob) (retry bool, err error) {
	if spec := s.lastHead.Swap(nil); spec != nil {
		retry, err := s.runOneTrip(ctx, jobs, spec)
		if !errors.Is(err, errHeadMoved) {
			return retry, err
		}
	}
	return s.runFromHead(ctx, jobs)
}

// headMovedCode is the SQLSTATE openidp_require_audit_head raises (migration 0022).
const headMovedCode = "OI001"

// runOneTrip runs jobs linked to the chain head spec in one round trip: the lock, the
// server-side check that spec is still the head, and every statement of every job,
// followed by one Sync, which PostgreSQL runs as one implicit transaction and commits
// at the Sync. The server aborts it all on any error (a moved head, a failed or
// unmatched statement), so nothing needs checking before the commit, and the append
// lock is held only while the server runs the batch, not across a round trip.
//
// An error the server reported (severity ERROR) rolled the transaction back: the head
// moved (errHeadMoved, the batch is run again from the real head) or a statement
// failed (retry: the batch runs again job by job). Any other error (the connection
// lost, a FATAL from the server, a callback failing on what the server returned) leaves
// the outcome unknown, as a failed COMMIT does: the jobs must not run again.
func (s *Store) runOneTrip(ctx context.Context, jobs []writeJob, spec *[2]string) (retry bool, err error) {
	head := chainHead{key: s.auditKey.Load(), Hash: spec[0], Key: spec[1]}
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditLockKey)
	b.Queue(`SELECT openidp_require_audit_head($1, $2)`, spec[0], spec[1])
	dones, err := queueJobs(b, jobs, &head)
	if err != nil {
		return true, err
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.SeverityUnlocalized != "ERROR" {
			return false, err
		}
		if pgErr.Code == headMovedCode {
			return true, errHeadMoved
		}
		return true, err
	}
	s.committed(head, dones)
	return false, nil
}

// queueJobs queues every job of jobs on b, linked from *head, and returns what each
// must do once the batch has committed.
func queueJobs(b *pgx.Batch, jobs []writeJob, head *chainHead) ([]func(), error) {
	dones := make([]func(), 0, len(jobs))
	for _, j := range jobs {
		done, err := j.queue(b, head)
		if err != nil {
			return nil, err
		}
		dones = append(dones, done)
	}
	return dones, nil
}

// committed records head as the one the next batch may assume and hands the committed
// jobs what their statements returned.
func (s *Store) committed(head chainHead, dones []func()) {
	s.lastHead.Store(&[2]string{head.Hash, head.Key})
	for _, done := range dones {
		done()
	}
}

// runFromHead runs jobs in a transaction that reads the chain head under the lock
// before the jobs are linked to it: BEGIN, the lock and the head read; every statement
// of every job; COMMIT (three round trips). On an error before COMMIT was sent nothing
// was stored (retry); a failed COMMIT leaves the outcome unknown.
func (s *Store) runFromHead(ctx context.Context, jobs []writeJob) (retry bool, err error) {
	head := chainHead{key: s.auditKey.Load()}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, auditLockKey)
	b.Queue(headSQL).QueryRow(func(row pgx.Row) error { return scanHead(row, &head) })
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		if err != nil && tx != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := br.Close(); err != nil {
		return true, err
	}
	jb := &pgx.Batch{}
	dones, err := queueJobs(jb, jobs, &head)
	if err != nil {
		return true, err
	}
	if err := tx.SendBatch(ctx, jb).Close(); err != nil {
		return true, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	s.committed(head, dones)
	return false, nil
}

// errJobFailed rolls back a batch run without savepoints in which a job failed.
var errJobFailed = errors.New("a job of the batch failed")

// runBatchTx runs jobs in one transaction, each in a savepoint when savepoints is set.
// Without savepoints, a failing job rolls everything back and ok is false: the caller
// runs the batch again with savepoints. Otherwise it returns one error per job.
func (s *Store) runBatchTx(ctx context.Context, jobs []writeJob, savepoints bool) (errs []error, ok bool) {
	errs = make([]error, len(jobs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		head := chainHead{key: s.auditKey.Load()}
		b := &pgx.Batch{}
		lockAndHead(b, &head)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if len(jobs) == 1 {
			// No one else to protect: a failure rolls the transaction back.
			errs[0] = jobs[0].run(ctx, tx, &head)
			return errs[0]
		}
		for i, job := range jobs {
			if !savepoints {
				if errs[i] = job.run(ctx, tx, &head); errs[i] != nil {
					return errJobFailed
				}
				continue
			}
			if _, err := tx.Exec(ctx, `SAVEPOINT job`); err != nil {
				return err
			}
			saved := head
			if errs[i] = job.run(ctx, tx, &head); errs[i] != nil {
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

const insertAuditSQL = `INSERT INTO audit_events
	(time, type, user_id, client_id, ip, user_agent, result, reason, prev_hash, hash, chain_key,
	 token_id, family_id, session_id, factor_id)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`

// linkAudit links e after *head (a zero e.Time is set to now first) and returns the
// linked copy and the arguments of insertAuditSQL; it advances *head. The time is stored
// with microsecond precision, which is what the hash covers.
func linkAudit(head *chainHead, e *storage.AuditEvent) (*storage.AuditEvent, []any, error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	linked := *e
	if err := storage.LinkAudit(head.key, head.Hash, head.Key, &linked); err != nil {
		return nil, nil, err
	}
	head.Hash, head.Key = linked.Hash, linked.ChainKey
	return &linked, []any{ts(e.Time.Truncate(time.Microsecond)), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent,
		e.Result, e.Reason, linked.PrevHash, linked.Hash, linked.ChainKey, nullable(e.TokenID), nullable(e.FamilyID),
		nullable(e.SessionID), nullable(e.FactorID)}, nil
}

// appendAuditTx inserts e after *head in tx, linked by storage.LinkAudit under head's
// key, sets e.ID, e.PrevHash, e.ChainKey and e.Hash, and advances *head.
func appendAuditTx(ctx context.Context, tx pgx.Tx, head *chainHead, e *storage.AuditEvent) error {
	saved := *head
	linked, args, err := linkAudit(head, e)
	if err != nil {
		return err
	}
	var id int64
	if err := tx.QueryRow(ctx, insertAuditSQL, args...).Scan(&id); err != nil {
		*head = saved
		return err
	}
	e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	return nil
}

// queueAudit queues the insert of e after *head on b and advances *head; the returned
// done sets e.ID, e.PrevHash, e.ChainKey and e.Hash. The events of a batch are inserted
// in queue order, one statement after the other, so their ids follow the chain.
func queueAudit(b *pgx.Batch, head *chainHead, e *storage.AuditEvent) (done func(), err error) {
	linked, args, err := linkAudit(head, e)
	if err != nil {
		return nil, err
	}
	var id int64
	b.Queue(insertAuditSQL, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	return func() {
		e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	}, nil
}

// queueAudits queues the inserts of events, in order, as queueAudit does; done fills in
// every one of them once the batch has committed.
func queueAudits(b *pgx.Batch, head *chainHead, events []*storage.AuditEvent) (done func(), err error) {
	dones := make([]func(), 0, len(events))
	for _, e := range events {
		d, err := queueAudit(b, head, e)
		if err != nil {
			return nil, err
		}
		dones = append(dones, d)
	}
	return func() {
		for _, d := range dones {
			d()
		}
	}, nil
}
