package tests

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// dialRawDeflate is dialRawWS offering permessage-deflate: the server must
// accept it, and the client's decoder inflates what comes compressed.
func dialRawDeflate(t *testing.T, srv *handler.Server) *rawWS {
	t.Helper()
	c := dialRawWS(t, srv, "")
	req := ws.AppendRequest(nil, srv.WebSocketAddr().String(), "/ws", ws.NewKey())
	req = append(req[:len(req)-2], "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"...) // as Chrome offers
	c.write(req)
	for !bytes.Contains(c.in, []byte("\r\n\r\n")) {
		c.fill()
	}
	head, rest, _ := bytes.Cut(c.in, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) || !bytes.Contains(head, []byte("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover")) {
		t.Fatalf("handshake response %q: want 101 with permessage-deflate", head)
	}
	c.in = rest
	c.d.AcceptDeflate()
	return c
}

// TestWebSocketDeflateCorrupt: on a server with Deflate, a raw client that
// negotiated it gets a large broadcast compressed (RSV1, fewer bytes than
// the frame) and a small one plain; a corrupt compressed message from it
// closes only its session, with 1007 and a logged reason, while a gorilla
// client with deflate, one without, and a TCP client in the same room keep
// getting every frame intact.
func TestWebSocketDeflateCorrupt(t *testing.T) {
	logs := &syncBuffer{}
	srv := startServer(t, demo.Broadcast{}, handler.WithCodec(codec.Packet(0)), handler.WithLogger(zerolog.New(logs)),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws", Deflate: true}}))
	zipped, plain := dialWSWith(t, srv, true), dialWSWith(t, srv, false)
	tcp, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	raw := dialRawDeflate(t, srv)
	waitFor(t, 5*time.Second, "every session open", func() bool { return srv.Manager().Len() == 4 })

	big := packetFrame(1, []byte(strings.Repeat("a large, compressible game state update; ", 100)))
	small := packetFrame(2, []byte("small"))
	for _, f := range [][]byte{big, small} {
		if err := zipped.WriteMessage(websocket.BinaryMessage, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range [][]byte{big, small} {
		for len(raw.in) < 2 {
			raw.fill()
		}
		compressed := raw.in[0]&0x40 != 0
		before := len(raw.in)
		m := raw.next()
		if wire := before - len(raw.in); !bytes.Equal(m.Payload, f) || compressed != (len(f) >= 1024) || compressed && wire >= len(f) {
			t.Fatalf("raw deflate client: %d-byte message in %d wire bytes, compressed %v; want frame of %d bytes, compressed %v",
				len(m.Payload), wire, compressed, len(f), len(f) >= 1024)
		}
	}

	// A compressed message (RSV1) whose bytes do not inflate.
	bad := clientFrame(nil, ws.OpBinary, true, []byte{0xff, 0xff, 0xff, 0xff, 0x00})
	bad[0] |= 0x40
	raw.write(bad)
	if code := raw.expectClose(); code != ws.CloseInvalidPayload {
		t.Errorf("corrupt compressed message: close code %d; want %d", code, ws.CloseInvalidPayload)
	}
	waitFor(t, 5*time.Second, "the corrupt session closed", func() bool { return srv.Manager().Len() == 3 })
	if !strings.Contains(logs.String(), "corrupt compressed message") {
		t.Errorf("no logged reason for the corrupt message; logs:\n%s", logs.String())
	}

	// The others got both frames, and keep getting what is sent.
	after := packetFrame(3, []byte(strings.Repeat("still flowing ", 200)))
	if err := plain.WriteMessage(websocket.BinaryMessage, after); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{big, small, after} {
		for name, c := range map[string]*websocket.Conn{"deflate": zipped, "plain": plain} {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, m, err := c.ReadMessage(); err != nil || !bytes.Equal(m, f) {
				t.Fatalf("%s gorilla client: %d bytes, %v; want the %d-byte frame", name, len(m), err, len(f))
			}
		}
		got := make([]byte, len(f))
		_ = tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(tcp, got); err != nil || !bytes.Equal(got, f) {
			t.Fatalf("TCP client: %v; want the %d-byte frame intact", err, len(f))
		}
	}
	if got := srv.Manager().Counters().Deflated; got != 2 {
		t.Errorf("Counters.Deflated = %d; want 2 (big and after, once each)", got)
	}
}
