package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Jobs queued while a batch runs go together into the next one, each gets its own
// result, and a batch never exceeds MaxBatch.
func TestBatching(t *testing.T) {
	tests := []struct {
		name     string
		waiting  int
		maxBatch int
		want     int // size of the batch after the first
	}{
		{"all waiting jobs in one batch", 10, 256, 10},
		{"bounded by MaxBatch", 10, 4, 4},
		{"a lone job", 1, 256, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			var sizes []int
			run := func(_ context.Context, jobs []int) []error {
				mu.Lock()
				sizes = append(sizes, len(jobs))
				first := len(sizes) == 1
				mu.Unlock()
				if first {
					<-release
				}
				errs := make([]error, len(jobs))
				for i, j := range jobs {
					if j%2 == 1 {
						errs[i] = fmt.Errorf("job %d failed", j)
					}
				}
				return errs
			}
			w := New(run, Options{MaxBatch: tc.maxBatch})
			defer w.Close()
			ctx := t.Context()
			firstDone := make(chan error, 1)
			go func() { firstDone <- w.Do(ctx, 0) }()
			// Wait until the first batch is running, then queue the others behind it.
			for {
				mu.Lock()
				started := len(sizes) == 1
				mu.Unlock()
				if started {
					break
				}
				runtime.Gosched()
			}
			var wg sync.WaitGroup
			results := make([]error, tc.waiting)
			for i := range tc.waiting {
				wg.Go(func() { results[i] = w.Do(ctx, i+1) })
			}
			for len(w.queue) < min(tc.waiting, cap(w.queue)) {
				runtime.Gosched()
			}
			close(release)
			wg.Wait()
			if err := <-firstDone; err != nil {
				t.Fatalf("first job: %v", err)
			}
			for i, err := range results {
				if (i+1)%2 == 1 && err == nil || (i+1)%2 == 0 && err != nil {
					t.Fatalf("job %d: err %v, want its own result", i+1, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total := 0
			for _, n := range sizes[1:] {
				total += n
				if n > tc.maxBatch {
					t.Fatalf("batch sizes %v exceed MaxBatch %d", sizes, tc.maxBatch)
				}
			}
			if sizes[0] != 1 || sizes[1] != tc.want || total != tc.waiting {
				t.Fatalf("batch sizes %v, want [1 %d ...] adding up to 1+%d", sizes, tc.want, tc.waiting)
			}
			if got := w.Commits(); got != int64(len(sizes)) {
				t.Fatalf("Commits() = %d, want %d", got, len(sizes))
			}
		})
	}
}

// A job submitted after Close is refused; one whose context ends while queued returns.
func TestClosedAndCancelled(t *testing.T) {
	w := New(func(_ context.Context, jobs []int) []error { return make([]error, len(jobs)) }, Options{})
	if err := w.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := w.Do(t.Context(), 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v, want ErrClosed", err)
	}
	block := make(chan struct{})
	w2 := New(func(_ context.Context, jobs []int) []error { <-block; return make([]error, len(jobs)) }, Options{})
	defer func() { close(block); w2.Close() }()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w2.Do(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with an ended context: %v, want context.Canceled", err)
	}
}

// With Sync, a job is answered only after a Sync that began after its batch committed
// returned; batches committed while a Sync runs share the next one; a Sync error is the
// error of every job that had none, and a job that failed keeps its own error.
func TestSync(t *testing.T) {
	var mu sync.Mutex
	committed := map[int]bool{} // job -> its batch committed
	synced := map[int]bool{}    // job -> a Sync began after its commit and returned
	var syncs, batches int
	failSync := false
	run := func(_ context.Context, jobs []int) []error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		errs := make([]error, len(jobs))
		for i, j := range jobs {
			if j < 0 {
				errs[i] = fmt.Errorf("job %d failed", j)
				continue
			}
			committed[j] = true
		}
		return errs
	}
	syncStarted := make(chan struct{}, 1)
	releaseSync := make(chan struct{})
	syncFn := func(context.Context) error {
		mu.Lock()
		covered := make([]int, 0, len(committed))
		for j := range committed {
			covered = append(covered, j)
		}
		fail := failSync
		mu.Unlock()
		select {
		case syncStarted <- struct{}{}:
		default:
		}
		<-releaseSync
		mu.Lock()
		defer mu.Unlock()
		syncs++
		for _, j := range covered {
			synced[j] = true
		}
		if fail {
			return errors.New("disk gone")
		}
		return nil
	}
	w := New(run, Options{Sync: syncFn})
	defer w.Close()
	ctx := t.Context()

	// Job 1 commits; its Sync blocks. Jobs 2..9 commit meanwhile, in batches of their
	// own, and wait for the next Sync.
	first := make(chan error, 1)
	go func() { first <- w.Do(ctx, 1) }()
	<-syncStarted
	var wg sync.WaitGroup
	results := make([]error, 10)
	for j := 2; j <= 9; j++ {
		wg.Go(func() { results[j] = w.Do(ctx, j) })
	}
	for {
		mu.Lock()
		n, ran := len(committed), batches
		mu.Unlock()
		// Every batch but the first one's has been handed to the syncer and waits for
		// the next Sync.
		if n == 9 && len(w.synced) == ran-1 {
			break
		}
		runtime.Gosched()
	}
	select {
	case err := <-first:
		t.Fatalf("job 1 answered (%v) before its Sync returned", err)
	default:
	}
	releaseSync <- struct{}{} // the first Sync returns: job 1 only
	if err := <-first; err != nil {
		t.Fatalf("job 1: %v", err)
	}
	releaseSync <- struct{}{} // one Sync for all the batches committed meanwhile
	wg.Wait()
	mu.Lock()
	for j := 1; j <= 9; j++ {
		if !synced[j] {
			t.Errorf("job %d answered without a Sync after its commit", j)
		}
	}
	if syncs != 2 {
		t.Errorf("%d Syncs for 9 jobs committed during the first, want 2", syncs)
	}
	failSync = true
	mu.Unlock()
	for j := 2; j <= 9; j++ {
		if results[j] != nil {
			t.Errorf("job %d: %v", j, results[j])
		}
	}

	// A failing Sync fails the committed jobs; a failed job keeps its own error.
	errs := make(chan error, 2)
	go func() { errs <- w.Do(ctx, 10) }()
	<-syncStarted
	go func() { errs <- w.Do(ctx, -1) }()
	close(releaseSync)
	for range 2 {
		err := <-errs
		if err == nil || !strings.Contains(err.Error(), "disk gone") && !strings.Contains(err.Error(), "job -1 failed") {
			t.Fatalf("with a failing Sync: %v", err)
		}
		if strings.Contains(err.Error(), "disk gone") && strings.Contains(err.Error(), "job -1") {
			t.Fatalf("a failed job took the Sync's error: %v", err)
		}
	}
}

// Close answers every job already queued, through their Sync, before it returns.
func TestSyncClose(t *testing.T) {
	var syncs atomic.Int64
	w := New(func(_ context.Context, jobs []int) []error { return make([]error, len(jobs)) },
		Options{Sync: func(context.Context) error { syncs.Add(1); return nil }})
	var wg sync.WaitGroup
	for j := range 20 {
		wg.Go(func() {
			if err := w.Do(t.Context(), j); err != nil {
				t.Errorf("job %d: %v", j, err)
			}
		})
	}
	wg.Wait()
	w.Close()
	if syncs.Load() == 0 {
		t.Fatal("no Sync ran")
	}
	if err := w.Do(t.Context(), 99); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v, want ErrClosed", err)
	}
}

