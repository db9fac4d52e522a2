package sweep

import (
	"errors"
	"slices"
	"testing"
)

func TestRepeat(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		runs      []int64 // what each run changes
		failAt    int     // the run that fails (-1: none)
		wantTotal int64
		wantRuns  int
		wantErr   error
	}{
		{"nothing to do", []int64{0}, -1, 0, 1, nil},
		{"less than a batch", []int64{7}, -1, 7, 1, nil},
		{"exactly a batch, then nothing", []int64{Batch, 0}, -1, Batch, 2, nil},
		{"a backlog", []int64{Batch, Batch, 5}, -1, 2*Batch + 5, 3, nil},
		{"a failure stops it, keeping what went", []int64{Batch, Batch, Batch}, 1, Batch, 2, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var limits []int
			total, err := Repeat(func(limit int) (int64, error) {
				i := len(limits)
				limits = append(limits, limit)
				if i == tc.failAt {
					return 0, boom
				}
				return tc.runs[i], nil
			})
			if total != tc.wantTotal || len(limits) != tc.wantRuns || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Repeat = %d, %v after %d runs, want %d, %v after %d", total, err, len(limits), tc.wantTotal, tc.wantErr, tc.wantRuns)
			}
			if slices.ContainsFunc(limits, func(l int) bool { return l != Batch }) {
				t.Fatalf("limits %v, want Batch every time", limits)
			}
		})
	}
}
