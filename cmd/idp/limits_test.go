package main

import (
	"strings"
	"testing"
)

// TestGuessLimitFlags: bad limits are refused before the server touches the database,
// with a message that names the flag.
func TestGuessLimitFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"zero login attempts", nil, []string{"serve", "--login-attempts", "0"}, "--login-attempts must be at least 1"},
		{"MFA ceiling above NIST's", nil, []string{"serve", "--mfa-max-failures", "500"}, "--mfa-max-failures must be at most 100"},
		{"negative sends from the environment", map[string]string{"IDP_CODE_SENDS_PER_IP": "-1"}, []string{"serve"}, "--code-sends-per-ip must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := c.run("", append(tt.args, "--database", "sqlite:/nonexistent/dir/x.db")...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant %q", r.code, r.stderr, tt.want)
			}
		})
	}
}
