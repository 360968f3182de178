package sessionmgr

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// This file holds the test doubles: an in-memory event loop and connection in
// the spirit of Netty's EmbeddedChannel, modelled on what gnet v2.9.7 does
// (eventloop_unix.go, connection_unix.go, pkg/netpoll):
//
//   - Execute queues a Runnable on the loop; the loop runs tasks one at a
//     time in FIFO order. After the engine stops, queued tasks are dropped
//     without running and Execute fails (gnet: ErrEngineInShutdown).
//   - Writev may only be called on the loop. It "writes" part of the bytes
//     into the socket, rewrites the caller's [][]byte in place on that
//     partial write (bs[i] = bs[i][sent:]) as gnet does, and copies the rest
//     "into the outbound buffer". Either way every byte is copied into the
//     peer's log before Writev returns and the fake keeps no reference to the
//     caller's memory: releasing right after Writev is safe, and a release
//     before it would show debug mode's poison in the log.
//   - More than IOV_MAX (1024) iovecs in one Writev is an error: writev would
//     fail with EINVAL and gnet would close the connection.
//   - A failing Writev closes the connection first, calling the OnClose hook
//     (where the server calls Manager.Remove) from inside Writev, as gnet's
//     writev does in its deferred close.
//   - Close is asynchronous: a task on the loop marks the connection closed
//     and calls the OnClose hook.
//   - OutboundBuffered (loop only) reports gnet's outbound buffer. A stalled
//     peer (stall) reads nothing, so every written byte stays there until
//     peerRead; otherwise what a partial write copied there counts as
//     flushed at once.