// With Yield, the linger never waits for MaxWait: a lone job on an idle writer, and a
// burst of concurrent jobs, are answered although MaxWait is an hour.
func TestYield(t *testing.T) {
	w := New(func(_ context.Context, jobs []int) []error { return make([]error, len(jobs)) },
		Options{MaxWait: time.Hour, Yield: true})
	defer w.Close()
	if err := w.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for j := range 10 {
		wg.Go(func() {
			if err := w.Do(t.Context(), j); err != nil {
				t.Errorf("job %d: %v", j, err)
			}
		})
	}
	wg.Wait()
	if got := w.Jobs(); got != 11 {
		t.Fatalf("%d jobs run, want 11", got)
	}
}

// A DoCommitted job is answered once its batch commits, while a Sync is still running;
// a Do job of the same batch waits for the Sync; a batch of DoCommitted jobs alone runs
// no Sync.
func TestDoCommitted(t *testing.T) {
	var syncs atomic.Int64
	release := make(chan struct{})
	w := New(func(_ context.Context, jobs []int) []error { return make([]error, len(jobs)) },
		Options{Sync: func(context.Context) error { syncs.Add(1); <-release; return nil }})
	defer w.Close()
	ctx := t.Context()
	for j := range 5 {
		if err := w.DoCommitted(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d Syncs for committed-only jobs, want 0", n)
	}
	durable := make(chan error, 1)
	go func() { durable <- w.Do(ctx, 10) }()
	for syncs.Load() == 0 {
		runtime.Gosched()
	}
	// The Sync of job 10 is blocked: a committed-only job still gets through.
	if err := w.DoCommitted(ctx, 11); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-durable:
		t.Fatalf("durable job answered (%v) before its Sync returned", err)
	default:
	}
	close(release)
	if err := <-durable; err != nil {
		t.Fatal(err)
	}
}

