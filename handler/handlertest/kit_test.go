package handlertest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
)

// frame is a packet frame with id and a body of n bytes of b.
func frame(id uint16, n int, b byte) codec.Frame {
	return codec.Frame{ID: id, Body: bytes.Repeat([]byte{b}, n)}
}

func encode(t *testing.T, fs ...codec.Frame) []byte {
	t.Helper()
	var out []byte
	for _, f := range fs {
		var err error
		if out, err = codec.Packet(0).Encode(out, f); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func ids(fs []codec.Frame) []uint16 {
	out := make([]uint16, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// reasons wraps a Handler and records why sessions closed, by session id.
type reasons struct {
	handler.Handler
	got map[uint64]error
}

func spy(h handler.Handler) *reasons { return &reasons{Handler: h, got: map[uint64]error{}} }

func (r *reasons) OnDisconnected(s *sessionmgr.Session, err error) {
	r.got[s.ID()] = err
	r.Handler.OnDisconnected(s, err)
}

// TestFeedSplitAnywhere: an echo handler gets the same frames back whatever
// the sizes of the reads they arrive in, partial frames included.
func TestFeedSplitAnywhere(t *testing.T) {
	in := encode(t, frame(1, 0, 0), frame(2, 7, 'a'), frame(3, 300, 'b'))
	for split := 1; split <= len(in); split++ {
		k := handlertest.New(t, demo.Echo{})
		p := k.Connect()
		p.SplitReads(split)
		p.Feed(in)
		got := p.Frames()
		if !slices.Equal(ids(got), []uint16{1, 2, 3}) || len(got[2].Body) != 300 || got[2].Body[299] != 'b' {
			t.Fatalf("reads of %d bytes: got frames %v", split, ids(got))
		}
		k.Close()
	}
}

// grouped joins every session to "even" or "odd" by its id.
type grouped struct{ handler.Base }

func (grouped) OnConnected(s *sessionmgr.Session) {
	name := "odd"
	if s.ID()%2 == 0 {
		name = "even"
	}
	s.Manager().Group(name).Join(s)
}

// TestBroadcastAcrossLoopsAndGroups: with sessions on three loops, a
// broadcast from a handler reaches every one, and a group broadcast only
// its members.
func TestBroadcastAcrossLoopsAndGroups(t *testing.T) {
	k := handlertest.New(t, demo.Broadcast{}, handler.WithLoops(3))
	var ps []*handlertest.Peer
	for range 6 {
		ps = append(ps, k.Connect())
	}
	ps[4].FeedFrame(frame(9, 3, 'x'))
	for i, p := range ps {
		if got := p.Frames(); !slices.Equal(ids(got), []uint16{9}) {
			t.Errorf("peer %d got %v; want [9]", i, ids(got))
		}
	}

	g := handlertest.New(t, grouped{}, handler.WithLoops(3))
	ps = ps[:0]
	for range 6 {
		ps = append(ps, g.Connect())
	}
	g.BroadcastGroup("even", frame(2, 1, 'e'))
	g.Broadcast(frame(1, 1, 'a'))
	for _, p := range ps {
		want := []uint16{1}
		if p.Session().ID()%2 == 0 {
			want = []uint16{2, 1}
		}
		if got := p.Frames(); !slices.Equal(ids(got), want) {
			t.Errorf("session %d got %v; want %v", p.Session().ID(), ids(got), want)
		}
	}
}

// TestSlowReader: a peer that reads 1,040 bytes a second gets ten 104-byte
// frames a second of virtual time, and its fast neighbour everything at
// once; with limits it cannot meet, it is cut as a slow consumer alone.
func TestSlowReader(t *testing.T) {
	k := handlertest.New(t, demo.Broadcast{})
	fast, slow := k.Connect(), k.Connect()
	slow.SetReadRate(1040)
	for i := range 100 {
		fast.FeedFrame(frame(uint16(i), 100, 'p'))
	}
	if got := len(fast.Frames()); got != 100 {
		t.Fatalf("fast peer got %d frames; want 100", got)
	}
	if got := len(slow.Frames()); got != 0 {
		t.Fatalf("slow peer got %d frames before any time passed; want 0", got)
	}
	k.Advance(5 * time.Second)
	if got := len(slow.Frames()); got != 50 {
		t.Fatalf("slow peer got %d frames in 5 s at 10 frames/s; want 50", got)
	}
	k.Advance(5 * time.Second)
	if got := slow.Frames(); len(got) != 50 || got[49].ID != 99 {
		t.Fatalf("slow peer got %d more frames, last %v; want 50 ending with 99", len(got), ids(got))
	}

	// The same reader under a 16 KiB limit: it is cut, the fast peer is not.
	r := spy(demo.Broadcast{})
	limits := sessionmgr.Limits{LowWatermark: 1 << 10, HighWatermark: 4 << 10, MaxPending: 16 << 10, Policy: sessionmgr.Disconnect}
	k = handlertest.New(t, r, handler.WithLimits(limits))
	fast, slow = k.Connect(), k.Connect()
	slow.SetReadRate(1040)
	for i := range 200 {
		fast.FeedFrame(frame(uint16(i), 100, 'p'))
	}
	if got := len(fast.Frames()); got != 200 || fast.Closed() {
		t.Fatalf("fast peer got %d frames (closed %v); want 200, open", got, fast.Closed())
	}
	if !slow.Closed() || !errors.Is(r.got[slow.Session().ID()], sessionmgr.ErrSlowConsumer) {
		t.Fatalf("slow peer closed %v with %v; want closed with ErrSlowConsumer", slow.Closed(), r.got[slow.Session().ID()])
	}
}

// TestPartialWrites: a socket that takes 10 bytes a write leaves the rest
// of a reply in gnet's outbound buffer; past the high watermark herald
// holds the next replies itself, and everything arrives, in order, as the
// socket drains.
func TestPartialWrites(t *testing.T) {
	limits := sessionmgr.Limits{LowWatermark: 20, HighWatermark: 50, MaxPending: 1 << 20, Policy: sessionmgr.Disconnect}
	k := handlertest.New(t, demo.Echo{}, handler.WithLimits(limits), handler.WithCodec(codec.Packet(0)))
	p := k.Connect()
	p.SetPartialWrites(10)
	p.FeedFrame(frame(1, 100, 'a')) // 104 bytes
	if got, out := p.BytesRead(), p.Outbound(); got != 10 || out != 94 {
		t.Fatalf("after one write: peer has %d bytes, outbound %d; want 10 and 94", got, out)
	}
	if p.Session().Writable() {
		t.Fatal("94 bytes outbound, over the 50-byte high watermark, and still writable")
	}
	p.FeedFrame(frame(2, 5, 'b'))
	p.FeedFrame(frame(3, 5, 'c'))
	if out := p.Outbound(); out != 94 {
		t.Fatalf("outbound %d after two replies to an unwritable session; want 94 (herald holds them)", out)
	}
	var got []codec.Frame
	for i := 0; i < 100 && len(got) < 3; i++ {
		k.Advance(100 * time.Millisecond) // a tick: the socket takes 10 bytes, the loop re-checks
		got = append(got, p.Frames()...)
	}
	if !slices.Equal(ids(got), []uint16{1, 2, 3}) || string(got[2].Body) != "ccccc" {
		t.Fatalf("got %v; want [1 2 3] intact", ids(got))
	}
	if !p.Session().Writable() {
		t.Error("drained, and still unwritable")
	}
}

// TestTimeouts: idle and frame timeouts fire on virtual time, never early.
func TestTimeouts(t *testing.T) {
	r := spy(handler.Base{})
	k := handlertest.New(t, r, handler.WithIdleTimeout(time.Second), handler.WithFrameTimeout(300*time.Millisecond))
	idle, partial, busy := k.Connect(), k.Connect(), k.Connect()
	partial.Feed([]byte{10, 0, 1}) // 3 bytes of a 10-byte frame
	for range 10 {
		k.Advance(100 * time.Millisecond)
		busy.FeedFrame(frame(1, 1, 'k'))
	}
	if idle.Closed() {
		t.Fatal("idle peer closed after exactly the idle timeout; want not before")
	}
	k.Advance(300 * time.Millisecond)
	if !idle.Closed() || !errors.Is(r.got[idle.Session().ID()], handler.ErrIdle) {
		t.Errorf("idle peer: closed %v with %v; want ErrIdle", idle.Closed(), r.got[idle.Session().ID()])
	}
	if !partial.Closed() || !errors.Is(r.got[partial.Session().ID()], handler.ErrFrameTimeout) {
		t.Errorf("partial peer: closed %v with %v; want ErrFrameTimeout", partial.Closed(), r.got[partial.Session().ID()])
	}
	if busy.Closed() {
		t.Errorf("busy peer closed with %v", r.got[busy.Session().ID()])
	}
}

// TestPeerEnds: a peer's close, reset and a failed write reach
// OnDisconnected as gnet reports them.
func TestPeerEnds(t *testing.T) {
	r := spy(demo.Echo{})
	k := handlertest.New(t, r)
	eof, reset, gone := k.Connect(), k.Connect(), k.Connect()
	eof.Close()
	reset.Reset()
	gone.FailWrites()
	gone.FeedFrame(frame(1, 1, 'x')) // the echo's write fails
	for _, tt := range []struct {
		p    *handlertest.Peer
		want error
	}{{eof, io.EOF}, {reset, syscall.ECONNRESET}, {gone, syscall.EPIPE}} {
		if got := r.got[tt.p.Session().ID()]; !tt.p.Closed() || !errors.Is(got, tt.want) {
			t.Errorf("closed %v with %v; want %v", tt.p.Closed(), got, tt.want)
		}
	}
}

// keeper keeps a received frame's body past OnRecv, which the frame's
// contract forbids.
type keeper struct {
	handler.Base
	kept []byte
}

func (h *keeper) OnRecv(_ *sessionmgr.Session, f codec.Frame) { h.kept = f.Body }

// TestRetainedFramePoisoned: the kit overwrites a read's bytes once
// OnTraffic returns, as gnet reuses its buffer, so a handler that keeps a
// frame's slices sees garbage in a test rather than in production.
func TestRetainedFramePoisoned(t *testing.T) {
	h := &keeper{}
	k := handlertest.New(t, h)
	k.Connect().FeedFrame(codec.Frame{ID: 1, Body: []byte("secret")})
	if string(h.kept) == "secret" || !bytes.Equal(h.kept, bytes.Repeat([]byte{0xDE}, 6)) {
		t.Fatalf("kept body reads %q after OnRecv; want poison", h.kept)
	}
}

// TestNoSocket: a kit opens no socket and never runs gnet; the server it
// drives has no listener and refuses to Start.
func TestNoSocket(t *testing.T) {
	before := sockets(t)
	k := handlertest.New(t, demo.Broadcast{}, handler.WithLoops(2))
	for range 4 {
		k.Connect().FeedFrame(frame(1, 10, 'z'))
	}
	k.Advance(time.Second)
	if got := sockets(t); got != before {
		t.Errorf("%d sockets open during the test; %d before", got, before)
	}
	if a := k.Server().Addr(); a != nil {
		t.Errorf("the server listens on %v", a)
	}
	if err := k.Server().Start(); !errors.Is(err, handler.ErrServerStarted) {
		t.Errorf("Start = %v; want ErrServerStarted (gnet never runs)", err)
	}
}

// sockets counts the process's open socket descriptors.
func sockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("cannot list open descriptors: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
