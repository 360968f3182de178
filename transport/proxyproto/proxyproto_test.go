package proxyproto_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/transport/proxyproto"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// haproxyV2 is what haproxy 2.x wrote with send-proxy-v2 for a client at
// 172.19.0.1:42578 connecting to 172.19.0.3:80, followed by the client's
// first bytes.
var haproxyV2 = []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50GET / HTTP/1.1\r\n")

// Examples from the spec's section 2.1, and v2 headers in each family.
var (
	v1TCP4    = []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /")
	v1TCP6    = []byte("PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")
	v1Max     = []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")
	v1Unknown = []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")
	v2TCP6    = proxyproto.AppendV2(nil, proxyproto.Header{
		Source:      netip.MustParseAddrPort("[2001:db8::1]:40000"),
		Destination: netip.MustParseAddrPort("[2001:db8::2]:7001"),
	}, []byte("\x04\x00\x02ab\x20\x00\x00")) // a NOOP TLV and an empty SSL TLV
	v2Local  = proxyproto.AppendV2(nil, proxyproto.Header{Local: true}, nil)
	v2Unspec = []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x00\x00\x03abc")
	v2Unix   = append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x31\x00\xd8"), make([]byte, 216)...)
	allSeeds = [][]byte{haproxyV2, v1TCP4, v1TCP6, v1Max, v1Unknown, v2TCP6, v2Local, v2Unspec, v2Unix}
)

