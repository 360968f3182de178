package tests

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/loadgen"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

// Backpressure (DESIGN.md): a peer that stops reading costs the server at
// most its pending-bytes limit and costs the other peers nothing. Past the
// limit it is disconnected (ErrSlowConsumer) or its new frames are dropped;
// between the watermarks herald holds its frames and keeps only the newest
// of each conflation key.

// privateID marks a frame that spy sends back to its sender only, so that
// test clients can talk to the server next to a loadgen run without loadgen
// seeing frames it does not know.
const privateID = 9

// spy is the broadcast server of cmd/broadcast with a record: every frame
// goes to every session (privateID frames only back to their sender), and it
// remembers every session by remote address and when and why each closed.
type spy struct {
	handler.Base
	// perSession makes a broadcast one Send per recipient, counting the
	// Sends herald accepted (accepted); otherwise it is one
	// Manager.Broadcast, as cmd/broadcast does.
	perSession bool

	accepted atomic.Int64 // frames herald took for a session (Send returned nil)
	written  atomic.Int64 // frames handed to the socket, summed over closed sessions

	mu       sync.Mutex
	sessions map[string]*sessionmgr.Session // by remote address, kept after close
	opened   map[uint64]bool                // ids OnConnected saw
	closed   map[uint64]closeEvent
}

type closeEvent struct {
	reason error
	at     time.Time
}

func newSpy() *spy {
	return &spy{sessions: map[string]*sessionmgr.Session{}, opened: map[uint64]bool{}, closed: map[uint64]closeEvent{}}
}

func (h *spy) OnConnected(s *sessionmgr.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions[s.RemoteAddr().String()] = s
	h.opened[s.ID()] = true
}

func (h *spy) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	b := sendbuffer.Copy(f.Wire)
	switch {
	case f.ID == privateID:
		h.send(s, b)
	case h.perSession:
		for _, to := range s.Manager().Sessions() {
			b.Retain()
			h.send(to, b)
		}
		b.Release()
	default:
		s.Manager().Broadcast(b)
	}
}

func (h *spy) send(s *sessionmgr.Session, b *sendbuffer.Buffer) {
	if s.Send(b) == nil {
		h.accepted.Add(1)
	}
}

func (h *spy) OnDisconnected(s *sessionmgr.Session, reason error) {
	frames, _ := s.Stats() // final: a closed session is written no more
	h.written.Add(int64(frames))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed[s.ID()] = closeEvent{reason: reason, at: time.Now()}
}

// session returns the session of the client whose local address is local.
func (h *spy) session(t *testing.T, local net.Addr) *sessionmgr.Session {
	t.Helper()
	var s *sessionmgr.Session
	waitFor(t, 5*time.Second, "session of "+local.String(), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		s = h.sessions[local.String()]
		return s != nil
	})
	return s
}

func (h *spy) closeOf(id uint64) (closeEvent, bool) {
	return lockedLookup(&h.mu, &h.closed, id)
}

func (h *spy) allSessions() []*sessionmgr.Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*sessionmgr.Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, s)
	}
	return out
}

// forget drops the spy's records, so that a heap measurement does not count
// the sessions it keeps.
func (h *spy) forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions, h.opened, h.closed = map[string]*sessionmgr.Session{}, map[uint64]bool{}, map[uint64]closeEvent{}
}

func (h *spy) closedSnapshot() map[uint64]closeEvent {
	return lockedCopy(&h.mu, &h.closed)
}

func (h *spy) openedSnapshot() map[uint64]bool {
	return lockedCopy(&h.mu, &h.opened)
}

// writabilitySpy is a spy that also records every writability change
// (handler.WritabilityHandler), per session.
type writabilitySpy struct {
	*spy

	wmu     sync.Mutex
	changes map[uint64][]bool
}

var _ handler.WritabilityHandler = (*writabilitySpy)(nil)

func newWritabilitySpy() *writabilitySpy {
	return &writabilitySpy{spy: newSpy(), changes: map[uint64][]bool{}}
}

