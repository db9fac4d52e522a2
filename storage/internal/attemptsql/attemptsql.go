// Package attemptsql builds the SQL the storage backends share for the regulator's
// attempt counters (storage.AttemptStore), so that SQLite and PostgreSQL run the same
// conditional upsert.
package attemptsql

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/openidp/idp/storage"
)

// NoWindow is the window end of a rule without a window: the count never lapses.
const NoWindow = int64(math.MaxInt64)

// WindowEnd is the window end a reservation at now starts.
func WindowEnd(rule storage.AttemptRule, now time.Time) int64 {
	if rule.Window <= 0 {
		return NoWindow
	}
	return now.UnixNano() + int64(rule.Window)
}

// BackoffCase returns an SQL expression, over the SQL expression count (the count an
// attempt brings the key to), for the back-off in nanoseconds that rule sets at that
// count. It holds only integer literals computed from the rule, never input.
func BackoffCase(rule storage.AttemptRule, count string) string {
	if rule.BackoffAfter <= 0 || rule.BackoffBase <= 0 {
		return "0"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CASE WHEN (%s) < %d THEN 0", count, rule.BackoffAfter)
	n := rule.BackoffAfter
	last := rule.Backoff(n)
	for range 64 {
		fmt.Fprintf(&b, " WHEN (%s) = %d THEN %d", count, n, int64(last))
		n++
		next := rule.Backoff(n)
		if next == last {
			break
		}
		last = next
	}
	fmt.Fprintf(&b, " ELSE %d END", int64(last))
	return b.String()
}

// BlockedUntil returns an SQL expression for the blocked_until a reservation at now
// (the SQL expression now) sets when it brings the key to count: now plus the back-off,
// or 0 when there is none — never now itself, which would refuse a concurrent
// reservation that read the clock a moment earlier.
func BlockedUntil(rule storage.AttemptRule, now, count string) string {
	d := BackoffCase(rule, count)
	if d == "0" {
		return "0"
	}
	return "CASE WHEN (" + d + ") = 0 THEN 0 ELSE " + now + " + (" + d + ") END"
}

// ReleaseBelow is the count under which a release lifts the back-off of rule.
func ReleaseBelow(rule storage.AttemptRule) int {
	if rule.BackoffAfter <= 0 {
		return math.MaxInt32
	}
	return rule.BackoffAfter
}

// Result turns the row of a counter into what ReserveAttempt reports.
func Result(rule storage.AttemptRule, reserved bool, count int, windowEnd, blockedUntil int64, now time.Time) storage.AttemptResult {
	res := storage.AttemptResult{Reserved: reserved, Count: count}
	if windowEnd != NoWindow && count > 0 {
		res.WindowEnd = time.Unix(0, windowEnd).UTC()
	}
	n := now.UnixNano()
	switch {
	case blockedUntil > n:
		res.BlockedUntil = time.Unix(0, blockedUntil).UTC()
	case !reserved && windowEnd != NoWindow && windowEnd > n:
		res.BlockedUntil = time.Unix(0, windowEnd).UTC()
	}
	return res
}
