package idp

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy every request arrives from the proxy's address. The address of
// the client, which per-address limits, audit events and sessions record, is then read
// from the header the proxy adds, but only when the request comes from a proxy the
// operator trusts (Config.TrustedProxies): anyone else can write any header.
//
// Exactly one header is read, Config.ProxyHeader: X-Forwarded-For (the default, which
// nearly every proxy sets) or RFC 7239 Forwarded. Proxies pass the header they do not
// set through from the client unchanged, so reading both, or preferring whichever is
// present, would let a client choose its own address.

// Proxy headers Config.ProxyHeader may name.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// clientResolver finds the client's address of a request.
type clientResolver struct {
	trusted   []netip.Prefix // reverse proxies whose header is believed
	forwarded bool           // read Forwarded instead of X-Forwarded-For
}

// newClientResolver validates the proxy settings of Config.
func newClientResolver(trusted []netip.Prefix, header string) (clientResolver, error) {
	c := clientResolver{}
	switch {
	case header == "" || strings.EqualFold(header, HeaderXForwardedFor):
	case strings.EqualFold(header, HeaderForwarded):
		c.forwarded = true
	default:
		return c, fmt.Errorf("config: proxy header %q: use %s or %s", header, HeaderXForwardedFor, HeaderForwarded)
	}
	for _, p := range trusted {
		if !p.IsValid() {
			return c, fmt.Errorf("config: invalid trusted proxy prefix %v", p)
		}
		c.trusted = append(c.trusted, normalizePrefix(p))
	}
	return c, nil
}

// trusts reports whether a is a trusted proxy.
func (c clientResolver) trusts(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// trustsEveryone reports whether a trusted prefix covers the whole address space.
func (c clientResolver) trustsEveryone() bool {
	for _, p := range c.trusted {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// clientAddr returns the client's address for a request from remoteAddr (the TCP peer,
// as in http.Request.RemoteAddr) with headers h.
//
// When the peer is not a trusted proxy, that is the peer and the headers are ignored.
// When it is, the proxy header lists the hops that came before, the nearest last: they
// are walked from the right, past addresses that are themselves trusted proxies, and the
// first untrusted one is the client (the leftmost one when all are trusted). Entries to
// its left were written by the client and are never looked at. A missing, empty or
// malformed header, or a hop that is not an IP address ("unknown", an obfuscated
// identifier), gives the peer. Ports and IPv6 zones are dropped, and IPv4-mapped IPv6
// addresses are written as IPv4.
func (c clientResolver) clientAddr(remoteAddr string, h http.Header) string {
	peer, ok := parsePeer(remoteAddr)
	if !ok {
		return remoteAddr
	}
	if !c.trusts(peer) {
		return peer.String()
	}
	var hops []string
	if c.forwarded {
		hops, ok = forwardedFor(h.Values(HeaderForwarded))
	} else {
		hops, ok = xForwardedFor(h.Values(HeaderXForwardedFor))
	}
	if !ok {
		return peer.String()
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseNode(hops[i])
		if !ok {
			return peer.String()
		}
		if i == 0 || !c.trusts(a) {
			return a.String()
		}
	}
	return peer.String() // no hops
}

// clientIP returns the client's address of r (see clientResolver.clientAddr).
func (s *Server) clientIP(r *http.Request) string {
	return s.clients.clientAddr(r.RemoteAddr, r.Header)
}

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes ("10.0.0.0/8",
// "2001:db8::/32") and bare addresses ("192.0.2.7", a single host), as given to
// --trusted-proxies. Blank entries are skipped.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			p, err = netip.ParsePrefix(item)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(item); err == nil && a.Zone() == "" {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || !p.IsValid() {
			return nil, fmt.Errorf("invalid trusted proxy %q: want an IP address (192.0.2.7) or a CIDR prefix (10.0.0.0/8, 2001:db8::/32)", item)
		}
		out = append(out, normalizePrefix(p))
	}
	return out, nil
}

// normalizePrefix masks p and writes an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104)
// as the IPv4 prefix it means, since addresses are compared unmapped.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// normalizeAddr drops the zone and unmaps IPv4-mapped IPv6 addresses.
func normalizeAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// parsePeer parses http.Request.RemoteAddr: "host:port", or a bare address.
func parsePeer(remoteAddr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return normalizeAddr(a), true
	}
	return netip.Addr{}, false
}