// goid returns the current goroutine's id, parsed from runtime.Stack. It is
// slow and only for the fake's "on the loop" assertions.
func goid() uint64 {
	var buf [64]byte
	s := buf[:runtime.Stack(buf[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		panic("goid: cannot parse runtime.Stack: " + err.Error())
	}
	return id
}

var errEngineStopped = errors.New("fake: engine in shutdown")

// fakeLoop is a gnet event loop: an Executor running tasks in FIFO order,
// either on its own goroutine (start) or on the test's goroutine one step at
// a time (step, drain), for deterministic tests. l is herald's Loop for it.
type fakeLoop struct {
	t testing.TB
	l *Loop

	mu      sync.Mutex
	cond    sync.Cond
	tasks   []func()
	paused  bool // goroutine mode: do not take tasks
	stopped bool // engine stopped: queued tasks dropped, Execute fails
	running bool // a task is executing
	quit    bool // goroutine mode: exit
	started bool
	done    chan struct{}

	current atomic.Uint64 // id of the goroutine acting as the loop, 0 when none

	executes atomic.Int64 // Execute calls accepted
	rejected atomic.Int64 // Execute calls refused (engine stopped)
	ran      atomic.Int64 // tasks run
}

var _ Executor = (*fakeLoop)(nil)

func newLoop(t testing.TB) *fakeLoop {
	fl := &fakeLoop{t: t}
	fl.cond.L = &fl.mu
	fl.l = NewLoop(fl)
	return fl
}

// Execute queues r, as gnet.EventLoop.Execute does. Any goroutine.
func (fl *fakeLoop) Execute(ctx context.Context, r gnet.Runnable) error {
	if r == nil {
		fl.t.Errorf("Execute(nil)")
		return errors.New("fake: nil runnable")
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stopped {
		fl.rejected.Add(1)
		return errEngineStopped
	}
	fl.executes.Add(1)
	fl.tasks = append(fl.tasks, func() { _ = r.Run(ctx) })
	fl.cond.Broadcast()
	return nil
}

// post queues fn as a loop task (a close, a callback). After stopAndDrop it
// is dropped.
func (fl *fakeLoop) post(fn func()) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stopped {
		return
	}
	fl.tasks = append(fl.tasks, fn)
	fl.cond.Broadcast()
}

// exec runs fn on the calling goroutine as the loop (manual mode).
func (fl *fakeLoop) exec(fn func()) {
	prev := fl.current.Swap(goid())
	defer fl.current.Store(prev)
	fn()
}

// onLoop reports whether the caller is the goroutine acting as the loop.
func (fl *fakeLoop) onLoop() bool {
	g := fl.current.Load()
	return g != 0 && g == goid()
}

// start runs the loop on its own goroutine until stop or the test's end.
func (fl *fakeLoop) start() *fakeLoop {
	fl.started = true
	fl.done = make(chan struct{})
	go func() {
		defer close(fl.done)
		fl.current.Store(goid())
		for {
			fl.mu.Lock()
			for !fl.quit && (fl.paused || len(fl.tasks) == 0) {
				fl.cond.Wait()
			}
			if fl.quit {
				fl.mu.Unlock()
				return
			}
			fn := fl.tasks[0]
			fl.tasks[0] = nil
			fl.tasks = fl.tasks[1:]
			fl.running = true
			fl.mu.Unlock()
			fn()
			fl.ran.Add(1)
			fl.mu.Lock()
			fl.running = false
			fl.cond.Broadcast()
			fl.mu.Unlock()
		}
	}()
	fl.t.Cleanup(fl.stop)
	return fl
}

// stop ends the loop goroutine; tasks still queued never run. Idempotent.
func (fl *fakeLoop) stop() {
	fl.mu.Lock()
	fl.quit = true
	fl.cond.Broadcast()
	fl.mu.Unlock()
	<-fl.done
}

func (fl *fakeLoop) pause() {
	fl.mu.Lock()
	fl.paused = true
	fl.mu.Unlock()
}

func (fl *fakeLoop) resume() {
	fl.mu.Lock()
	fl.paused = false
	fl.cond.Broadcast()
	fl.mu.Unlock()
}

// step runs the oldest queued task on the calling goroutine (manual mode)
// and reports whether there was one.
func (fl *fakeLoop) step() bool {
	fl.mu.Lock()
	if len(fl.tasks) == 0 {
		fl.mu.Unlock()
		return false
	}
	fn := fl.tasks[0]
	fl.tasks[0] = nil
	fl.tasks = fl.tasks[1:]
	fl.mu.Unlock()
	fl.exec(fn)
	fl.ran.Add(1)
	return true
}

// drain runs tasks on the calling goroutine until none is left, including
// tasks queued meanwhile, and returns how many ran.
func (fl *fakeLoop) drain() int {
	n := 0
	for fl.step() {
		n++
	}
	return n
}

// do runs fn on the loop and waits for it: as a task when the loop has its
// own goroutine, else right here acting as the loop.
func (fl *fakeLoop) do(fn func()) {
	if !fl.started {
		fl.exec(fn)
		return
	}
	done := make(chan struct{})
	fl.post(func() { defer close(done); fn() })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fl.t.Fatalf("loop task did not run within 10s")
	}
}

// callback runs fn on the loop between EnterCallback and LeaveCallback, as
// the server runs a handler callback (OnRecv) for s.
func (fl *fakeLoop) callback(s *Session, fn func()) {
	fl.do(func() {
		s.EnterCallback()
		defer s.LeaveCallback()
		fn()
	})
}

// pending reports how many tasks wait.
func (fl *fakeLoop) pending() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.tasks)
}

// idle reports whether no task waits or runs.
func (fl *fakeLoop) idle() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.tasks) == 0 && !fl.running
}

// stopAndDrop mimics gnet's engine stop: queued tasks are dropped without
// running, and Execute fails from now on.
func (fl *fakeLoop) stopAndDrop() (dropped int) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	dropped = len(fl.tasks)
	fl.tasks, fl.stopped = nil, true
	return dropped
}

// loopState is the Loop's bookkeeping, read on the loop.
type loopState struct {
	armed   bool
	queued  int // items pushed and not yet drained
	dirty   int
	waiting int
	held    int
	tasks   int // other tasks waiting on the fake loop
}

func (fl *fakeLoop) state() (st loopState) {
	fl.do(func() {
		l := fl.l
		l.mu.Lock()
		st.queued = len(l.queue)
		l.mu.Unlock()
		st.armed = l.armed.Load()
		st.dirty, st.waiting, st.held = len(l.dirty), l.waiting, len(l.held)
		st.tasks = fl.pending()
	})
	return st
}

// queuedItems returns the frame items pushed to the Loop and not yet
// drained (membership items left out).
func (fl *fakeLoop) queuedItems() []item {
	fl.l.mu.Lock()
	defer fl.l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(fl.l.queue), func(it item) bool { return it.op != opFrame })
}

// iovRec describes one iovec of a Writev, as the caller passed it.
type iovRec struct {
	data    *byte // unsafe.SliceData of the iovec
	n       int
	scratch bool // points into the Loop's scratch
}

