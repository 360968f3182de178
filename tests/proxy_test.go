package tests

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/proxyproto"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// addrSpy echoes every frame and records the remote address each session
// opened with.
type addrSpy struct {
	handler.Base
	mu    sync.Mutex
	addrs []string
}

func (h *addrSpy) OnConnected(s *sessionmgr.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs = append(h.addrs, s.RemoteAddr().String())
}

func (h *addrSpy) OnRecv(s *sessionmgr.Session, f codec.Frame) { _ = s.Reply(f.Wire) }

func (h *addrSpy) opened() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.addrs...)
}

// closedBy reads conn until the server closes it and returns what it read
// and how long that took; it fails the test if the server keeps it open
// for 5 s.
func closedBy(t *testing.T, conn net.Conn) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept the connection open for 5s")
	}
	return got, time.Since(start)
}

// TestProxyProtocol: with WithProxyProtocol, the PROXY header (v1 or v2,
// alone or with the first bytes after it) gives TCP and WebSocket sessions
// the client's address, which OnConnected already sees; a v2 LOCAL header
// keeps the socket's. A missing, malformed or unfinished header closes the
// connection with a logged reason and opens no session, and a healthy
// session keeps working.
func TestProxyProtocol(t *testing.T) {
	logs := &syncBuffer{}
	h := &addrSpy{}
	srv := startServer(t, h, handler.WithCodec(codec.Packet(0)), handler.WithLogger(zerolog.New(logs)),
		handler.WithProxyProtocol(nil), handler.WithHandshakeTimeout(300*time.Millisecond), handler.WithTick(20*time.Millisecond),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}}))
	dst := netip.MustParseAddrPort("127.0.0.1:7001")
	v1 := proxyproto.Header{Version: 1, Source: netip.MustParseAddrPort("203.0.113.7:4242"), Destination: dst}
	v2 := proxyproto.Header{Version: 2, Source: netip.MustParseAddrPort("[2001:db8::1]:5555"), Destination: netip.MustParseAddrPort("[::1]:7001")}

	// TCP, v1, with the first frame in the same write.
	tcp := dialPacket(t, srv.Addr().String())
	if _, err := tcp.conn.Write(append(proxyproto.AppendV1(nil, v1), packetFrame(1, []byte("one"))...)); err != nil {
		t.Fatal(err)
	}
	if id, p := tcp.recv(5 * time.Second); id != 1 || string(p) != "one" {
		t.Fatalf("v1 TCP echo: %d %q", id, p)
	}
	// TCP, v2 alone, the frame later.
	tcp2 := dialPacket(t, srv.Addr().String())
	if _, err := tcp2.conn.Write(proxyproto.AppendV2(nil, v2, nil)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	tcp2.send(2, []byte("two"))
	if id, p := tcp2.recv(5 * time.Second); id != 2 || string(p) != "two" {
		t.Fatalf("v2 TCP echo: %d %q", id, p)
	}
	// TCP, v2 LOCAL (a health check): the socket's own address.
	local := dialPacket(t, srv.Addr().String())
	if _, err := local.conn.Write(append(proxyproto.AppendV2(nil, proxyproto.Header{Version: 2, Local: true}, nil), packetFrame(3, nil)...)); err != nil {
		t.Fatal(err)
	}
	local.recv(5 * time.Second)
	// WebSocket: v2 and the handshake in one write; v1 alone, the handshake
	// after it.
	wsAddrs := []proxyproto.Header{{Version: 2, Source: netip.MustParseAddrPort("198.51.100.9:999"), Destination: dst}, v1}
	for i, ph := range wsAddrs {
		conn, err := net.DialTimeout("tcp", srv.WebSocketAddr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &rawWS{t: t, conn: conn, d: ws.NewClientDecoder(1 << 20)}
		key := ws.NewKey()
		req := ws.AppendRequest(nil, "herald", "/ws", key)
		var hdr []byte
		if ph.Version == 1 {
			hdr = proxyproto.AppendV1(nil, ph)
			c.write(hdr)
			time.Sleep(20 * time.Millisecond)
			c.write(req)
		} else {
			hdr = proxyproto.AppendV2(nil, ph, nil)
			c.write(append(hdr, req...))
		}
		for {
			n, err := ws.ParseAccept(c.in, key)
			if err != nil {
				t.Fatalf("websocket %d handshake: %v", i, err)
			}
			if n > 0 {
				c.in = c.in[n:]
				break
			}
			c.fill()
		}
		f := packetFrame(uint16(10+i), []byte("ws"))
		c.write(clientFrame(nil, ws.OpBinary, true, f))
		if m := c.next(); m.Op != ws.OpBinary || string(m.Payload) != string(f) {
			t.Fatalf("websocket %d echo: %v %q", i, m.Op, m.Payload)
		}
	}
	want := []string{"203.0.113.7:4242", "[2001:db8::1]:5555", local.conn.LocalAddr().String(), "198.51.100.9:999", "203.0.113.7:4242"}
	if got := h.opened(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("sessions opened with %v; want %v", got, want)
	}

	bad := []struct {
		name, addr string
		out        []byte
		timeout    bool
	}{
		{"missing (TCP)", srv.Addr().String(), packetFrame(1, []byte("no header")), false},
		{"missing (WebSocket)", srv.WebSocketAddr().String(), ws.AppendRequest(nil, "x", "/ws", ws.NewKey()), false},
		{"malformed v1", srv.Addr().String(), []byte("PROXY TCP4 banana 1.2.3.4 1 2\r\n"), false},
		{"malformed v2", srv.Addr().String(), append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0x00, 0x03, 1, 2, 3), false},
		{"never ends", srv.Addr().String(), []byte("PROXY TCP4 192.0.2.1"), true},
		{"silent (WebSocket)", srv.WebSocketAddr().String(), nil, true},
	}
	for _, b := range bad {
		conn, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.out) > 0 {
			if _, err := conn.Write(b.out); err != nil {
				t.Fatal(err)
			}
		}
		got, took := closedBy(t, conn)
		conn.Close()
		if len(got) > 0 {
			t.Errorf("%s: server answered %q before closing", b.name, got)
		}
		if b.timeout && took < 250*time.Millisecond {
			t.Errorf("%s: closed after %v, before the 300ms handshake timeout", b.name, took)
		}
	}
	if got := h.opened(); len(got) != len(want) {
		t.Errorf("bad headers opened sessions: %v", got[len(want):])
	}
	n := len(logLines(t, logs, func(l logLine) bool { return l.Message == "herald: closing connection: bad PROXY protocol header" }))
	timeouts := len(logLines(t, logs, func(l logLine) bool {
		return l.Message == "herald: closing session" && strings.Contains(l.Error, "handshake not completed")
	}))
	if n != 4 || timeouts != 2 {
		t.Errorf("logged %d bad headers and %d handshake timeouts; want 4 and 2", n, timeouts)
	}
	tcp.send(4, []byte("still here"))
	if id, p := tcp.recv(5 * time.Second); id != 4 || string(p) != "still here" {
		t.Fatalf("healthy session after the bad ones: %d %q", id, p)
	}
}