// DoWhile runs its function once the job's batch has committed and while the Sync is
// still running (the Sync here waits for the function: were it run after the Sync,
// the test would fail on the Sync's timeout), and answers only after both; a failed job
// never runs it; the job's error comes before the function's, the function's before
// nil. Without Sync the function runs while the job is queued, also when it fails.
func TestDoWhile(t *testing.T) {
	errFn := errors.New("fn failed")
	tests := []struct {
		name    string
		sync    bool
		job     int // < 0 fails
		fnErr   error
		wantRun bool
		want    error // nil, errFn, or errJob (any error naming the job)
	}{
		{"committed, synced", true, 1, nil, true, nil},
		{"fn fails after the commit", true, 2, errFn, true, errFn},
		{"failed job: fn not run", true, -3, errFn, false, errJob},
		{"no Sync: fn runs", false, 4, nil, true, nil},
		{"no Sync: fn fails", false, 5, errFn, true, errFn},
		{"no Sync: failed job", false, -6, errFn, true, errJob},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var committed, synced atomic.Bool
			fnRan := make(chan struct{})
			run := func(_ context.Context, jobs []int) []error {
				errs := make([]error, len(jobs))
				for i, j := range jobs {
					if j < 0 {
						errs[i] = fmt.Errorf("job %d: %w", j, errJob)
						continue
					}
					committed.Store(true)
				}
				return errs
			}
			opt := Options{}
			if tc.sync {
				opt.Sync = func(ctx context.Context) error {
					if tc.wantRun {
						select {
						case <-fnRan:
						case <-time.After(10 * time.Second):
							return errors.New("the function did not run while the Sync did")
						}
					}
					synced.Store(true)
					return nil
				}
			}
			w := New(run, opt)
			defer w.Close()
			ran := false
			err := w.DoWhile(t.Context(), tc.job, func() error {
				ran = true
				if tc.sync && (!committed.Load() || synced.Load()) {
					t.Errorf("fn ran with the batch committed %v, synced %v; want committed, not synced",
						committed.Load(), synced.Load())
				}
				close(fnRan)
				return tc.fnErr
			})
			if ran != tc.wantRun {
				t.Fatalf("fn ran: %v, want %v", ran, tc.wantRun)
			}
			if tc.sync && tc.job > 0 && !synced.Load() {
				t.Fatal("DoWhile returned before the Sync")
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("DoWhile: %v, want %v", err, tc.want)
			}
		})
	}
}

// DoWhile without a function is Do: the job runs, its error is returned.
func TestDoWhileNil(t *testing.T) {
	var ran atomic.Int64
	w := New(func(_ context.Context, jobs []int) []error {
		errs := make([]error, len(jobs))
		for i, j := range jobs {
			ran.Add(1)
			if j < 0 {
				errs[i] = errJob
			}
		}
		return errs
	}, Options{Sync: func(context.Context) error { return nil }})
	defer w.Close()
	if err := w.DoWhile(t.Context(), 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.DoWhile(t.Context(), -1, nil); !errors.Is(err, errJob) {
		t.Fatalf("DoWhile of a failing job: %v, want its error", err)
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d jobs ran, want 2", n)
	}
}

// errJob marks a job's own failure in TestDoWhile.
var errJob = errors.New("job failed")
