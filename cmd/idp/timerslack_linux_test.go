//go:build linux

package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openidp/idp/storage/postgres/pgtest"
	"github.com/openidp/idp/storage/seal"
)

// threadSlacks returns the timer slack of every thread of process pid, in nanoseconds.
func threadSlacks(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var slacks []int
	for _, task := range tasks {
		// A thread's own entry: /proc/<pid>/task/<tid> has no timerslack_ns.
		b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		slacks = append(slacks, n)
	}
	return slacks
}

// TestServeTimerSlack runs the idp binary's serve and checks the timer slack of every
// thread of the process it started (the same process id after serve executed itself
// again): on SQLite the default 1µs, a value given, the inherited one with
// --timer-slack=0, and the inherited one again, without a second execution, when the
// environment says the program was executed with the slack set already; on PostgreSQL
// the inherited one unless a value is given. Run in a test's own process (no
// reexecAllowed), serve never executes anything: every other serve test does that.
func TestServeTimerSlack(t *testing.T) {
	if r := newCLI(t).run("", "serve", "--timer-slack", "-1us", "--database", "sqlite:/nonexistent/dir/x.db"); r.code != 2 ||
		!strings.Contains(r.stderr, "--timer-slack must not be negative") {
		t.Errorf("negative --timer-slack: exit %d, stderr:\n%s\nwant a usage error", r.code, r.stderr)
	}
	bin := buildBinary(t)
	own, err := currentTimerSlack()
	if err != nil {
		t.Fatal(err)
	}
	if own <= time.Microsecond {
		t.Fatalf("the test runs with a timer slack of %s: it cannot tell a set slack from an inherited one", own)
	}
	env := append(os.Environ(),
		"IDP_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(seal.NewKey()),
		"IDP_LOG_LEVEL=warn",
	)
	pg := "IDP_DATABASE=" + pgtest.NewDatabase(t)
	tests := []struct {
		name  string
		args  []string
		env   []string
		want  time.Duration
		warns bool
	}{
		{"default", nil, nil, time.Microsecond, false},
		{"given", []string{"--timer-slack", "20us"}, nil, 20 * time.Microsecond, false},
		{"from the environment", nil, []string{"IDP_TIMER_SLACK=5us"}, 5 * time.Microsecond, false},
		{"off", []string{"--timer-slack", "0"}, nil, own, false},
		{"executed once already", nil, []string{timerSlackSetEnv + "=1"}, own, true},
		// On PostgreSQL the slack only costs: set only when given.
		{"PostgreSQL", nil, []string{pg}, own, false},
		{"PostgreSQL, given", []string{"--timer-slack", "1us"}, []string{pg}, time.Microsecond, false},
		{"PostgreSQL, from the environment", nil, []string{pg, "IDP_TIMER_SLACK=2us"}, 2 * time.Microsecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			p := startServeProcess(t, bin, append(append(env, "IDP_DATA_DIR="+filepath.Join(t.TempDir(), "data")), tc.env...),
				addr, "http://"+addr, tc.args...)
			cmd, stderr := p.cmd, p.stderr
			for i, got := range threadSlacks(t, cmd.Process.Pid) {
				if time.Duration(got) != tc.want {
					t.Errorf("thread %d of %d: timer slack %s, want %s", i, cmd.Process.Pid, time.Duration(got), tc.want)
				}
			}
			if tc.warns {
				waitOutput(t, stderr, regexp.MustCompile(`timer slack not set`), "warning that the timer slack is not set")
			} else if strings.Contains(stderr.String(), "timer slack not set") {
				t.Errorf("warning logged, want none; stderr:\n%s", stderr.String())
			}
		})
	}
}
