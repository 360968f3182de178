package proxyproto_test

import (
	"fmt"
	"net"

	"github.com/herald-mmo/herald/transport/proxyproto"
)

// A connection from a trusted proxy: check the peer, then parse the header
// from what is buffered and take the client's address from it.
func Example() {
	trusted, _ := proxyproto.ParsePrefixes(proxyproto.DefaultTrusted)
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	if !proxyproto.Trusted(peer, trusted) {
		fmt.Println("refused") // close: only trusted proxies may send a header
		return
	}
	in := []byte("PROXY TCP4 203.0.113.7 127.0.0.1 51000 7001\r\n\x09\x00\x01\x00hello")
	h, n, err := proxyproto.Parse(in)
	switch {
	case err != nil:
		fmt.Println("close:", err)
	case n == 0:
		fmt.Println("wait for more bytes")
	default:
		fmt.Printf("client %s, then %d bytes of the protocol\n", h.RemoteAddr(peer), len(in[n:]))
	}
	// Output: client 203.0.113.7:51000, then 9 bytes of the protocol
}
