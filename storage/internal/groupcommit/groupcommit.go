// Package groupcommit batches the writes of concurrent requests into shared
// transactions: one writer per store takes the jobs queued while its previous
// transaction committed (and, when others are already waiting, those arriving within a
// short linger), runs them in one transaction and answers each job only after that
// transaction commits. Many requests then share one commit (one fsync), and whatever a
// transaction must serialise (the audit chain head) is taken once per batch.
//
// With Options.Sync the flush is pipelined: the writer commits a batch without waiting
// for the disk and goes on with the next one, while a second goroutine makes the
// committed batches durable (one Sync for all the batches committed while the previous
// Sync ran) and only then answers their jobs. A job is still answered only once what it
// wrote is durable; the writer just no longer idles while the disk flushes.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned for jobs submitted after Close.
var ErrClosed = errors.New("groupcommit: writer closed")

// RunFunc runs jobs in one transaction and returns one error per job (nil: committed).
// A failing job must not fail the others (savepoints, or validate then write); an
// error of the transaction itself (begin, commit) is every job's error.
type RunFunc[J any] func(ctx context.Context, jobs []J) []error

// Options bound a batch.
type Options struct {
	// MaxBatch is the most jobs in one transaction (default 256).
	MaxBatch int
	// MaxWait is how long a batch waits for more jobs once it has taken those queued
	// while the previous batch committed (default 0: it does not wait). Without Yield it
	// waits only under concurrency — when it already holds more than one job, or the
	// previous batch did — so a lone request on an idle server is never delayed.
	MaxWait time.Duration
	// Yield makes the linger yield the processor instead of sleeping: the batch waits
	// for more jobs only while other goroutines are runnable (they may be about to
	// queue one), and at most MaxWait. On a busy server this gathers the jobs of the
	// requests being worked on without ever leaving the processor idle, and a lone
	// request on an idle server is not delayed at all.
	Yield bool
	// Timeout bounds one batch's transaction (default 30s).
	Timeout time.Duration
	// Sync, when set, makes committed batches durable. RunFunc then commits without
	// waiting for the disk, and a job is answered only after a Sync that began after
	// its batch committed has returned nil. A Sync error is the error of every job of
	// the batches it covered that had none (their transactions committed, but their
	// durability is unknown).
	Sync func(ctx context.Context) error
}

// Writer is a per-store group-commit writer. Its zero value is not usable: use New.
type Writer[J any] struct {
	run     RunFunc[J]
	opt     Options
	queue   chan *request[J]
	synced  chan committed[J] // batches committed, waiting for Sync (nil without Sync)
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	commits atomic.Int64
	jobs    atomic.Int64
}

type request[J any] struct {
	job  J
	done chan error
	// committed: answer once the batch has committed, without waiting for its Sync.
	committed bool
	// commit, when set, is told the job's result as soon as its batch has committed,
	// before the Sync (DoWhile); done still gets it after the Sync.
	commit chan error
}

// committed is a batch whose transaction has ended, with its jobs' results.
type committed[J any] struct {
	batch []*request[J]
	errs  []error
}

// New starts a writer that runs batches with run.
func New[J any](run RunFunc[J], opt Options) *Writer[J] {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	w := &Writer[J]{run: run, opt: opt, queue: make(chan *request[J], opt.MaxBatch),
		stop: make(chan struct{}), done: make(chan struct{})}
	if opt.Sync == nil {
		go func() {
			w.loop()
			close(w.done)
		}()
		return w
	}
	// At most syncQueue committed batches wait for their Sync; a writer further ahead
	// of the disk waits.
	const syncQueue = 8
	w.synced = make(chan committed[J], syncQueue)
	go func() {
		w.loop()
		close(w.synced)
	}()
	go func() {
		w.syncLoop()
		close(w.done)
	}()
	return w
}

// Do queues job and waits until the transaction that ran it has committed (nil) — and,
// with Options.Sync, been made durable — or failed, or ctx ends. When ctx ends first the
// job may still commit.
func (w *Writer[J]) Do(ctx context.Context, job J) error {
	return w.do(ctx, &request[J]{job: job, done: make(chan error, 1)})
}

// DoCommitted is Do for a job that needs its transaction committed but not made
// durable: it is answered as soon as its batch commits, without waiting for the Sync
// (whatever Sync later flushes covers it too). For writes that may be lost with the
// machine's power but must be atomic and visible at once: rate-limit counters, an
// authorization request in progress. A batch of such jobs alone runs no Sync.
func (w *Writer[J]) DoCommitted(ctx context.Context, job J) error {
	return w.do(ctx, &request[J]{job: job, done: make(chan error, 1), committed: true})
}

// DoWhile is Do that also runs fn, the caller's work that must be done before it
// answers but that job does not depend on (signing what job writes), where it overlaps
// the write instead of adding to it: with Options.Sync, once job's batch has committed,
// while the Sync makes it durable (not at all when job failed); without, as soon as job
// is queued, while its batch is formed and run (then also when job fails). It returns
// once both are done: job's error (with Sync, also the Sync's), else fn's. A nil fn
// makes it Do.
func (w *Writer[J]) DoWhile(ctx context.Context, job J, fn func() error) error {
	if fn == nil {
		return w.Do(ctx, job)
	}
	r := &request[J]{job: job, done: make(chan error, 1)}
	if w.synced != nil {
		r.commit = make(chan error, 1)
	}
	if err := w.enqueue(ctx, r); err != nil {
		return err
	}
	if r.commit != nil {
		if err := w.wait(ctx, r.commit); err != nil {
			return err
		}
	}
	ferr := fn()
	if err := w.wait(ctx, r.done); err != nil {
		return err
	}
	return ferr
}

