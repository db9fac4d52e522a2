package idp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openidp/idp/idp/pwhash"
)

const hashMiB = 1 << 20

func TestHashGate(t *testing.T) {
	tests := []struct {
		name    string
		budget  int64
		queue   int
		wait    time.Duration
		held    []int64 // acquired and kept before the call
		need    int64
		ctxDone bool
		wantErr error
	}{
		{name: "fits", budget: 64 * hashMiB, held: []int64{19 * hashMiB, 19 * hashMiB}, need: 19 * hashMiB},
		// A wait of an hour: a refusal that is not immediate hangs the test instead of passing.
		{name: "full, no queue", budget: 64 * hashMiB, queue: -1, wait: time.Hour, held: []int64{19 * hashMiB, 19 * hashMiB, 19 * hashMiB},
			need: 19 * hashMiB, wantErr: ErrHashBusy},
		{name: "full, wait runs out", budget: 64 * hashMiB, queue: 4, wait: 30 * time.Millisecond,
			held: []int64{19 * hashMiB, 19 * hashMiB, 19 * hashMiB}, need: 19 * hashMiB, wantErr: ErrHashBusy},
		{name: "caller gives up", budget: 19 * hashMiB, queue: 4, wait: time.Hour, held: []int64{19 * hashMiB}, need: 19 * hashMiB,
			ctxDone: true, wantErr: context.Canceled},
		{name: "larger than the budget runs alone", budget: 19 * hashMiB, need: 64 * hashMiB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newHashGate(tt.budget, tt.queue, tt.wait)
			for _, n := range tt.held {
				release, err := g.acquire(context.Background(), n)
				if err != nil {
					t.Fatalf("hold %d: %v", n, err)
				}
				defer release()
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.ctxDone {
				cancel()
			}
			defer cancel()
			release, err := g.acquire(ctx, tt.need)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("acquire: %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				release()
			}
		})
	}
}

// TestHashGateQueue: waiters are served in arrival order as memory frees, and a full
// line is refused at once.
func TestHashGateQueue(t *testing.T) {
	g := newHashGate(19*hashMiB, 2, time.Minute)
	hold, err := g.acquire(context.Background(), 19*hashMiB)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range 2 {
		wg.Go(func() {
			release, err := g.acquire(context.Background(), 19*hashMiB)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			release()
		})
		waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.waiters.Len() == i+1 })
	}
	if _, err := g.acquire(context.Background(), 19*hashMiB); !errors.Is(err, ErrHashBusy) {
		t.Fatalf("third waiter: %v, want ErrHashBusy", err)
	}
	hold()
	wg.Wait()
	if len(order) != 2 || order[0] != 0 || order[1] != 1 {
		t.Fatalf("served in order %v, want [0 1]", order)
	}
	if g.used != 0 || g.waiters.Len() != 0 {
		t.Fatalf("after all released: used %d, %d waiting", g.used, g.waiters.Len())
	}
}

// TestHashGateLeavingFrontLetsOthersIn: when the waiter at the front gives up, a smaller
// one behind it that fits is let in.
func TestHashGateLeavingFrontLetsOthersIn(t *testing.T) {
	g := newHashGate(40*hashMiB, 4, time.Minute)
	hold, err := g.acquire(context.Background(), 20*hashMiB)
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	ctx, cancel := context.WithCancel(context.Background())
	bigDone := make(chan error, 1)
	go func() {
		_, err := g.acquire(ctx, 40*hashMiB) // must wait for the whole budget
		bigDone <- err
	}()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.waiters.Len() == 1 })
	smallDone := make(chan error, 1)
	go func() {
		release, err := g.acquire(context.Background(), 20*hashMiB) // fits, but waits its turn
		if err == nil {
			release()
		}
		smallDone <- err
	}()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.waiters.Len() == 2 })
	cancel()
	if err := <-bigDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("big waiter: %v", err)
	}
	select {
	case err := <-smallDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter behind the one that left was not let in")
	}
}

func TestHashMemory(t *testing.T) {
	h, err := pwhash.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		hash string
		want int64
	}{
		{"", 19 * hashMiB},
		{h, 19 * hashMiB},
		{"$argon2id$v=19$m=65536,t=1,p=4$c29tZXNhbHQ$c29tZWtleQ", 64 * hashMiB},
		{"not a hash", 19 * hashMiB},
	} {
		if got := hashMemory(tt.hash); got != tt.want {
			t.Errorf("hashMemory(%.30q) = %d, want %d", tt.hash, got, tt.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