// writeRec describes one Writev the fake performed.
type writeRec struct {
	iovs  []iovRec
	off   int // where its bytes start in the peer's log
	bytes int
}

// fakeConn implements Conn on a fakeLoop.
type fakeConn struct {
	t    testing.TB
	loop *fakeLoop
	addr net.Addr

	// Fixed before use.
	sockTake int               // bytes the "socket" takes per write; the rest is copied to the outbound buffer. <= 0: all.
	onWritev func(bs [][]byte) // on the loop, before the write; may Send
	onClose  func()            // on the loop, when the connection closes (the server's OnClose)

	failAt atomic.Int64 // the Writev with this 1-based number fails (and closes); 0: none

	mu     sync.Mutex
	closed bool
	out    []byte // everything written, in order: the peer's view
	writes []writeRec
	// stalled: the peer reads nothing, so every byte stays in gnet's
	// outbound buffer until peerRead. Otherwise what a partial write left
	// in the outbound buffer is taken as flushed at once (gnet flushes it
	// on the next writable event; its timing is not modelled).
	stalled  bool
	outbound int

	writevCalls atomic.Int64
	closeCalls  atomic.Int64
}

var fakeAddrs atomic.Uint32

func newConn(t testing.TB, fl *fakeLoop) *fakeConn {
	port := uint16(10000 + fakeAddrs.Add(1)%50000)
	return &fakeConn{
		t:    t,
		loop: fl,
		addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)),
	}
}

var _ Conn = (*fakeConn)(nil)

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }

// failWritev makes the n-th Writev from now fail (n >= 1).
func (c *fakeConn) failWritev(n int) { c.failAt.Store(c.writevCalls.Load() + int64(n)) }

// Writev writes bs synchronously. Like gnet's, it is only for the loop.

// Write is Writev of one slice: gnet's Write and Writev reach the socket the
// same way, and the fake's bookkeeping lives in Writev.
func (c *fakeConn) Write(b []byte) (int, error) { return c.Writev([][]byte{b}) }

func (c *fakeConn) Writev(bs [][]byte) (int, error) {
	call := c.writevCalls.Add(1)
	if !c.loop.onLoop() {
		c.t.Errorf("Writev called off the event loop (goroutine %d)", goid())
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.t.Errorf("Writev on a closed connection: the session should have been removed")
		return 0, net.ErrClosed
	}
	if len(bs) > MaxBatchSlices {
		c.t.Errorf("Writev with %d iovecs > IOV_MAX %d: writev would fail with EINVAL", len(bs), MaxBatchSlices)
		c.closeNow()
		return 0, fmt.Errorf("writev: %w", syscall.EINVAL)
	}
	if c.onWritev != nil {
		c.onWritev(bs)
	}
	if c.failAt.CompareAndSwap(call, 0) {
		// gnet's writev closes the connection (OnClose runs) and returns.
		c.closeNow()
		return 0, fmt.Errorf("writev: %w", syscall.ECONNRESET)
	}
	return c.write(bs), nil
}

