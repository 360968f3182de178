package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// startWS starts cmd/broadcast's handler with codec c on a TCP and a
// WebSocket listener (path /ws), logging into logs if it is not nil.
func startWS(t *testing.T, c codec.Codec, maxMessage int, logs *syncBuffer, opts ...handler.Option) *handler.Server {
	t.Helper()
	o := []handler.Option{
		handler.WithCodec(c),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, MaxMessage: maxMessage}),
	}
	if logs != nil {
		o = append(o, handler.WithLogger(zerolog.New(logs)))
	}
	return startServer(t, demo.Broadcast{}, append(o, opts...)...)
}

// dialWS opens a gorilla/websocket client on srv's WebSocket listener.
func dialWS(t *testing.T, srv *handler.Server) *websocket.Conn {
	t.Helper()
	return dialWSWith(t, srv, false)
}

// dialWSWith is dialWS, offering permessage-deflate if compress (gorilla
// compresses what it sends then, and the test fails unless the server
// accepted the offer).
func dialWSWith(t *testing.T, srv *handler.Server, compress bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096, EnableCompression: compress}
	conn, resp, err := d.Dial("ws://"+srv.WebSocketAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	resp.Body.Close()
	if got := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"); got != compress {
		conn.Close()
		t.Fatalf("permessage-deflate negotiated %v; offered %v (Sec-WebSocket-Extensions %q)", got, compress, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	conn.SetReadLimit(4 << 20)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// roomWire is how one codec's frames look to the room test: the TCP bytes
// of a frame and the WebSocket message that carries it.
type roomWire struct {
	name  string
	codec codec.Codec
	op    int                          // gorilla's message type
	frame func(sender, seq int) []byte // the TCP wire form
	msg   func(frame []byte) []byte    // the WebSocket message's payload
	unmsg func(msg []byte) []byte      // the frame a message carries
	body  func(frame []byte) []byte    // the frame's body
	read  func(r *bufio.Reader) ([]byte, error)
}

func roomWires() []roomWire {
	body := func(sender, seq int) []byte {
		// Sizes cycle through the 7- and 16-bit WebSocket length forms.
		n := []int{0, 40, 121, 122, 300, 2100}[seq%6]
		return fmt.Appendf(nil, "s%d n%04d %s", sender, seq, strings.Repeat(string(rune('a'+seq%26)), n))
	}
	return []roomWire{{
		name:  "packet",
		codec: codec.Packet(0),
		op:    websocket.BinaryMessage,
		frame: func(sender, seq int) []byte { return packetFrame(uint16(seq), body(sender, seq)) },
		msg:   func(f []byte) []byte { return f },
		unmsg: func(m []byte) []byte { return m },
		body:  func(f []byte) []byte { return f[4:] },
		read: func(r *bufio.Reader) ([]byte, error) {
			var hdr [2]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return nil, err
			}
			f := make([]byte, binary.LittleEndian.Uint16(hdr[:]))
			copy(f, hdr[:])
			_, err := io.ReadFull(r, f[2:])
			return f, err
		},
	}, {
		name:  "line",
		codec: codec.Line(0),
		op:    websocket.TextMessage,
		frame: func(sender, seq int) []byte { return append(body(sender, seq), '\n') },
		msg:   func(f []byte) []byte { return bytes.TrimSuffix(f, []byte("\n")) },
		unmsg: func(m []byte) []byte { return append(m, '\n') },
		body:  func(f []byte) []byte { return f },
		read:  func(r *bufio.Reader) ([]byte, error) { return r.ReadBytes('\n') },
	}}
}

// TestWebSocketRoom: WebSocket clients and TCP clients in one room of
// cmd/broadcast's handler each receive every frame from every sender, intact
// and in per-sender order, with the packet codec (binary messages) and the
// line codec (text messages without the newline). With deflate on, the
// first WebSocket client negotiates permessage-deflate (gorilla then
// compresses everything it sends) and the second does not: each frame of at
// least DefaultDeflateMin bytes is compressed once on the server for the
// room, not once per recipient.
func TestWebSocketRoom(t *testing.T) {
	const wsClients, tcpClients, perSender = 2, 2, 120
	type roomCase struct {
		rw      roomWire
		deflate bool
	}
	var cases []roomCase
	for _, rw := range roomWires() {
		cases = append(cases, roomCase{rw, false}, roomCase{rw, true})
	}
	for _, tc := range cases {
		rw, deflate := tc.rw, tc.deflate
		t.Run(fmt.Sprintf("%s/deflate=%v", rw.name, deflate), func(t *testing.T) {
			srv := startWS(t, rw.codec, 0, nil, handler.WithWebSocket("127.0.0.1:0",
				handler.WebSocketConfig{Config: ws.Config{Path: "/ws", Deflate: deflate}}))
			var wsConns []*websocket.Conn
			var tcpConns []net.Conn
			var tcpReaders []*bufio.Reader
			for i := range wsClients {
				wsConns = append(wsConns, dialWSWith(t, srv, deflate && i == 0))
			}
			for range tcpClients {
				c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				tcpConns = append(tcpConns, c)
				tcpReaders = append(tcpReaders, bufio.NewReader(c))
			}
			senders := wsClients + tcpClients
			waitFor(t, 5*time.Second, "every session open", func() bool { return srv.Manager().Len() == senders })

			// want[i] is everything sender i sends, as its frames.
			want := make([][][]byte, senders)
			for i := range senders {
				for seq := range perSender {
					want[i] = append(want[i], rw.frame(i, seq))
				}
			}
			got := make([][][]byte, senders) // got[receiver]: the frames in arrival order
			var wg sync.WaitGroup
			errs := make(chan error, 2*senders)
			total := senders * perSender
			for r := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for len(got[r]) < total {
						var f []byte
						var err error
						if r < wsClients {
							c := wsConns[r]
							_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
							var op int
							var m []byte
							if op, m, err = c.ReadMessage(); err == nil && op != rw.op {
								err = fmt.Errorf("message type %d, want %d", op, rw.op)
							}
							f = rw.unmsg(m)
						} else {
							c := tcpConns[r-wsClients]
							_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
							f, err = rw.read(tcpReaders[r-wsClients])
						}
						if err != nil {
							errs <- fmt.Errorf("receiver %d after %d frames: %w", r, len(got[r]), err)
							return
						}
						got[r] = append(got[r], f)
					}
				}()
			}
			for i := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, f := range want[i] {
						var err error
						if i < wsClients {
							err = wsConns[i].WriteMessage(rw.op, rw.msg(f))
						} else {
							_, err = tcpConns[i-wsClients].Write(f)
						}
						if err != nil {
							errs <- fmt.Errorf("sender %d: %w", i, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for r := range senders {
				next := make([]int, senders)
				for k, f := range got[r] {
					var sender, seq int
					if _, err := fmt.Sscanf(string(rw.body(f)), "s%d n%d", &sender, &seq); err != nil || sender >= senders || seq >= perSender {
						t.Fatalf("receiver %d frame %d: %q is no sender's", r, k, f[:min(len(f), 30)])
					}
					if seq != next[sender] || !bytes.Equal(f, want[sender][seq]) {
						t.Fatalf("receiver %d frame %d: sender %d's seq %d (intact %v); want seq %d",
							r, k, sender, seq, bytes.Equal(f, want[sender][seq]), next[sender])
					}
					next[sender]++
				}
			}
			large := 0 // frames whose message payload the server compresses
			for i := range senders {
				for _, f := range want[i] {
					if len(rw.msg(f)) >= sessionmgr.DefaultDeflateMin {
						large++
					}
				}
			}
			if got := srv.Manager().Counters().Deflated; deflate && (large == 0 || got != uint64(large)) || !deflate && got != 0 {
				t.Errorf("Counters.Deflated = %d with deflate %v; want one compression per large frame (%d)", got, deflate, large)
			}
		})
	}
}

// rawWS is a WebSocket client on a plain socket, for what gorilla cannot
// send: fragments, and frames that break the protocol.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	in   []byte
	d    *ws.Decoder
}

// dialRawWS connects to srv's WebSocket listener and, with path != "",
// completes the opening handshake.
func dialRawWS(t *testing.T, srv *handler.Server, path string) *rawWS {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.WebSocketAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawWS{t: t, conn: conn, d: ws.NewClientDecoder(4 << 20)}
	if path == "" {
		return c
	}
	key := ws.NewKey()
	c.write(ws.AppendRequest(nil, srv.WebSocketAddr().String(), path, key))
	for {
		n, err := ws.ParseAccept(c.in, key)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if n > 0 {
			c.in = c.in[n:]
			return c
		}
		c.fill()
	}
}

func (c *rawWS) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// fill reads more bytes, failing the test after 10 s or at EOF.
func (c *rawWS) fill() {
	c.t.Helper()
	if err := c.tryFill(); err != nil {
		c.t.Fatalf("read: %v", err)
	}
}

func (c *rawWS) tryFill() error {
	var buf [64 << 10]byte
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.conn.Read(buf[:])
	c.in = append(c.in, buf[:n]...)
	return err
}

// next returns the next message or control frame from the server.
func (c *rawWS) next() ws.Message {
	c.t.Helper()
	for {
		m, n, err := c.d.Next(c.in)
		if err != nil {
			c.t.Fatalf("server frame: %v", err)
		}
		if m.Op != 0 {
			m.Payload = bytes.Clone(m.Payload)
			c.in = c.in[n:]
			return m
		}
		c.in = c.in[n:]
		c.fill()
	}
}

// frame appends one masked client frame.
func clientFrame(dst []byte, op ws.Opcode, fin bool, payload []byte) []byte {
	var key [4]byte
	_, _ = rand.Read(key[:])
	return ws.AppendClientFrame(dst, op, fin, payload, key)
}

// TestWebSocketMessageSizes: messages of 0-byte bodies, 125 and 126 bytes
// (the 7- and 16-bit length forms) and the max frame, sent whole by gorilla,
// in three fragments with a ping between them by a raw client, and as a TCP
// frame, reach all three clients intact, for the packet codec (64 KiB max),
// a 32-bit length codec (1 MiB) and the line codec.
func TestWebSocketMessageSizes(t *testing.T) {
	len32, err := codec.ByName("len32", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		codec codec.Codec
		max   int   // the largest message, and frame
		sizes []int // message sizes
		text  bool
	}{
		{"packet", codec.Packet(0), 0xFFFF, []int{4, 125, 126, 0xFFFF}, false},
		{"len32", len32, 1 << 20, []int{4, 125, 126, 0x10000, 1 << 20}, false},
		{"line", codec.Line(0xFFFF), 0xFFFF, []int{0, 125, 126, 0xFFFF}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startWS(t, tc.codec, tc.max, nil, handler.WithLimits(sessionmgr.Limits{LowWatermark: 1 << 20, HighWatermark: 4 << 20, MaxPending: 8 << 20, Policy: sessionmgr.Disconnect}))
			gc := dialWS(t, srv)
			rc := dialRawWS(t, srv, "/ws")
			tcp, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer tcp.Close()
			tr := bufio.NewReader(tcp)
			waitFor(t, 5*time.Second, "three sessions", func() bool { return srv.Manager().Len() == 3 })
			op, gop := ws.OpBinary, websocket.BinaryMessage
			if tc.text {
				op, gop = ws.OpText, websocket.TextMessage
			}
			for i, size := range tc.sizes {
				// msg is the message; frame the same frame on TCP.
				var msg, frame []byte
				body := bytes.Repeat([]byte{byte('a' + i)}, size)
				if tc.text {
					msg, frame = body, append(bytes.Clone(body), '\n')
				} else {
					if frame, err = tc.codec.Encode(nil, codec.Frame{Body: body[:size-4], ID: uint16(i)}); err != nil {
						t.Fatal(err)
					}
					msg = frame
				}
				for sender := range 3 {
					switch sender {
					case 0:
						if err := gc.WriteMessage(gop, msg); err != nil {
							t.Fatal(err)
						}
					case 1:
						a, b := len(msg)/3, 2*len(msg)/3
						out := clientFrame(nil, op, false, msg[:a])
						out = clientFrame(out, ws.OpPing, true, []byte("between"))
						out = clientFrame(out, ws.OpContinuation, false, msg[a:b])
						out = clientFrame(out, ws.OpContinuation, true, msg[b:])
						rc.write(out)
					case 2:
						if _, err := tcp.Write(frame); err != nil {
							t.Fatal(err)
						}
					}
					_ = gc.SetReadDeadline(time.Now().Add(10 * time.Second))
					if typ, got, err := gc.ReadMessage(); err != nil || typ != gop || !bytes.Equal(got, msg) {
						t.Fatalf("size %d from sender %d: gorilla got type %d, %d bytes, %v; want %d bytes", size, sender, typ, len(got), err, len(msg))
					}
					m := rc.next()
					if sender == 1 {
						if m.Op != ws.OpPong || string(m.Payload) != "between" {
							t.Fatalf("raw client got %v %q; want the pong to its ping", m.Op, m.Payload)
						}
						m = rc.next()
					}
					if m.Op != op || !bytes.Equal(m.Payload, msg) {
						t.Fatalf("size %d from sender %d: raw client got op %v, %d bytes; want %d bytes", size, sender, m.Op, len(m.Payload), len(msg))
					}
					got := make([]byte, len(frame))
					_ = tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.ReadFull(tr, got); err != nil || !bytes.Equal(got, frame) {
						t.Fatalf("size %d from sender %d: TCP client got %d bytes (%v), not the frame", size, sender, len(got), err)
					}
				}
			}
		})
	}
}