func TestParse(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		in   []byte
		want proxyproto.Header
		n    int   // header length
		sent error // sentinel of the error, nil for success
	}{
		{name: "haproxy v2 tcp4", in: haproxyV2, want: proxyproto.Header{Version: 2, Source: ap("172.19.0.1:42578"), Destination: ap("172.19.0.3:80")}, n: 28},
		{name: "v1 tcp4", in: v1TCP4, want: proxyproto.Header{Version: 1, Source: ap("192.168.0.1:56324"), Destination: ap("192.168.0.11:443")}, n: len(v1TCP4) - 5},
		{name: "v1 longest", in: v1Max, n: 104, want: proxyproto.Header{Version: 1,
			Source: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Destination: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
		{name: "v1 unknown", in: v1Unknown, want: proxyproto.Header{Version: 1}, n: len(v1Unknown)},
		{name: "v1 unknown bare", in: []byte("PROXY UNKNOWN\r\n"), want: proxyproto.Header{Version: 1}, n: 15},
		{name: "v2 tcp6 with TLVs", in: v2TCP6, want: proxyproto.Header{Version: 2, Source: ap("[2001:db8::1]:40000"), Destination: ap("[2001:db8::2]:7001")}, n: len(v2TCP6)},
		{name: "v2 local", in: v2Local, want: proxyproto.Header{Version: 2, Local: true}, n: 16},
		{name: "v2 unspec", in: v2Unspec, want: proxyproto.Header{Version: 2}, n: 19},
		{name: "v2 unix", in: v2Unix, want: proxyproto.Header{Version: 2}, n: 232},

		{name: "no header", in: []byte("GET / HTTP/1.1\r\n"), sent: proxyproto.ErrMissing},
		{name: "packet frame", in: []byte("\x09\x00\x01\x00hello"), sent: proxyproto.ErrMissing},
		{name: "v1 signature broken", in: []byte("PROXZ TCP4"), sent: proxyproto.ErrMissing},
		{name: "v1 tcp6 field in tcp4", in: []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 port too big", in: []byte("PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 signed port", in: []byte("PROXY TCP4 1.2.3.4 1.2.3.5 +1 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 double space", in: []byte("PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 too few fields", in: []byte("PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 udp", in: []byte("PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 zone", in: []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), sent: proxyproto.ErrMalformed},
		{name: "v1 too long", in: []byte("PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n"), sent: proxyproto.ErrTooLong},
		{name: "v2 version 1", in: []byte("\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c"), sent: proxyproto.ErrMalformed},
		{name: "v2 command 2", in: []byte("\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x0c"), sent: proxyproto.ErrMalformed},
		{name: "v2 too long", in: []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"), sent: proxyproto.ErrTooLong},
		{name: "v2 short address block", in: []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08"), sent: proxyproto.ErrMalformed},
		{name: "v2 TLV past the end", in: append(bytes.Clone(haproxyV2[:15]), append([]byte{0x0f}, append(bytes.Clone(haproxyV2[16:28]), 0x04, 0x00, 0x09, 'a')...)...), sent: proxyproto.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := proxyproto.Parse(tt.in)
			if tt.sent != nil {
				if !errors.Is(err, tt.sent) || n != 0 {
					t.Fatalf("Parse = %+v, %d, %v; want %v", h, n, err, tt.sent)
				}
				return
			}
			if err != nil || n != tt.n || h != tt.want {
				t.Fatalf("Parse = %+v, %d, %v; want %+v, %d", h, n, err, tt.want, tt.n)
			}
			for k := range n {
				if _, pn, perr := proxyproto.Parse(tt.in[:k]); pn != 0 || perr != nil {
					t.Fatalf("prefix of %d bytes: n %d, %v; want more bytes asked for", k, pn, perr)
				}
			}
		})
	}
}

func TestRemoteAddr(t *testing.T) {
	socket := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}
	h, _, _ := proxyproto.Parse(haproxyV2)
	if got := h.RemoteAddr(socket).String(); got != "172.19.0.1:42578" {
		t.Fatalf("RemoteAddr = %s", got)
	}
	h, _, _ = proxyproto.Parse(v2Local)
	if got := h.RemoteAddr(socket); got != socket {
		t.Fatalf("LOCAL: RemoteAddr = %s, want the socket's", got)
	}
}

func TestTrusted(t *testing.T) {
	def, err := proxyproto.ParsePrefixes(proxyproto.DefaultTrusted)
	if err != nil {
		t.Fatal(err)
	}
	lan, err := proxyproto.ParsePrefixes(" 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		remote   net.Addr
		prefixes []netip.Prefix
		want     bool
	}{
		{tcp("127.0.0.1:1"), def, true},
		{tcp("127.9.9.9:1"), def, true},
		{tcp("[::1]:1"), def, true},
		{tcp("[::ffff:127.0.0.1]:1"), def, true},
		{tcp("10.0.0.1:1"), def, false},
		{tcp("[::2]:1"), def, false},
		{tcp("10.200.0.1:1"), lan, true},
		{tcp("192.168.1.7:1"), lan, true},
		{tcp("192.168.1.8:1"), lan, false},
		{tcp("[2001:db8:1::1]:1"), lan, true},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, def, false},
		{nil, def, false},
	}
	for _, tt := range tests {
		if got := proxyproto.Trusted(tt.remote, tt.prefixes); got != tt.want {
			t.Errorf("Trusted(%v, %v) = %v, want %v", tt.remote, tt.prefixes, got, tt.want)
		}
	}
	for _, bad := range []string{"", " , ", "10.0.0.0/33", "example.com", "10.0.0.0/8,x"} {
		if _, err := proxyproto.ParsePrefixes(bad); !errors.Is(err, proxyproto.ErrBadPrefix) {
			t.Errorf("ParsePrefixes(%q) = %v, want ErrBadPrefix", bad, err)
		}
	}
}

// FuzzParse checks Parse on any bytes: no panic; n within the input and
// the header bounds; errors wrap a sentinel with n == 0; n == 0 without an
// error only below the header bounds; every shorter prefix of a header
// asks for more; bytes after a header never matter; and a header with
// addresses re-encodes (v1 and v2) to bytes that parse back to it.
func FuzzParse(f *testing.F) {
	for _, s := range allSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, n, err := proxyproto.Parse(in)
		if err != nil {
			if n != 0 || !(errors.Is(err, proxyproto.ErrMissing) || errors.Is(err, proxyproto.ErrMalformed) || errors.Is(err, proxyproto.ErrTooLong)) {
				t.Fatalf("Parse = n %d, %v", n, err)
			}
			return
		}
		if n < 0 || n > len(in) || n > proxyproto.MaxV2Len {
			t.Fatalf("n %d outside [0, %d]", n, len(in))
		}
		if n == 0 {
			if len(in) >= proxyproto.MaxV2Len {
				t.Fatalf("wants more bytes with %d buffered", len(in))
			}
			return
		}
		if h2, n2, err2 := proxyproto.Parse(in[:n]); h2 != h || n2 != n || err2 != nil {
			t.Fatal("bytes after the header changed the result")
		}
		for k := range n {
			if _, pn, perr := proxyproto.Parse(in[:k]); pn != 0 || perr != nil {
				t.Fatalf("prefix of %d bytes: n %d, %v", k, pn, perr)
			}
		}
		if !h.Source.IsValid() {
			return
		}
		for _, enc := range [][]byte{proxyproto.AppendV1(nil, h), proxyproto.AppendV2(nil, h, nil)} {
			g, gn, gerr := proxyproto.Parse(enc)
			// v1 keeps the family; v2 maps mixed families to IPv6.
			if gerr != nil || gn != len(enc) || g.Source.Port() != h.Source.Port() || g.Source.Addr().Unmap() != h.Source.Addr().Unmap() ||
				g.Destination.Addr().Unmap() != h.Destination.Addr().Unmap() {
				t.Fatalf("re-encoded %+v as %q: %+v, %d, %v", h, enc, g, gn, gerr)
			}
		}
	})
}