func (w *Writer[J]) do(ctx context.Context, r *request[J]) error {
	if err := w.enqueue(ctx, r); err != nil {
		return err
	}
	return w.wait(ctx, r.done)
}

// enqueue queues r, unless the writer is closed or ctx ends first.
func (w *Writer[J]) enqueue(ctx context.Context, r *request[J]) error {
	select {
	case <-w.stop:
		return ErrClosed
	default:
	}
	select {
	case w.queue <- r:
	case <-w.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// wait returns the result sent on ch (r.done or r.commit), unless ctx ends first.
func (w *Writer[J]) wait(ctx context.Context, ch chan error) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		// The writer stopped; the job ran only if it was queued before it drained.
		select {
		case err := <-ch:
			return err
		default:
			return ErrClosed
		}
	}
}

// Commits returns how many transactions the writer has run (committed or not).
func (w *Writer[J]) Commits() int64 { return w.commits.Load() }

// Jobs returns how many jobs the writer has run.
func (w *Writer[J]) Jobs() int64 { return w.jobs.Load() }

// Close stops the writer after the jobs already queued have run.
func (w *Writer[J]) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *Writer[J]) loop() {
	batch := make([]*request[J], 0, w.opt.MaxBatch)
	var timer *time.Timer
	concurrent := false // the previous batch held more than one job
	for {
		batch = batch[:0]
		select {
		case r := <-w.queue:
			batch = append(batch, r)
		case <-w.stop:
			// Run what is still queued, then stop.
			for {
				select {
				case r := <-w.queue:
					w.runBatch([]*request[J]{r})
				default:
					return
				}
			}
		}
		w.drain(&batch)
		switch {
		case w.opt.MaxWait <= 0 || len(batch) >= w.opt.MaxBatch:
		case w.opt.Yield:
			w.lingerYielding(&batch)
		case len(batch) > 1 || concurrent:
			w.lingerSleeping(&batch, &timer)
		}
		concurrent = len(batch) > 1
		w.runBatch(batch)
	}
}

// drain adds to *batch the jobs already queued, up to MaxBatch.
func (w *Writer[J]) drain(batch *[]*request[J]) {
	for len(*batch) < w.opt.MaxBatch {
		select {
		case r := <-w.queue:
			*batch = append(*batch, r)
		default:
			return
		}
	}
}

// lingerSleeping adds to *batch the jobs that arrive within MaxWait, up to MaxBatch.
func (w *Writer[J]) lingerSleeping(batch *[]*request[J], timer **time.Timer) {
	if *timer == nil {
		*timer = time.NewTimer(w.opt.MaxWait)
	} else {
		(*timer).Reset(w.opt.MaxWait)
	}
	for len(*batch) < w.opt.MaxBatch {
		select {
		case r := <-w.queue:
			*batch = append(*batch, r)
		case <-(*timer).C:
			return
		}
	}
	if !(*timer).Stop() {
		<-(*timer).C
	}
}

// lingerYielding adds to *batch the jobs queued while the other runnable goroutines run,
// yielding the processor to them until a round adds nothing, the batch is full, or
// MaxWait has passed.
func (w *Writer[J]) lingerYielding(batch *[]*request[J]) {
	deadline := time.Now().Add(w.opt.MaxWait)
	for len(*batch) < w.opt.MaxBatch {
		runtime.Gosched()
		n := len(*batch)
		w.drain(batch)
		if len(*batch) == n || !time.Now().Before(deadline) {
			return
		}
	}
}

func (w *Writer[J]) runBatch(batch []*request[J]) {
	jobs := make([]J, len(batch))
	for i, r := range batch {
		jobs[i] = r.job
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opt.Timeout)
	errs := w.run(ctx, jobs)
	cancel()
	w.commits.Add(1)
	w.jobs.Add(int64(len(batch)))
	if w.synced == nil {
		answer(batch, errs)
		return
	}
	// Jobs that need no Sync are answered now, and DoWhile's callers told that their
	// batch committed; the others (copied: the loop reuses batch's array for the next
	// batch) wait for the next Sync. The batch is handed to syncLoop last, so that it is
	// the goroutine the scheduler runs next.
	var durable committed[J]
	for i, r := range batch {
		err := resultOf(errs, i)
		if r.committed {
			r.done <- err
			continue
		}
		if r.commit != nil {
			r.commit <- err
		}
		durable.batch = append(durable.batch, r)
		durable.errs = append(durable.errs, err)
	}
	if len(durable.batch) > 0 {
		w.synced <- durable
	}
}

// syncLoop makes the committed batches durable and answers their jobs: it takes every
// batch committed so far, runs one Sync for all of them, and answers them in commit
// order. It returns once the writer has stopped and every batch is answered.
func (w *Writer[J]) syncLoop() {
	var pending []committed[J]
	for c := range w.synced {
		pending = append(pending[:0], c)
	more:
		for {
			select {
			case c, ok := <-w.synced:
				if !ok {
					break more
				}
				pending = append(pending, c)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.opt.Timeout)
		err := w.opt.Sync(ctx)
		cancel()
		for _, c := range pending {
			if err != nil {
				for i := range c.errs { // runBatch gave every job of c a result
					if c.errs[i] == nil {
						c.errs[i] = fmt.Errorf("groupcommit: make the batch durable: %w", err)
					}
				}
			}
			answer(c.batch, c.errs)
		}
		clear(pending)
	}
}

// answer delivers each job of batch its result.
func answer[J any](batch []*request[J], errs []error) {
	for i, r := range batch {
		r.done <- resultOf(errs, i)
	}
}

// resultOf is job i's result in errs, as the RunFunc returned it.
func resultOf(errs []error, i int) error {
	if i < len(errs) {
		return errs[i]
	}
	return errors.New("groupcommit: no result for job")
}
