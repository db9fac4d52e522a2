package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/internal/groupcommit"
)

// writeJob is one job of the store's group-commit writer. It runs inside the batch's
// transaction; the audit events it appends are chained after *head, which it advances.
type writeJob func(ctx context.Context, tx *sql.Tx, head *chainHead) error

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

// runBatch runs jobs in one write transaction (BEGIN IMMEDIATE: it holds the database
// write lock, so the audit chain head read once at its start stays the head). Each job
// runs inside a savepoint: a failing job is rolled back alone and the others commit.
func (s *Store) runBatch(ctx context.Context, jobs []writeJob) []error {
	errs := make([]error, len(jobs))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		head, err := auditHead(ctx, tx)
		if err != nil {
			return err
		}
		head.key = s.auditKey.Load()
		if len(jobs) == 1 {
			// No one else to protect: a failure rolls the transaction back.
			errs[0] = jobs[0](ctx, tx, &head)
			return errs[0]
		}
		for i, job := range jobs {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT job`); err != nil {
				return err
			}
			saved := head
			if errs[i] = job(ctx, tx, &head); errs[i] != nil {
				head = saved
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO job`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE job`); err != nil {
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

// chainHead is where a batch's next audit event links to: the newest event's hash and
// chain key id ("" when there is none), and the key that keys the batch's events (the
// store's audit chain key when the batch began; nil appends unkeyed, see
// storage.LinkAudit).
type chainHead struct {
	Hash, Key string
	key       *storage.AuditChainKey
}

// auditHead returns the newest audit event's hash and chain key id, "" when there is none.
func auditHead(ctx context.Context, tx *sql.Tx) (chainHead, error) {
	var head chainHead
	err := tx.QueryRowContext(ctx, `SELECT hash, chain_key FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&head.Hash, &head.Key)
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
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO audit_events (occurred_at, type, user_id,
		client_id, ip, user_agent, result, reason, prev_hash, hash, chain_key, token_id, family_id, session_id, factor_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Time.UnixNano(), e.Type, e.UserID, e.ClientID, e.IP, e.UserAgent, e.Result, e.Reason,
		linked.PrevHash, linked.Hash, linked.ChainKey, nullable(e.TokenID), nullable(e.FamilyID), nullable(e.SessionID), nullable(e.FactorID)).Scan(&id); err != nil {
		return err
	}
	e.ID, e.PrevHash, e.Hash, e.ChainKey = id, linked.PrevHash, linked.Hash, linked.ChainKey
	head.Hash, head.Key = linked.Hash, linked.ChainKey
	return nil
}
