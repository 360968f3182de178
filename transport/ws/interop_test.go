package ws_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/transport/ws"
)

// The interop tests run gorilla/websocket, a widely used independent
// implementation, against this package over 127.0.0.1: gorilla's client
// against a test server built on ParseUpgrade and Decoder, and this
// package's client side against gorilla's server.

const interopMax = 1 << 20

var interopSizes = []int{0, 1, 125, 126, 127, 65535, 65536, 65537, 300000, interopMax}

// payload returns n deterministic bytes; for text, valid UTF-8 mixing 1-,
// 2-, 3- and 4-byte runes, so fragment boundaries fall inside runes.
func payload(n int, text bool) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	if !text {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	runes := []rune{'a', 'é', '€', '𝄞'}
	b := make([]byte, 0, n)
	for len(b) < n {
		c := runes[r.IntN(len(runes))]
		if len(b)+utf8.RuneLen(c) > n {
			c = 'z'
		}
		b = utf8.AppendRune(b, c)
	}
	return b
}

// echoServer is a test WebSocket server: a goroutine per connection reads
// the socket in reads of readSize bytes into a buffer and feeds it to
// ParseUpgrade and a Decoder as an event loop would. It echoes data
// messages, answers pings, reports pongs as a text message "pong:<payload>",
// sends a ping when it receives the text "ping me", and answers a close
// or a violation with a close frame.
type echoServer struct {
	ln       net.Listener
	readSize int
	deflate  bool // accept permessage-deflate and answer compressed
	wg       sync.WaitGroup
}

func startEchoServer(t *testing.T, readSize int, deflate bool) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, readSize: readSize, deflate: deflate}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if err := s.serve(c); err != nil {
					t.Logf("server: %v", err)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) url() string { return "ws://" + s.ln.Addr().String() + "/ws" }

func (s *echoServer) serve(c net.Conn) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cfg := &ws.Config{Path: "/ws", Deflate: s.deflate}
	var buf, out []byte
	rd := make([]byte, s.readSize)
	var d *ws.Decoder
	appendData := ws.AppendFrame
	for {
		k, err := c.Read(rd)
		if err != nil {
			return nil // the client went away
		}
		buf = append(buf, rd[:k]...)
		if d == nil {
			u, n, err := ws.ParseUpgrade(buf, cfg)
			if err != nil {
				c.Write(ws.AppendReject(nil, err))
				return err
			}
			if n == 0 {
				continue
			}
			if _, err := c.Write(ws.AppendAccept(nil, u)); err != nil {
				return err
			}
			buf = append(buf[:0], buf[n:]...)
			d = ws.NewDecoder(interopMax)
			if u.Deflate {
				d.AcceptDeflate()
				appendData = ws.AppendDeflatedFrame
			}
		}
		consumed, closing := 0, false
		out = out[:0]
		for !closing {
			m, n, err := d.Next(buf[consumed:])
			if err != nil {
				var ce *ws.CloseError
				errors.As(err, &ce)
				c.Write(ce.AppendFrame(out))
				return nil
			}
			consumed += n
			if m.Op == 0 {
				break // the rest is not a whole message yet
			}
			switch m.Op {
			case ws.OpText, ws.OpBinary:
				if m.Op == ws.OpText && string(m.Payload) == "ping me" {
					out = ws.AppendFrame(out, ws.OpPing, []byte("from server"))
				} else {
					out = appendData(out, m.Op, m.Payload)
				}
			case ws.OpPing:
				out = ws.AppendFrame(out, ws.OpPong, m.Payload)
			case ws.OpPong:
				out = ws.AppendFrame(out, ws.OpText, append([]byte("pong:"), m.Payload...))
			case ws.OpClose:
				out = ws.AppendClose(out, ws.CloseNormal, "")
				closing = true
			}
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
		if closing {
			return nil
		}
		if consumed > 0 {
			buf = append(buf[:0], buf[consumed:]...)
		}
	}
}

func dialGorilla(t *testing.T, url string, writeBuf int, compress bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{WriteBufferSize: writeBuf, HandshakeTimeout: 5 * time.Second, EnableCompression: compress}
	conn, resp, err := d.Dial(url, http.Header{"Origin": {"http://127.0.0.1"}})
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); (ext != "") != compress {
		t.Fatalf("compression %v, negotiated %q", compress, ext)
	}
	conn.EnableWriteCompression(compress)
	t.Cleanup(func() { conn.Close() })
	conn.SetReadLimit(2 * interopMax) // gorilla counts compressed bytes, which can exceed the message's
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// echoSizes sends a binary and a text message of each size on conn and
// checks each comes back intact, of the same kind.
func echoSizes(t *testing.T, conn *websocket.Conn, sizes []int) {
	t.Helper()
	for _, size := range sizes {
		for _, kind := range []int{websocket.BinaryMessage, websocket.TextMessage} {
			want := payload(size, kind == websocket.TextMessage)
			if err := conn.WriteMessage(kind, want); err != nil {
				t.Fatal(err)
			}
			gotKind, got, err := conn.ReadMessage()
			if err != nil || gotKind != kind || !bytes.Equal(got, want) {
				t.Fatalf("%d-byte message (kind %d): echoed kind %d, %d bytes, equal %v, %v",
					size, kind, gotKind, len(got), bytes.Equal(got, want), err)
			}
		}
	}
}

