package sessionmgr

import (
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/sendbuffer"
)

func TestSessionAccessors(t *testing.T) {
	m := NewManager(Config{})
	loop := newLoop(t)
	s, c := newSession(t, m, loop)
	if s.ID() == 0 {
		t.Error("ID() = 0; ids start at 1")
	}
	if s.Manager() != m {
		t.Error("Manager() is not the Manager that made the session")
	}
	if s.RemoteAddr() != c.RemoteAddr() {
		t.Errorf("RemoteAddr() = %v; want %v", s.RemoteAddr(), c.RemoteAddr())
	}
	if got := s.Context(); got != nil {
		t.Errorf("Context() = %v before SetContext; want nil", got)
	}
	s.SetContext("player-1")
	if got := s.Context(); got != "player-1" {
		t.Errorf("Context() = %v; want player-1", got)
	}
	s.SetContext(nil)
	if got := s.Context(); got != nil {
		t.Errorf("Context() = %v after SetContext(nil); want nil", got)
	}
	if f, b := s.Stats(); f != 0 || b != 0 {
		t.Errorf("Stats() = %d, %d on a new session; want 0, 0", f, b)
	}
	if got := s.Queued(); got != 0 {
		t.Errorf("Queued() = %d on a new session; want 0", got)
	}
}

func TestSessionCloseWith(t *testing.T) {
	errKick := errors.New("kicked")
	errLater := errors.New("later")
	m := NewManager(Config{})
	loop := newLoop(t)
	s, c := newSession(t, m, loop)

	if s.CloseReason() != nil {
		t.Fatalf("CloseReason() = %v before any close; want nil", s.CloseReason())
	}
	s.SetCloseReason(nil) // ignored
	if err := s.CloseWith(errKick); err != nil {
		t.Fatalf("CloseWith: %v", err)
	}
	s.SetCloseReason(errLater)
	if err := s.CloseWith(errLater); err != nil {
		t.Fatalf("second CloseWith: %v", err)
	}
	if !errors.Is(s.CloseReason(), errKick) {
		t.Errorf("CloseReason() = %v; want the first reason, %v", s.CloseReason(), errKick)
	}
	if got := c.closeCalls.Load(); got != 2 {
		t.Errorf("conn.Close called %d times; want 2 (gnet's Close is idempotent)", got)
	}
	// gnet closes on the loop and calls OnClose, which removes the session.
	loop.drain()
	if m.Get(s.ID()) != nil || m.Len() != 0 {
		t.Error("session still tracked after its connection closed")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after close: %v", err)
	}
	loop.drain()
}

// TestSendFIFO sends from one goroutine and checks the peer receives every
// frame once, in order, whatever the loop and write shapes.
func TestSendFIFO(t *testing.T) {
	tests := []struct {
		name     string
		frames   int
		size     func(i int) int
		sockTake int  // bytes the socket takes per write; 0: half
		running  bool // loop on its own goroutine; else stepped by the test after every third Send
	}{
		{name: "one frame", frames: 1, size: func(int) int { return 100 }},
		{name: "stepped, small frames", frames: 300, size: func(int) int { return 16 }},
		{name: "stepped, mixed sizes, socket takes 1 byte", frames: 200, size: func(i int) int { return frameHeader + i*37%900 }, sockTake: 1},
		{name: "running loop, small frames", frames: 3000, size: func(int) int { return 12 }, running: true},
		{name: "running loop, large frames", frames: 40, size: func(i int) int { return 30000 + i }, running: true},
		{name: "running loop, empty-payload frames", frames: 500, size: func(int) int { return frameHeader }, running: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := NewManager(Config{})
			loop := newLoop(t)
			if tt.running {
				loop.start()
			}
			s, c := newSession(t, m, loop)
			c.sockTake = tt.sockTake
			total := 0
			for i := range tt.frames {
				size := tt.size(i)
				total += size
				if err := s.Send(newFrame(0, i, size)); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
				if !tt.running && i%3 == 2 {
					loop.step()
				}
			}
			if !tt.running {
				loop.drain()
			}
			if !waitFor(5*time.Second, func() bool { return c.outLen() == total }) {
				t.Fatalf("peer got %d bytes; want %d (queued %d)", c.outLen(), total, s.Queued())
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, tt.frames)
			waitIdle(t, loop, s) // the last callback may still be counting
			if f, b := s.Stats(); f != uint64(tt.frames) || b != uint64(total) {
				t.Errorf("Stats() = %d frames, %d bytes; want %d, %d", f, b, tt.frames, total)
			}
			m.Remove(s)
		})
	}
}

