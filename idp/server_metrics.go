package idp

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/idp/metrics"
	"github.com/openidp/idp/idp/regulation"
	"github.com/openidp/idp/storage"
)

// Metrics is the server's Prometheus registry (Config.Metrics, or its own). It serves
// GET /metrics on the main handler unless Config.NoMetricsEndpoint.
func (s *Server) Metrics() *metrics.Registry { return s.metrics }

// setupMetrics takes or makes the registry and hooks the audit trail and the store's
// connection pool into it.
func (s *Server) setupMetrics() {
	s.metrics = s.cfg.Metrics
	if s.metrics == nil {
		s.metrics = metrics.New()
	}
	s.metrics.WatchPool(s.store)
	s.audit.Observe = s.metrics.AuditWrite
}

// opRoutes are the paths op serves under "/" that get their own route label; any
// other path op answers (mostly 404s) is labelled "other", so the label's values stay a
// fixed set whatever clients request.
func opRoutes(p *op.Provider) map[string]bool {
	m := map[string]bool{"/healthz": true, "/ready": true}
	for _, e := range []*op.Endpoint{
		p.AuthorizationEndpoint(), p.TokenEndpoint(), p.IntrospectionEndpoint(), p.UserinfoEndpoint(),
		p.RevocationEndpoint(), p.EndSessionEndpoint(), p.DeviceAuthorizationEndpoint(), p.KeysEndpoint(),
	} {
		if e != nil && e.Relative() != "" {
			m[e.Relative()] = true
		}
	}
	m[p.AuthorizationEndpoint().Relative()+"/callback"] = true
	return m
}

// routeLabel is the route label of r: the pattern mux matched without its method, op's
// endpoint path for what op serves, or "other". Never the raw path.
func routeLabel(mux *http.ServeMux, ops map[string]bool, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	if pattern == "" || pattern == "/" {
		if ops[r.URL.Path] {
			return r.URL.Path
		}
		return metrics.Other
	}
	return pattern
}

// withMetrics counts every request and its latency by route label, method and status.
func (s *Server) withMetrics(mux *http.ServeMux, next http.Handler) http.Handler {
	ops := opRoutes(s.provider)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := routeLabel(mux, ops, r)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.metrics.Request(route, r.Method, rec.status, time.Since(start))
	})
}

// tokenGrantLabel names the grant of a token request for openidp_tokens_issued_total.
func tokenGrantLabel(req op.TokenRequest) string {
	switch req.(type) {
	case authRequest:
		return "authorization_code"
	case *refreshRequest:
		return "refresh_token"
	case *clientCredentialsRequest:
		return "client_credentials"
	case *op.DeviceAuthorizationState:
		return "device_code"
	}
	return metrics.Other
}

// countCodeEvent feeds openidp_codes_sent_total and openidp_code_send_failures_total
// from the events mfa audits for one-time codes, whose reason starts with the kind.
func (s *Server) countCodeEvent(e storage.AuditEvent) {
	channel, _, _ := strings.Cut(e.Reason, " ")
	switch e.Type {
	case audit.EventMFACodeSent:
		s.metrics.CodeSent(channel)
	case audit.EventMFAProviderFailure:
		s.metrics.CodeSendFailure(channel)
	}
}

// countMFASignIn counts a second-factor check of kind that ended with err: a wrong
// answer is a failure (even when it starts a lock); a try the regulator refused
// unchecked is locked.
func (s *Server) countMFASignIn(kind storage.FactorKind, err error) {
	result := metrics.ResultSuccess
	var locked *regulation.LockedError
	switch {
	case err != nil && guessFailure(err):
		result = metrics.ResultFailure
	case errors.As(err, &locked):
		result = metrics.ResultLocked
	case err != nil:
		result = metrics.ResultFailure
	}
	s.metrics.SignIn(result, string(kind))
}
