package sessionmgr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
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
// (connection_unix.go, pkg/netpoll):
//
//   - AsyncWritev queues a task on the connection's loop; the loop runs tasks
//     in FIFO order. The task writes the batch (or, if the connection has
//     closed, reads nothing and reports net.ErrClosed) and then calls the
//     callback on the loop.
//   - A write takes part of the bytes "into the socket", rewrites the
//     caller's [][]byte in place (bs[i] = bs[i][sent:]) as gnet does on a
//     partial write, and copies the rest "into the outbound buffer". After
//     that the fake keeps no reference to the caller's memory, so the
//     callback is the moment the caller may release it.
//   - Writev runs synchronously and may only be called on the loop.
//   - More than IOV_MAX (1024) slices in one write is an error: writev would
//     fail with EINVAL and gnet would close the connection.
//   - Close is asynchronous: a task on the loop marks the connection closed
//     and calls the OnClose hook, where the server calls Manager.Remove.

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

// fakeLoop is an event loop that runs tasks in FIFO order, either on its own
// goroutine (start) or on the test's goroutine, one step at a time (step,
// drain), for deterministic tests.
type fakeLoop struct {
	t testing.TB

	mu      sync.Mutex
	cond    sync.Cond
	tasks   []func()
	paused  bool // goroutine mode: do not take tasks
	stopped bool // engine stopped: queued and new tasks are dropped
	running bool // a task is executing
	quit    bool // goroutine mode: exit
	done    chan struct{}

	current atomic.Uint64 // id of the goroutine executing tasks, 0 when none
}

func newLoop(t testing.TB) *fakeLoop {
	l := &fakeLoop{t: t}
	l.cond.L = &l.mu
	return l
}

// post queues fn. After stopAndDrop nothing runs, as when gnet's engine
// stops with tasks still queued.
func (l *fakeLoop) post(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.tasks = append(l.tasks, fn)
	l.cond.Broadcast()
}

// exec runs fn as the loop.
func (l *fakeLoop) exec(fn func()) {
	prev := l.current.Swap(goid())
	defer l.current.Store(prev)
	fn()
}

// onLoop reports whether the caller is the goroutine running the loop.
func (l *fakeLoop) onLoop() bool {
	g := l.current.Load()
	return g != 0 && g == goid()
}

// start runs the loop on its own goroutine until the test ends.
func (l *fakeLoop) start() *fakeLoop {
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		l.current.Store(goid())
		for {
			l.mu.Lock()
			for !l.quit && (l.paused || len(l.tasks) == 0) {
				l.cond.Wait()
			}
			if l.quit {
				l.mu.Unlock()
				return
			}
			fn := l.tasks[0]
			l.tasks[0] = nil
			l.tasks = l.tasks[1:]
			l.running = true
			l.mu.Unlock()
			fn()
			l.mu.Lock()
			l.running = false
			l.cond.Broadcast()
			l.mu.Unlock()
		}
	}()
	l.t.Cleanup(l.stop)
	return l
}

// stop ends the loop goroutine; tasks still queued never run.
func (l *fakeLoop) stop() {
	l.mu.Lock()
	l.quit = true
	l.cond.Broadcast()
	l.mu.Unlock()
	<-l.done
}

func (l *fakeLoop) pause() {
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
}

func (l *fakeLoop) resume() {
	l.mu.Lock()
	l.paused = false
	l.cond.Broadcast()
	l.mu.Unlock()
}

// step runs the oldest queued task on the calling goroutine (manual mode)
// and reports whether there was one.
func (l *fakeLoop) step() bool {
	l.mu.Lock()
	if len(l.tasks) == 0 {
		l.mu.Unlock()
		return false
	}
	fn := l.tasks[0]
	l.tasks[0] = nil
	l.tasks = l.tasks[1:]
	l.mu.Unlock()
	l.exec(fn)
	return true
}

// drain runs tasks on the calling goroutine until none is left, including
// tasks queued meanwhile, and returns how many ran.
func (l *fakeLoop) drain() int {
	n := 0
	for l.step() {
		n++
	}
	return n
}

// pending reports how many tasks wait.
func (l *fakeLoop) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tasks)
}

// idle reports whether no task waits or runs.
func (l *fakeLoop) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tasks) == 0 && !l.running
}

// stopAndDrop mimics gnet's engine stop: queued tasks are dropped without
// running and later ones are never run, so their callbacks never come.
func (l *fakeLoop) stopAndDrop() (dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dropped = len(l.tasks)
	l.tasks, l.stopped = nil, true
	return dropped
}

// writeRec describes one writev the fake performed.
type writeRec struct {
	async  bool // from an AsyncWritev task; false for a synchronous Writev
	slices int
	bytes  int
}

var errEngineStopped = errors.New("fake: engine stopped")

// fakeConn implements Conn on a fakeLoop.
type fakeConn struct {
	t    testing.TB
	loop *fakeLoop
	addr net.Addr

	// Fixed before use.
	sockTake int               // bytes the "socket" takes per write; the rest is copied to the outbound buffer. <= 0: half.
	onWritev func(bs [][]byte) // on the loop, before the fake reads bs
	onClose  func()            // on the loop, when the connection closes (the server's OnClose)

	rejectAsync atomic.Bool // AsyncWritev fails (engine stopped) and never calls back
	failWritev  atomic.Bool // the next Writev fails and closes the connection, as gnet does

	mu       sync.Mutex
	closed   bool
	out      []byte // everything written, in order: the peer's view
	writes   []writeRec
	inflight map[*[]byte]int // iov arrays handed to AsyncWritev whose callback has not started

	asyncCalls atomic.Int64 // accepted AsyncWritev calls
	callbacks  atomic.Int64 // callbacks made
	closeCalls atomic.Int64
}