// write performs one writev of bs, as gnet's conn.writev does.
func (c *fakeConn) write(bs [][]byte) int {
	scratch := c.loop.l.scratch
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(scratch)))
	hi := lo + uintptr(len(scratch))
	rec := writeRec{iovs: make([]iovRec, len(bs))}
	total := 0
	for i, b := range bs {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		rec.iovs[i] = iovRec{data: unsafe.SliceData(b), n: len(b), scratch: len(b) > 0 && p >= lo && p < hi}
		total += len(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sent := total
	if c.sockTake > 0 {
		sent = min(c.sockTake, total)
	}
	if c.stalled || c.outbound > 0 {
		// gnet: with bytes already in the outbound buffer, or a socket
		// that takes nothing (EAGAIN), everything is appended to it.
		sent = 0
	}
	if c.stalled {
		c.outbound += total - sent
	}
	rec.off, rec.bytes = len(c.out), total
	// The socket takes sent bytes ...
	rest := sent
	for _, b := range bs {
		if rest == 0 {
			break
		}
		n := min(rest, len(b))
		c.out = append(c.out, b[:n]...)
		rest -= n
	}
	// ... gnet advances the caller's slices in place ...
	pos := len(bs)
	if total > sent {
		for i := range bs {
			if bn := len(bs[i]); sent < bn {
				bs[i] = bs[i][sent:]
				pos = i
				break
			} else {
				sent -= bn
			}
		}
	}
	// ... and copies the rest into its outbound buffer.
	for _, b := range bs[pos:] {
		c.out = append(c.out, b...)
	}
	c.writes = append(c.writes, rec)
	return total
}

// OutboundBuffered reports the bytes in gnet's outbound buffer. Like gnet's,
// it is only for the loop.
func (c *fakeConn) OutboundBuffered() int {
	if !c.loop.onLoop() {
		c.t.Errorf("OutboundBuffered called off the event loop (goroutine %d)", goid())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outbound
}

// stall makes the peer stop reading (true) or read again (false).
func (c *fakeConn) stall(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled = on
}

// peerRead lets the stalled peer read n bytes of the outbound buffer.
func (c *fakeConn) peerRead(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outbound -= min(n, c.outbound)
}

// Close closes the connection asynchronously, as gnet's Close does.
func (c *fakeConn) Close() error {
	c.closeCalls.Add(1)
	c.loop.post(c.closeNow)
	return nil
}

// closeNow closes the connection on the loop (a peer reset, a failed
// write, or the task queued by Close) and calls the OnClose hook once.
func (c *fakeConn) closeNow() {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if !was && c.onClose != nil {
		c.onClose()
	}
}

// closeOnLoop closes the connection now, acting as the loop.
func (c *fakeConn) closeOnLoop() { c.loop.do(c.closeNow) }

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *fakeConn) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out)
}

func (c *fakeConn) outLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out)
}

func (c *fakeConn) writeLog() []writeRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]writeRec(nil), c.writes...)
}

// framesPerWrite parses each write's share of the peer's log and returns how
// many test frames each write carried.
func (c *fakeConn) framesPerWrite(t testing.TB) []int {
	t.Helper()
	out := c.output()
	var n []int
	for _, w := range c.writeLog() {
		n = append(n, len(parseFrames(t, out[w.off:w.off+w.bytes])))
	}
	return n
}

// Test frames: [size uint32 LE][sender uint16 LE][seq uint32 LE][payload],
// size counting the whole frame, payload byte i = byte(sender*31 + seq + i).
// A frame read from poisoned (released) memory, or cut or reordered by the
// coalescing, fails to parse.

const frameHeader = 10

type frameID struct{ sender, seq int }

func frameBytes(sender, seq, size int) []byte {
	if size < frameHeader {
		panic("test frame smaller than its header")
	}
	p := make([]byte, size)
	binary.LittleEndian.PutUint32(p[0:], uint32(size))
	binary.LittleEndian.PutUint16(p[4:], uint16(sender))
	binary.LittleEndian.PutUint32(p[6:], uint32(seq))
	for i := frameHeader; i < size; i++ {
		p[i] = byte(sender*31 + seq + i)
	}
	return p
}

// newFrame returns a SendBuffer holding one test frame.
func newFrame(sender, seq, size int) *sendbuffer.Buffer {
	b := sendbuffer.Get(size)
	p, err := b.Extend(size)
	if err != nil {
		panic(err)
	}
	copy(p, frameBytes(sender, seq, size))
	return b
}

// parseFrames splits a peer's byte stream into test frames.
func parseFrames(t testing.TB, out []byte) []frameID {
	t.Helper()
	var ids []frameID
	for off := 0; off < len(out); {
		if len(out)-off < frameHeader {
			t.Fatalf("offset %d: %d trailing bytes, not a frame", off, len(out)-off)
		}
		size := int(binary.LittleEndian.Uint32(out[off:]))
		if size < frameHeader || off+size > len(out) {
			t.Fatalf("offset %d: bad frame size %d (% x...)", off, size, out[off:min(off+16, len(out))])
		}
		sender := int(binary.LittleEndian.Uint16(out[off+4:]))
		seq := int(binary.LittleEndian.Uint32(out[off+6:]))
		got, want := out[off:off+size], frameBytes(sender, seq, size)
		if i := mismatch(got, want); i >= 0 {
			t.Fatalf("offset %d: frame (sender %d, seq %d, %d bytes) corrupted at byte %d:\n got % x\nwant % x",
				off, sender, seq, size, i, got[i:min(i+16, size)], want[i:min(i+16, size)])
		}
		ids = append(ids, frameID{sender, seq})
		off += size
	}
	return ids
}

