package bench

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestRatios: the ratio of password + TOTP to password sign-ins is the median of the
// rounds' own ratios, not the ratio of the two median rounds.
func TestRatios(t *testing.T) {
	res := func(name string, rates ...float64) Result {
		r := Result{Scenario: name, PerSecond: rates[0]}
		if len(rates) > 1 {
			r.RoundsPerSecond = rates
		}
		return r
	}
	tests := []struct {
		name    string
		results []Result
		want    []Ratio
	}{
		{"one round", []Result{res("password", 40), res("password_totp", 36)},
			[]Ratio{{Of: "password_totp", To: "password", Median: 0.9, Rounds: []float64{0.9}}}},
		// The rounds of a run on 2026-12-08: the median rounds (35.6 and 29.5) would
		// give 0.83; round by round the TOTP sign-ins ran at 0.81–1.02 of the others.
		{"rounds: paired, then the median", []Result{
			res("client_credentials", 5000, 4800, 4900, 5100, 5200),
			res("password", 35.6, 29.8, 29.0, 36.4, 35.8),
			res("password_totp", 34.5, 28.9, 29.5, 36.7, 29.0)},
			[]Ratio{{Of: "password_totp", To: "password", Median: 28.9 / 29.8,
				Rounds: []float64{34.5 / 35.6, 28.9 / 29.8, 29.5 / 29.0, 36.7 / 36.4, 29.0 / 35.8}}}},
		{"even: the lower middle one", []Result{res("password", 10, 10, 10, 10), res("password_totp", 8, 9, 10, 11)},
			[]Ratio{{Of: "password_totp", To: "password", Median: 0.9, Rounds: []float64{0.8, 0.9, 1, 1.1}}}},
		{"a run stopped early: the rounds both have", []Result{res("password", 10, 20, 30), res("password_totp", 9, 18)},
			[]Ratio{{Of: "password_totp", To: "password", Median: 0.9, Rounds: []float64{0.9, 0.9}}}},
		{"no password rate: nothing to divide by", []Result{res("password", 0), res("password_totp", 9)}, nil},
		{"one of the two did not run", []Result{res("password", 10), res("sso", 9)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Ratios(tc.results), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("Ratios (-want +got):\n%s", diff)
			}
		})
	}

	var buf bytes.Buffer
	if err := WriteText(&buf, Report{Issuer: "http://x", Concurrency: 8, Ratios: []Ratio{
		{Of: "password_totp", To: "password", Median: 0.97, Rounds: []float64{0.97, 0.81, 1.02}}}}); err != nil {
		t.Fatal(err)
	}
	if want := "ratio password_totp / password: 0.97 (the median of the rounds' ratios: 0.97, 0.81, 1.02)\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("text report:\n%s\nwant the line %q", buf.String(), want)
	}
}
