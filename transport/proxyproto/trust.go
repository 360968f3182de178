package proxyproto

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// DefaultTrusted is the -proxy-from default: loopback only, so a proxy on
// the same host may send a header and nobody else may.
const DefaultTrusted = "127.0.0.0/8,::1/128"

// ParsePrefixes parses a comma-separated list of CIDR prefixes or bare
// addresses (a bare address is a /32 or /128), as a -proxy-from flag
// takes it. Spaces around items are ignored; an empty list is an error
// (it would trust nobody, so every connection would be refused).
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return nil, fmt.Errorf("%w: %q", ErrBadPrefix, item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty list", ErrBadPrefix)
	}
	return out, nil
}

// Trusted reports whether remote, a connection's remote address, lies in
// one of prefixes. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a dual
// stack listener reports IPv4 peers) is compared as IPv4. An address that
// is not IP (a Unix socket) is not trusted.
func Trusted(remote net.Addr, prefixes []netip.Prefix) bool {
	var a netip.Addr
	switch r := remote.(type) {
	case *net.TCPAddr:
		a = r.AddrPort().Addr()
	case nil:
		return false
	default:
		ap, err := netip.ParseAddrPort(remote.String())
		if err != nil {
			return false
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
