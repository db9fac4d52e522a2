// Package bench is the load generator behind `idp bench`: it drives any OpenID Connect
// issuer over HTTP with a fixed set of scenarios (client_credentials, introspection,
// refresh rotation, password sign-in, password + TOTP sign-in, SSO sign-in) from a
// number of concurrent workers, and reports throughput, latency percentiles and errors
// per scenario. Seeder creates the people and clients in openidp's own database;
// against another issuer the credentials are given. docs/performance.md describes the
// method.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario names, in the order they run.
const (
	ScenarioClientCredentials = "client_credentials"
	ScenarioIntrospection     = "introspection"
	ScenarioRefresh           = "refresh"
	ScenarioPassword          = "password"
	ScenarioPasswordTOTP      = "password_totp"
	ScenarioSSO               = "sso"
)

// Scenarios lists every scenario in run order.
var Scenarios = []string{ScenarioClientCredentials, ScenarioIntrospection, ScenarioRefresh,
	ScenarioPassword, ScenarioPasswordTOTP, ScenarioSSO}

// Options configure a run.
type Options struct {
	// Issuer is the provider's issuer URL; its endpoints come from discovery.
	Issuer string
	// Scenarios to run, in the order of Scenarios; all when empty.
	Scenarios []string
	// Concurrency is the number of workers, each with one request in flight (default 8).
	Concurrency int
	// Duration each scenario runs for (default 10s), unless Requests is set.
	Duration time.Duration
	// Requests, when positive, runs each scenario for exactly this many operations
	// instead of Duration (tests use it; no timing involved).
	Requests int
	// Rounds runs the scenarios this many times, one round after the other (every
	// scenario in order, then again), and reports each scenario's median round
	// (default 1). Figures on a shared or virtual machine move by 10–15% from one run to
	// the next; the median of several rounds moves less.
	Rounds int
	// Credentials are what the scenarios sign in with.
	Credentials *Credentials
	// MetricsURL is where the server's Prometheus metrics are read (to count store
	// commits); default <issuer>/metrics. "-" reads none.
	MetricsURL string
	// ForwardedFor sends an X-Forwarded-For address per sign-in, counting up through
	// 198.18.0.0/15 (RFC 2544's benchmarking range), so that a server that trusts the
	// bench as its proxy applies its per-address limits (/authorize: 60 a minute) to
	// many addresses. Without it every sign-in comes from the bench's own address.
	ForwardedFor bool
	// Client is the HTTP client; default one with a transport tuned for Concurrency.
	Client *http.Client
}

