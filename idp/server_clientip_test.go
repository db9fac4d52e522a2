package idp

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"), // mapped: means 192.168.0.0/16
	}
	manyHops := make([]string, 0, 40)
	for range 39 {
		manyHops = append(manyHops, "10.1.2.3")
	}
	tests := []struct {
		name       string
		forwarded  bool // read Forwarded rather than X-Forwarded-For
		remoteAddr string
		header     []string // values of the header read
		other      []string // values of the header not read
		want       string
	}{
		{name: "no proxy, no header", remoteAddr: "198.51.100.7:51000", want: "198.51.100.7"},
		{name: "spoofed header from an untrusted peer is ignored", remoteAddr: "198.51.100.7:51000", header: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "spoofed Forwarded from an untrusted peer is ignored", forwarded: true, remoteAddr: "198.51.100.7:51000", header: []string{"for=203.0.113.9"}, want: "198.51.100.7"},
		{name: "trusted proxy without header", remoteAddr: "10.0.0.2:3000", want: "10.0.0.2"},
		{name: "one trusted proxy", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "client's own entries left of the proxy's are ignored", remoteAddr: "10.0.0.2:3000", header: []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain through two trusted proxies", remoteAddr: "10.0.0.2:3000", header: []string{"1.1.1.1, 203.0.113.9, 10.9.9.9"}, want: "203.0.113.9"},
		{name: "chain split over two fields", remoteAddr: "10.0.0.2:3000", header: []string{"1.1.1.1, 203.0.113.9", "10.9.9.9"}, want: "203.0.113.9"},
		{name: "untrusted hop in the chain stops the walk", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9, 198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "every hop trusted: the leftmost", remoteAddr: "10.0.0.2:3000", header: []string{"10.3.3.3, 10.9.9.9"}, want: "10.3.3.3"},
		{name: "many hops", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9, " + strings.Join(manyHops, ", ")}, want: "203.0.113.9"},
		{name: "garbage header", remoteAddr: "10.0.0.2:3000", header: []string{"<script>"}, want: "10.0.0.2"},
		{name: "garbage hop reached in the walk", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9, unknown"}, want: "10.0.0.2"},
		{name: "garbage left of the client is never read", remoteAddr: "10.0.0.2:3000", header: []string{"garbage, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "empty header", remoteAddr: "10.0.0.2:3000", header: []string{""}, want: "10.0.0.2"},
		{name: "empty hop", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9,"}, want: "10.0.0.2"},
		{name: "IPv4 with port", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9:4711"}, want: "203.0.113.9"},
		{name: "IPv6 bare", remoteAddr: "10.0.0.2:3000", header: []string{"2001:db8::1"}, want: "2001:db8::1"},
		{name: "IPv6 bracketed with port", remoteAddr: "10.0.0.2:3000", header: []string{"[2001:db8::1]:4711"}, want: "2001:db8::1"},
		{name: "IPv6 with zone", remoteAddr: "10.0.0.2:3000", header: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "IPv4-mapped client is written as IPv4", remoteAddr: "10.0.0.2:3000", header: []string{"::ffff:203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv4-mapped peer is trusted by its IPv4 prefix", remoteAddr: "[::ffff:10.0.0.2]:3000", header: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "mapped prefix trusts IPv4 peers", remoteAddr: "192.168.4.4:3000", header: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "IPv6 proxy", remoteAddr: "[2001:db8:ffff::2]:3000", header: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "untrusted IPv4-mapped peer", remoteAddr: "[::ffff:198.51.100.7]:3000", header: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "bad port", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9:http"}, want: "10.0.0.2"},
		{name: "X-Forwarded-For only, Forwarded ignored", remoteAddr: "10.0.0.2:3000", header: []string{"203.0.113.9"}, other: []string{"for=1.1.1.1"}, want: "203.0.113.9"},
		{name: "unparsable peer is kept as is", remoteAddr: "pipe", header: []string{"203.0.113.9"}, want: "pipe"},

		{name: "Forwarded", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=203.0.113.9"}, want: "203.0.113.9"},
		{name: "Forwarded only, X-Forwarded-For ignored", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=203.0.113.9"}, other: []string{"1.1.1.1"}, want: "203.0.113.9"},
		{name: "Forwarded with other parameters, any case", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"proto=https;FOR=203.0.113.9;by=10.0.0.2;host=id.example.com"}, want: "203.0.113.9"},
		{name: "Forwarded quoted IPv4 with port", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="203.0.113.9:4711"`}, want: "203.0.113.9"},
		{name: "Forwarded quoted IPv6 with port", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="[2001:db8::1]:4711"`}, want: "2001:db8::1"},
		{name: "Forwarded quoted IPv6 without port", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`For="[2001:db8::1]"`}, want: "2001:db8::1"},
		{name: "Forwarded IPv6 with obfuscated port", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="[2001:db8::1]:_p1"`}, want: "2001:db8::1"},
		{name: "Forwarded unquoted IPv6 is accepted", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for=[2001:db8::1]:4711`}, want: "2001:db8::1"},
		{name: "Forwarded bare IPv6 is accepted though RFC 7239 brackets it", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="2001:db8::1"`}, want: "2001:db8::1"},
		{name: "Forwarded chain through two trusted proxies", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for=1.1.1.1, for="[2001:db8::1]:4711";proto=https, for=10.9.9.9;by=10.0.0.2`}, want: "2001:db8::1"},
		{name: "Forwarded chain over two fields", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for=203.0.113.9`, `for="10.9.9.9:80"`}, want: "203.0.113.9"},
		{name: "Forwarded quoted comma and semicolon", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for=203.0.113.9;ext="a,b;c\"d"`}, want: "203.0.113.9"},
		{name: "Forwarded with spaces", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{` for=1.1.1.1 ;proto=http ,  for=203.0.113.9 `}, want: "203.0.113.9"},
		{name: "Forwarded unknown", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=unknown"}, want: "10.0.0.2"},
		{name: "Forwarded obfuscated node", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=_hidden"}, want: "10.0.0.2"},
		{name: "Forwarded element without for", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=203.0.113.9, proto=https"}, want: "10.0.0.2"},
		{name: "Forwarded for twice in an element", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{"for=203.0.113.9;for=1.1.1.1"}, want: "10.0.0.2"},
		{name: "Forwarded unterminated quote", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="203.0.113.9`}, want: "10.0.0.2"},
		{name: "Forwarded missing value", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for`}, want: "10.0.0.2"},
		{name: "Forwarded garbage", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`;;;===`}, want: "10.0.0.2"},
		{name: "Forwarded unclosed bracket", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="[2001:db8::1"`}, want: "10.0.0.2"},
		{name: "Forwarded IPv4 in brackets", forwarded: true, remoteAddr: "10.0.0.2:3000", header: []string{`for="[203.0.113.9]"`}, want: "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, other := HeaderXForwardedFor, HeaderForwarded
			if tt.forwarded {
				header, other = other, header
			}
			c, err := newClientResolver(proxies, strings.ToLower(header))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for _, v := range tt.header {
				h.Add(header, v)
			}
			for _, v := range tt.other {
				h.Add(other, v)
			}
			if got := c.clientAddr(tt.remoteAddr, h); got != tt.want {
				t.Errorf("clientAddr(%q, %s: %q) = %q, want %q", tt.remoteAddr, header, tt.header, got, tt.want)
			}
		})
	}
}

func TestClientAddrWithoutTrustedProxies(t *testing.T) {
	c, err := newClientResolver(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Forwarded-For": {"203.0.113.9"}, "Forwarded": {"for=203.0.113.9"}}
	for _, remote := range []string{"127.0.0.1:5000", "10.0.0.2:3000", "[::1]:5000"} {
		if got, want := c.clientAddr(remote, h), remote[:strings.LastIndexByte(remote, ':')]; got != strings.Trim(want, "[]") {
			t.Errorf("clientAddr(%q) = %q: the header was believed without a trusted proxy", remote, got)
		}
	}
}

func TestNewClientResolver(t *testing.T) {
	if _, err := newClientResolver(nil, "X-Real-IP"); err == nil || !strings.Contains(err.Error(), "X-Real-IP") {
		t.Errorf("unknown header: err = %v", err)
	}
	if _, err := newClientResolver([]netip.Prefix{{}}, ""); err == nil {
		t.Error("invalid prefix accepted")
	}
	c, err := newClientResolver([]netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}, "forwarded")
	if err != nil || !c.forwarded || c.trusted[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("resolver = %+v, %v; want Forwarded and the prefix masked", c, err)
	}
	if c.trustsEveryone() {
		t.Error("10.0.0.0/8 trusts everyone")
	}
	if c, _ := newClientResolver([]netip.Prefix{netip.MustParsePrefix("::/0")}, ""); !c.trustsEveryone() {
		t.Error("::/0 does not trust everyone")
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{in: "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1", want: []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"}},
		{in: "10.1.2.3/8", want: []string{"10.0.0.0/8"}},
		{in: "::ffff:10.0.0.0/104", want: []string{"10.0.0.0/8"}},
		{in: "::ffff:10.0.0.1", want: []string{"10.0.0.1/32"}},
		{in: "10.0.0.0/33", wantErr: `invalid trusted proxy "10.0.0.0/33"`},
		{in: "10.0.0.0/8,proxy.example.com", wantErr: `invalid trusted proxy "proxy.example.com"`},
		{in: "10.0.0.300", wantErr: `invalid trusted proxy "10.0.0.300"`},
		{in: "fe80::1%eth0", wantErr: `invalid trusted proxy "fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, p := range got {
				gotS = append(gotS, p.String())
			}
			if !slices.Equal(gotS, tt.want) {
				t.Errorf("prefixes = %q, want %q", gotS, tt.want)
			}
		})
	}
}

// FuzzClientAddr checks that the header parsers never panic, that a header is never
// believed from an untrusted peer, and that the result is always an address.
func FuzzClientAddr(f *testing.F) {
	for _, seed := range []string{
		"203.0.113.9", "1.1.1.1, 10.9.9.9", "[2001:db8::1]:4711", `for="[2001:db8::1]:4711";proto=https, for=10.9.9.9`,
		`for=unknown`, `for="a\"b"`, ";;,,==", "",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	trusted, _ := newClientResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "")
	f.Fuzz(func(t *testing.T, value string, forwarded bool) {
		c := trusted
		c.forwarded = forwarded
		h := http.Header{HeaderXForwardedFor: {value}, HeaderForwarded: {value}}
		if got := c.clientAddr("198.51.100.7:1", h); got != "198.51.100.7" {
			t.Fatalf("untrusted peer: got %q", got)
		}
		got := c.clientAddr("10.0.0.2:1", h)
		a, err := netip.ParseAddr(got)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("clientAddr(%q) = %q: not a normalized address", value, got)
		}
	})
}
