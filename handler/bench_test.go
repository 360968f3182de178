package handler

import (
	"context"
	"net"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/panjf2000/gnet/v2"
)

// benchConn is the part of a gnet.Conn that OnOpen and OnTraffic use, over
// an inbound slice refilled per op; writes are counted, not kept. It plays
// one gnet read: in is what gnet's read buffer holds when OnTraffic runs.
type benchConn struct {
	gnet.Conn // nil: a method the server does not use would panic
	in        []byte
	ctx       any
	loop      benchLoop
	writes    int
}

func (c *benchConn) Context() any              { return c.ctx }
func (c *benchConn) SetContext(ctx any)        { c.ctx = ctx }
func (c *benchConn) EventLoop() gnet.EventLoop { return c.loop }
func (c *benchConn) OutboundBuffered() int     { return 0 }
func (c *benchConn) RemoteAddr() net.Addr      { return nil }
func (c *benchConn) Write(p []byte) (int, error) {
	c.writes++
	return len(p), nil
}

func (c *benchConn) Peek(int) ([]byte, error) { return c.in, nil }

func (c *benchConn) Next(int) ([]byte, error) {
	b := c.in
	c.in = nil
	return b, nil
}

func (c *benchConn) Discard(n int) (int, error) {
	c.in = c.in[n:]
	return n, nil
}

// benchLoop is a gnet.EventLoop whose Execute runs nothing: an echo arms
// no flush task, and the benchmark fails if one is armed.
type benchLoop struct{ gnet.EventLoop }

func (benchLoop) Execute(context.Context, gnet.Runnable) error { panic("flush task armed") }

type echoHandler struct{ Base }

func (echoHandler) OnRecv(s *sessionmgr.Session, f codec.Frame) { _ = s.Reply(f.Wire) }

// BenchmarkOnTraffic is one echoed 64-byte message on the event loop,
// without the socket: "gnet" is gnet's echo (Next, Write), "herald" is
// Server.OnTraffic with the raw codec and a handler that Replies. The
// difference is what herald adds to every message on the loop's critical
// path, where ping-pong throughput is most sensitive to it.
func BenchmarkOnTraffic(b *testing.B) {
	msg := make([]byte, 64)
	b.Run("gnet", func(b *testing.B) {
		c := &benchConn{}
		for b.Loop() {
			c.in = msg
			buf, _ := c.Next(-1)
			_, _ = c.Write(buf)
		}
		if c.writes != b.N {
			b.Fatalf("%d writes for %d messages", c.writes, b.N)
		}
	})
	b.Run("herald", func(b *testing.B) {
		srv, err := NewServer(echoHandler{}, WithCodec(codec.Raw()))
		if err != nil {
			b.Fatal(err)
		}
		c := &benchConn{}
		if _, act := srv.OnOpen(c); act != gnet.None {
			b.Fatal("OnOpen refused the connection")
		}
		b.ReportAllocs()
		for b.Loop() {
			c.in = msg
			srv.OnTraffic(c)
		}
		if c.writes != b.N {
			b.Fatalf("%d writes for %d messages", c.writes, b.N)
		}
	})
}