// TestSendConcurrentSendersKeepTheirOrder has several goroutines send to one
// session: every frame arrives once and each sender's frames keep their
// order.
func TestSendConcurrentSendersKeepTheirOrder(t *testing.T) {
	checkBuffers(t)
	const senders, perSender = 4, 500
	m := NewManager(Config{})
	loop := newLoop(t).start()
	s, c := newSession(t, m, loop)
	c.sockTake = 7
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range perSender {
				if err := s.Send(newFrame(g, i, frameHeader+i%50)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitIdle(t, loop, s)
	checkPerSenderOrder(t, parseFrames(t, c.output()), senders, perSender)
	m.Remove(s)
}

// TestSendExactlyOnceNoLostWakeup races senders, in bursts with pauses,
// against the loop's write callbacks (async writes, synchronous drains,
// partial writes), many times: every frame arrives exactly once, intact
// (a frame read after its release would show debug mode's poison), in each
// sender's order, and every buffer is released. A lost wake-up leaves the
// last frames queued with nobody to send them, and the wait for the queue to
// drain fails. TestUnregisterKeepsALateSend pins the narrowest such window
// deterministically.
func TestSendExactlyOnceNoLostWakeup(t *testing.T) {
	tests := []struct {
		name       string
		senders    int
		perSender  int
		burst      int
		iterations int
		budget     time.Duration
	}{
		{name: "one sender, bursts of 1", senders: 1, perSender: 200, burst: 1, iterations: 40, budget: 2 * time.Second},
		{name: "four senders, bursts of 8", senders: 4, perSender: 150, burst: 8, iterations: 40, budget: 2 * time.Second},
		{name: "eight senders, bursts of 64", senders: 8, perSender: 128, burst: 64, iterations: 20, budget: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			deadline := time.Now().Add(tt.budget)
			for it := 0; it < tt.iterations && time.Now().Before(deadline); it++ {
				m := NewManager(Config{})
				loop := newLoop(t).start()
				s, c := newSession(t, m, loop)
				c.sockTake = 1 + rand.IntN(64)
				var wg sync.WaitGroup
				for g := range tt.senders {
					wg.Go(func() {
						for i := range tt.perSender {
							if err := s.Send(newFrame(g, i, frameHeader+rand.IntN(24))); err != nil {
								t.Errorf("Send: %v", err)
								return
							}
							if i%tt.burst == tt.burst-1 {
								if rand.IntN(4) == 0 {
									time.Sleep(time.Duration(rand.IntN(30)) * time.Microsecond)
								} else {
									runtime.Gosched()
								}
							}
						}
					})
				}
				wg.Wait()
				waitIdle(t, loop, s)
				checkPerSenderOrder(t, parseFrames(t, c.output()), tt.senders, tt.perSender)
				m.Remove(s)
				loop.stop()
				if n := sendbuffer.Live(); n != 0 {
					t.Fatalf("iteration %d: %d buffers live after every frame arrived", it, n)
				}
			}
		})
	}
}

// TestUnregisterKeepsALateSend drives, by hand, the interleaving that a
// stress test can hardly hit: the write callback's last fill finds the queue
// empty, a Send queues a frame and sees the in-flight flag still set (so it
// leaves the frame to the callback), and only then does the callback clear
// the flag. unregister must notice the frame and take the flag back;
// otherwise the frame waits for some later Send, possibly forever. The
// window lies between two statements of the callback, narrower than Send's
// own critical section, so in a stress test only a preemption opens it.
func TestUnregisterKeepsALateSend(t *testing.T) {
	tests := []struct {
		name            string
		sendBeforeClear bool // a Send between the last fill and the clear
		sendAfterClear  bool // a Send after the callback has let go
		wantTakeBack    bool // unregister reports the callback must go on
		wantAsync       int  // AsyncWritev calls in all
	}{
		{name: "nothing queued: the flag is cleared"},
		{name: "Send between the last fill and the clear: taken back", sendBeforeClear: true, wantTakeBack: true, wantAsync: 1},
		{name: "Send after the clear arms its own write", sendAfterClear: true, wantAsync: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := NewManager(Config{})
			loop := newLoop(t)
			s, c := newSession(t, m, loop)
			frames := 0

			// A write callback holds the flag and its last fill found
			// nothing to send.
			s.sending.Store(true)
			s.mu.Lock()
			n := s.fill(&s.sync)
			s.mu.Unlock()
			if n != 0 {
				t.Fatalf("fill of an empty queue = %d", n)
			}
			if tt.sendBeforeClear {
				if err := s.Send(newFrame(0, frames, 20)); err != nil {
					t.Fatal(err)
				}
				frames++
				if c.asyncCalls.Load() != 0 {
					t.Fatal("Send armed a write while the flag was held")
				}
			}
			took := s.unregister()
			if took != tt.wantTakeBack || s.sending.Load() != tt.wantTakeBack {
				t.Fatalf("unregister() = %v, sending = %v; want %v, %v", took, s.sending.Load(), tt.wantTakeBack, tt.wantTakeBack)
			}
			if took {
				s.flush() // the callback goes on with the flag it took back
			}
			if tt.sendAfterClear {
				if err := s.Send(newFrame(0, frames, 20)); err != nil {
					t.Fatal(err)
				}
				frames++
			}
			if got := c.asyncCalls.Load(); got != int64(tt.wantAsync) {
				t.Errorf("%d AsyncWritev calls; want %d", got, tt.wantAsync)
			}
			loop.drain()
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, frames)
			if s.Queued() != 0 || s.sending.Load() {
				t.Errorf("Queued() = %d, sending = %v at the end; want 0, false (lost wake-up)", s.Queued(), s.sending.Load())
			}
			m.Remove(s)
		})
	}
}

