// Package handlertest runs a handler.Handler against in-memory connections,
// with no sockets and no sleeping: herald's EmbeddedChannel.
//
// A Kit is a real handler.Server (the same decoding, limits, Loops,
// conflation and slow-consumer policy as in production) whose gnet side is
// played by the kit: each Peer is an in-memory connection the test feeds
// bytes into and reads frames from, and the event loops are task queues the
// kit runs on the test's goroutine. Time is virtual: Advance moves the
// server's clock and runs its ticker, so idle and frame timeouts fire at
// once. Each Peer's socket can be made slow (SetReadRate: a reader that
// takes N bytes a second), short (SetPartialWrites: every write takes at
// most N bytes, the rest waits in gnet's outbound buffer) or full
// (SetReadRate(0)), and the peer can close or reset.
//
//	k := handlertest.New(t, myHandler{}, handler.WithCodec(codec.Packet(0)))
//	a, b := k.Connect(), k.Connect()
//	a.FeedFrame(codec.Frame{ID: 1, Body: []byte("hi")})
//	got := b.Frames() // what the handler sent b, decoded with the server's codec
//
// The kit never calls gnet.Run and opens no socket. Its methods, and the
// Peers', are for the test's goroutine; Sends and broadcasts made from
// other goroutines are queued on the loops and delivered at the kit's next
// call.
package handlertest

import (
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/internal/embedded"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// T is the part of testing.TB the kit uses; a *testing.T is one.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Epoch is the virtual time a Kit starts at.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// maxTasks bounds how many loop tasks one settle may run: a handler that
// keeps re-arming its loop forever fails the test instead of hanging it.
const maxTasks = 1_000_000

// Kit runs one handler.Server in memory. Make it with New; it is closed
// when the test ends.
type Kit struct {
	t     T
	srv   *handler.Server
	drv   embedded.Driver
	codec codec.Codec
	tick  time.Duration
	loops []*eventLoop

	peers     []*Peer
	now       time.Time
	sinceTick time.Duration // virtual time since the last tick
	closed    bool
}

// New returns a Kit running h with the given server options (WithCodec,
// WithLimits, WithIdleTimeout, WithLoops ...; WithAddr and WithMulticore do
// nothing here). It fails the test if an option is invalid, and closes the
// kit when the test ends: every open connection is closed as if the server
// stopped (OnDisconnected with handler.ErrClosedByServer).
func New(t T, h handler.Handler, opts ...handler.Option) *Kit {
	t.Helper()
	srv, err := handler.NewServer(h, opts...)
	if err != nil {
		t.Fatalf("handlertest: %v", err)
	}
	drv := embedded.Drive(srv)
	k := &Kit{t: t, srv: srv, drv: drv, codec: srv.Codec(), tick: drv.TickEvery(), now: Epoch}
	for i := range drv.Loops() {
		k.loops = append(k.loops, &eventLoop{k: k, idx: i})
	}
	drv.Boot(k.now.UnixNano())
	t.Cleanup(k.Close)
	return k
}

// Server returns the kit's server, for its Manager, Stats, Collector and
// Codec. Do not Start or Stop it: the kit runs it, and Close stops it.
func (k *Kit) Server() *handler.Server { return k.srv }

// Now returns the kit's virtual time.
func (k *Kit) Now() time.Time { return k.now }

// Connect opens a new connection, as gnet would on accept: the server makes
// its session and calls OnConnected. Connections are spread over the
// server's event loops (WithLoops) in turn. If the server refuses it
// (WithMaxConns) the Peer is closed at once.
func (k *Kit) Connect() *Peer {
	k.t.Helper()
	k.mustOpen()
	n := len(k.peers)
	p := newPeer(k, k.loops[n%len(k.loops)], n)
	k.peers = append(k.peers, p)
	p.c.open = true
	out, action := k.srv.OnOpen(p.c)
	if len(out) > 0 {
		_, _ = p.c.Write(out)
	}
	k.after(p.c, action)
	k.settle()
	return p
}

// Broadcast encodes f once with the server's codec and sends it to every
// session, as content code on another goroutine would.
func (k *Kit) Broadcast(f codec.Frame) {
	k.t.Helper()
	k.srv.Manager().Broadcast(k.Encode(f))
	k.settle()
}

// BroadcastGroup encodes f once and sends it to the members of the group
// called name.
func (k *Kit) BroadcastGroup(name string, f codec.Frame) {
	k.t.Helper()
	k.srv.Manager().Group(name).Broadcast(k.Encode(f))
	k.settle()
}

// Encode returns f encoded with the server's codec in a new SendBuffer
// holding one reference owned by the caller. It fails the test if f cannot
// be encoded.
func (k *Kit) Encode(f codec.Frame) *sendbuffer.Buffer {
	k.t.Helper()
	b, err := codec.NewBuffer(k.codec, f)
	if err != nil {
		k.t.Fatalf("handlertest: encode: %v", err)
	}
	return b
}

// Step lets every socket take what it can once (the bytes waiting in gnet's
// outbound buffers, within each peer's read rate and partial-write limit)
// and runs the loops' queued tasks, with no time passing. Advance steps
// once per tick.
func (k *Kit) Step() {
	k.t.Helper()
	for _, p := range k.peers {
		p.c.writable()
	}
	k.settle()
}

// Advance moves virtual time forward by d. The server's ticker runs at
// every tick (WithTick, 100 ms by default) that d reaches: first every
// socket takes what it can (Step), then the server's clock moves, the
// loops re-check the sessions that still owe bytes, and idle and frame
// timeouts fire. Read rates earn their bytes as time passes.
func (k *Kit) Advance(d time.Duration) {
	k.t.Helper()
	for d > 0 {
		dt := min(d, k.tick-k.sinceTick)
		d -= dt
		k.now = k.now.Add(dt)
		k.sinceTick += dt
		for _, p := range k.peers {
			p.c.earn(dt)
		}
		if k.sinceTick < k.tick {
			continue
		}
		k.sinceTick = 0
		k.Step()
		k.drv.Tick(k.now.UnixNano())
		k.settle()
	}
}

// Close closes every open connection as a stopping server does (gnet calls
// OnClose with no error, so OnDisconnected gets handler.ErrClosedByServer)
// and stops the server: it releases every SendBuffer the loops still hold.
// Tasks still queued are dropped, as gnet drops them at shutdown. New
// registers Close as a test cleanup; calling it twice does nothing.
func (k *Kit) Close() {
	if k.closed {
		return
	}
	k.settle()
	for _, p := range k.peers {
		p.c.close(nil)
	}
	k.closed = true
	for _, l := range k.loops {
		l.drop()
	}
	k.drv.Stopped()
}

func (k *Kit) mustOpen() {
	if k.closed {
		k.t.Helper()
		k.t.Fatalf("handlertest: the kit is closed")
	}
}

// settle runs the loops' queued tasks until none is left.
func (k *Kit) settle() {
	k.t.Helper()
	for ran := 0; ; {
		n := 0
		for _, l := range k.loops {
			n += l.run()
		}
		if n == 0 {
			return
		}
		if ran += n; ran > maxTasks {
			k.t.Fatalf("handlertest: the loops ran %d tasks and still have more: a task re-arms itself forever", ran)
		}
	}
}

// after applies the gnet.Action a server callback returned for c.
func (k *Kit) after(c *conn, a gnet.Action) {
	if a != gnet.None {
		c.close(nil)
	}
}