// mismatch returns the first index where a and b differ, or -1.
func mismatch(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// checkPerSenderOrder checks that ids holds frames 0..perSender-1 of each of
// senders senders exactly once, each sender's in order.
func checkPerSenderOrder(t testing.TB, ids []frameID, senders, perSender int) {
	t.Helper()
	next := make([]int, senders)
	for i, id := range ids {
		if id.sender < 0 || id.sender >= senders {
			t.Fatalf("frame %d: unknown sender %d", i, id.sender)
		}
		if id.seq != next[id.sender] {
			t.Fatalf("frame %d: sender %d seq %d; want %d (lost, duplicated or reordered)", i, id.sender, id.seq, next[id.sender])
		}
		next[id.sender]++
	}
	for s, n := range next {
		if n != perSender {
			t.Fatalf("sender %d: %d frames arrived; want %d", s, n, perSender)
		}
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	for range 100 { // fast path: spin briefly before sleeping
		if cond() {
			return true
		}
		runtime.Gosched()
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

// newManager returns a Manager with DefaultLimits and cfg's hooks.
func newManager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// newSession makes a tracked session on a new fake connection whose OnClose
// removes it from m, as the server does.
func newSession(t testing.TB, m *Manager, fl *fakeLoop) (*Session, *fakeConn) {
	c := newConn(t, fl)
	s := m.NewSession(c, fl.l)
	c.onClose = func() { m.Closed(s) }
	m.Add(s)
	return s, c
}

// remove removes s on its loop, as the server's OnClose does.
func remove(fl *fakeLoop, m *Manager, s *Session) (frames, bytes int) {
	fl.do(func() { frames, bytes = m.Closed(s) })
	return frames, bytes
}

// checkBuffers is leakcheck.Check plus an immediate check that the test
// starts with no buffer live, so a leak is blamed on the right test.
func checkBuffers(t *testing.T) {
	t.Helper()
	if n := sendbuffer.Live(); n != 0 {
		t.Fatalf("%d buffers live before the test: %s", n, sendbuffer.Leaks())
	}
	leakcheck.Check(t)
}

// settled reports whether s and its loop are at rest: no task waits, the
// Loop is disarmed and holds nothing (no undrained item, no pending
// session, no buffer reference), and s has nothing pending.
func settled(fl *fakeLoop, s *Session) (bool, string) {
	var pending int
	fl.do(func() { pending = len(s.pending) + len(s.backlog) })
	st := fl.state()
	ok := st == (loopState{}) && pending == 0
	return ok, fmt.Sprintf("loop %+v, %d frames pending for the session", st, pending)
}

// waitIdle waits until s has settled (see settled). A lost wake-up leaves
// frames queued with no task to write them, and this fails.
func waitIdle(t testing.TB, fl *fakeLoop, s *Session) {
	t.Helper()
	var why string
	if !waitFor(5*time.Second, func() bool {
		var ok bool
		ok, why = settled(fl, s)
		return ok
	}) {
		t.Fatalf("session never settled (lost wake-up?): %s", why)
	}
}

// pendingBufs returns the buffers drained for s and not yet written. On the
// loop.
func pendingBufs(fl *fakeLoop, s *Session) []*sendbuffer.Buffer {
	var bufs []*sendbuffer.Buffer
	fl.do(func() {
		for _, e := range s.pending {
			bufs = append(bufs, e.b)
		}
	})
	return bufs
}

// wantWrites is how many frames each write carries when frames of the given
// sizes, all queued for one session before the loop's turn, are written:
// the drain writes the session whenever flushAt frames are pending and once
// more at the end, and each of those flushes is cut into writes of at most
// MaxBatchSlices frames and MaxBatchBytes bytes (a larger frame goes alone).
func wantWrites(sizes []int) []int {
	var out []int
	for len(sizes) > 0 {
		flush := sizes[:min(flushAt, len(sizes))]
		sizes = sizes[len(flush):]
		for len(flush) > 0 {
			n, b := 0, 0
			for n < len(flush) && n < MaxBatchSlices && (n == 0 || b+flush[n] <= MaxBatchBytes) {
				b += flush[n]
				n++
			}
			out = append(out, n)
			flush = flush[n:]
		}
	}
	return out
}

func repeat(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// sortedByID returns a copy of ss ordered by id.
func sortedByID(ss []*Session) []*Session {
	ss = slices.Clone(ss)
	sortByID(ss)
	return ss
}