// TestBatchLimits queues many buffers while the loop is held up, then lets
// it run: no write exceeds MaxBatchSlices slices (IOV_MAX), none exceeds
// MaxBatchBytes unless it is one oversized buffer, and order is kept.
func TestBatchLimits(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		// wantWrites is the slices per write: the first write is the
		// AsyncWritev armed by the first Send, the rest are drained in its
		// callback.
		wantWrites []int
		wantAsync  int // AsyncWritev calls
	}{
		{
			name:       "5000 tiny buffers: 1024 slices at most",
			sizes:      repeat(5000, frameHeader),
			wantWrites: []int{1, 1024, 1024, 1024, 1024, 903},
			wantAsync:  1,
		},
		{
			name:       "100 KiB buffers: two per MaxBatchBytes",
			sizes:      repeat(7, 100<<10),
			wantWrites: []int{1, 2, 2, 2},
			wantAsync:  1,
		},
		{
			name:       "an oversized buffer goes alone",
			sizes:      []int{100, 100, MaxBatchBytes + 1000, 100, 100},
			wantWrites: []int{1, 1, 1, 2},
			wantAsync:  1,
		},
		{
			name:       "exactly MaxBatchBytes fits one batch",
			sizes:      []int{10, MaxBatchBytes / 2, MaxBatchBytes / 2, 10},
			wantWrites: []int{1, 2, 1},
			wantAsync:  1,
		},
		{
			// The callback drains syncRounds batches synchronously, then
			// hands the rest to a fresh AsyncWritev behind the loop's
			// other tasks.
			name:       "more than syncRounds batches: the rest goes to a new task",
			sizes:      repeat(1+(syncRounds+2)*MaxBatchSlices, frameHeader),
			wantWrites: append(append([]int{1}, repeat(syncRounds, MaxBatchSlices)...), MaxBatchSlices, MaxBatchSlices),
			wantAsync:  2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := NewManager(Config{})
			loop := newLoop(t) // stepped: nothing runs until drain
			s, c := newSession(t, m, loop)
			total := 0
			for i, size := range tt.sizes {
				total += size
				if err := s.Send(newFrame(0, i, size)); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := s.Queued(), total-tt.sizes[0]; got != want {
				t.Errorf("Queued() = %d while the loop is held up; want %d (all but the in-flight first frame)", got, want)
			}
			loop.drain()
			writes := c.writeLog()
			var got []int
			for i, w := range writes {
				got = append(got, w.slices)
				if w.slices > MaxBatchSlices {
					t.Errorf("write %d: %d slices > MaxBatchSlices", i, w.slices)
				}
				if w.bytes > MaxBatchBytes && w.slices != 1 {
					t.Errorf("write %d: %d bytes in %d slices > MaxBatchBytes", i, w.bytes, w.slices)
				}
			}
			if !slices.Equal(got, tt.wantWrites) {
				t.Errorf("slices per write = %v; want %v", got, tt.wantWrites)
			}
			if a := c.asyncCalls.Load(); a != int64(tt.wantAsync) {
				t.Errorf("%d AsyncWritev calls; want %d", a, tt.wantAsync)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, len(tt.sizes))
			if s.Queued() != 0 || s.sending.Load() {
				t.Errorf("after drain: Queued() = %d, sending = %v; want 0, false", s.Queued(), s.sending.Load())
			}
			m.Remove(s)
		})
	}
}

