package bench

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMedians: several rounds of a scenario report the median round, every round's
// rate (and server CPU per operation, when every round has one) in run order, and every
// round's errors.
func TestMedians(t *testing.T) {
	round := func(rate float64, errs int, first string) Result {
		return Result{Scenario: "client_credentials", PerSecond: rate, Requests: int(rate), Errors: errs, FirstError: first}
	}
	// withCPU is r with a server CPU per operation of micros microseconds.
	withCPU := func(r Result, micros int) Result {
		r.ServerCPUPerOp = ptr(time.Duration(micros) * time.Microsecond)
		return r
	}
	tests := []struct {
		name   string
		rounds []Result
		want   Result
	}{
		{"one round, as it is", []Result{round(10, 1, "boom")}, round(10, 1, "boom")},
		{"odd: the middle one", []Result{round(30, 0, ""), round(10, 2, "first"), round(20, 1, "second")},
			Result{Scenario: "client_credentials", PerSecond: 20, Requests: 20, Errors: 3, FirstError: "first",
				RoundsPerSecond: []float64{30, 10, 20}}},
		{"even: the lower middle one", []Result{round(40, 0, ""), round(10, 0, ""), round(30, 0, ""), round(20, 0, "")},
			Result{Scenario: "client_credentials", PerSecond: 20, Requests: 20, RoundsPerSecond: []float64{40, 10, 30, 20}}},
		{"CPU per operation: the median round's, and every round's",
			[]Result{withCPU(round(30, 0, ""), 200), withCPU(round(10, 0, ""), 400), withCPU(round(20, 0, ""), 300)},
			Result{Scenario: "client_credentials", PerSecond: 20, Requests: 20, RoundsPerSecond: []float64{30, 10, 20},
				ServerCPUPerOp:       ptr(300 * time.Microsecond),
				RoundsServerCPUPerOp: []time.Duration{200 * time.Microsecond, 400 * time.Microsecond, 300 * time.Microsecond}}},
		{"CPU per operation missing in a round: no list",
			[]Result{withCPU(round(30, 0, ""), 200), round(10, 0, ""), withCPU(round(20, 0, ""), 300)},
			Result{Scenario: "client_credentials", PerSecond: 20, Requests: 20, RoundsPerSecond: []float64{30, 10, 20},
				ServerCPUPerOp: ptr(300 * time.Microsecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := medians([][]Result{tt.rounds})
			if len(got) != 1 {
				t.Fatalf("%d results, want 1", len(got))
			}
			if diff := cmp.Diff(tt.want, got[0]); diff != "" {
				t.Errorf("median (-want +got):\n%s", diff)
			}
		})
	}
	if got := medians([][]Result{nil, {round(5, 0, "")}}); len(got) != 1 || got[0].PerSecond != 5 {
		t.Errorf("a scenario without rounds must be skipped: %+v", got)
	}

	var buf bytes.Buffer
	if err := WriteText(&buf, Report{Issuer: "http://x", Concurrency: 1, Results: medians([][]Result{tests[1].rounds})}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "rounds client_credentials: 30.0, 10.0, 20.0 req/s") {
		t.Errorf("text report without the rounds line:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "server CPU per operation") || !strings.Contains(buf.String(), "n/a") {
		t.Errorf("text report of rounds without CPU figures shows some:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteText(&buf, Report{Issuer: "http://x", Concurrency: 1, Results: medians([][]Result{tests[3].rounds})}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server cpu/op", "300µs", "rounds client_credentials: 200µs, 400µs, 300µs server CPU per operation"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text report without %q:\n%s", want, buf.String())
		}
	}
}

// TestRounds runs three rounds against a real provider: each scenario is reported once,
// with three rates, and password_totp's rounds share one pool of people, so no person
// signs in twice within a time step (a fresh pool per round would start again with the
// first person, whose code the provider has already accepted).
func TestRounds(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	const rounds, requests = 3, 4
	creds, err := p.seeder.Seed(ctx, rounds*requests, "https://bench.example.com/callback")
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(ctx, Options{Issuer: p.issuer, Concurrency: 2, Requests: requests, Rounds: rounds,
		Scenarios: []string{ScenarioClientCredentials, ScenarioPasswordTOTP}, Credentials: creds, ForwardedFor: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(results); got != 2 {
		t.Fatalf("%d results, want one per scenario", got)
	}
	for _, r := range results {
		if r.Errors != 0 || r.Requests != requests || len(r.RoundsPerSecond) != rounds {
			t.Errorf("%s: %d done, %d errors (first: %s), rounds %v; want %d done, none, %d rounds",
				r.Scenario, r.Requests, r.Errors, r.FirstError, r.RoundsPerSecond, requests, rounds)
		}
		if !slices.Contains(r.RoundsPerSecond, r.PerSecond) {
			t.Errorf("%s: reported rate %f is none of the rounds' %v", r.Scenario, r.PerSecond, r.RoundsPerSecond)
		}
	}
	used := p.usedTOTPPeople(t, creds)
	if used != rounds*requests {
		t.Errorf("%d TOTP people signed in, want %d: each round's sign-ins by people of their own", used, rounds*requests)
	}
}
