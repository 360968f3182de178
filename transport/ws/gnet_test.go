package ws_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/panjf2000/gnet/v2"
)

// gnetEcho is the integration the package doc describes, on real gnet
// v2.9.7: one engine, two listeners (gnet.Rotate), the WebSocket one told
// apart in OnOpen by the local port; per connection a handshake phase and
// then a Decoder, fed from Peek(-1) and Discarding once per OnTraffic. The
// TCP listener echoes raw bytes; the WebSocket one echoes messages.
type gnetEcho struct {
	gnet.BuiltinEventEngine
	wsPort int
	booted chan gnet.Engine
}

type gnetConn struct {
	ws bool
	d  *ws.Decoder // nil until the handshake is done
}

func (s *gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	s.booted <- eng
	return gnet.None
}

func (s *gnetEcho) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&gnetConn{ws: c.LocalAddr().(*net.TCPAddr).Port == s.wsPort})
	return nil, gnet.None
}

func (s *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	st := c.Context().(*gnetConn)
	in, _ := c.Peek(-1)
	if !st.ws {
		c.Write(in)
		c.Discard(len(in))
		return gnet.None
	}
	var out []byte
	used := 0
	if st.d == nil {
		u, n, err := ws.ParseUpgrade(in, &ws.Config{Path: "/ws"})
		if err != nil {
			c.Write(ws.AppendReject(nil, err))
			return gnet.Close
		}
		if n == 0 {
			return gnet.None // the handshake timeout would be armed in OnOpen
		}
		out, used = ws.AppendAccept(nil, u), n
		st.d = ws.NewDecoder(interopMax)
	}
	action := gnet.None
	for action == gnet.None {
		m, n, err := st.d.Next(in[used:])
		if err != nil {
			var ce *ws.CloseError
			errors.As(err, &ce)
			out = ce.AppendFrame(out)
			action = gnet.Close
			break
		}
		used += n
		switch m.Op {
		case 0:
			c.Write(out)
			if used > 0 { // gnet's Discard(0) discards everything buffered
				c.Discard(used) // the payloads in out were copied; in is done with
			}
			return gnet.None
		case ws.OpText, ws.OpBinary:
			out = ws.AppendFrame(out, m.Op, m.Payload)
		case ws.OpPing:
			out = ws.AppendFrame(out, ws.OpPong, m.Payload)
		case ws.OpClose:
			out = ws.AppendClose(out, ws.CloseNormal, "")
			action = gnet.Close
		}
	}
	c.Write(out)
	return action
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestGnetIntegration(t *testing.T) {
	tcpPort, wsPort := freePort(t), freePort(t)
	s := &gnetEcho{wsPort: wsPort, booted: make(chan gnet.Engine, 1)}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Rotate(s, []string{"tcp://127.0.0.1:" + strconv.Itoa(tcpPort), "tcp://127.0.0.1:" + strconv.Itoa(wsPort)},
			gnet.WithMulticore(false), gnet.WithLogLevel(5))
	}()
	var eng gnet.Engine
	select {
	case eng = <-s.booted:
	case err := <-done:
		t.Fatalf("gnet: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gnet did not boot")
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Stop(ctx)
		if err := <-done; err != nil {
			t.Errorf("gnet: %v", err)
		}
	}()

	// The TCP listener, same engine: raw echo.
	tc, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(tcpPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	tc.Write([]byte("raw tcp"))
	got := make([]byte, 7)
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "raw tcp" {
		t.Fatalf("tcp echo %q, %v", got, err)
	}

	// The WebSocket listener, with gorilla fragmenting and not.
	for _, writeBuf := range []int{512, interopMax + 64} {
		t.Run("write buffer "+strconv.Itoa(writeBuf), func(t *testing.T) {
			conn := dialGorilla(t, "ws://127.0.0.1:"+strconv.Itoa(wsPort)+"/ws", writeBuf, false)
			echoSizes(t, conn, interopSizes)
			if err := conn.WriteMessage(websocket.TextMessage, []byte("\xff")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, int(ws.CloseInvalidPayload)) {
				t.Fatalf("invalid text: %v, want close 1007", err)
			}
		})
	}

	// Hostile peers close only themselves: a header that never ends, and an
	// unmasked frame after a good handshake; a good client keeps echoing.
	t.Run("hostile peers", func(t *testing.T) {
		good := dialGorilla(t, "ws://127.0.0.1:"+strconv.Itoa(wsPort)+"/ws", 4096, false)
		raw := func() net.Conn {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(wsPort), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(10 * time.Second))
			return c
		}
		endless := raw()
		endless.Write([]byte("GET /ws HTTP/1.1\r\nX: "))
		for range ws.DefaultMaxHeaderBytes / 1024 {
			endless.Write(bytes.Repeat([]byte("a"), 1024))
		}
		if resp, _ := io.ReadAll(endless); !bytes.HasPrefix(resp, []byte("HTTP/1.1 431 ")) {
			t.Fatalf("endless header: got %q, want a 431 and the connection closed", resp)
		}
		unmasked := raw()
		key := ws.NewKey()
		unmasked.Write(ws.AppendRequest(nil, "127.0.0.1", "/ws", key))
		unmasked.Write(ws.AppendFrame(nil, ws.OpBinary, []byte("not masked")))
		resp, _ := io.ReadAll(unmasked)
		n, err := ws.ParseAccept(resp, key)
		if err != nil || n == 0 {
			t.Fatalf("handshake response %q: %v", resp, err)
		}
		msgs, _, err := decodeAll(t, ws.NewClientDecoder(0), resp[n:])
		if err != nil || len(msgs) != 1 || msgs[0].op != ws.OpClose || msgs[0].code != ws.CloseProtocolError {
			t.Fatalf("after an unmasked frame: %+v, %v; want a 1002 close", msgs, err)
		}
		echoSizes(t, good, []int{10, 70000})
	})
}