func (h *writabilitySpy) OnWritabilityChanged(s *sessionmgr.Session, writable bool) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.changes[s.ID()] = append(h.changes[s.ID()], writable)
}

func (h *writabilitySpy) changesOf(id uint64) []bool {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	return slices.Clone(h.changes[id])
}

// dialStalled connects a client that will not read until the test says so,
// with a small receive buffer and a small segment size, so the server's
// writes back up quickly: Linux sizes a socket's send buffer by segments
// (twice ten of them, each rounded up to a power of two), and loopback's 64
// KiB segments would let the server's kernel take about 2.5 MiB first.
func dialStalled(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: stallSockopts}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// stallSockopts is a net.Dialer Control: a 4 KiB receive buffer and a
// 1 KiB MSS (announced in the SYN, so the server sends 1 KiB segments).
func stallSockopts(network, address string, c syscall.RawConn) error {
	if err := setRecvBuf(4<<10)(network, address, c); err != nil {
		return err
	}
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1<<10)
	})
	if err != nil {
		return err
	}
	return serr
}

// readFrame reads one packet frame from r.
func readFrame(r *bufio.Reader) (id uint16, payload []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := int(binary.LittleEndian.Uint16(hdr[:]))
	if size < 4 {
		return 0, nil, fmt.Errorf("frame size %d < 4", size)
	}
	payload = make([]byte, size-4)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return binary.LittleEndian.Uint16(hdr[2:]), payload, nil
}

