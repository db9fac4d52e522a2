package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what `idp bench --json` prints.
type Report struct {
	Issuer      string   `json:"issuer"`
	Concurrency int      `json:"concurrency"`
	Label       string   `json:"label,omitempty"`
	Results     []Result `json:"results"`
	// Ratios compare scenarios round by round (see Ratios); empty when no pair ran.
	Ratios []Ratio `json:"ratios,omitempty"`
}

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes rep as a table: one row per scenario with req/s, p50, p99, max,
// errors, store commits per 1,000 operations and the server's CPU time per operation
// (n/a when the server does not expose them), the store's mean flush time (- when it
// made none or does not say), and the access tokens' format; then every round's req/s
// and CPU per operation (when there were several), the notes and first errors, and the
// ratios of scenarios.
func WriteText(w io.Writer, rep Report) error {
	if rep.Label != "" {
		fmt.Fprintf(w, "%s\n", rep.Label)
	}
	fmt.Fprintf(w, "issuer %s, concurrency %d\n", rep.Issuer, rep.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tops\treq/s\tp50\tp99\tmax\terrors\tcommits/1000\tserver cpu/op\tflush\taccess tokens\t")
	for _, r := range rep.Results {
		commits, cpu, flush, tokens := "n/a", "n/a", "-", cmp.Or(r.AccessTokens, "-")
		if r.CommitsPer1000 != nil {
			commits = fmt.Sprintf("%.1f", *r.CommitsPer1000)
		}
		if r.ServerCPUPerOp != nil {
			cpu = us(*r.ServerCPUPerOp)
		}
		if r.FlushMean != nil {
			flush = us(*r.FlushMean)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Requests, r.PerSecond,
			ms(r.P50), ms(r.P99), ms(r.Max), r.Errors, commits, cpu, flush, tokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Results {
		if len(r.RoundsPerSecond) > 1 {
			rates := make([]string, len(r.RoundsPerSecond))
			for i, v := range r.RoundsPerSecond {
				rates[i] = fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(w, "rounds %s: %s req/s; the row is the median round (errors: all rounds)\n", r.Scenario, strings.Join(rates, ", "))
			if len(r.RoundsServerCPUPerOp) > 0 {
				cpus := make([]string, len(r.RoundsServerCPUPerOp))
				for i, v := range r.RoundsServerCPUPerOp {
					cpus[i] = us(v)
				}
				fmt.Fprintf(w, "rounds %s: %s server CPU per operation\n", r.Scenario, strings.Join(cpus, ", "))
			}
		}
		if r.Note != "" {
			fmt.Fprintf(w, "note %s: %s\n", r.Scenario, r.Note)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "first error %s: %s\n", r.Scenario, strings.TrimSpace(r.FirstError))
		}
	}
	for _, r := range rep.Ratios {
		fmt.Fprintf(w, "ratio %s / %s: %.2f", r.Of, r.To, r.Median)
		if len(r.Rounds) > 1 {
			rs := make([]string, len(r.Rounds))
			for i, v := range r.Rounds {
				rs[i] = fmt.Sprintf("%.2f", v)
			}
			fmt.Fprintf(w, " (the median of the rounds' ratios: %s)", strings.Join(rs, ", "))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// us formats d in microseconds, whole.
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
