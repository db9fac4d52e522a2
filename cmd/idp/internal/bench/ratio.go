package bench

import (
	"cmp"
	"slices"
)

// Ratio compares the rates of two scenarios of one run, round by round.
type Ratio struct {
	// Of and To name the scenarios: the ratio is Of's operations per second over To's.
	Of string `json:"of"`
	To string `json:"to"`
	// Median is the median of Rounds (the lower middle one for an even number).
	Median float64 `json:"median"`
	// Rounds are the ratios of each round's two rates, in the order the rounds ran.
	Rounds []float64 `json:"rounds"`
}

// ratioPairs are the scenario pairs whose ratio a report gives: issue 9 asks for
// password + TOTP sign-ins at 0.9× the rate of password sign-ins or better.
var ratioPairs = [][2]string{{"password_totp", "password"}}

// Ratios returns the ratio of each pair of scenarios in ratioPairs that both ran. Each
// round's two rates are divided and the median of those is the figure, not the ratio
// of the two median rounds: within a round the two scenarios run one right after the
// other, so a ratio of one round compares like with like, while on a shared machine
// two scenarios' median rounds may come from minutes of different speed. With one
// round, the ratio of that round.
func Ratios(results []Result) []Ratio {
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Scenario] = r
	}
	var out []Ratio
	for _, p := range ratioPairs {
		of, ok1 := byName[p[0]]
		to, ok2 := byName[p[1]]
		if !ok1 || !ok2 {
			continue
		}
		ofRates, toRates := roundRates(of), roundRates(to)
		n := min(len(ofRates), len(toRates)) // a run stopped by an error may have fewer of one
		r := Ratio{Of: p[0], To: p[1]}
		for i := range n {
			if toRates[i] > 0 {
				r.Rounds = append(r.Rounds, ofRates[i]/toRates[i])
			}
		}
		if len(r.Rounds) == 0 {
			continue
		}
		sorted := slices.Clone(r.Rounds)
		slices.SortFunc(sorted, cmp.Compare[float64])
		r.Median = sorted[(len(sorted)-1)/2]
		out = append(out, r)
	}
	return out
}

// roundRates returns every round's operations per second of r.
func roundRates(r Result) []float64 {
	if len(r.RoundsPerSecond) > 0 {
		return r.RoundsPerSecond
	}
	return []float64{r.PerSecond}
}