// isClosedByPeer reports whether err is how a read sees the other end close:
// EOF, or a reset when the peer closed with bytes unread.
func isClosedByPeer(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// liveHeap collects garbage (twice, so sync.Pools are emptied too) and
// returns the bytes in in-use heap spans.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// heapWatch samples liveHeap every interval until stop and keeps the peak.
type heapWatch struct {
	stop    chan struct{}
	done    chan struct{}
	peak    uint64
	samples int
}

func watchHeap(interval time.Duration) *heapWatch {
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			w.peak = max(w.peak, liveHeap())
			w.samples++
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the sampler (taking one last sample) and returns the peak.
func (w *heapWatch) finish() (peak uint64, samples int) {
	close(w.stop)
	<-w.done
	return w.peak, w.samples
}

// productionBuffers turns sendbuffer's debug mode off until the test ends.
// In debug mode every buffer carries the stack that allocated it (up to 16
// frames as text) and a tracking entry, and released buffers are never
// pooled, so a held 68-byte frame would cost several times what it costs
// in a real server; heap bounds are about the real server.
// Live counting, and so the leak checks, stay on.
func productionBuffers(t *testing.T) {
	sendbuffer.SetDebug(false)
	t.Cleanup(func() { sendbuffer.SetDebug(true) })
}

// heldFrameCost measures what holding one frame of n bytes costs the heap:
// its Buffer, the size-class array under it, and a backlog slot (a buffer
// pointer and a key), which is how herald holds frames for an unwritable
// session.
func heldFrameCost(n int) float64 {
	const frames = 16 << 10
	p := make([]byte, n)
	before := liveHeap()
	held := make([]struct {
		b   *sendbuffer.Buffer
		key uint64
	}, frames)
	for i := range held {
		held[i].b = sendbuffer.Copy(p)
	}
	after := liveHeap()
	for _, e := range held {
		e.b.Release()
	}
	return float64(after-before) / frames
}

const mib = 1 << 20

// loadgenHeapSlack is the heap a 20-client loadgen run and the server's
// other sessions may use besides a slow session: loadgen's 64 KiB read
// buffer per client (1.25 MiB) and its two HDR histograms (1 ns to 60 s, 3
// digits: about 0.4 MiB together), gnet's inbound and outbound buffers for
// 21 connections (a 64 KiB read buffer per loop, elastic buffers that grow
// when a peer lags), the fast sessions' frames in flight (at most 20 × 16
// by loadgen's window, a few hundred bytes each), and GC fragmentation.
const loadgenHeapSlack = 4 * mib

// TestSlowConsumer: one client connects, never reads, and has a 4 KiB
// receive buffer, while 20 loadgen clients broadcast 64-byte frames at 1,000
// frames/s each for 5 s; every frame goes to every session, the stalled one
// included. With a 1 MiB MaxPending (watermarks 64/256 KiB) the stalled
// session passes the limit within about a second.
//
//   - disconnect: the stalled session is closed with ErrSlowConsumer, once
//     (Stats().SlowDisconnects == 1), while the run goes on; its client sees
//     EOF or a reset.
//   - drop: it stays connected to the end, its frames over the limit are
//     dropped and counted (for it: Session.Dropped; in total: Stats), and
//     the server logs "slow consumer" for it exactly once. When it reads at
//     last, what was not dropped arrives whole and in per-sender order, and
//     every frame broadcast to it was either written or dropped.
//
// Either way the fast clients get every frame, once, intact and in order,
// and the server's live heap stays under the baseline plus one session's
// MaxPending worth of held frames (at their measured heap cost) plus gnet's
// outbound buffer plus loadgenHeapSlack.
func TestSlowConsumer(t *testing.T) {
	const (
		fastClients = 20
		rate        = 20000 // frames/s, all fast clients together
		duration    = 5 * time.Second
		payload     = 64
		frameLen    = loadgen.PacketHeaderLen + payload
	)
	tests := []struct {
		name   string
		policy sessionmgr.SlowPolicy
		// slowErr is the reason OnSlow reports, in the log line.
		slowErr error
	}{
		{name: "disconnect", policy: sessionmgr.Disconnect, slowErr: sessionmgr.ErrSlowConsumer},
		{name: "drop", policy: sessionmgr.Drop, slowErr: sessionmgr.ErrFramesDropped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			productionBuffers(t)
			limits := sessionmgr.Limits{LowWatermark: 64 << 10, HighWatermark: 256 << 10, MaxPending: 1 * mib, Policy: tt.policy}
			cost := heldFrameCost(frameLen)
			logs := &syncBuffer{}
			h := newSpy()
			srv := startServer(t, h, handler.WithLimits(limits), handler.WithLoops(2),
				handler.WithLogger(zerolog.New(logs).Level(zerolog.InfoLevel)))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("server log:\n%s", logs)
				}
			})

			stalled := dialStalled(t, srv.Addr().String())
			slow := h.session(t, stalled.LocalAddr())
			waitFor(t, 5*time.Second, "the stalled session registered", func() bool { return srv.Manager().Len() == 1 })

			baseline := liveHeap()
			watch := watchHeap(100 * time.Millisecond)
			var startedAt atomic.Pointer[time.Time]
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := loadgen.RunFanout(ctx, loadgen.FanoutConfig{
				Addr: srv.Addr().String(), Clients: fastClients, Rate: rate, Duration: duration, Size: payload,
				ProgressInterval: 20 * time.Millisecond,
				Progress: func(p loadgen.Progress) {
					if p.Elapsed > 0 && startedAt.Load() == nil {
						at := time.Now().Add(-p.Elapsed)
						startedAt.CompareAndSwap(nil, &at)
					}
				},
			})
			peak, samples := watch.finish()
			if err != nil || res.Errors != 0 {
				t.Fatalf("fast clients: %v, %d errors: %v", err, res.Errors, res.ErrorSamples)
			}
			if want := res.Sent * fastClients; res.Sent == 0 || res.Received != want {
				t.Errorf("fast clients received %d frames, want %d (%d sent × %d clients)", res.Received, want, res.Sent, fastClients)
			}
			t.Logf("fast clients: %d frames sent (%.0f/s), %d delivered, p99 %v, max %v",
				res.Sent, float64(res.Sent)/duration.Seconds(), res.Received, res.Latency.P99, res.Latency.Max)

			st := srv.Stats()
			switch tt.policy {
			case sessionmgr.Disconnect:
				ev, ok := h.closeOf(slow.ID())
				if !ok {
					t.Fatalf("the stalled session is still open after the run (pending %d bytes)", slow.Pending())
				}
				if !errors.Is(ev.reason, sessionmgr.ErrSlowConsumer) {
					t.Errorf("stalled session closed with %v, want %v", ev.reason, sessionmgr.ErrSlowConsumer)
				}
				if start := startedAt.Load(); start == nil || ev.at.Sub(*start) > duration {
					t.Errorf("stalled session closed at %v, not while the clients were sending (started %v)", ev.at, start)
				} else {
					t.Logf("stalled session disconnected %v after the clients began sending", ev.at.Sub(*start).Round(time.Millisecond))
				}
				_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := io.Copy(io.Discard, stalled)
				if !isClosedByPeer(err) {
					t.Errorf("stalled client: read ended with %v after %d bytes, want EOF or reset", err, n)
				}
				t.Logf("stalled client read %d bytes before the close", n)
				if st.SlowDisconnects != 1 || st.Dropped != 0 {
					t.Errorf("SlowDisconnects %d, Dropped %d; want 1 and 0", st.SlowDisconnects, st.Dropped)
				}
			case sessionmgr.Drop:
				if ev, ok := h.closeOf(slow.ID()); ok {
					t.Fatalf("the stalled session was closed (%v); the drop policy keeps it", ev.reason)
				}
				if srv.Manager().Get(slow.ID()) == nil {
					t.Fatalf("the stalled session left the Manager")
				}
				if st.SlowDisconnects != 0 || st.Dropped == 0 || slow.Dropped() != st.Dropped {
					t.Errorf("SlowDisconnects %d, Dropped %d, stalled session dropped %d; want 0, > 0, all of them",
						st.SlowDisconnects, st.Dropped, slow.Dropped())
				}
				if p := slow.Pending(); p > limits.MaxPending || p < limits.HighWatermark {
					t.Errorf("stalled session has %d bytes pending, want between the high watermark and MaxPending", p)
				}
				t.Logf("dropped %d frames for the stalled session; %d bytes pending", slow.Dropped(), slow.Pending())
				// Now it reads: what was not dropped arrives whole, in
				// per-sender order, and every frame broadcast to it (the
				// hellos and every data frame) was written or dropped.
				got := readAllIntact(t, stalled, slow)
				written, _ := slow.Stats()
				if want := uint64(fastClients) + uint64(res.Sent); written+slow.Dropped() != want || got != written {
					t.Errorf("stalled client: %d frames written + %d dropped, want %d broadcast to it; %d received",
						written, slow.Dropped(), want, got)
				}
			}
			checkSlowLog(t, logs, slow.ID(), tt.slowErr)

			// The bound: MaxPending counts what a held frame costs, so the
			// stalled session's held frames take at most about 1.25 x
			// MaxPending of heap (issue 10.6), plus gnet's outbound buffer
			// (at most the high watermark plus one batch, doubled for the
			// elastic buffer's growth).
			held := 1.25 * float64(limits.MaxPending)
			outbound := 2 * (limits.HighWatermark + sessionmgr.MaxBatchBytes)
			bound := baseline + uint64(held) + uint64(outbound) + loadgenHeapSlack
			t.Logf("live heap: baseline %.1f MiB, peak %.1f MiB over %d samples, bound %.1f MiB "+
				"(held frames %.1f MiB at %.0f B per %d-byte frame, %.1fx MaxPending; outbound %.1f MiB; slack %.1f MiB)",
				float64(baseline)/mib, float64(peak)/mib, samples, float64(bound)/mib,
				held/mib, cost, frameLen, held/float64(limits.MaxPending), float64(outbound)/mib, float64(loadgenHeapSlack)/mib)
			if peak > bound {
				t.Errorf("live heap peaked at %.1f MiB, over the bound of %.1f MiB", float64(peak)/mib, float64(bound)/mib)
			}
		})
	}
}