// TestProxyProtocolUntrusted: with the PROXY protocol on, a connection from
// an address outside the trusted proxies is refused on both listeners
// before a byte is read, counted and logged.
func TestProxyProtocolUntrusted(t *testing.T) {
	logs := &syncBuffer{}
	h := &addrSpy{}
	srv := startServer(t, h, handler.WithLogger(zerolog.New(logs)),
		handler.WithProxyProtocol([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{}))
	v1 := proxyproto.Header{Version: 1, Source: netip.MustParseAddrPort("203.0.113.7:1"), Destination: netip.MustParseAddrPort("127.0.0.1:2")}
	for _, addr := range []string{srv.Addr().String(), srv.WebSocketAddr().String()} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(append(proxyproto.AppendV1(nil, v1), packetFrame(1, nil)...))
		if got, _ := closedBy(t, conn); len(got) > 0 {
			t.Errorf("%s: untrusted peer got %q", addr, got)
		}
		conn.Close()
	}
	waitFor(t, 5*time.Second, "two refusals counted", func() bool { return srv.Stats().ProxyRefused == 2 })
	if got := h.opened(); len(got) != 0 {
		t.Errorf("untrusted peers opened sessions: %v", got)
	}
	if n := len(logLines(t, logs, func(l logLine) bool {
		return strings.HasPrefix(l.Message, "herald: refusing connection: not from a trusted proxy") && strings.HasPrefix(l.Remote, "127.0.0.1:")
	})); n != 2 {
		t.Errorf("%d refusals logged; want 2", n)
	}
}
