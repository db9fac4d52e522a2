package main

import (
	"strings"
	"testing"
)

func TestTrustedProxiesFlag(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{
			name:       "bad prefix",
			args:       []string{"serve", "--trusted-proxies", "10.0.0.0/8,10.0.0.300"},
			wantCode:   2,
			wantStderr: []string{`invalid argument "10.0.0.0/8,10.0.0.300" for "--trusted-proxies"`, `invalid trusted proxy "10.0.0.300"`, "CIDR prefix", "Usage:"},
		},
		{
			name:       "host name",
			args:       []string{"serve", "--trusted-proxies", "proxy.internal"},
			wantCode:   2,
			wantStderr: []string{`invalid trusted proxy "proxy.internal"`},
		},
		{
			name:       "bad prefix in the environment",
			env:        map[string]string{"IDP_TRUSTED_PROXIES": "10.0.0.0/40"},
			args:       []string{"serve"},
			wantCode:   1,
			wantStderr: []string{"environment variable IDP_TRUSTED_PROXIES", `invalid trusted proxy "10.0.0.0/40"`},
		},
		{
			name:       "unknown proxy header",
			args:       []string{"serve", "--addr", "127.0.0.1:0", "--trusted-proxies", "10.0.0.0/8", "--proxy-header", "X-Real-IP"},
			wantCode:   1,
			wantStderr: []string{`proxy header "X-Real-IP": use X-Forwarded-For or Forwarded`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := c.run("", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}

func TestProxiesValue(t *testing.T) {
	var v proxiesValue
	if err := v.Set(" 10.0.0.0/8, 192.0.2.7,2001:db8::/32 "); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range v.prefixes {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.0.2.7/32 2001:db8::/32" {
		t.Errorf("prefixes = %v", got)
	}
	if err := v.Set("nonsense"); err == nil || len(v.prefixes) != 3 {
		t.Errorf("Set(nonsense) = %v; prefixes now %v, want the earlier value kept", err, v.prefixes)
	}
}