// Result is one scenario's figures.
type Result struct {
	Scenario  string        `json:"scenario"`
	Requests  int           `json:"requests"` // operations completed without error
	Errors    int           `json:"errors"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	// FirstError is the first error seen, for the report; empty when none.
	FirstError string `json:"first_error,omitempty"`
	// CommitsPer1000 is the store commits per 1,000 operations, from the server's
	// openidp_store_commits_total; nil when the server does not expose it.
	CommitsPer1000 *float64 `json:"store_commits_per_1000,omitempty"`
	// ServerCPUPerOp is the server process's CPU time (user and system) per successful
	// operation, from its process_cpu_seconds_total; nil when the server does not
	// expose it. Unlike the operations per second it does not depend on how busy the
	// machine's other work keeps the server's core, so it is the figure to compare two
	// builds by on a shared machine. It is one process's: behind a load balancer, bench
	// one process.
	ServerCPUPerOp *time.Duration `json:"server_cpu_per_op_ns,omitempty"`
	// FlushMean is the mean time of the store's flushes to the disk during the scenario
	// (SQLite's write-ahead log after its commits), from openidp_store_flushes_total and
	// openidp_store_flush_seconds_total; nil when the server does not expose them or
	// made no flush. It is the disk's speed, which bounds the durable writes: the figure
	// to tell a slower disk from a slower build.
	FlushMean *time.Duration `json:"store_flush_mean_ns,omitempty"`
	// AccessTokens is the format of the access tokens the scenario was given, set-up
	// included (for introspection: the token it introspects): "jwt" (a signed JWT),
	// "opaque" (anything else, e.g. an encrypted reference), "jwt+opaque" when both came,
	// or "" when none did. A JWT costs the provider a signature per token that an
	// opaque token does not, so two providers compare only at the same format.
	AccessTokens string `json:"access_tokens,omitempty"`
	// Note says something the figures need to be read with (e.g. a provider without SSO
	// sessions, where "sso" is a full sign-in each time).
	Note string `json:"note,omitempty"`
	// RoundsPerSecond are the operations per second of every round, in the order they
	// ran, when there was more than one (Options.Rounds). The other figures are then
	// the median round's, but for Errors and FirstError, which are every round's.
	RoundsPerSecond []float64 `json:"rounds_per_second,omitempty"`
	// RoundsServerCPUPerOp is every round's ServerCPUPerOp, in the order they ran, when
	// there was more than one round and the server exposed its CPU time in each.
	RoundsServerCPUPerOp []time.Duration `json:"rounds_server_cpu_per_op_ns,omitempty"`
}

// Run discovers the issuer's endpoints and runs each scenario in turn.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ep, err := discover(ctx, o.Client, o.Issuer)
	if err != nil {
		return nil, err
	}
	r := &runner{o: o, ep: ep}
	var names []string
	for _, name := range Scenarios {
		if slices.Contains(o.Scenarios, name) {
			names = append(names, name)
		}
	}
	rounds := make([][]Result, len(names)) // rounds[i]: scenario names[i], round by round
	for range o.Rounds {
		for i, name := range names {
			res, err := r.run(ctx, name)
			if err != nil {
				return medians(rounds), fmt.Errorf("scenario %s: %w", name, err)
			}
			rounds[i] = append(rounds[i], res)
		}
	}
	return medians(rounds), nil
}

// medians returns, for each scenario's rounds, its median round (the lower of the two
// middle ones for an even number) by operations per second, with every round's rate
// in RoundsPerSecond and every round's errors. A single round is returned as it is.
func medians(rounds [][]Result) []Result {
	var out []Result
	for _, rs := range rounds {
		if len(rs) == 0 {
			continue
		}
		if len(rs) == 1 {
			out = append(out, rs[0])
			continue
		}
		sorted := slices.Clone(rs)
		slices.SortStableFunc(sorted, func(a, b Result) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
		m := sorted[(len(sorted)-1)/2]
		m.Errors, m.FirstError = 0, ""
		for _, r := range rs {
			m.RoundsPerSecond = append(m.RoundsPerSecond, r.PerSecond)
			if r.ServerCPUPerOp != nil {
				m.RoundsServerCPUPerOp = append(m.RoundsServerCPUPerOp, *r.ServerCPUPerOp)
			}
			m.Errors += r.Errors
			if m.FirstError == "" {
				m.FirstError = r.FirstError
			}
		}
		if len(m.RoundsServerCPUPerOp) != len(rs) {
			m.RoundsServerCPUPerOp = nil
		}
		out = append(out, m)
	}
	return out
}

func (o *Options) defaults() error {
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if o.Issuer == "" {
		return errors.New("the issuer is required")
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	if len(o.Scenarios) == 0 {
		o.Scenarios = Scenarios
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q: use %s", s, strings.Join(Scenarios, ", "))
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Credentials == nil {
		return errors.New("no credentials: seed them or give them")
	}
	if o.MetricsURL == "" {
		o.MetricsURL = o.Issuer + "/metrics"
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: NewTransport(o.Concurrency), Timeout: 30 * time.Second}
	}
	return nil
}

// NewTransport returns an HTTP transport for concurrency workers on one host: enough
// idle connections kept per host that no request waits for a new connection (or leaves
// one in TIME_WAIT), and no compression.
func NewTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * concurrency,
		MaxIdleConnsPerHost: 4 * concurrency,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// runner holds what every scenario shares.
type runner struct {
	o    Options
	ep   *endpoints
	xff  atomic.Uint32 // next X-Forwarded-For offset in 198.18.0.0/15
	totp *totpPool     // the people with TOTP, shared by every round of password_totp
	// tokens records the formats of the access tokens the running scenario was given
	// (tokenJWT | tokenOpaque).
	tokens atomic.Uint32
}

// nextAddr returns the next address of 198.18.0.0/15 for X-Forwarded-For, or "" when
// ForwardedFor is off.
func (r *runner) nextAddr() string {
	if !r.o.ForwardedFor {
		return ""
	}
	n := r.xff.Add(1) % (1 << 17) // 198.18.0.0/15 holds 2^17 addresses
	return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)}).String()
}

// op is one operation of a scenario by one worker; a worker's state lives in its closure.
type op func(ctx context.Context) error

// scenario prepares the per-worker operations of a scenario.
type scenario struct {
	// setup returns worker w's operation, having done what it needs first (e.g. a
	// sign-in for a refresh chain); its time is not measured.
	setup func(ctx context.Context, w int) (op, error)
	note  string
	// after, when set, returns a note on the finished run.
	after func() string
}

func (r *runner) run(ctx context.Context, name string) (Result, error) {
	sc, err := r.scenario(ctx, name)
	if err != nil {
		return Result{}, err
	}
	r.tokens.Store(0)
	workers := make([]op, r.o.Concurrency)
	for w := range workers {
		if workers[w], err = sc.setup(ctx, w); err != nil {
			return Result{}, fmt.Errorf("worker %d set-up: %w", w, err)
		}
	}
	before := r.readCounters(ctx)

	var (
		started  atomic.Int64 // operations handed out (Requests mode)
		mu       sync.Mutex
		samples  []time.Duration
		errCount int
		firstErr string
		wg       sync.WaitGroup
	)
	var deadline time.Time
	if r.o.Requests <= 0 {
		deadline = time.Now().Add(r.o.Duration)
	}
	begin := time.Now()
	for w := range workers {
		wg.Add(1)
		go func(do op) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			var localErrs int
			var localFirst string
			for ctx.Err() == nil {
				if r.o.Requests > 0 {
					if started.Add(1) > int64(r.o.Requests) {
						break
					}
				} else if !time.Now().Before(deadline) {
					break
				}
				t0 := time.Now()
				err := do(ctx)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					localErrs++
					if localFirst == "" {
						localFirst = err.Error()
					}
					continue
				}
				local = append(local, d)
			}
			mu.Lock()
			samples = append(samples, local...)
			errCount += localErrs
			if firstErr == "" {
				firstErr = localFirst
			}
			mu.Unlock()
		}(workers[w])
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	res := summarize(name, samples, errCount, elapsed)
	res.FirstError = firstErr
	res.AccessTokens = tokenFormats(r.tokens.Load())
	res.Note = sc.note
	if sc.after != nil {
		if n := sc.after(); n != "" {
			res.Note = strings.TrimPrefix(res.Note+"; "+n, "; ")
		}
	}
	if (before.hasCommits || before.hasCPU || before.hasFlushes) && res.Requests > 0 {
		after := r.readCounters(ctx)
		if before.hasCommits && after.hasCommits {
			v := (after.commits - before.commits) * 1000 / float64(res.Requests)
			res.CommitsPer1000 = &v
		}
		if before.hasCPU && after.hasCPU {
			v := time.Duration((after.cpu - before.cpu) * float64(time.Second) / float64(res.Requests))
			res.ServerCPUPerOp = &v
		}
		if n := after.flushes - before.flushes; before.hasFlushes && after.hasFlushes && n > 0 {
			v := time.Duration((after.flushSeconds - before.flushSeconds) * float64(time.Second) / n)
			res.FlushMean = &v
		}
	}
	return res, nil
}

// summarize computes a Result from the latencies of the successful operations: the
// samples are sorted and the percentiles read off exactly (nearest rank).
func summarize(name string, samples []time.Duration, errs int, elapsed time.Duration) Result {
	slices.Sort(samples)
	res := Result{Scenario: name, Requests: len(samples), Errors: errs, Elapsed: elapsed}
	if elapsed > 0 {
		res.PerSecond = float64(len(samples)) / elapsed.Seconds()
	}
	if n := len(samples); n > 0 {
		res.P50 = samples[rank(n, 0.50)]
		res.P99 = samples[rank(n, 0.99)]
		res.Max = samples[n-1]
	}
	return res
}

// rank is the index of the q-quantile of n sorted samples (nearest rank).
func rank(n int, q float64) int {
	i := int(float64(n)*q+0.999999) - 1
	return min(max(i, 0), n-1)
}