func TestInteropGorillaClient(t *testing.T) {
	for _, tc := range []struct {
		name     string
		writeBuf int  // gorilla fragments messages longer than its write buffer
		readSize int  // the server reads the socket this many bytes at a time
		deflate  bool // permessage-deflate both ways
	}{
		{name: "unfragmented", writeBuf: interopMax + 64, readSize: 64 << 10},
		{name: "fragmented every 512 bytes", writeBuf: 512, readSize: 4096},
		{name: "unfragmented, 7-byte reads", writeBuf: interopMax + 64, readSize: 7},
		{name: "compressed, fragmented every 512 bytes", writeBuf: 512, readSize: 4096, deflate: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startEchoServer(t, tc.readSize, tc.deflate)
			conn := dialGorilla(t, s.url(), tc.writeBuf, tc.deflate)
			sizes := interopSizes
			if tc.readSize < 100 {
				sizes = sizes[:8] // byte-trickle reads are for the sizes up to 65537
			}
			echoSizes(t, conn, sizes)
			// A ping from the client, between the fragments of a message
			// when gorilla fragments it.
			w, err := conn.NextWriter(websocket.BinaryMessage)
			if err != nil {
				t.Fatal(err)
			}
			big := payload(2000, false)
			w.Write(big[:1000])
			if err := conn.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			w.Write(big[1000:])
			w.Close()
			pong := make(chan string, 1)
			conn.SetPongHandler(func(p string) error { pong <- p; return nil })
			if _, got, err := conn.ReadMessage(); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("message around a ping: %d bytes, %v", len(got), err)
			}
			if p := <-pong; p != "hi" {
				t.Fatalf("pong %q, want hi", p)
			}
			// A ping from the server: gorilla answers it with a pong.
			if err := conn.WriteMessage(websocket.TextMessage, []byte("ping me")); err != nil {
				t.Fatal(err)
			}
			if _, got, err := conn.ReadMessage(); err != nil || string(got) != "pong:from server" {
				t.Fatalf("after the server's ping: %q, %v", got, err)
			}
			// The close handshake.
			if err := conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, 1000) {
				t.Fatalf("after the close: %v, want close 1000", err)
			}
		})
	}
}

func TestInteropCloseCodes(t *testing.T) {
	s := startEchoServer(t, 4096, false)
	for _, tc := range []struct {
		name string
		send func(*websocket.Conn) error
		code int
	}{
		{"invalid utf-8", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte("a\xffb")) }, 1007},
		{"too large", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.BinaryMessage, make([]byte, interopMax+1))
		}, 1009},
		{"bad close code", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(999, ""))
		}, 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialGorilla(t, s.url(), 4096, false)
			if err := tc.send(conn); err != nil {
				t.Fatal(err)
			}
			if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, tc.code) {
				t.Fatalf("got %v, want close %d", err, tc.code)
			}
		})
	}
	// A bad handshake gets an HTTP refusal that gorilla reports.
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	_, resp, err := d.Dial(strings.Replace(s.url(), "/ws", "/nope", 1), nil)
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("dial to a wrong path: %v, %v", resp, err)
	}
}

// TestInteropGorillaServer runs this package's client side (as loadgen
// uses it) against gorilla's server, which fragments messages longer than
// its 512-byte write buffer.
func TestInteropGorillaServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{WriteBufferSize: 512}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(interopMax + 1)
		for {
			kind, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, p); err != nil {
				return
			}
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	key := ws.NewKey()
	if _, err := c.Write(ws.AppendRequest(nil, ln.Addr().String(), "/", key)); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	rd := make([]byte, 4096)
	read := func() {
		k, err := c.Read(rd)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(buf, rd[:k]...)
	}
	for {
		read()
		n, err := ws.ParseAccept(buf, key)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			buf = buf[n:]
			break
		}
	}
	d := ws.NewClientDecoder(interopMax)
	for i, size := range interopSizes {
		op := ws.OpBinary
		if i%2 == 1 {
			op = ws.OpText
		}
		want := payload(size, op == ws.OpText)
		if _, err := c.Write(ws.AppendClientFrame(nil, op, true, want, [4]byte{byte(i), 1, 2, 3})); err != nil {
			t.Fatal(err)
		}
		for {
			m, n, err := d.Next(buf)
			if err != nil {
				t.Fatal(err)
			}
			if m.Op == 0 {
				buf = buf[n:]
				read()
				continue
			}
			if m.Op != op || !bytes.Equal(m.Payload, want) {
				t.Fatalf("%d bytes: got op %d, %d bytes", size, m.Op, len(m.Payload))
			}
			buf = buf[n:]
			break
		}
	}
	if _, err := c.Write(ws.AppendClientFrame(nil, ws.OpClose, true, []byte("\x03\xe8"), [4]byte{9, 9, 9, 9})); err != nil {
		t.Fatal(err)
	}
	for {
		m, n, err := d.Next(buf)
		if err != nil {
			t.Fatal(err)
		}
		buf = buf[n:]
		if m.Op == ws.OpClose {
			if m.Code != 1000 {
				t.Fatalf("close code %d", m.Code)
			}
			return
		}
		if m.Op != 0 {
			t.Fatalf("unexpected op %d", m.Op)
		}
		read()
	}
}
