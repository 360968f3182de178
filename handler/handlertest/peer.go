package handlertest

import (
	"io"
	"math"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
)

// Unlimited, given to SetReadRate or SetPartialWrites, lifts the limit.
const Unlimited = -1

// poison overwrites the bytes a read handed to the server once OnTraffic
// has returned, as gnet reuses its read buffer: a handler that kept a
// frame's slices past OnRecv reads 0xDE instead of the frame.
const poison = 0xDE

// Peer is the client end of one in-memory connection, and the socket in
// between: feed it bytes for the server to read, take the frames the
// server sent it, and make its socket slow, short or full.
type Peer struct {
	k *Kit
	c *conn
}

func newPeer(k *Kit, l *eventLoop, n int) *Peer {
	p := &Peer{k: k}
	p.c = &conn{
		k: k, loop: l,
		remote:  &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 20000 + n},
		local:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7001},
		rate:    Unlimited,
		partial: Unlimited,
	}
	return p
}

// Session returns the server's session for this connection, or nil if the
// server refused it.
func (p *Peer) Session() *sessionmgr.Session { return p.k.drv.Session(p.c) }

// Feed delivers b to the server as gnet would read it: in one read, or in
// reads of at most SplitReads bytes, each followed by OnTraffic, so frames
// may arrive split anywhere. Bytes fed after the connection closed are
// dropped, as a socket would drop them.
func (p *Peer) Feed(b []byte) {
	p.k.t.Helper()
	p.k.mustOpen()
	for len(b) > 0 && p.c.open {
		n := len(b)
		if p.c.split > 0 {
			n = min(n, p.c.split)
		}
		p.c.read(b[:n])
		b = b[n:]
		p.k.settle()
	}
}

// FeedFrame encodes f with the server's codec and feeds it.
func (p *Peer) FeedFrame(f codec.Frame) {
	p.k.t.Helper()
	out, err := p.k.codec.Encode(nil, f)
	if err != nil {
		p.k.t.Fatalf("handlertest: encode: %v", err)
	}
	p.Feed(out)
}

// SplitReads makes the server read what Feed delivers in pieces of at most
// n bytes (0: whole).
func (p *Peer) SplitReads(n int) { p.c.split = n }

// Frames takes the complete frames the peer has read so far, decoded with
// the server's codec, and leaves a partial frame for later. The frames are
// the caller's. It fails the test if the bytes do not decode.
func (p *Peer) Frames() []codec.Frame {
	p.k.t.Helper()
	p.k.settle()
	var out []codec.Frame
	for len(p.c.wire) > 0 {
		f, n, err := p.k.codec.Decode(p.c.wire)
		if err != nil {
			p.k.t.Fatalf("handlertest: the server sent bytes its codec cannot decode: %v", err)
		}
		if n == 0 {
			break
		}
		wire := slices.Clone(p.c.wire[:n])
		f, _, _ = p.k.codec.Decode(wire) // the same frame, aliasing the copy
		out = append(out, f)
		p.c.wire = p.c.wire[n:]
	}
	return out
}

// Received takes every byte the peer has read so far (what Frames has not
// taken).
func (p *Peer) Received() []byte {
	p.k.t.Helper()
	p.k.settle()
	b := p.c.wire
	p.c.wire = nil
	return b
}

// SetReadRate makes the peer read n bytes a second of virtual time: the
// socket takes no more than the peer has read, so what it refuses waits in
// gnet's outbound buffer, and herald's limits apply. The allowance builds
// up as Advance moves time, to at most one second's worth; it starts
// empty. 0 is a full socket, which takes nothing; Unlimited (the default)
// takes everything at once.
func (p *Peer) SetReadRate(n int) {
	p.c.rate = n
	p.c.credit, p.c.owed = 0, 0
}

// SetPartialWrites makes every write the server makes, and every time the
// socket drains gnet's outbound buffer (Step), take at most n bytes; the
// rest waits in gnet's outbound buffer. Unlimited lifts it.
func (p *Peer) SetPartialWrites(n int) { p.c.partial = n }

// FailWrites makes the server's next write fail as it does on a peer that
// has gone (EPIPE): gnet closes the connection inside the write.
func (p *Peer) FailWrites() { p.c.failWrites = true }

// BytesRead reports how many bytes the peer has read since it connected,
// taken by Frames and Received or not.
func (p *Peer) BytesRead() int { return p.c.nread }

// Outbound reports the bytes waiting in gnet's outbound buffer: written by
// the server, not yet taken by the socket.
func (p *Peer) Outbound() int { return len(p.c.out) }

// Closed reports whether the connection has closed, from either end.
func (p *Peer) Closed() bool { return !p.c.open }

// Close closes the connection from the peer's end: the server reads EOF.
func (p *Peer) Close() {
	p.k.t.Helper()
	p.c.close(os.NewSyscallError("read", io.EOF))
	p.k.settle()
}

