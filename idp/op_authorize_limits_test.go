package idp

import (
	"strings"
	"testing"
)

func TestParamViolation(t *testing.T) {
	tests := []struct {
		name string
		form map[string][]string
		want string
	}{
		{"none", map[string][]string{"state": {"abc"}, "code_challenge": {strings.Repeat("a", 43)}}, ""},
		{"empty code_challenge is absent", map[string][]string{"code_challenge": {""}}, ""},
		{"state", map[string][]string{"state": {strings.Repeat("s", 2049)}}, "state exceeds 2048 bytes"},
		{"second value too", map[string][]string{"nonce": {"n", strings.Repeat("n", 513)}}, "nonce exceeds 512 bytes"},
		{"login_hint", map[string][]string{"login_hint": {strings.Repeat("h", 257)}}, "login_hint exceeds 256 bytes"},
		{"redirect_uri", map[string][]string{"redirect_uri": {"https://x/" + strings.Repeat("p", 2048)}}, "redirect_uri exceeds 2048 bytes"},
		{"code_challenge short", map[string][]string{"code_challenge": {strings.Repeat("a", 42)}}, "code_challenge must be 43 to 128 characters (RFC 7636 4.2)"},
		{"code_challenge long", map[string][]string{"code_challenge": {strings.Repeat("a", 129)}}, "code_challenge exceeds 128 bytes"},
		{"unknown parameters are bounded by the body only", map[string][]string{"foo": {strings.Repeat("f", 10000)}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := paramViolation(tt.form); got != tt.want {
				t.Errorf("paramViolation = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddressKey(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"::ffff:192.0.2.7":         "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1%eth": "2001:db8:1:2::/64",
		"not an address":           "not an address",
	} {
		if got := addressKey(ip); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", ip, got, want)
		}
	}
}
