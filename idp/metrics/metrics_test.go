package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openidp/idp/storage"
)

type fakePool struct{}

func (fakePool) PoolStats() storage.PoolStats {
	return storage.PoolStats{Open: 3, InUse: 1, Idle: 2, MaxOpen: 10}
}

// Commits makes fakePool a store with a group-commit writer.
func (fakePool) Commits() int64 { return 42 }

// Flushes makes fakePool a store that flushes its commits itself.
func (fakePool) Flushes() (int64, time.Duration) { return 7, 1500 * time.Millisecond }

// Label values outside their fixed sets fold into "other"; a nil registry records
// nothing and does not panic.
func TestBoundedLabels(t *testing.T) {
	r := New()
	r.SignIn("success", "totp")
	r.SignIn("weird", "carrier-pigeon")
	r.Lockout("mfa")
	r.Lockout("x")
	r.CodeSent("sms")
	r.CodeSendFailure("fax")
	r.TokenIssued("urn:made:up")
	r.Request("/login", "BREW", 200, time.Millisecond)
	r.Request("/login", http.MethodGet, 42, time.Millisecond)
	r.AuditWrite(time.Millisecond, nil)
	r.AuditWrite(time.Millisecond, http.ErrAbortHandler)
	for _, c := range []struct {
		got  float64
		want float64
		name string
	}{
		{testutil.ToFloat64(r.signins.WithLabelValues("success", "totp")), 1, "signins success totp"},
		{testutil.ToFloat64(r.signins.WithLabelValues(Other, Other)), 1, "signins other"},
		{testutil.ToFloat64(r.lockouts.WithLabelValues(Other)), 1, "lockouts other"},
		{testutil.ToFloat64(r.codesSent.WithLabelValues("sms")), 1, "codes sms"},
		{testutil.ToFloat64(r.codeFailures.WithLabelValues(Other)), 1, "code failures other"},
		{testutil.ToFloat64(r.tokens.WithLabelValues(Other)), 1, "tokens other"},
		{testutil.ToFloat64(r.requests.WithLabelValues("/login", Other, "200")), 1, "method other"},
		{testutil.ToFloat64(r.requests.WithLabelValues("/login", "GET", Other)), 1, "status other"},
		{testutil.ToFloat64(r.auditFailure), 1, "audit failures"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	var nilReg *Registry
	nilReg.SignIn("success", "password")
	nilReg.Request("/", "GET", 200, 0)
	nilReg.AuditWrite(0, nil)
	nilReg.WatchPool(fakePool{})
}

func TestPoolGaugesAndHandler(t *testing.T) {
	r := New()
	r.WatchPool(fakePool{})
	r.WatchPool(fakePool{}) // a second call is a no-op
	r.WatchPool(struct{}{}) // no pool: nothing
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"openidp_db_pool_connections 3", "openidp_db_pool_connections_in_use 1",
		"openidp_db_pool_connections_idle 2", "openidp_db_pool_connections_max 10",
		"go_goroutines", "openidp_audit_write_duration_seconds_bucket", "openidp_store_commits_total 42",
		"openidp_store_flushes_total 7", "openidp_store_flush_seconds_total 1.5",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