// Reset resets the connection from the peer's end (ECONNRESET).
func (p *Peer) Reset() {
	p.k.t.Helper()
	p.c.close(os.NewSyscallError("read", syscall.ECONNRESET))
	p.k.settle()
}

// conn is the server's end: a gnet.Conn with an inbound buffer the peer
// fills, gnet's outbound buffer, and a socket model between them and the
// peer. Everything but Close, Wake and the Async writes runs on the test's
// goroutine, as gnet runs them on the connection's loop.
type conn struct {
	k      *Kit
	loop   *eventLoop
	remote net.Addr
	local  net.Addr

	ctx  any
	open bool

	in    []byte // read, not yet discarded by the server
	out   []byte // gnet's outbound buffer
	wire  []byte // taken by the socket: what the peer has read
	nread int    // bytes the socket has taken in all

	split      int
	rate       int   // bytes a second the socket takes, or Unlimited
	credit     int   // bytes it may take now under rate
	owed       int64 // rate * nanoseconds not yet a whole byte
	partial    int   // bytes one write takes at most, or Unlimited
	failWrites bool
}

var _ gnet.Conn = (*conn)(nil)

// read hands b to the server as one read and calls OnTraffic.
func (c *conn) read(b []byte) {
	buf := make([]byte, 0, len(c.in)+len(b))
	buf = append(append(buf, c.in...), b...)
	c.in = buf
	action := c.k.srv.OnTraffic(c)
	c.in = slices.Clone(c.in)
	full := buf[:cap(buf)]
	for i := range full {
		full[i] = poison
	}
	c.k.after(c, action)
}

// take returns how many of n bytes the socket takes now, and counts them.
func (c *conn) take(n int) int {
	if c.partial != Unlimited {
		n = min(n, c.partial)
	}
	if c.rate != Unlimited {
		n = min(n, c.credit)
		c.credit -= n
	}
	return max(n, 0)
}

// earn gives the socket what the peer reads in d.
func (c *conn) earn(d time.Duration) {
	if c.rate == Unlimited || c.rate == 0 {
		return
	}
	if int64(c.rate) > math.MaxInt64/int64(d)/2 { // a second's worth or more, whatever the remainder
		c.credit = c.rate
		return
	}
	c.owed += int64(c.rate) * int64(d)
	whole := c.owed / int64(time.Second)
	c.owed -= whole * int64(time.Second)
	c.credit = int(min(int64(c.credit)+whole, int64(c.rate)))
}

// writable drains gnet's outbound buffer into the socket as far as it
// takes, as gnet does on EPOLLOUT.
func (c *conn) writable() {
	if c.open {
		c.drain()
	}
}

// drain moves what the socket takes from the outbound buffer to the peer.
func (c *conn) drain() {
	n := c.take(len(c.out))
	c.nread += n
	c.wire = append(c.wire, c.out[:n]...)
	c.out = slices.Clone(c.out[n:])
}

// close closes the connection with gnet's err (nil: closed by the server)
// and calls OnClose; then gnet's outbound buffer goes to the socket as far
// as it takes, and the rest is lost. Idempotent, as gnet ignores a stale
// close.
func (c *conn) close(err error) {
	if !c.open {
		return
	}
	c.open = false
	c.k.srv.OnClose(c, err)
	c.drain()
	c.out, c.in = nil, nil
}

// write is gnet's write: behind bytes already in the outbound buffer, or
// to the socket as far as it takes, the rest into the outbound buffer. It
// returns the bytes given, or the error that closed the connection.
func (c *conn) write(bs [][]byte) (int, error) {
	if !c.open {
		return 0, os.NewSyscallError("write", syscall.EBADF)
	}
	if c.failWrites {
		c.failWrites = false
		err := os.NewSyscallError("write", syscall.EPIPE)
		c.close(err)
		return 0, err
	}
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	if len(c.out) > 0 {
		for _, b := range bs {
			c.out = append(c.out, b...)
		}
		return n, nil
	}
	sent := c.take(n)
	c.nread += sent
	for i, b := range bs {
		k := min(sent, len(b))
		c.wire = append(c.wire, b[:k]...)
		c.out = append(c.out, b[k:]...)
		sent -= k
		bs[i] = b[k:] // gnet moves the caller's slices past what it wrote
	}
	return n, nil
}

// Read reads from the inbound buffer.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.in) == 0 && len(p) > 0 {
		return 0, io.ErrShortBuffer
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// WriteTo writes the inbound buffer to w.
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c.in)
	c.in = c.in[n:]
	return int64(n), err
}

// Next returns the next n bytes (all of them for n <= 0) and discards them.
func (c *conn) Next(n int) ([]byte, error) {
	b, err := c.Peek(n)
	if err == nil {
		c.in = c.in[len(b):]
	}
	return b, err
}