// readAllIntact reads c until s has nothing pending and everything written
// to s has arrived, checking that every frame is a whole loadgen frame,
// intact, and later than the previous one of its sender. It returns the
// frames read.
func readAllIntact(t *testing.T, c net.Conn, s *sessionmgr.Session) uint64 {
	t.Helper()
	r := bufio.NewReaderSize(c, 64<<10)
	next := map[uint32]uint32{} // per sender: lowest seq still allowed
	var got uint64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if written, _ := s.Stats(); got == written && s.Pending() == 0 {
			return got
		}
		if time.Now().After(deadline) {
			written, _ := s.Stats()
			t.Fatalf("read %d frames in 10s; %d written, %d bytes pending", got, written, s.Pending())
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		id, p, err := readFrame(r)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue // the bufio.Reader keeps a partial frame
		}
		if err != nil {
			t.Fatalf("read after %d frames: %v", got, err)
		}
		pl, err := loadgen.ParsePayload(p)
		if err != nil || (id != loadgen.FrameID && id != loadgen.HelloID) {
			t.Fatalf("frame %d: id %d: %v", got, id, err)
		}
		if id == loadgen.FrameID {
			if pl.Seq < next[pl.Sender] {
				t.Fatalf("frame %d of sender %d after a later one", pl.Seq, pl.Sender)
			}
			next[pl.Sender] = pl.Seq + 1
		}
		got++
	}
}

