package audit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapString(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "Mozilla/5.0", 512, "Mozilla/5.0"},
		{"exact", "abcdef", 6, "abcdef"},
		{"cut with mark", "abcdefgh", 6, "abc…"},
		{"cut before a multi-byte rune", "ab€€€€", 7, "ab…"}, // € is 3 bytes: "ab€…" would be 8
		{"cut at a rune boundary", "ab€€€€", 8, "ab€…"},
		{"invalid UTF-8 replaced", "a\xffb", 16, "a\uFFFDb"},
		{"room for no mark", "abcdef", 2, "ab"},
		{"zero", "abc", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CapString(tt.s, tt.n); got != tt.want {
				t.Errorf("CapString(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}

func FuzzCapString(f *testing.F) {
	f.Add("Mozilla/5.0 (X11; Linux x86_64)", 16)
	f.Add("ab€€€€", 8)
	f.Add("\xff\xfe€", 4)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := CapString(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("CapString(%q, %d) = %q: %d bytes, valid %v", s, n, got, len(got), utf8.ValidString(got))
		}
		if valid := strings.ToValidUTF8(s, "\uFFFD"); len(valid) <= n && got != valid {
			t.Fatalf("CapString(%q, %d) = %q changed a string that fits", s, n, got)
		}
	})
}
