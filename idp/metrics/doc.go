// Package metrics holds the provider's Prometheus metrics (docs/metrics.md) in a
// private registry: HTTP requests by route and status, sign-ins, lockouts, one-time
// codes sent, tokens issued, audit writes, the database pool and the Go runtime.
//
// Every label takes its values from a fixed set: the recording methods fold anything
// else into "other", so a client cannot grow the number of series.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openidp/idp/storage"
)

// Label values.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
	ResultLocked  = "locked"

	FactorPassword = "password"

	LockoutPassword = "password"
	LockoutMFA      = "mfa"

	Other = "other"
)

var (
	results  = set(ResultSuccess, ResultFailure, ResultLocked)
	factors  = set(FactorPassword, "totp", "sms", "email", "backup", "webauthn")
	lockouts = set(LockoutPassword, LockoutMFA)
	channels = set("email", "sms")
	grants   = set("authorization_code", "refresh_token", "client_credentials", "device_code")
	methods  = set(http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace)
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// bound returns v if allowed has it, else Other.
func bound(allowed map[string]bool, v string) string {
	if allowed[v] {
		return v
	}
	return Other
}

// Registry is the provider's metrics. A nil *Registry records nothing, so callers need
// not check.
type Registry struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	signins      *prometheus.CounterVec
	lockouts     *prometheus.CounterVec
	codesSent    *prometheus.CounterVec
	codeFailures *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	auditWrite   prometheus.Histogram
	auditFailure prometheus.Counter
}

// New returns a registry with every metric and the Go runtime and process collectors.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status code.",
	}, []string{"route", "method", "status"})
	r.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "openidp_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route pattern and method.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	r.signins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_signins_total", Help: "Sign-in checks (password or second factor), by result (success, failure, locked) and factor.",
	}, []string{"result", "factor"})
	r.lockouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_lockouts_total", Help: "Guesses refused or locks started by the regulator, by kind (password, mfa).",
	}, []string{"kind"})
	r.codesSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_codes_sent_total", Help: "One-time codes delivered, by channel (email, sms).",
	}, []string{"channel"})
	r.codeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_code_send_failures_total", Help: "Failed deliveries of one-time codes (each provider attempt), by channel.",
	}, []string{"channel"})
	r.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "openidp_tokens_issued_total", Help: "Access tokens issued at the token endpoint, by grant type.",
	}, []string{"grant"})
	r.auditWrite = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "openidp_audit_write_duration_seconds", Help: "Time to append one audit event to the chain.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	r.auditFailure = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "openidp_audit_write_failures_total", Help: "Audit events that could not be written.",
	})
	r.reg.MustRegister(r.requests, r.duration, r.signins, r.lockouts, r.codesSent, r.codeFailures, r.tokens,
		r.auditWrite, r.auditFailure,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the registry in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Gatherer is the underlying registry, for tests.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Request records one answered HTTP request. route must be a route pattern or Other,
// never a raw path.
func (r *Registry) Request(route, method string, status int, d time.Duration) {
	if r == nil {
		return
	}
	method = bound(methods, method)
	r.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	r.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

func statusLabel(code int) string {
	if code < 100 || code > 999 {
		return Other
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}

// SignIn counts one sign-in check: result is ResultSuccess, ResultFailure or
// ResultLocked; factor is FactorPassword or a storage.FactorKind.
func (r *Registry) SignIn(result, factor string) {
	if r == nil {
		return
	}
	r.signins.WithLabelValues(bound(results, result), bound(factors, factor)).Inc()
}

// Lockout counts one refusal or lock by the regulator: LockoutPassword or LockoutMFA.
func (r *Registry) Lockout(kind string) {
	if r == nil {
		return
	}
	r.lockouts.WithLabelValues(bound(lockouts, kind)).Inc()
}

// CodeSent counts one delivered code on channel ("email", "sms").
func (r *Registry) CodeSent(channel string) {
	if r == nil {
		return
	}
	r.codesSent.WithLabelValues(bound(channels, channel)).Inc()
}

// CodeSendFailure counts one failed delivery attempt on channel.
func (r *Registry) CodeSendFailure(channel string) {
	if r == nil {
		return
	}
	r.codeFailures.WithLabelValues(bound(channels, channel)).Inc()
}

// TokenIssued counts one access token issued by grant ("authorization_code",
// "refresh_token", "client_credentials", "device_code").
func (r *Registry) TokenIssued(grant string) {
	if r == nil {
		return
	}
	r.tokens.WithLabelValues(bound(grants, grant)).Inc()
}

// AuditWrite records one audit write: its duration, and a failure when err is not nil.
// Its signature fits audit.Auditor.Observe.
func (r *Registry) AuditWrite(d time.Duration, err error) {
	if r == nil {
		return
	}
	r.auditWrite.Observe(d.Seconds())
	if err != nil {
		r.auditFailure.Inc()
	}
}

// WatchPool exports the connection pool of store, if the store reports one
// (storage.PoolStatser), as gauges read at each scrape, and the transactions of its
// group-commit writer, if it has one (storage.CommitCounter), and its flushes with the
// time spent in them, if it flushes (storage.FlushCounter), as counters. It is a no-op
// otherwise, or when called a second time.
func (r *Registry) WatchPool(store any) {
	if r == nil {
		return
	}
	if ps, ok := store.(storage.PoolStatser); ok {
		_ = r.reg.Register(poolCollector{ps})
	}
	if cc, ok := store.(storage.CommitCounter); ok {
		_ = r.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "openidp_store_commits_total",
			Help: "Write transactions committed by the store's group-commit writer (token issues and audit events share them).",
		}, func() float64 { return float64(cc.Commits()) }))
	}
	if fc, ok := store.(storage.FlushCounter); ok {
		_ = r.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "openidp_store_flushes_total",
			Help: "Flushes of the store's write-ahead log to the disk after its commits (SQLite; 0 on PostgreSQL, whose database server flushes).",
		}, func() float64 { n, _ := fc.Flushes(); return float64(n) }))
		_ = r.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "openidp_store_flush_seconds_total",
			Help: "Time spent in the flushes of openidp_store_flushes_total, in seconds.",
		}, func() float64 { _, d := fc.Flushes(); return d.Seconds() }))
	}
}

var (
	poolOpen  = prometheus.NewDesc("openidp_db_pool_connections", "Open database connections (in use and idle).", nil, nil)
	poolInUse = prometheus.NewDesc("openidp_db_pool_connections_in_use", "Database connections acquired by a query.", nil, nil)
	poolIdle  = prometheus.NewDesc("openidp_db_pool_connections_idle", "Idle database connections.", nil, nil)
	poolMax   = prometheus.NewDesc("openidp_db_pool_connections_max", "The pool's ceiling of open connections (0: unlimited).", nil, nil)
)

// poolCollector reads the pool at each scrape.
type poolCollector struct{ s storage.PoolStatser }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolOpen
	ch <- poolInUse
	ch <- poolIdle
	ch <- poolMax
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.PoolStats()
	ch <- prometheus.MustNewConstMetric(poolOpen, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(poolInUse, prometheus.GaugeValue, float64(st.InUse))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(st.Idle))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(st.MaxOpen))
}