// xForwardedFor splits X-Forwarded-For fields ("client, proxy1, proxy2"; several fields
// are one list, in order) into hops. A present but empty header is malformed.
func xForwardedFor(fields []string) ([]string, bool) {
	if len(fields) == 0 {
		return nil, false
	}
	var hops []string
	for _, f := range fields {
		for hop := range strings.SplitSeq(f, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops, true
}

// forwardedFor returns the for= value of each element of RFC 7239 Forwarded fields, in
// order; false when a field is malformed or an element has no for= (Section 4:
// forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] ), forwarded-pair =
// token "=" value, value = token / quoted-string; elements are separated by commas).
func forwardedFor(fields []string) ([]string, bool) {
	if len(fields) == 0 {
		return nil, false
	}
	var hops []string
	for _, s := range fields {
		for {
			var forVal string
			haveFor := false
			for { // the pairs of one element
				s = trimOWS(s)
				i := 0
				for i < len(s) && isTchar(s[i]) {
					i++
				}
				if i == 0 || i == len(s) || s[i] != '=' {
					return nil, false
				}
				name := s[:i]
				s = s[i+1:]
				var val string
				if s != "" && s[0] == '"' {
					var ok bool
					if val, s, ok = quotedString(s); !ok {
						return nil, false
					}
				} else {
					// A token. Proxies write "for=192.0.2.1:80" or "for=[2001:db8::1]"
					// unquoted although ':' and '[' are not token characters: accepted,
					// the address is checked afterwards.
					i = strings.IndexAny(s, ";, \t")
					if i < 0 {
						i = len(s)
					}
					val, s = s[:i], s[i:]
				}
				if strings.EqualFold(name, "for") {
					if haveFor { // Section 4: a parameter MUST NOT occur more than once per element
						return nil, false
					}
					forVal, haveFor = val, true
				}
				s = trimOWS(s)
				if s == "" || s[0] == ',' {
					break
				}
				if s[0] != ';' {
					return nil, false
				}
				s = s[1:]
			}
			if !haveFor {
				return nil, false
			}
			hops = append(hops, forVal)
			if s == "" {
				break
			}
			s = s[1:] // the comma
		}
	}
	return hops, true
}

// quotedString reads the quoted-string at the start of s (RFC 9110 Section 5.6.4) and
// returns its unescaped content and the rest of s.
func quotedString(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
		}
		b.WriteByte(s[i])
	}
	return "", "", false
}

func trimOWS(s string) string { return strings.TrimLeft(s, " \t") }

// isTchar reports whether c is a token character (RFC 9110 Section 5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseNode parses one hop: an IPv4 address with an optional port ("192.0.2.1",
// "192.0.2.1:4711"), or an IPv6 address bare ("2001:db8::1", X-Forwarded-For only) or in
// brackets with an optional port ("[2001:db8::1]:4711", RFC 7239 Section 6). A port may
// be obfuscated ("_p1", Section 6.3); "unknown" and obfuscated identifiers are not
// addresses.
func parseNode(s string) (netip.Addr, bool) {
	var a netip.Addr
	var err error
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		if a, err = netip.ParseAddr(s[1:end]); err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
	case strings.Count(s, ":") == 1:
		host, port, _ := strings.Cut(s, ":")
		if a, err = netip.ParseAddr(host); err != nil || !a.Is4() || !validPort(port) {
			return netip.Addr{}, false
		}
	default:
		if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, false
		}
	}
	return normalizeAddr(a), true
}

// validPort reports whether s is a port number or an obfuscated port (RFC 7239 Section 6:
// node-port = port / obfport, obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-")).
func validPort(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '_' {
		if len(s) == 1 {
			return false
		}
		for i := 1; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return true
	}
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