// TestSendOnClosedSession: Send after the session is removed returns
// ErrSessionClosed and releases the reference it was handed.
func TestSendOnClosedSession(t *testing.T) {
	checkBuffers(t)
	m := NewManager(Config{})
	loop := newLoop(t)
	s, c := newSession(t, m, loop)
	c.closeOnLoop() // OnClose removes the session
	b := newFrame(0, 0, 32)
	b.Retain() // keep one to watch the count
	err := s.Send(b)
	if !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Send on a closed session = %v; want ErrSessionClosed", err)
	}
	if b.Refs() != 1 {
		t.Errorf("Refs() = %d after the failed Send; want 1 (Send released its reference)", b.Refs())
	}
	b.Release()
	if n := sendbuffer.Live(); n != 0 {
		t.Errorf("Live() = %d; want 0", n)
	}
	if c.asyncCalls.Load() != 0 || loop.pending() != 0 {
		t.Error("a closed session armed a write")
	}
}

// TestRemoveReleasesEverything: closing a session releases what it queued
// and the batch still in flight, whether gnet later runs the write task on
// the closed connection (callback with net.ErrClosed, bytes unread) or drops
// it at engine stop (no callback at all). Nothing is released twice: debug
// mode panics on a double release.
func TestRemoveReleasesEverything(t *testing.T) {
	tests := []struct {
		name string
		// close closes the connection and removes the session as the server
		// would; it reports whether gnet will still run the pending write
		// task.
		close      func(c *fakeConn, loop *fakeLoop) (taskRuns bool)
		frames     int
		wantFrames int // unsent frames Remove reports (the in-flight one is not counted)
	}{
		{
			name: "peer closed: pending task calls back with ErrClosed",
			close: func(c *fakeConn, _ *fakeLoop) bool {
				c.closeOnLoop() // OnClose calls Remove
				return true
			},
			frames: 10, wantFrames: 9,
		},
		{
			name: "peer closed with only the in-flight batch",
			close: func(c *fakeConn, _ *fakeLoop) bool {
				c.closeOnLoop()
				return true
			},
			frames: 1, wantFrames: 0,
		},
		{
			name: "engine stopped: queued tasks dropped, server removes leftovers",
			close: func(c *fakeConn, loop *fakeLoop) bool {
				loop.stopAndDrop()
				c.onClose() // the server's safety net after Stop: Remove
				return false
			},
			frames: 5, wantFrames: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := NewManager(Config{})
			loop := newLoop(t)
			c := newConn(t, loop)
			s := m.NewSession(c)
			m.Add(s)
			var gotFrames, gotBytes int
			c.onClose = func() { gotFrames, gotBytes = m.Remove(s) }
			for i := range tt.frames {
				if err := s.Send(newFrame(0, i, 40)); err != nil {
					t.Fatal(err)
				}
			}
			if loop.pending() != 1 {
				t.Fatalf("%d tasks queued; want the one AsyncWritev", loop.pending())
			}
			taskRuns := tt.close(c, loop)
			if gotFrames != tt.wantFrames || gotBytes != 40*tt.wantFrames {
				t.Errorf("Remove = %d frames, %d bytes unsent; want %d, %d", gotFrames, gotBytes, tt.wantFrames, 40*tt.wantFrames)
			}
			if n := sendbuffer.Live(); n != 0 {
				t.Fatalf("Live() = %d right after Remove; want 0 (queue and in-flight batch released)", n)
			}
			loop.drain() // a late callback must not release again (debug mode panics)
			wantCallbacks := int64(0)
			if taskRuns {
				wantCallbacks = 1
			}
			if got := c.callbacks.Load(); got != wantCallbacks {
				t.Errorf("%d callbacks; want %d", got, wantCallbacks)
			}
			if c.outLen() != 0 {
				t.Errorf("%d bytes written on a closed connection", c.outLen())
			}
			if s.sending.Load() && taskRuns {
				t.Error("in-flight flag still set after the ErrClosed callback")
			}
			if f, b := m.Remove(s); f != 0 || b != 0 {
				t.Errorf("second Remove = %d, %d; want 0, 0", f, b)
			}
			if err := s.Send(newFrame(0, 99, frameHeader)); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("Send after Remove = %v; want ErrSessionClosed", err)
			}
			if fr, _ := s.Stats(); fr != 0 {
				t.Errorf("Stats() = %d frames sent; want 0", fr)
			}
		})
	}
}

