// Package proxyproto parses the PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2) that a TLS-terminating proxy such
// as haproxy (send-proxy, send-proxy-v2) or nginx (proxy_protocol on)
// writes at the start of each connection it relays, so that the server
// sees the client's address instead of the proxy's.
//
// Parse works on the bytes buffered so far and never blocks: n == 0 with
// a nil error means more bytes are needed, whatever the split; n > 0 is
// the header's length, and the connection's own protocol (TCP frames, a
// WebSocket handshake) starts after it. The header is bounded (107 bytes
// for v1, MaxV2Len for v2), so a peer cannot make the server buffer more;
// a peer that sends nothing is the caller's to time out.
//
// Only peers the operator trusts may send a header: anyone else could
// claim any address. Check Trusted before Parse and refuse the rest.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Header lengths.
const (
	// MaxV1Len is the longest v1 header, CRLF included (the spec's 107).
	MaxV1Len = 107
	// MaxV2Len bounds a v2 header, its 16 fixed bytes and address block
	// with TLVs included. The spec allows 65551; haproxy's own headers with
	// SSL TLVs stay well under this.
	MaxV2Len = 16 + 2048
)

var (
	v1Sig = []byte("PROXY ")
	v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is a v2 LOCAL header: the proxy's own connection (a health
	// check), to be taken with the socket's own addresses.
	Local bool
	// Source and Destination are the client's address and the address it
	// connected to, valid (IsValid) only when the header carries them: v1
	// TCP4 or TCP6, v2 PROXY over TCP on IPv4 or IPv6. An UNKNOWN (v1) or
	// UNSPEC, UNIX or UDP (v2) header carries none: use the socket's.
	Source, Destination netip.AddrPort
}

// RemoteAddr is the client's address: Source if the header has one,
// otherwise socket, the connection's own remote address.
func (h Header) RemoteAddr(socket net.Addr) net.Addr {
	if h.Source.IsValid() {
		return net.TCPAddrFromAddrPort(h.Source)
	}
	return socket
}

// Parse parses a PROXY header, v1 or v2, from the start of in. It returns
// n == 0 and a nil error while in is a proper prefix of a header, the
// header and its length once it is whole, and an error wrapping
// ErrMissing, ErrMalformed or ErrTooLong (with n == 0) as soon as in can no
// longer become one. Parse keeps no state: call it again with more bytes.
func Parse(in []byte) (h Header, n int, err error) {
	switch {
	case len(in) == 0:
		return Header{}, 0, nil
	case in[0] == v1Sig[0]:
		return parseV1(in)
	case in[0] == v2Sig[0]:
		return parseV2(in)
	}
	return Header{}, 0, fmt.Errorf("%w: first byte %#02x", ErrMissing, in[0])
}

func hasPrefixSoFar(in, sig []byte) bool {
	p := min(len(in), len(sig))
	return bytes.Equal(in[:p], sig[:p])
}

func parseV1(in []byte) (Header, int, error) {
	if !hasPrefixSoFar(in, v1Sig) {
		return Header{}, 0, fmt.Errorf("%w: %q is not \"PROXY \"", ErrMissing, in[:min(len(in), len(v1Sig))])
	}
	end := bytes.Index(in[:min(len(in), MaxV1Len)], []byte("\r\n"))
	if end < 0 {
		if len(in) >= MaxV1Len {
			return Header{}, 0, fmt.Errorf("%w: v1 line without CRLF in %d bytes", ErrTooLong, MaxV1Len)
		}
		return Header{}, 0, nil
	}
	line := string(in[len(v1Sig):end])
	h := Header{Version: 1}
	fields := strings.Split(line, " ")
	switch fields[0] {
	case "UNKNOWN": // the rest, whatever it is, is to be ignored
		return h, end + 2, nil
	case "TCP4", "TCP6":
	default:
		return Header{}, 0, fmt.Errorf("%w: v1 protocol %q", ErrMalformed, fields[0])
	}
	if len(fields) != 5 {
		return Header{}, 0, fmt.Errorf("%w: v1 line %q does not have 5 fields", ErrMalformed, line)
	}
	v6 := fields[0] == "TCP6"
	src, err1 := v1AddrPort(fields[1], fields[3], v6)
	dst, err2 := v1AddrPort(fields[2], fields[4], v6)
	if err1 != nil || err2 != nil {
		return Header{}, 0, fmt.Errorf("%w: v1 line %q: bad address or port", ErrMalformed, line)
	}
	h.Source, h.Destination = src, dst
	return h, end + 2, nil
}

