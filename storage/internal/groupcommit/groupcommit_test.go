package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
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
