package idp_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
)

// scrape fetches GET /metrics from the provider and returns its text and parsed families.
func scrape(t *testing.T, base string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return string(body), fams
}

// metricValue is the value of the series of family name with exactly the labels given
// (counter, gauge or histogram sample count); -1 when absent.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// metricWant is a series and the least value it must have.
type metricWant struct {
	name   string
	labels map[string]string
	min    float64
}

// wantMetrics scrapes the provider at base and checks every want; it returns the text.
func wantMetrics(t *testing.T, base string, wants []metricWant) string {
	t.Helper()
	text, fams := scrape(t, base)
	for _, w := range wants {
		if got := metricValue(fams, w.name, w.labels); got < w.min {
			t.Errorf("%s%v = %v, want at least %v", w.name, w.labels, got, w.min)
		}
	}
	return text
}

// TestMetrics signs in (right and wrong password), issues tokens by two grants, and
// checks the scrape: the counters moved, routes are labelled by pattern (never a raw
// path or query), and the database pool gauges are there.
func TestMetrics(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			e := newEnv(t, be.open(t), func(c *idp.Config) { c.LoginLimits.PerAccount = 2 })
			e.createUser("alice@example.com", password)
			app := e.createClient(admin.NewClient{Name: "App", SkipConsent: true, Scopes: []string{"openid", "email"}})
			svc := e.createClient(admin.NewClient{Name: "Service", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}})

			loginCode(t, e, e.newBrowser(), app, url.Values{"scope": {"openid email"}})
			b := e.newBrowser()
			p := b.Get(e.authURL(app, url.Values{"scope": {"openid"}}))
			// Two wrong passwords lock the pair (PerAccount 2); the third try is refused.
			for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
				if p = b.Login(p, "alice@example.com", "wrong password"); p.Status != want {
					t.Fatalf("wrong password %d: status %d, want %d", i+1, p.Status, want)
				}
			}
			for range 2 {
				if cc := e.tokenRequest(svc, url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}); cc.Error != "" {
					t.Fatalf("client_credentials: %+v", cc)
				}
			}
			for _, path := range []string{"/authorize?secretquery=x1", "/no/such/raw-path-zz9", "/login?id=raw-id-zz9", "/userinfo", "/device_authorization", "/revoke", "/end_session"} {
				resp, err := http.Get(e.issuer + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}

			text := wantMetrics(t, e.issuer, []metricWant{
				{"openidp_signins_total", map[string]string{"result": "success", "factor": "password"}, 1},
				{"openidp_signins_total", map[string]string{"result": "failure", "factor": "password"}, 2},
				{"openidp_signins_total", map[string]string{"result": "locked", "factor": "password"}, 1},
				{"openidp_lockouts_total", map[string]string{"kind": "password"}, 2},
				{"openidp_tokens_issued_total", map[string]string{"grant": "client_credentials"}, 2},
				{"openidp_tokens_issued_total", map[string]string{"grant": "authorization_code"}, 1},
				{"openidp_http_requests_total", map[string]string{"route": "/oauth/token", "method": "POST", "status": "200"}, 3},
				{"openidp_http_requests_total", map[string]string{"route": "/login", "method": "POST", "status": "401"}, 2},
				{"openidp_http_requests_total", map[string]string{"route": "/authorize", "method": "GET", "status": "400"}, 1},
				{"openidp_http_requests_total", map[string]string{"route": "other", "method": "GET", "status": "404"}, 1},
				{"openidp_http_request_duration_seconds", map[string]string{"route": "/oauth/token", "method": "POST"}, 3},
				{"openidp_audit_write_duration_seconds", nil, 3},
				{"openidp_audit_write_failures_total", nil, 0},
				{"openidp_db_pool_connections", nil, 1},
				{"openidp_db_pool_connections_in_use", nil, 0},
				{"openidp_db_pool_connections_idle", nil, 0},
				{"openidp_db_pool_connections_max", nil, 0},
				{"go_goroutines", nil, 1},
			})
			for _, route := range []string{"/userinfo", "/device_authorization", "/revoke", "/end_session"} {
				if !strings.Contains(text, `route="`+route+`"`) {
					t.Errorf("no series with route %q", route)
				}
			}
			for _, raw := range []string{"secretquery", "x1", "raw-path-zz9", "raw-id-zz9", "/no/such"} {
				if strings.Contains(text, raw) {
					t.Errorf("metrics contain the raw request %q", raw)
				}
			}
		})
	}
}

// TestMetricsEndpointOff: with NoMetricsEndpoint the handler answers 404 for /metrics,
// and the registry still records.
func TestMetricsEndpointOff(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *idp.Config) { c.NoMetricsEndpoint = true })
	resp, err := http.Get(e.issuer + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics = %d, want 404", resp.StatusCode)
	}
	fams, err := e.server.Metrics().Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fams {
		if f.GetName() == "openidp_http_requests_total" {
			found = true
		}
	}
	if !found {
		t.Error("openidp_http_requests_total not recorded")
	}
}