// checkSlowLog checks that the server logged "slow consumer" once, for the
// session id, with the reason want.
func checkSlowLog(t *testing.T, logs *syncBuffer, id uint64, want error) {
	t.Helper()
	lines := logLines(t, logs, func(l logLine) bool { return l.Message == "herald: slow consumer" })
	if len(lines) != 1 || lines[0].Session != id || lines[0].Error != want.Error() {
		t.Errorf("slow consumer log lines %+v; want one for session %d with error %q", lines, id, want)
	}
}

// TestConflation: a stalled client's session is sent position updates of 50
// entities, keyed by entity (SetKey), round after round, until it is
// unwritable and then 100 rounds more, which herald must hold and conflate
// (it stays unwritable meanwhile: the watermarks are far enough apart that
// the kernel taking a little more cannot bring it back under the low one).
// When the client reads, it gets for every entity the latest update sent,
// never an update older than one it already has (per-key order), and every
// update sent is either received or counted as conflated: received +
// Conflated == sent, nothing dropped.
func TestConflation(t *testing.T) {
	const (
		entities    = 50
		extraRounds = 100
		frameLen    = 128
		updateID    = 3
	)
	limits := sessionmgr.Limits{LowWatermark: 16 << 10, HighWatermark: 128 << 10, MaxPending: 4 * mib}
	h := newWritabilitySpy()
	srv := startServer(t, h, handler.WithLimits(limits), handler.WithTick(20*time.Millisecond))
	c := dialStalled(t, srv.Addr().String())
	s := h.session(t, c.LocalAddr())

	var sent int64
	var seq uint32
	round := func() {
		t.Helper()
		for e := range uint16(entities) {
			p := make([]byte, frameLen-4)
			binary.LittleEndian.PutUint16(p, e)
			binary.LittleEndian.PutUint32(p[2:], seq)
			b := sendbuffer.Copy(packetFrame(updateID, p))
			b.SetKey(uint64(e) + 1)
			if err := s.Send(b); err != nil {
				t.Fatalf("send: %v", err)
			}
			sent++
		}
		seq++
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Writable() {
		if time.Now().After(deadline) {
			t.Fatalf("session still writable after %d rounds (%d bytes pending)", seq, s.Pending())
		}
		round()
		time.Sleep(time.Millisecond)
	}
	stalledAt := seq
	for range extraRounds {
		round()
	}
	last := seq - 1
	time.Sleep(100 * time.Millisecond) // five ticks, each a chance to turn writable
	if got := h.changesOf(s.ID()); !slices.Equal(got, []bool{false}) {
		t.Fatalf("writability changes %v while the client stalled, want [false]", got)
	}

	// Read until every entity's last update is in. Updates are sent from
	// this goroutine, in order, so once the last round has arrived the loop
	// has taken every update: the counters are final.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(c, 64<<10)
	latest := make([]int64, entities)
	for i := range latest {
		latest[i] = -1
	}
	var received int64
	for done := 0; done < entities; {
		id, p, err := readFrame(r)
		if err != nil {
			t.Fatalf("read after %d updates (%d of %d entities up to date): %v", received, done, entities, err)
		}
		if id != updateID || len(p) != frameLen-4 {
			t.Fatalf("frame id %d, %d bytes; want id %d, %d bytes", id, len(p), updateID, frameLen-4)
		}
		e, q := binary.LittleEndian.Uint16(p), int64(binary.LittleEndian.Uint32(p[2:]))
		if int(e) >= entities {
			t.Fatalf("update for entity %d", e)
		}
		if q <= latest[e] {
			t.Fatalf("entity %d: update %d after update %d", e, q, latest[e])
		}
		latest[e] = q
		received++
		if q == int64(last) {
			done++
		}
	}
	cs := srv.Stats().Counters
	t.Logf("%d rounds (unwritable after %d): %d updates sent, %d received, %d conflated", seq, stalledAt, sent, received, cs.Conflated)
	if minConflated := uint64(entities * (extraRounds - 1)); cs.Conflated < minConflated {
		t.Errorf("Conflated %d, want at least %d: every update sent while unwritable replaces a held one, except each entity's first", cs.Conflated, minConflated)
	}
	if received+int64(cs.Conflated) != sent || cs.Dropped != 0 || cs.SlowDisconnects != 0 {
		t.Errorf("received %d + conflated %d != sent %d (dropped %d, slow disconnects %d)",
			received, cs.Conflated, sent, cs.Dropped, cs.SlowDisconnects)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if id, p, err := readFrame(r); err == nil {
		t.Errorf("frame id %d (%d bytes) after every entity's last update", id, len(p))
	}
	waitFor(t, 5*time.Second, "writable again", s.Writable)
}

// TestWatermarks: a WritabilityHandler sees a stalled client's session go
// unwritable (false) once gnet holds HighWatermark bytes for it, and
// writable (true) again once the client has read everything; Writable and
// Pending agree with it at every step: unwritable with more than the low
// watermark pending while stalled, writable with nothing pending after.
// Small frames are coalesced into the loop's scratch and large ones written
// in place, so both are tried.
func TestWatermarks(t *testing.T) {
	limits := sessionmgr.Limits{LowWatermark: 16 << 10, HighWatermark: 128 << 10, MaxPending: 4 * mib}
	tests := []struct {
		name    string
		payload int
	}{
		{name: "64-byte frames, coalesced", payload: 64},
		{name: "4 KiB frames, written in place", payload: 4 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sent after the session is unwritable: together less than the
			// high watermark minus the low one, so that writing them once the
			// session is writable again cannot take it back over the high
			// watermark (a legitimate second flip, which a loaded machine
			// produced with 32 frames of 4 KiB).
			const heldFrames = 16
			h := newWritabilitySpy()
			srv := startServer(t, h, handler.WithLimits(limits), handler.WithTick(20*time.Millisecond))
			c := dialStalled(t, srv.Addr().String())
			s := h.session(t, c.LocalAddr())

			var seq uint32
			send := func() {
				t.Helper()
				p := make([]byte, tt.payload)
				binary.LittleEndian.PutUint32(p, seq)
				if err := s.Send(sendbuffer.Copy(packetFrame(privateID, p))); err != nil {
					t.Fatalf("send: %v", err)
				}
				seq++
			}
			deadline := time.Now().Add(10 * time.Second)
			for s.Writable() {
				if time.Now().After(deadline) {
					t.Fatalf("session still writable after %d frames (%d bytes pending)", seq, s.Pending())
				}
				send()
				if int(seq)*tt.payload%(16<<10) < tt.payload {
					time.Sleep(time.Millisecond) // let the loop keep up: every 16 KiB
				}
			}
			stalledAt := seq
			for range heldFrames {
				send()
			}
			// Unwritable since pending reached the high watermark; it stays
			// so until pending falls to the low one. Pending itself may sink
			// below the high watermark meanwhile: the kernel's send buffer
			// takes some of gnet's outbound bytes, and Pending does not see
			// the kernel's buffer.
			waitFor(t, 5*time.Second, "pending bytes to settle above the low watermark", func() bool {
				return s.Pending() > limits.LowWatermark
			})
			time.Sleep(100 * time.Millisecond) // a few ticks: nothing may flip back while the client stalls
			if got := h.changesOf(s.ID()); !slices.Equal(got, []bool{false}) || s.Writable() {
				t.Fatalf("while stalled: changes %v, Writable %v; want [false], false", got, s.Writable())
			}
			stalledPending := s.Pending()
			if stalledPending <= limits.LowWatermark || stalledPending > limits.MaxPending {
				t.Errorf("while stalled: %d bytes pending, want (%d, %d]", stalledPending, limits.LowWatermark, limits.MaxPending)
			}

			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReaderSize(c, 64<<10)
			for want := range seq {
				id, p, err := readFrame(r)
				if err != nil {
					t.Fatalf("frame %d of %d: %v", want, seq, err)
				}
				if got := binary.LittleEndian.Uint32(p); id != privateID || len(p) != tt.payload || got != want {
					t.Fatalf("frame %d: id %d, %d bytes, seq %d", want, id, len(p), got)
				}
			}
			waitFor(t, 5*time.Second, "writable with nothing pending", func() bool { return s.Writable() && s.Pending() == 0 })
			if got := h.changesOf(s.ID()); !slices.Equal(got, []bool{false, true}) {
				t.Errorf("after reading: changes %v, want [false true]", got)
			}
			t.Logf("unwritable after %d frames with %d bytes pending; %d frames read; writable again", stalledAt, stalledPending, seq)
		})
	}
}

// TestFiftyClientsNeverSlow: on default settings (no WithLimits), 50
// clients broadcasting as fast as a 16-frame window allows, round after
// round, lose nothing, and no healthy client is ever taken for a slow
// consumer. The window bounds what is in flight to any one client (50
// senders × 16 frames × 68 bytes, about 53 KiB), far below the default high
// watermark, so no session even becomes unwritable.
func TestFiftyClientsNeverSlow(t *testing.T) {
	const (
		rounds   = 5
		clients  = 50
		messages = 300
	)
	h := newWritabilitySpy()
	srv := startServer(t, h, handler.WithLoops(2))
	for i := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := loadgen.RunFanout(ctx, loadgen.FanoutConfig{
			Addr: srv.Addr().String(), Clients: clients, Messages: messages, Window: 16, Size: 64,
		})
		cancel()
		if err != nil || res.Errors != 0 {
			t.Fatalf("round %d: %v, %d errors: %v", i, err, res.Errors, res.ErrorSamples)
		}
		if want := int64(clients * clients * messages); res.Received != want {
			t.Fatalf("round %d: %d frames delivered, want %d", i, res.Received, want)
		}
		t.Logf("round %d: %d frames delivered in %v (%.0f/s), p99 %v, max %v",
			i, res.Received, res.Elapsed.Round(time.Millisecond), res.PerSec, res.Latency.P99, res.Latency.Max)
		waitFor(t, 5*time.Second, "sessions gone", func() bool { return srv.Manager().Len() == 0 })
	}
	if st := srv.Stats(); st.SlowDisconnects != 0 || st.Dropped != 0 || st.Unsent != 0 {
		t.Errorf("slow disconnects %d, dropped %d, unsent %d; want none", st.SlowDisconnects, st.Dropped, st.Unsent)
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if len(h.changes) != 0 {
		t.Errorf("writability changed for %d sessions (%v); want none", len(h.changes), h.changes)
	}
}
