package idp

import (
	"container/list"
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/openidp/idp/idp/pwhash"
)

// Every argon2id computation holds its whole memory parameter (19 MiB with
// pwhash.Params) for its duration. Without a bound, N concurrent password checks need
// N × 19 MiB: 100 anonymous login POSTs took one process from 48 MB to 1.9 GB. The
// server therefore runs password hashes through a gate sized from a memory budget:
// a hash starts when its memory fits in what is left of the budget, otherwise it waits
// in a short FIFO queue, and is refused with ErrHashBusy when the queue is full or the
// wait runs out. Handlers answer ErrHashBusy with 503 and Retry-After (renderBusy).

// Defaults of the password-hash gate (Config.PasswordHashMemory, PasswordHashQueue,
// PasswordHashWait).
const (
	// DefaultPasswordHashMemory is 64 MiB: three concurrent 19 MiB hashes, about 100
	// password checks a second on two cores. With the process's other ~50 MB and the
	// garbage collector's headroom, peak RSS stays well under 256 MB however many
	// anonymous login POSTs arrive at once.
	DefaultPasswordHashMemory = 64 << 20
	// DefaultPasswordHashWait is the longest a password check waits for memory.
	DefaultPasswordHashWait = 2 * time.Second
	// hashQueuePerSlot is how many checks may wait per hash that fits in the budget by
	// default. A hash takes 30 ms on an idle core and 50–120 ms when the hashes share
	// the CPU: the last in line then starts within DefaultPasswordHashWait, and a burst
	// beyond the line is told to come back at once rather than after the wait.
	hashQueuePerSlot = 16
)

// ErrHashBusy is returned by the server's password checks when no memory for another
// argon2id computation became free within the queue's wait (or the queue was full).
// Answer it with Server.renderBusy (503 with Retry-After), never as a wrong password.
var ErrHashBusy = errors.New("password hashing at capacity")

// hashGate is a FIFO weighted semaphore over a memory budget in bytes.
type hashGate struct {
	budget   int64
	maxQueue int
	maxWait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters list.List // of *hashWaiter, oldest first
}

type hashWaiter struct {
	need  int64
	ready chan struct{} // closed when the memory is granted
}

// newHashGate returns a gate over budget bytes. A queue < 0 means no waiting; 0 and a
// zero wait take the defaults.
func newHashGate(budget int64, queue int, wait time.Duration) *hashGate {
	if budget <= 0 {
		budget = DefaultPasswordHashMemory
	}
	if queue == 0 {
		queue = hashQueuePerSlot * int(max(1, budget/passwordHashBytes(pwhash.Params)))
	}
	if wait <= 0 {
		wait = DefaultPasswordHashWait
	}
	return &hashGate{budget: budget, maxQueue: max(queue, 0), maxWait: wait}
}

// passwordHashBytes is the memory one argon2id computation with p allocates.
func passwordHashBytes(p *argon2id.Params) int64 { return int64(p.Memory) << 10 }

// acquire reserves need bytes, waiting in line for at most the gate's wait. A need
// larger than the whole budget runs alone. The returned release must be called once.
func (g *hashGate) acquire(ctx context.Context, need int64) (release func(), err error) {
	need = min(max(need, 1), g.budget)
	release = func() { g.release(need) }
	g.mu.Lock()
	if g.waiters.Len() == 0 && g.used+need <= g.budget {
		g.used += need
		g.mu.Unlock()
		return release, nil
	}
	if g.waiters.Len() >= g.maxQueue {
		g.mu.Unlock()
		return nil, ErrHashBusy
	}
	w := &hashWaiter{need: need, ready: make(chan struct{})}
	el := g.waiters.PushBack(w)
	g.mu.Unlock()

	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	select {
	case <-w.ready:
		return release, nil
	case <-t.C:
		err = ErrHashBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-w.ready: // granted while giving up: take it
		return release, nil
	default:
	}
	front := g.waiters.Front() == el
	g.waiters.Remove(el)
	if front { // whoever was behind may fit now
		g.grantLocked()
	}
	return nil, err
}

func (g *hashGate) release(n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.used -= n
	g.grantLocked()
}

// grantLocked hands free memory to the waiters at the front of the line, in order.
func (g *hashGate) grantLocked() {
	for el := g.waiters.Front(); el != nil; el = g.waiters.Front() {
		w := el.Value.(*hashWaiter)
		if g.used+w.need > g.budget {
			return
		}
		g.used += w.need
		g.waiters.Remove(el)
		close(w.ready)
	}
}

// retryAfter is the Retry-After, in whole seconds, sent with ErrHashBusy: by then the
// queue has turned over.
func (g *hashGate) retryAfter() int {
	return max(1, int(math.Ceil(g.maxWait.Seconds())))
}

// hashMemory is the memory checking a password against hash needs: that of the hash's
// own parameters, or pwhash.Params' for the dummy hash ("") and unparsable hashes.
func hashMemory(hash string) int64 {
	if hash != "" {
		if p, _, _, err := argon2id.DecodeHash(hash); err == nil {
			return passwordHashBytes(p)
		}
	}
	return passwordHashBytes(pwhash.Params)
}

// verifyPassword is pwhash.Verify through the server's hash gate. err is ErrHashBusy
// (or the context's error) when the check could not run; ok and rehash are then false.
func (s *Server) verifyPassword(ctx context.Context, password, hash string) (ok, rehash bool, err error) {
	release, err := s.hashes.acquire(ctx, hashMemory(hash))
	if err != nil {
		s.logBusy(ctx, err)
		return false, false, err
	}
	defer release()
	ok, rehash = pwhash.Verify(password, hash)
	return ok, rehash, nil
}

// hashPassword is pwhash.Hash through the server's hash gate.
func (s *Server) hashPassword(ctx context.Context, password string) (string, error) {
	if len(password) < pwhash.MinLength {
		return pwhash.Hash(password) // refused before any hashing
	}
	release, err := s.hashes.acquire(ctx, passwordHashBytes(pwhash.Params))
	if err != nil {
		s.logBusy(ctx, err)
		return "", err
	}
	defer release()
	return pwhash.Hash(password)
}

func (s *Server) logBusy(ctx context.Context, err error) {
	if errors.Is(err, ErrHashBusy) {
		s.logger.WarnContext(ctx, "password check refused: hashing at capacity (see --password-hash-memory)",
			"budget_bytes", s.hashes.budget)
	}
}

// renderBusy answers a request whose password could not be checked (ErrHashBusy):
// 503 with Retry-After and a page that says to try again.
func (s *Server) renderBusy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", strconv.Itoa(s.hashes.retryAfter()))
	s.renderError(w, r, http.StatusServiceUnavailable, "Busy right now",
		"Too many sign-ins are being checked at this moment. Wait a few seconds, then go back and try again.")
}
