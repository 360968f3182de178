package ws_test

import (
	"fmt"

	"github.com/herald-mmo/herald/transport/ws"
)

// An event loop's view of one connection: the handshake, then frames, fed
// from whatever bytes have arrived.
func Example() {
	// What a client sent; here in one read, but any split works.
	in := ws.AppendRequest(nil, "127.0.0.1:7080", "/ws", "dGhlIHNhbXBsZSBub25jZQ==")
	in = ws.AppendClientFrame(in, ws.OpBinary, true, []byte("hi"), [4]byte{1, 2, 3, 4})
	in = ws.AppendClientFrame(in, ws.OpPing, true, []byte("?"), [4]byte{5, 6, 7, 8})

	u, n, err := ws.ParseUpgrade(in, &ws.Config{Path: "/ws"})
	if err != nil {
		fmt.Printf("%s", ws.AppendReject(nil, err)) // then close
		return
	}
	out := ws.AppendAccept(nil, u)
	in = in[n:]

	d := ws.NewDecoder(64 << 10)
	for {
		m, n, err := d.Next(in)
		if err != nil {
			out = err.(*ws.CloseError).AppendFrame(out) // then close
			break
		}
		in = in[n:]
		if m.Op == 0 {
			break // wait for more bytes
		}
		switch m.Op {
		case ws.OpBinary:
			fmt.Printf("message %q\n", m.Payload)
			out = ws.AppendFrame(out, ws.OpBinary, m.Payload) // echo
		case ws.OpPing:
			out = ws.AppendFrame(out, ws.OpPong, m.Payload)
		}
	}
	fmt.Printf("%d bytes to write, %d left buffered\n", len(out), len(in))
	// Output:
	// message "hi"
	// 136 bytes to write, 0 left buffered
}