// expectClose reads up to the server's close frame, then the end of the
// connection, and returns the close frame's code (0 if none came before
// the end).
func (c *rawWS) expectClose() uint16 {
	c.t.Helper()
	code := uint16(0)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if code == 0 {
			m, n, err := c.d.Next(c.in)
			if err != nil {
				c.t.Fatalf("server frame: %v", err)
			}
			c.in = c.in[n:]
			if m.Op == ws.OpClose {
				code = m.Code
				continue
			}
			if m.Op != 0 {
				continue
			}
		}
		if err := c.tryFill(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return code
			}
			c.t.Fatalf("waiting for the server to close: %v", err)
		}
	}
	c.t.Fatalf("server did not close within 5s (close code %d)", code)
	return code
}

// TestWebSocketHostilePeers: each hostile WebSocket peer closes only itself,
// with the close code RFC 6455 gives its fault and a logged reason, while a
// healthy WebSocket session's messages keep flowing, intact and in order.
func TestWebSocketHostilePeers(t *testing.T) {
	logs := &syncBuffer{}
	srv := startServer(t, demo.Broadcast{},
		handler.WithCodec(codec.Packet(0)), handler.WithLogger(zerolog.New(logs)), handler.WithTick(20*time.Millisecond),
		handler.WithHandshakeTimeout(300*time.Millisecond),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}}))

	healthy := dialWS(t, srv)
	stop := make(chan struct{})
	result := make(chan error, 1)
	sentTotal := 0
	go func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				sentTotal = seq
				result <- nil
				return
			default:
			}
			f := packetFrame(uint16(seq), fmt.Appendf(nil, "healthy %d", seq))
			if err := healthy.WriteMessage(websocket.BinaryMessage, f); err != nil {
				result <- err
				return
			}
			for { // offenders that completed a handshake get it too; the healthy one reads its own
				_ = healthy.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, got, err := healthy.ReadMessage()
				if err != nil {
					result <- fmt.Errorf("healthy read after %d messages: %w", seq, err)
					return
				}
				if !bytes.Equal(got, f) {
					result <- fmt.Errorf("healthy message %d came back as %q", seq, got)
					return
				}
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	frameCases := []struct {
		name string
		out  func() []byte
		code uint16
	}{
		{"unmasked frame", func() []byte { return ws.AppendFrame(nil, ws.OpBinary, packetFrame(1, []byte("x"))) }, ws.CloseProtocolError},
		{"reserved bits", func() []byte {
			b := clientFrame(nil, ws.OpBinary, true, packetFrame(1, []byte("x")))
			b[0] |= 0x40 // RSV1 without permessage-deflate negotiated
			return b
		}, ws.CloseProtocolError},
		{"oversize", func() []byte {
			return clientFrame(nil, ws.OpBinary, true, make([]byte, 70000))[:14] // the header alone is enough
		}, ws.CloseTooLarge},
		{"invalid UTF-8 text", func() []byte { return clientFrame(nil, ws.OpText, true, []byte("ok \xff\xfe")) }, ws.CloseInvalidPayload},
		{"text for the packet codec", func() []byte { return clientFrame(nil, ws.OpText, true, []byte("hello")) }, ws.CloseUnsupported},
		{"half a packet", func() []byte { return clientFrame(nil, ws.OpBinary, true, packetFrame(1, []byte("abcdef"))[:6]) }, ws.CloseProtocolError},
		{"two packets", func() []byte {
			return clientFrame(nil, ws.OpBinary, true, append(packetFrame(1, []byte("a")), packetFrame(2, []byte("b"))...))
		}, ws.CloseProtocolError},
		{"bad close code", func() []byte { return clientFrame(nil, ws.OpClose, true, []byte{0x03, 0xe7}) }, ws.CloseProtocolError}, // 999
	}
	for _, fc := range frameCases {
		c := dialRawWS(t, srv, "/ws")
		c.write(fc.out())
		if code := c.expectClose(); code != fc.code {
			t.Errorf("%s: close code %d; want %d", fc.name, code, fc.code)
		}
	}

	handshakeCases := []struct {
		name, req, status string
	}{
		{"not an upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 4"},
		{"wrong path", string(ws.AppendRequest(nil, "x", "/nope", ws.NewKey())), "HTTP/1.1 404"},
		{"not GET", "POST /ws HTTP/1.1\r\n", "HTTP/1.1 405"},
		{"not HTTP", "\x16\x03\x01\x02\x00", "HTTP/1.1 400"},
		{"never ends", "GET /ws HTTP/1.1\r\nHost: x\r\n", ""}, // the handshake timeout closes it
		{"silent", "", ""},
	}
	for _, hc := range handshakeCases {
		c := dialRawWS(t, srv, "")
		if hc.req != "" {
			c.write([]byte(hc.req))
		}
		start := time.Now()
		var err error
		for err == nil {
			err = c.tryFill()
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("%s: %v; want the server to close", hc.name, err)
		}
		if !strings.HasPrefix(string(c.in), hc.status) || (hc.status == "" && len(c.in) > 0) {
			t.Errorf("%s: server answered %q; want %q", hc.name, c.in, hc.status)
		}
		if hc.status == "" && time.Since(start) < 250*time.Millisecond {
			t.Errorf("%s: closed after %v, before the 300ms handshake timeout", hc.name, time.Since(start))
		}
	}

	// A peer's own close handshake: answered with 1000, not a violation.
	c := dialRawWS(t, srv, "/ws")
	c.write(clientFrame(nil, ws.OpClose, true, []byte{0x03, 0xe8})) // 1000
	if code := c.expectClose(); code != ws.CloseNormal {
		t.Errorf("close handshake: code %d; want 1000", code)
	}

	close(stop)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if sentTotal == 0 {
		t.Fatal("the healthy session sent nothing")
	}
	waitFor(t, 5*time.Second, "only the healthy session left", func() bool { return srv.Manager().Len() == 1 })

	// Every violation logged its close code; handshake failures and
	// timeouts logged their reasons.
	codes := map[uint16]int{}
	var handshakes, timeouts int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct {
			Message string `json:"message"`
			Code    uint16 `json:"close_code"`
			Error   string `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case l.Message == "herald: closing websocket session: protocol violation":
			codes[l.Code]++
		case strings.HasPrefix(l.Message, "herald: closing websocket connection: bad handshake"):
			handshakes++
		case l.Message == "herald: closing session" && strings.Contains(l.Error, "handshake not completed"):
			timeouts++
		}
	}
	want := map[uint16]int{}
	for _, fc := range frameCases {
		want[fc.code]++
	}
	for code, n := range want {
		if codes[code] != n {
			t.Errorf("%d protocol-violation log lines with close code %d; want %d (all: %v)", codes[code], code, n, codes)
		}
	}
	refused := 0 // the handshake cases answered with a status; the others time out
	for _, hc := range handshakeCases {
		if hc.status != "" {
			refused++
		}
	}
	if handshakes != refused || timeouts != len(handshakeCases)-refused {
		t.Errorf("logged %d bad handshakes and %d handshake timeouts; want %d and %d", handshakes, timeouts, refused, len(handshakeCases)-refused)
	}
}
