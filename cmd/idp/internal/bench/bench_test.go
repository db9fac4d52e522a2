package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openidp/idp/idp"
	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/storage/seal"
	"github.com/openidp/idp/storage/sqlite"
)

// provider is a real openidp on a SQLite file, served over loopback HTTP, that trusts
// the bench as its proxy (so X-Forwarded-For spreads the per-address limits).
type provider struct {
	issuer string
	store  storage.Storage
	seeder *Seeder
}

func newProvider(t *testing.T) *provider {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(seal.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := idp.New(ctx, st, idp.Config{
		Issuer: issuer, Sealer: sealer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	return &provider{issuer: issuer, store: st, seeder: &Seeder{
		Admin: &admin.Admin{Store: st, Audit: srv.Auditor()}, Factors: st, Sealer: sealer, Issuer: issuer,
	}}
}

// usedTOTPPeople counts the people of creds with TOTP whose factor has a time step the
// provider accepted: those who signed in with a code.
func (p *provider) usedTOTPPeople(t *testing.T, creds *Credentials) int {
	t.Helper()
	ctx := context.Background()
	used := 0
	for _, tp := range creds.TOTPPeople {
		u, err := p.store.GetUserByEmail(ctx, tp.Email)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := p.store.ListFactors(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 1 && fs[0].LastStep > 0 {
			used++
		}
	}
	return used
}

// auditCount counts the successful audit events of type typ.
func (p *provider) auditCount(t *testing.T, typ string) int {
	t.Helper()
	evs, err := p.store.ListAudit(context.Background(), storage.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Result == audit.ResultSuccess {
			n++
		}
	}
	return n
}

// TestScenarios runs every scenario for a fixed number of operations against a real
// provider on SQLite and checks that each completed without an error, and that the
// provider saw them: the tokens issued and refreshed, the sign-ins with a password and
// with a TOTP code, each in the audit trail.
func TestScenarios(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	creds, err := p.seeder.Seed(ctx, 12, "https://bench.example.com/callback")
	if err != nil {
		t.Fatal(err)
	}
	if len(creds.People) != 12 || len(creds.TOTPPeople) != 12 {
		t.Fatalf("seeded %d people and %d with TOTP, want 12 each", len(creds.People), len(creds.TOTPPeople))
	}
	const requests, workers = 10, 3
	before := map[string]int{}
	for _, typ := range []string{audit.EventTokenIssue, audit.EventTokenRefresh, audit.EventLoginPassword, audit.EventMFAVerify, audit.EventLoginSSO} {
		before[typ] = p.auditCount(t, typ)
	}
	results, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: workers, Requests: requests,
		Credentials: creds, ForwardedFor: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(Scenarios) {
		t.Fatalf("got %d results, want one per scenario (%d)", len(results), len(Scenarios))
	}
	for i, r := range results {
		if r.Scenario != Scenarios[i] {
			t.Errorf("result %d is %s, want %s", i, r.Scenario, Scenarios[i])
		}
		if r.Errors != 0 || r.Requests != requests {
			t.Errorf("%s: %d done, %d errors (first: %s), want %d done and none", r.Scenario, r.Requests, r.Errors, r.FirstError, requests)
		}
		if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 || r.PerSecond <= 0 {
			t.Errorf("%s: inconsistent figures p50 %s p99 %s max %s rate %f", r.Scenario, r.P50, r.P99, r.Max, r.PerSecond)
		}
		// The server exposes metricStoreCommits: every scenario reports it, and a
		// client_credentials token takes at most one commit (fewer when batched).
		if r.CommitsPer1000 == nil {
			t.Errorf("%s: no store commits reported by a server with %s", r.Scenario, metricStoreCommits)
		} else if r.Scenario == "client_credentials" && (*r.CommitsPer1000 <= 0 || *r.CommitsPer1000 > 1000) {
			t.Errorf("%s: %f store commits per 1,000 tokens, want (0, 1000]", r.Scenario, *r.CommitsPer1000)
		}
		// So does metricProcessCPU (the Prometheus process collector). The test's
		// process is the server's and the bench's, so only its presence is checked.
		if r.ServerCPUPerOp == nil || *r.ServerCPUPerOp < 0 {
			t.Errorf("%s: server CPU per operation %v from a server with %s", r.Scenario, deref(r.ServerCPUPerOp), metricProcessCPU)
		}
		if r.Note != "" {
			t.Errorf("%s: note %q", r.Scenario, r.Note)
		}
		// The seeded clients have the provider's default format: every scenario was
		// given JWT access tokens (introspection: the token it introspected).
		if r.AccessTokens != "jwt" {
			t.Errorf("%s: access tokens %q, want jwt", r.Scenario, r.AccessTokens)
		}
	}
	// What the provider recorded is at least what the bench did (set-up sign-ins add
	// more: each refresh chain, introspected token and SSO session starts with one).
	for typ, min := range map[string]int{
		audit.EventTokenRefresh:  requests,
		audit.EventLoginPassword: 2*requests + workers, // password, password + TOTP, SSO set-up
		audit.EventMFAVerify:     requests,
		audit.EventLoginSSO:      requests,
		// client_credentials and introspection's tokens, and one per sign-in's code exchange
		audit.EventTokenIssue: requests + 3*requests,
	} {
		if got := p.auditCount(t, typ) - before[typ]; got < min {
			t.Errorf("%d successful %s events, want at least %d", got, typ, min)
		}
	}
	// Every TOTP person used signed in with a fresh code: the provider accepted a time
	// step for each.
	if used := p.usedTOTPPeople(t, creds); used != requests {
		t.Errorf("%d TOTP people have a used time step, want %d (one per sign-in, none reused)", used, requests)
	}
}

// TestAccessTokenFormats seeds clients of each access-token format into a real provider
// and checks that the token scenarios report the format the provider issued.
func TestAccessTokenFormats(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	for _, format := range []string{admin.AccessTokenOpaque, admin.AccessTokenJWT} {
		t.Run(format, func(t *testing.T) {
			seeder := *p.seeder
			seeder.AccessTokenFormat = format
			creds, err := seeder.Seed(ctx, 2, "https://bench.example.com/callback")
			if err != nil {
				t.Fatal(err)
			}
			results, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: 2, Requests: 2, Credentials: creds, ForwardedFor: true,
				Scenarios: []string{ScenarioClientCredentials, ScenarioIntrospection, ScenarioRefresh}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Errors != 0 || r.AccessTokens != format {
					t.Errorf("%s: %d errors (%s), access tokens %q; want none and %q", r.Scenario, r.Errors, r.FirstError, r.AccessTokens, format)
				}
			}
		})
	}
}

// TestAccessTokenFormat checks the shape test that tells a JWT from an opaque token, and
// the names of what a scenario saw.
func TestAccessTokenFormat(t *testing.T) {
	tests := []struct {
		token string
		want  uint32
	}{
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", tokenJWT},
		// a JWE in compact serialization (op's encrypted opaque tokens): five parts
		{"eyJhbGciOiJBMjU2R0NNS1cifQ.a2V5.aXY.Y2lwaGVy.dGFn", tokenOpaque},
		{"2YotnFZFEjr1zCsicMWpAA", tokenOpaque}, // RFC 6749's example bearer token
		{"abc.def.ghi", tokenOpaque},            // three parts, but no JSON header
		{"", tokenOpaque},
	}
	for _, tt := range tests {
		if got := accessTokenFormat(tt.token); got != tt.want {
			t.Errorf("accessTokenFormat(%q) = %d, want %d", tt.token, got, tt.want)
		}
	}
	for seen, want := range map[uint32]string{0: "", tokenJWT: "jwt", tokenOpaque: "opaque", tokenJWT | tokenOpaque: "jwt+opaque"} {
		if got := tokenFormats(seen); got != want {
			t.Errorf("tokenFormats(%d) = %q, want %q", seen, got, want)
		}
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, Report{Issuer: "http://x", Concurrency: 1, Results: []Result{
		{Scenario: ScenarioClientCredentials, AccessTokens: "opaque"}, {Scenario: ScenarioPassword}}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if len(lines) < 4 || !strings.HasSuffix(strings.TrimSpace(lines[1]), "access tokens") ||
		!strings.HasSuffix(strings.TrimSpace(lines[2]), "opaque") || !strings.HasSuffix(strings.TrimSpace(lines[3]), "-") {
		t.Errorf("text report without the access tokens column (opaque, then - for none):\n%s", buf.String())
	}
}

// TestExistingCredentials drives the token scenarios with credentials given instead of
// seeded, as against another issuer: client_credentials and introspection need only the
// service client; a wrong secret is counted as errors, not a crash.
func TestExistingCredentials(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	seeded, err := p.seeder.Seed(ctx, 1, "https://bench.example.com/callback")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		secret     string
		wantErrors bool
	}{
		{"right secret", seeded.Service.Secret, false},
		{"wrong secret", "not-the-secret", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			creds := &Credentials{Service: ClientCredentials{ID: seeded.Service.ID, Secret: tc.secret}, Scope: "api", IntrospectWith: IntrospectService}
			results, err := Run(ctx, Options{Issuer: p.issuer + "/", Concurrency: 2, Requests: 6, Credentials: creds,
				Scenarios: []string{ScenarioClientCredentials}})
			if err != nil {
				t.Fatal(err)
			}
			r := results[0]
			if tc.wantErrors {
				if r.Errors != 6 || r.Requests != 0 || !strings.Contains(r.FirstError, "401") {
					t.Errorf("got %d done, %d errors (%s), want 6 errors with the 401", r.Requests, r.Errors, r.FirstError)
				}
				return
			}
			if r.Errors != 0 || r.Requests != 6 {
				t.Errorf("got %d done, %d errors (%s), want 6 done", r.Requests, r.Errors, r.FirstError)
			}
		})
	}
	// Introspection needs a token the service may introspect: a set-up failure is an error.
	if _, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: 1, Requests: 1,
		Credentials: &Credentials{IntrospectWith: IntrospectService}, Scenarios: []string{ScenarioIntrospection}}); err == nil {
		t.Error("introspection without a service client ran")
	}
}

// TestTOTPPool checks that a person is handed out at most once per TOTP time step, and
// again from the next step.
func TestTOTPPool(t *testing.T) {
	now := time.Unix(1_000_000_020, 0) // 20 s into a step
	pool := newTOTPPool([]Person{{Email: "a"}, {Email: "b"}})
	pool.now = func() time.Time { return now }
	ctx := context.Background()
	step := currentStep(now)
	for _, want := range []string{"a", "b"} {
		p, s, err := pool.take(ctx)
		if err != nil || p.Email != want || s != step {
			t.Fatalf("take = %v %d %v, want %s at step %d", p, s, err, want, step)
		}
		pool.give(p, s)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if p, _, err := pool.take(cancelled); err == nil {
		t.Fatalf("handed out %s again in the same step", p.Email)
	}
	if pool.waits != 1 {
		t.Errorf("waits = %d, want 1", pool.waits)
	}
	now = now.Add(totpPeriod)
	if p, s, err := pool.take(ctx); err != nil || p.Email != "a" || s != step+1 {
		t.Errorf("next step: take = %v %d %v, want a at step %d", p, s, err, step+1)
	}
}

// TestSumMetric reads a counter from the Prometheus text format: summed over its
// labels, absent when missing, other metrics with the name as prefix ignored.
func TestSumMetric(t *testing.T) {
	tests := []struct {
		name, text string
		want       float64
		found      bool
	}{
		{"labels summed", "# HELP openidp_store_commits_total x\nopenidp_store_commits_total{backend=\"a\"} 3\nopenidp_store_commits_total{backend=\"b\"} 4.5\n", 7.5, true},
		{"no labels", "openidp_store_commits_total 12\n", 12, true},
		{"missing", "idp_http_requests_total 5\n", 0, false},
		{"prefix only", "openidp_store_commits_total_seconds 5\n", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found := sumMetric(strings.NewReader(tc.text), metricStoreCommits)
			if got != tc.want || found != tc.found {
				t.Errorf("sumMetric = %v %v, want %v %v", got, found, tc.want, tc.found)
			}
		})
	}
}

// TestForms reads the forms of a sign-in page: fields with their values, submit
// buttons, GET forms skipped.
func TestForms(t *testing.T) {
	body := `<form method="get" action="/search"><input name="q"></form>
<form method="post" action="/consent"><input type="hidden" name="id" value="a&amp;b"><input type="hidden" name="csrf" value="c">
<button type="submit" name="action" value="allow">Allow</button><button type="button" name="x" value="y">X</button></form>`
	fs := forms(body)
	if len(fs) != 1 {
		t.Fatalf("got %d forms, want 1", len(fs))
	}
	f := fs[0]
	if f.action != "/consent" || f.fields.Get("id") != "a&b" || f.fields.Get("csrf") != "c" || f.buttons.Get("action") != "allow" || f.buttons.Has("x") {
		t.Errorf("form = %+v", f)
	}
}

// TestNextAddr checks the X-Forwarded-For addresses: each a new one inside
// 198.18.0.0/15, wrapping around after the last, and none when ForwardedFor is off.
func TestNextAddr(t *testing.T) {
	benchNet := netip.MustParsePrefix("198.18.0.0/15")
	r := &runner{o: Options{ForwardedFor: true}}
	seen := map[string]bool{}
	for range 1000 {
		a := r.nextAddr()
		if !benchNet.Contains(netip.MustParseAddr(a)) || seen[a] {
			t.Fatalf("address %s: outside %s or repeated", a, benchNet)
		}
		seen[a] = true
	}
	r.xff.Store(1<<17 - 2)
	for _, want := range []string{"198.19.255.255", "198.18.0.0", "198.18.0.1"} {
		if got := r.nextAddr(); got != want {
			t.Errorf("nextAddr = %s, want %s", got, want)
		}
	}
	if got := (&runner{}).nextAddr(); got != "" {
		t.Errorf("nextAddr without ForwardedFor = %q, want none", got)
	}
}

// TestServerCounters checks the figures read off the server's metrics before and after
// a scenario: the store commits per 1,000 operations, the server's CPU time per
// operation and the store's mean flush time, each when the server exposes its
// counters (a mean flush only when there were flushes), and none when the metrics
// cannot be read.
func TestServerCounters(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	creds, err := p.seeder.Seed(ctx, 1, "https://bench.example.com/callback")
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	// metrics serves the counters named: 5 commits, 1.5 s of CPU and 100 flushes in
	// 0.02 s before the scenario, 25 commits, 1.508 s and flushesAfter flushes in 0.026 s
	// after — 20 commits and 8 ms for 8 tokens, 20 flushes of 300 µs (or none).
	metrics := func(commits, cpu, flushes bool, flushesAfter int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n := reads.Add(1) - 1
			if commits {
				fmt.Fprintf(w, "# TYPE openidp_store_commits_total counter\nopenidp_store_commits_total{kind=\"batch\"} %d\n", 5+20*n)
			}
			if cpu {
				fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", 1.5+0.008*float64(n))
			}
			if flushes {
				fmt.Fprintf(w, "openidp_store_flushes_total %d\nopenidp_store_flush_seconds_total %g\n",
					100+int64(flushesAfter-100)*n, 0.02+0.006*float64(n))
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name, url string
		commits   *float64
		cpu       *time.Duration
		flush     *time.Duration
	}{
		{"all", metrics(true, true, true, 120), ptr(2500.0), ptr(time.Millisecond), ptr(300 * time.Microsecond)},
		{"no flush in the scenario", metrics(true, true, true, 100), ptr(2500.0), ptr(time.Millisecond), nil},
		{"commits only", metrics(true, false, false, 0), ptr(2500.0), nil, nil},
		{"CPU only (another provider)", metrics(false, true, false, 0), nil, ptr(time.Millisecond), nil},
		{"flushes only", metrics(false, false, true, 120), nil, nil, ptr(300 * time.Microsecond)},
		{"not served", p.issuer + "/no-metrics-here", nil, nil, nil},
		{"off", "-", nil, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reads.Store(0)
			results, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: 2, Requests: 8, Credentials: creds,
				Scenarios: []string{ScenarioClientCredentials}, MetricsURL: tc.url})
			if err != nil {
				t.Fatal(err)
			}
			if got := results[0].CommitsPer1000; (got == nil) != (tc.commits == nil) || (got != nil && *got != *tc.commits) {
				t.Errorf("commits per 1000 = %v, want %v", deref(got), deref(tc.commits))
			}
			// 8 ms over 8 operations, give or take the float rounding of the counter.
			if got := results[0].ServerCPUPerOp; (got == nil) != (tc.cpu == nil) ||
				(got != nil && (*got < *tc.cpu-time.Microsecond || *got > *tc.cpu+time.Microsecond)) {
				t.Errorf("server CPU per operation = %v, want %v", deref(got), deref(tc.cpu))
			}
			if got := results[0].FlushMean; (got == nil) != (tc.flush == nil) ||
				(got != nil && (*got < *tc.flush-time.Microsecond || *got > *tc.flush+time.Microsecond)) {
				t.Errorf("mean flush = %v, want %v", deref(got), deref(tc.flush))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestConsentPage signs in with a client that is not first-party: the first sign-in of
// the person passes the consent page (allowed), the next ones find the grant.
func TestConsentPage(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	creds, err := p.seeder.Seed(ctx, 1, "https://bench.example.com/callback")
	if err != nil {
		t.Fatal(err)
	}
	app, secret, err := p.seeder.Admin.CreateClient(ctx, "test", admin.NewClient{Name: "third party",
		RedirectURIs: []string{"https://third.example.com/cb"}, Scopes: []string{"openid", "profile", "email", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	creds.App, creds.RedirectURI = ClientCredentials{ID: app.ID, Secret: secret}, "https://third.example.com/cb"
	results, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: 1, Requests: 3, Credentials: creds,
		Scenarios: []string{ScenarioPassword}})
	if err != nil {
		t.Fatal(err)
	}
	if r := results[0]; r.Requests != 3 || r.Errors != 0 {
		t.Errorf("%d done, %d errors (%s), want 3 and none", r.Requests, r.Errors, r.FirstError)
	}
	if n := p.auditCount(t, audit.EventConsentGrant); n != 1 {
		t.Errorf("%d consent grants, want 1 (the first sign-in)", n)
	}
}
