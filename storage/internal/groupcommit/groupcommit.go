// Package groupcommit batches the writes of concurrent requests into shared
// transactions: one writer per store takes the jobs queued while its previous
// transaction committed (and, when others are already waiting, those arriving within a
// short linger), runs them in one transaction and answers each job only after that
// transaction commits. Many requests then share one commit (one fsync), and whatever a
// transaction must serialise (the audit chain head) is taken once per batch.
package groupcommit

import (
	"context"
	"errors"
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
	// while the previous batch committed (default 0: it does not wait). It waits only
	// under concurrency — when it already holds more than one job, or the previous batch
	// did — so a lone request on an idle server is never delayed.
	MaxWait time.Duration
	// Timeout bounds one batch's transaction (default 30s).
	Timeout time.Duration
}

// Writer is a per-store group-commit writer. Its zero value is not usable: use New.
type Writer[J any] struct {
	run     RunFunc[J]
	opt     Options
	queue   chan *request[J]
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	commits atomic.Int64
	jobs    atomic.Int64
}

type request[J any] struct {
	job  J
	done chan error
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
	go w.loop()
	return w
}

// Do queues job and waits until the transaction that ran it has committed (nil) or
// failed, or ctx ends. When ctx ends first the job may still commit.
func (w *Writer[J]) Do(ctx context.Context, job J) error {
	r := &request[J]{job: job, done: make(chan error, 1)}
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
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		// The writer stopped; the job ran only if it was queued before it drained.
		select {
		case err := <-r.done:
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
	defer close(w.done)
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
		lingered := false
	collect:
		for len(batch) < w.opt.MaxBatch {
			select {
			case r := <-w.queue:
				batch = append(batch, r)
				continue
			default:
			}
			if lingered || w.opt.MaxWait <= 0 || len(batch) < 2 && !concurrent {
				break
			}
			lingered = true
			if timer == nil {
				timer = time.NewTimer(w.opt.MaxWait)
			} else {
				timer.Reset(w.opt.MaxWait)
			}
			for len(batch) < w.opt.MaxBatch {
				select {
				case r := <-w.queue:
					batch = append(batch, r)
				case <-timer.C:
					break collect
				}
			}
			if !timer.Stop() {
				<-timer.C
			}
		}
		concurrent = len(batch) > 1
		w.runBatch(batch)
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
	for i, r := range batch {
		var err error
		if i < len(errs) {
			err = errs[i]
		} else {
			err = errors.New("groupcommit: no result for job")
		}
		r.done <- err
	}
}