// TestAsyncWritevErrorReleasesBatch: when AsyncWritev fails (the engine has
// stopped) no callback will come, so the session releases the batch itself
// and a later Send can arm a write again.
func TestAsyncWritevErrorReleasesBatch(t *testing.T) {
	checkBuffers(t)
	m := NewManager(Config{})
	loop := newLoop(t)
	s, c := newSession(t, m, loop)
	c.rejectAsync.Store(true)
	for i := range 3 {
		if err := s.Send(newFrame(0, i, 20)); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if n := sendbuffer.Live(); n != 0 {
			t.Fatalf("Send %d: Live() = %d after AsyncWritev failed; want 0", i, n)
		}
		if s.sending.Load() {
			t.Fatalf("Send %d: in-flight flag left set after AsyncWritev failed", i)
		}
	}
	if loop.pending() != 0 || c.callbacks.Load() != 0 {
		t.Error("a rejected AsyncWritev ran")
	}
	if f, b := s.Stats(); f != 0 || b != 0 {
		t.Errorf("Stats() = %d, %d; want nothing counted as sent", f, b)
	}
	// The engine is back (a test-only notion): the next Send writes.
	c.rejectAsync.Store(false)
	if err := s.Send(newFrame(0, 0, 20)); err != nil {
		t.Fatal(err)
	}
	loop.drain()
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, 1)
	m.Remove(s)
}

// TestWritevErrorInCallback: a synchronous Writev that fails in the write
// callback closes the connection (gnet calls OnClose from inside writev);
// the session releases everything exactly once and stops writing.
func TestWritevErrorInCallback(t *testing.T) {
	checkBuffers(t)
	var onSendBytes atomic.Int64
	m := NewManager(Config{OnSend: func(_ *Session, n int) { onSendBytes.Add(int64(n)) }})
	loop := newLoop(t)
	s, c := newSession(t, m, loop)
	if err := s.Send(newFrame(0, 0, 30)); err != nil { // armed: in flight
		t.Fatal(err)
	}
	for i := 1; i < 5; i++ { // queued behind it
		if err := s.Send(newFrame(0, i, 30)); err != nil {
			t.Fatal(err)
		}
	}
	c.failWritev.Store(true)
	loop.drain() // async write of frame 0 succeeds; the Writev of 1..4 fails
	if n := sendbuffer.Live(); n != 0 {
		t.Fatalf("Live() = %d; want 0", n)
	}
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, 1)
	if m.Get(s.ID()) != nil {
		t.Error("session still tracked after its connection failed")
	}
	if err := s.Send(newFrame(0, 5, 30)); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Send after the failed write = %v; want ErrSessionClosed", err)
	}
	// Only frame 0 reached the socket.
	if f, b := s.Stats(); f != 1 || b != 30 {
		t.Errorf("Stats() = %d frames, %d bytes; want 1, 30: a failed writev sent nothing", f, b)
	}
	if got := onSendBytes.Load(); got != 30 {
		t.Errorf("OnSend reported %d bytes; want 30", got)
	}
}