var fakeAddrs atomic.Uint32

func newConn(t testing.TB, loop *fakeLoop) *fakeConn {
	port := uint16(10000 + fakeAddrs.Add(1)%50000)
	return &fakeConn{
		t:        t,
		loop:     loop,
		addr:     net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)),
		inflight: map[*[]byte]int{},
	}
}

var _ Conn = (*fakeConn)(nil)

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }

// AsyncWritev queues a write task on the loop. It may be called from any
// goroutine; it reads only the header of bs, never its elements, since the
// caller may have handed the batch to a concurrent close.
func (c *fakeConn) AsyncWritev(bs [][]byte, cb gnet.AsyncCallback) error {
	if c.rejectAsync.Load() {
		return errEngineStopped
	}
	if len(bs) > MaxBatchSlices {
		c.t.Errorf("AsyncWritev with %d slices > IOV_MAX %d: writev would fail with EINVAL", len(bs), MaxBatchSlices)
	}
	key := c.own(bs)
	c.asyncCalls.Add(1)
	c.loop.post(func() {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		var err error
		if closed {
			err = net.ErrClosed // gnet: if !c.opened { return net.ErrClosed }, bytes unread
		} else {
			c.write(bs, true)
		}
		c.disown(key)
		c.callbacks.Add(1)
		_ = cb(nil, err)
	})
	return nil
}

// own records that the caller handed bs's backing array to a pending task,
// and fails the test if another pending task already holds it: every batch
// must own its slice of slices, since the write rewrites it in place.
func (c *fakeConn) own(bs [][]byte) *[]byte {
	if len(bs) == 0 {
		return nil
	}
	key := unsafe.SliceData(bs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[key] > 0 {
		c.t.Errorf("AsyncWritev reuses the [][]byte of a batch still in flight")
	}
	c.inflight[key]++
	return key
}

func (c *fakeConn) disown(key *[]byte) {
	if key == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[key]--; c.inflight[key] == 0 {
		delete(c.inflight, key)
	}
}

// Writev writes bs synchronously. Like gnet's, it is only for the loop.
func (c *fakeConn) Writev(bs [][]byte) (int, error) {
	if !c.loop.onLoop() {
		c.t.Errorf("Writev called off the event loop (goroutine %d)", goid())
	}
	if len(bs) > 0 {
		c.mu.Lock()
		shared := c.inflight[unsafe.SliceData(bs)] > 0
		c.mu.Unlock()
		if shared {
			c.t.Errorf("Writev with the [][]byte of a batch still in flight")
		}
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if c.failWritev.Swap(false) {
		// gnet's writev closes the connection (OnClose runs) and returns.
		c.closeNow()
		return 0, fmt.Errorf("writev: %w", errors.New("fake: connection reset"))
	}
	return c.write(bs, false), nil
}

// write performs one writev of bs on the loop, as gnet's conn.writev does.
func (c *fakeConn) write(bs [][]byte, async bool) int {
	if len(bs) > MaxBatchSlices {
		c.t.Errorf("writev with %d slices > IOV_MAX %d: EINVAL", len(bs), MaxBatchSlices)
	}
	if c.onWritev != nil {
		c.onWritev(bs)
	}
	total := 0
	for _, b := range bs {
		total += len(b)
	}
	sent := c.sockTake
	if sent <= 0 {
		sent = total / 2
	}
	sent = min(sent, total)
	c.mu.Lock()
	defer c.mu.Unlock()
	// The socket takes sent bytes ...
	rest := sent
	for _, b := range bs {
		n := min(rest, len(b))
		c.out = append(c.out, b[:n]...)
		if rest -= n; rest == 0 {
			break
		}
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
	c.writes = append(c.writes, writeRec{async: async, slices: len(bs), bytes: total})
	return total
}

// Close closes the connection asynchronously, as gnet's Close does.
func (c *fakeConn) Close() error {
	c.closeCalls.Add(1)
	c.loop.post(c.closeNow)
	return nil
}

// closeNow closes the connection on the loop (a peer reset, a read error, or
// the task queued by Close) and calls the OnClose hook once.
func (c *fakeConn) closeNow() {
	c.mu.Lock()
	was := c.closed
	c.closed = true
	c.mu.Unlock()
	if !was && c.onClose != nil {
		c.onClose()
	}
}

// closeOnLoop closes the connection now, acting as the loop (manual mode).
func (c *fakeConn) closeOnLoop() { c.loop.exec(c.closeNow) }

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

// Test frames: [size uint32 LE][sender uint16 LE][seq uint32 LE][payload],
// size counting the whole frame, payload byte i = byte(sender*31 + seq + i).
// A frame read from poisoned (released) memory or cut by a shared iov fails
// to parse.

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

// newSession makes a tracked session on a new fake connection whose OnClose
// removes it from m, as the server does.
func newSession(t testing.TB, m *Manager, loop *fakeLoop) (*Session, *fakeConn) {
	c := newConn(t, loop)
	s := m.NewSession(c)
	c.onClose = func() { m.Remove(s) }
	m.Add(s)
	return s, c
}