func v1AddrPort(addr, port string, v6 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a.Is4() == v6 || a.Zone() != "" {
		return netip.AddrPort{}, ErrMalformed
	}
	if len(port) == 0 || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
		return netip.AddrPort{}, ErrMalformed
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// v2 header fields (spec section 2.2).
const (
	v2Fixed     = 16
	cmdLocal    = 0x0
	cmdProxy    = 0x1
	famInet     = 0x1
	famInet6    = 0x2
	protoStream = 0x1
	tlvHeader   = 3
)

func parseV2(in []byte) (Header, int, error) {
	if !hasPrefixSoFar(in, v2Sig) {
		return Header{}, 0, fmt.Errorf("%w: not the v2 signature", ErrMissing)
	}
	if len(in) < v2Fixed {
		return Header{}, 0, nil
	}
	verCmd, fam := in[12], in[13]
	if verCmd>>4 != 2 {
		return Header{}, 0, fmt.Errorf("%w: v2 version %d", ErrMalformed, verCmd>>4)
	}
	cmd := verCmd & 0x0F
	if cmd != cmdLocal && cmd != cmdProxy {
		return Header{}, 0, fmt.Errorf("%w: v2 command %d", ErrMalformed, cmd)
	}
	total := v2Fixed + int(binary.BigEndian.Uint16(in[14:]))
	if total > MaxV2Len {
		return Header{}, 0, fmt.Errorf("%w: v2 header of %d bytes, max %d", ErrTooLong, total, MaxV2Len)
	}
	if len(in) < total {
		return Header{}, 0, nil
	}
	h := Header{Version: 2, Local: cmd == cmdLocal}
	if h.Local { // the address block is to be discarded, whatever it holds
		return h, total, nil
	}
	block := in[v2Fixed:total]
	var alen int
	switch fam >> 4 {
	case famInet:
		alen = 4
	case famInet6:
		alen = 16
	}
	rest := block
	if alen > 0 && fam&0x0F == protoStream {
		if len(block) < 2*alen+4 {
			return Header{}, 0, fmt.Errorf("%w: v2 address block of %d bytes, want %d", ErrMalformed, len(block), 2*alen+4)
		}
		src, _ := netip.AddrFromSlice(block[:alen])
		dst, _ := netip.AddrFromSlice(block[alen : 2*alen])
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[2*alen:]))
		h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[2*alen+2:]))
		rest = block[2*alen+4:]
	} else {
		rest = nil // UNSPEC, UNIX or UDP: addresses unknown, the block is skipped
	}
	for len(rest) > 0 { // TLVs: skipped, but they must fit the block
		if len(rest) < tlvHeader || len(rest) < tlvHeader+int(binary.BigEndian.Uint16(rest[1:])) {
			return Header{}, 0, fmt.Errorf("%w: v2 TLV runs past the header", ErrMalformed)
		}
		rest = rest[tlvHeader+int(binary.BigEndian.Uint16(rest[1:])):]
	}
	return h, total, nil
}

// AppendV1 appends h as a v1 line: TCP4 or TCP6 by the source address,
// UNKNOWN if h has no addresses. For tests and proxies.
func AppendV1(dst []byte, h Header) []byte {
	if !h.Source.IsValid() || !h.Destination.IsValid() {
		return append(dst, "PROXY UNKNOWN\r\n"...)
	}
	proto := "TCP4 "
	if !h.Source.Addr().Is4() {
		proto = "TCP6 "
	}
	dst = append(append(dst, v1Sig...), proto...)
	dst = h.Source.Addr().AppendTo(dst)
	dst = h.Destination.Addr().AppendTo(append(dst, ' '))
	dst = strconv.AppendUint(append(dst, ' '), uint64(h.Source.Port()), 10)
	dst = strconv.AppendUint(append(dst, ' '), uint64(h.Destination.Port()), 10)
	return append(dst, "\r\n"...)
}

// AppendV2 appends h as a v2 header (PROXY over TCP, or LOCAL when h.Local
// or h has no addresses), followed by tlvs, raw TLV bytes. For tests and
// proxies.
func AppendV2(dst []byte, h Header, tlvs []byte) []byte {
	dst = append(dst, v2Sig...)
	if h.Local || !h.Source.IsValid() || !h.Destination.IsValid() {
		dst = append(dst, 0x20|cmdLocal, 0)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(tlvs)))
		return append(dst, tlvs...)
	}
	src, dstAddr, fam, alen := h.Source.Addr(), h.Destination.Addr(), byte(famInet), 4
	if !src.Is4() || !dstAddr.Is4() {
		src, dstAddr, fam, alen = netip.AddrFrom16(src.As16()), netip.AddrFrom16(dstAddr.As16()), famInet6, 16
	}
	dst = append(dst, 0x20|cmdProxy, fam<<4|protoStream)
	dst = binary.BigEndian.AppendUint16(dst, uint16(2*alen+4+len(tlvs)))
	dst = append(dst, src.AsSlice()...)
	dst = append(dst, dstAddr.AsSlice()...)
	dst = binary.BigEndian.AppendUint16(dst, h.Source.Port())
	dst = binary.BigEndian.AppendUint16(dst, h.Destination.Port())
	return append(dst, tlvs...)
}