// Peek returns the next n bytes (all of them for n <= 0) without
// discarding them; io.ErrShortBuffer if fewer are buffered.
func (c *conn) Peek(n int) ([]byte, error) {
	if n > len(c.in) {
		return nil, io.ErrShortBuffer
	}
	if n <= 0 {
		n = len(c.in)
	}
	return c.in[:n], nil
}

// Discard drops the next n bytes; n <= 0 drops everything, as in gnet.
func (c *conn) Discard(n int) (int, error) {
	if n <= 0 || n >= len(c.in) {
		n = len(c.in)
	}
	c.in = c.in[n:]
	return n, nil
}

// InboundBuffered reports the bytes read and not discarded.
func (c *conn) InboundBuffered() int { return len(c.in) }

// Write writes p (see write).
func (c *conn) Write(p []byte) (int, error) { return c.write([][]byte{p}) }

// Writev writes bs (see write); like gnet, it moves the slices of bs past
// what the socket took.
func (c *conn) Writev(bs [][]byte) (int, error) { return c.write(bs) }

// ReadFrom appends what r holds to the outbound buffer, as gnet does.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	b, err := io.ReadAll(r)
	c.out = append(c.out, b...)
	return int64(len(b)), err
}

// SendTo is for UDP only.
func (c *conn) SendTo([]byte, net.Addr) (int, error) { return 0, gerrors.ErrUnsupportedOp }

// Flush writes the outbound buffer as far as the socket takes.
func (c *conn) Flush() error {
	c.writable()
	return nil
}

// OutboundBuffered reports the bytes in gnet's outbound buffer.
func (c *conn) OutboundBuffered() int { return len(c.out) }

// AsyncWrite queues a write on the loop.
func (c *conn) AsyncWrite(b []byte, cb gnet.AsyncCallback) error {
	return c.async(func() error { _, err := c.Write(b); return err }, cb)
}

// AsyncWritev queues a writev on the loop.
func (c *conn) AsyncWritev(bs [][]byte, cb gnet.AsyncCallback) error {
	return c.async(func() error { _, err := c.Writev(bs); return err }, cb)
}

// Wake queues an OnTraffic call with nothing new read.
func (c *conn) Wake(cb gnet.AsyncCallback) error {
	return c.async(func() error {
		if c.open {
			c.k.after(c, c.k.srv.OnTraffic(c))
		}
		return nil
	}, cb)
}

// CloseWithCallback queues the close on the loop, then calls cb.
func (c *conn) CloseWithCallback(cb gnet.AsyncCallback) error {
	return c.async(func() error { c.close(nil); return nil }, cb)
}

// Close queues the close on the loop, as gnet does: OnClose runs at the
// loop's next turn.
func (c *conn) Close() error { return c.CloseWithCallback(nil) }

func (c *conn) async(fn func() error, cb gnet.AsyncCallback) error {
	if !c.loop.post(func() {
		err := fn()
		if cb != nil {
			_ = cb(c, err)
		}
	}) {
		return gerrors.ErrEngineInShutdown
	}
	return nil
}

// Context returns the value the server stored.
func (c *conn) Context() any { return c.ctx }

// SetContext stores the server's value.
func (c *conn) SetContext(v any) { c.ctx = v }

// EventLoop returns the connection's loop.
func (c *conn) EventLoop() gnet.EventLoop { return c.loop }

// LocalAddr returns the listener's address as it would be.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address: 127.0.0.1 and a port of its own.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Fd returns -1: there is no socket.
func (c *conn) Fd() int { return -1 }

// Dup fails: there is no socket.
func (c *conn) Dup() (int, error) { return -1, ErrNoSockets }

// SetReadBuffer does nothing.
func (c *conn) SetReadBuffer(int) error { return nil }

// SetWriteBuffer does nothing.
func (c *conn) SetWriteBuffer(int) error { return nil }

// SetLinger does nothing.
func (c *conn) SetLinger(int) error { return nil }

// SetKeepAlivePeriod does nothing.
func (c *conn) SetKeepAlivePeriod(time.Duration) error { return nil }

// SetKeepAlive does nothing.
func (c *conn) SetKeepAlive(bool, time.Duration, time.Duration, int) error { return nil }

// SetNoDelay does nothing.
func (c *conn) SetNoDelay(bool) error { return nil }

// SetDeadline is not supported, as in gnet.
func (c *conn) SetDeadline(time.Time) error { return gerrors.ErrUnsupportedOp }

// SetReadDeadline is not supported, as in gnet.
func (c *conn) SetReadDeadline(time.Time) error { return gerrors.ErrUnsupportedOp }

// SetWriteDeadline is not supported, as in gnet.
func (c *conn) SetWriteDeadline(time.Time) error { return gerrors.ErrUnsupportedOp }