// TestOnSendAndStats: the OnSend hook runs on the loop once per write, with
// byte counts that add up to everything sent; Stats agrees.
func TestOnSendAndStats(t *testing.T) {
	tests := []struct {
		name    string
		sizes   []int
		running bool
	}{
		{name: "one frame", sizes: []int{64}},
		{name: "held-up loop, several batches", sizes: append(repeat(2000, 10), 200<<10, 60<<10, 11)},
		{name: "running loop", sizes: repeat(3000, 33), running: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			var (
				mu    sync.Mutex
				calls []int
			)
			var loop *fakeLoop
			m := NewManager(Config{OnSend: func(s *Session, n int) {
				if !loop.onLoop() {
					t.Error("OnSend called off the loop")
				}
				mu.Lock()
				calls = append(calls, n)
				mu.Unlock()
			}})
			loop = newLoop(t)
			if tt.running {
				loop.start()
			}
			s, c := newSession(t, m, loop)
			total := 0
			for i, size := range tt.sizes {
				total += size
				if err := s.Send(newFrame(0, i, size)); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.running {
				loop.drain()
			}
			waitIdle(t, loop, s)
			mu.Lock()
			sum := 0
			for _, n := range calls {
				sum += n
			}
			nCalls := len(calls)
			mu.Unlock()
			if sum != total {
				t.Errorf("OnSend byte counts add up to %d; want %d", sum, total)
			}
			if w := len(c.writeLog()); nCalls != w {
				t.Errorf("OnSend called %d times for %d writes", nCalls, w)
			}
			if f, b := s.Stats(); f != uint64(len(tt.sizes)) || b != uint64(total) {
				t.Errorf("Stats() = %d, %d; want %d, %d", f, b, len(tt.sizes), total)
			}
			m.Remove(s)
		})
	}
}

// TestCloseRacesSend closes sessions on their loop while other goroutines
// keep sending: every buffer is released exactly once.
func TestCloseRacesSend(t *testing.T) {
	checkBuffers(t)
	for it := range 20 {
		m := NewManager(Config{})
		loop := newLoop(t).start()
		s, c := newSession(t, m, loop)
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := range 200 {
					err := s.Send(newFrame(g, i, 16))
					if errors.Is(err, ErrSessionClosed) {
						return
					}
					if err != nil {
						t.Errorf("Send: %v", err)
						return
					}
				}
			})
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		_ = c.Close()
		wg.Wait()
		if !waitFor(5*time.Second, loop.idle) {
			t.Fatalf("iteration %d: loop never went idle", it)
		}
		if m.Len() != 0 {
			t.Fatalf("iteration %d: session still tracked after close", it)
		}
		if n := sendbuffer.Live(); n != 0 {
			t.Fatalf("iteration %d: Live() = %d after close", it, n)
		}
		// What arrived is a prefix of each sender's frames, in order.
		next := map[int]int{}
		for _, id := range parseFrames(t, c.output()) {
			if id.seq != next[id.sender] {
				t.Fatalf("iteration %d: sender %d seq %d; want %d", it, id.sender, id.seq, next[id.sender])
			}
			next[id.sender]++
		}
		loop.stop()
	}
}

func TestErrSessionClosed(t *testing.T) {
	if got, want := ErrSessionClosed.Error(), "herald/sessionmgr: session closed"; got != want {
		t.Errorf("ErrSessionClosed = %q; want %q", got, want)
	}
	if errors.Is(ErrSessionClosed, net.ErrClosed) {
		t.Error("ErrSessionClosed should not be net.ErrClosed")
	}
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

// waitIdle waits until the session has nothing queued or in flight and its
// loop is idle.
func waitIdle(t testing.TB, loop *fakeLoop, s *Session) {
	t.Helper()
	ok := waitFor(5*time.Second, func() bool {
		return loop.idle() && s.Queued() == 0 && !s.sending.Load()
	})
	if !ok {
		t.Fatalf("session never went idle: Queued() = %d, sending = %v, %d tasks pending (lost wake-up?)",
			s.Queued(), s.sending.Load(), loop.pending())
	}
}

func repeat(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}
