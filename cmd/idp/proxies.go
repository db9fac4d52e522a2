package main

import (
	"net/netip"

	"github.com/openidp/idp/idp"
)

// proxiesValue is the value of --trusted-proxies: comma-separated CIDR prefixes or bare
// addresses, checked when the flag (or IDP_TRUSTED_PROXIES) is set.
type proxiesValue struct {
	raw      string
	prefixes []netip.Prefix
}

func (v *proxiesValue) String() string { return v.raw }

func (v *proxiesValue) Set(s string) error {
	p, err := idp.ParseTrustedProxies(s)
	if err != nil {
		return err
	}
	v.raw, v.prefixes = s, p
	return nil
}

func (v *proxiesValue) Type() string { return "cidrs" }
