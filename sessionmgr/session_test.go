package sessionmgr

import (
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/sendbuffer"
)

func TestSessionAccessors(t *testing.T) {
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
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
	if got := s.Pending(); got != 0 {
		t.Errorf("Pending() = %d on a new session; want 0", got)
	}
	if !s.Writable() || s.Dropped() != 0 {
		t.Errorf("Writable() = %v, Dropped() = %d on a new session; want true, 0", s.Writable(), s.Dropped())
	}
	if fl.executes.Load() != 0 || fl.pending() != 0 {
		t.Error("making a session queued a loop task")
	}
}

func TestSessionCloseWith(t *testing.T) {
	errKick := errors.New("kicked")
	errLater := errors.New("later")
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)

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
	if m.Get(s.ID()) != s {
		t.Error("session untracked before the loop ran the close: Close must be asynchronous")
	}
	// gnet closes on the loop and calls OnClose, which removes the session.
	fl.drain()
	if m.Get(s.ID()) != nil || m.Len() != 0 {
		t.Error("session still tracked after its connection closed")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after close: %v", err)
	}
	fl.drain()
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
		{name: "stepped, mixed sizes around coalesceMax, socket takes 1 byte", frames: 200, size: func(i int) int { return frameHeader + i*37%1100 }, sockTake: 1},
		{name: "running loop, small frames", frames: 3000, size: func(int) int { return 12 }, running: true},
		{name: "running loop, large frames", frames: 40, size: func(i int) int { return 30000 + i }, running: true},
		{name: "running loop, header-only frames", frames: 500, size: func(int) int { return frameHeader }, running: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			if tt.running {
				fl.start()
			}
			s, c := newSession(t, m, fl)
			c.sockTake = tt.sockTake
			total := 0
			for i := range tt.frames {
				size := tt.size(i)
				total += size
				if err := s.Send(newFrame(0, i, size)); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
				if !tt.running && i%3 == 2 {
					fl.step()
				}
			}
			if !tt.running {
				fl.drain()
			}
			waitIdle(t, fl, s)
			if got := c.outLen(); got != total {
				t.Fatalf("peer got %d bytes; want %d", got, total)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, tt.frames)
			if f, b := s.Stats(); f != uint64(tt.frames) || b != uint64(total) {
				t.Errorf("Stats() = %d frames, %d bytes; want %d, %d", f, b, tt.frames, total)
			}
			remove(fl, m, s)
		})
	}
}

// TestSendConcurrentSendersKeepTheirOrder has several goroutines send to one
// session: every frame arrives once and each sender's frames keep their
// order.
func TestSendConcurrentSendersKeepTheirOrder(t *testing.T) {
	checkBuffers(t)
	const senders, perSender = 4, 500
	m := newManager(t, Config{})
	fl := newLoop(t).start()
	s, c := newSession(t, m, fl)
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
	waitIdle(t, fl, s)
	checkPerSenderOrder(t, parseFrames(t, c.output()), senders, perSender)
	remove(fl, m, s)
}

// TestSendExactlyOnceNoLostWakeup races senders, in bursts with pauses,
// against the loops' flush tasks, many times: sessions share loops (so one
// task flushes several of them, and Sends land while it runs), every frame
// arrives exactly once, intact (a frame read after its release would show
// debug mode's poison), in each sender's order, and every buffer is
// released. A lost wake-up leaves frames queued with no task to write them,
// and the wait for every session to settle fails. TestLostWakeupWindows pins
// the individual windows deterministically.
func TestSendExactlyOnceNoLostWakeup(t *testing.T) {
	tests := []struct {
		name       string
		loops      int
		sessions   int // spread over the loops
		senders    int // each sends perSender frames to every session
		perSender  int
		burst      int
		maxSize    int // frame sizes are frameHeader..maxSize
		iterations int
		budget     time.Duration
	}{
		{name: "one session, one sender, bursts of 1", loops: 1, sessions: 1, senders: 1, perSender: 200, burst: 1, maxSize: 40, iterations: 40, budget: 1500 * time.Millisecond},
		{name: "one session, four senders, bursts of 8", loops: 1, sessions: 1, senders: 4, perSender: 150, burst: 8, maxSize: 40, iterations: 40, budget: 1500 * time.Millisecond},
		{name: "six sessions on two loops, three senders, bursts of 16", loops: 2, sessions: 6, senders: 3, perSender: 60, burst: 16, maxSize: 700, iterations: 20, budget: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			deadline := time.Now().Add(tt.budget)
			for it := 0; it < tt.iterations && time.Now().Before(deadline); it++ {
				m := newManager(t, Config{})
				fls := make([]*fakeLoop, tt.loops)
				for i := range fls {
					fls[i] = newLoop(t).start()
				}
				ss := make([]*Session, tt.sessions)
				cs := make([]*fakeConn, tt.sessions)
				for i := range ss {
					ss[i], cs[i] = newSession(t, m, fls[i%tt.loops])
					cs[i].sockTake = 1 + rand.IntN(64)
				}
				var wg sync.WaitGroup
				for g := range tt.senders {
					wg.Go(func() {
						for i := range tt.perSender {
							for k, s := range ss {
								if err := s.Send(newFrame(g, i, frameHeader+(i*7+k)%(tt.maxSize-frameHeader+1))); err != nil {
									t.Errorf("Send: %v", err)
									return
								}
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
				for i, s := range ss {
					waitIdle(t, fls[i%tt.loops], s)
					checkPerSenderOrder(t, parseFrames(t, cs[i].output()), tt.senders, tt.perSender)
				}
				for i, s := range ss {
					remove(fls[i%tt.loops], m, s)
				}
				for _, fl := range fls {
					fl.stop()
				}
				if n := sendbuffer.Live(); n != 0 {
					t.Fatalf("iteration %d: %d buffers live after every frame arrived", it, n)
				}
			}
		})
	}
}

// TestSendOnClosedSession: Send after the session is removed returns
// ErrSessionClosed, releases the reference it was handed and arms nothing.
func TestSendOnClosedSession(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
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
	if fl.executes.Load() != 0 || fl.pending() != 0 || fl.state().armed {
		t.Error("a Send on a closed session armed a flush")
	}
}

// TestRemoveReleasesEverything: whatever is on its way to a session when its
// connection goes away is released exactly once (debug mode panics on a
// double release) and never written. Frames the loop has taken for the
// session (drained, or held) are released by the Loop and counted by Remove
// as unsent; frames still in the Loop's queue are released when the loop
// next drains it, or by Discard once the engine has stopped.
func TestRemoveReleasesEverything(t *testing.T) {
	tests := []struct {
		name string
		// drained: a callback on another session of the loop drains the
		// queue first, so the frames are pending for s (and a flush task
		// is armed for it).
		drained bool
		// close closes the connection and removes the session as the
		// server would, then makes sure the loop runs or is discarded.
		close      func(c *fakeConn, fl *fakeLoop)
		wantFrames int // unsent frames Remove reports
		wantLive   int // buffers live right after the close
		wantTasks  int // tasks run after the close
	}{
		{
			name:  "peer reset before the flush task ran",
			close: func(c *fakeConn, fl *fakeLoop) { c.closeOnLoop() }, // OnClose calls Remove
			// Not yet drained: not counted, released by the task.
			wantFrames: 0, wantLive: 10, wantTasks: 1,
		},
		{
			name:       "peer reset after the loop took the frames",
			drained:    true,
			close:      func(c *fakeConn, fl *fakeLoop) { c.closeOnLoop() },
			wantFrames: 10, wantLive: 10, wantTasks: 1,
		},
		{
			name: "engine stopped: task dropped, Remove, then Discard",
			close: func(c *fakeConn, fl *fakeLoop) {
				fl.stopAndDrop()
				fl.exec(c.onClose) // the server's safety net after the loops exit
				fl.l.Discard()
			},
			wantFrames: 0, wantLive: 0,
		},
		{
			name:    "engine stopped after the loop took the frames",
			drained: true,
			close: func(c *fakeConn, fl *fakeLoop) {
				fl.stopAndDrop()
				fl.exec(c.onClose)
				fl.l.Discard()
			},
			wantFrames: 10, wantLive: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			c := newConn(t, fl)
			s := m.NewSession(c, fl.l)
			m.Add(s)
			other, _ := newSession(t, m, fl)
			var gotFrames, gotBytes int
			c.onClose = func() { gotFrames, gotBytes = m.Closed(s) }
			send := func() {
				for i := range 10 {
					if err := s.Send(newFrame(0, i, 40)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.drained {
				// LeaveCallback drains the queue, writes other and arms
				// the flush task for s.
				fl.callback(other, send)
				if n := len(pendingBufs(fl, s)); n != 10 {
					t.Fatalf("%d frames pending after the callback; want 10", n)
				}
			} else {
				send()
				if n := len(fl.queuedItems()); n != 10 {
					t.Fatalf("%d items queued; want 10", n)
				}
			}
			if fl.pending() != 1 {
				t.Fatalf("%d tasks queued; want the flush task", fl.pending())
			}
			tt.close(c, fl)
			if gotFrames != tt.wantFrames || gotBytes != 40*tt.wantFrames {
				t.Errorf("Remove = %d frames, %d bytes unsent; want %d, %d", gotFrames, gotBytes, tt.wantFrames, 40*tt.wantFrames)
			}
			if n := sendbuffer.Live(); n != int64(tt.wantLive) {
				t.Errorf("Live() = %d right after the close; want %d", n, tt.wantLive)
			}
			if ran := fl.drain(); ran != tt.wantTasks {
				t.Errorf("%d tasks ran after the close; want %d", ran, tt.wantTasks)
			}
			if n := sendbuffer.Live(); n != 0 {
				t.Fatalf("Live() = %d once the loop ran; want 0", n)
			}
			if c.writevCalls.Load() != 0 || c.outLen() != 0 {
				t.Errorf("%d Writev calls, %d bytes written for a removed session", c.writevCalls.Load(), c.outLen())
			}
			if f, b := m.Closed(s); f != 0 || b != 0 {
				t.Errorf("second Remove = %d, %d; want 0, 0", f, b)
			}
			if err := s.Send(newFrame(0, 99, frameHeader)); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("Send after Remove = %v; want ErrSessionClosed", err)
			}
			if fr, _ := s.Stats(); fr != 0 {
				t.Errorf("Stats() = %d frames sent; want 0", fr)
			}
			m.Closed(other)
			fl.drain()
		})
	}
}

// TestCloseIsOrderedAfterQueuedFlush: Close is a task on the loop, so frames
// whose flush task was queued before it are written before the connection
// closes, and frames sent after it are released by Remove.
func TestCloseIsOrderedAfterQueuedFlush(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	for i := range 3 {
		if err := s.Send(newFrame(0, i, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fl.step() // the flush task
	fl.step() // the close
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, 3)
	if !c.isClosed() || m.Len() != 0 {
		t.Fatal("connection not closed and removed")
	}
	if err := s.Send(newFrame(0, 3, 30)); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Send after close = %v; want ErrSessionClosed", err)
	}
	if fl.drain() != 0 {
		t.Error("a Send on the closed session queued a task")
	}
}

// TestWritevErrorStopsTheFlush: a Writev that fails closes the connection
// (gnet calls OnClose, hence Remove, from inside writev); the flush stops,
// the failed batch and the rest of the queue are released exactly once, the
// failed batch is not counted as sent, and the other sessions of the task
// are still written.
func TestWritevErrorStopsTheFlush(t *testing.T) {
	tests := []struct {
		name       string
		frames     int
		size       int
		failAt     int // the Writev that fails, 1-based
		wantFrames int // frames counted as sent
		wantUnsent int // frames Remove reports unsent: those the loop had taken (the failed write's included)
	}{
		{name: "first write fails", frames: 5, size: 30, failAt: 1, wantFrames: 0, wantUnsent: 5},
		// The drain writes every flushAt frames; the second write fails
		// with the rest still in the Loop's queue (released uncounted by
		// Remove: see TestEveryFrameCountedOnce).
		{name: "a later write fails", frames: 1000, size: frameHeader, failAt: 2, wantFrames: flushAt, wantUnsent: flushAt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			var onSendBytes atomic.Int64
			m := newManager(t, Config{OnSend: func(_ *Session, n int) { onSendBytes.Add(int64(n)) }})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			other, oc := newSession(t, m, fl)
			unsent := -1
			c.onClose = func() { unsent, _ = m.Closed(s) }
			for i := range tt.frames {
				if err := s.Send(newFrame(0, i, tt.size)); err != nil {
					t.Fatal(err)
				}
			}
			if err := other.Send(newFrame(1, 0, 50)); err != nil {
				t.Fatal(err)
			}
			c.failWritev(tt.failAt)
			fl.drain()
			if got := c.writevCalls.Load(); got != int64(tt.failAt) {
				t.Errorf("%d Writev calls; want %d: the flush must stop at the failure", got, tt.failAt)
			}
			if unsent != tt.wantUnsent {
				t.Errorf("Remove reported %d unsent frames; want %d", unsent, tt.wantUnsent)
			}
			if n := sendbuffer.Live(); n != 0 {
				t.Fatalf("Live() = %d after the failed write; want 0", n)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, tt.wantFrames)
			if f, b := s.Stats(); f != uint64(tt.wantFrames) || b != uint64(tt.wantFrames*tt.size) {
				t.Errorf("Stats() = %d frames, %d bytes; want %d, %d: a failed writev sent nothing", f, b, tt.wantFrames, tt.wantFrames*tt.size)
			}
			if got := onSendBytes.Load(); got != int64(tt.wantFrames*tt.size+50) {
				t.Errorf("OnSend reported %d bytes; want %d (the other session's 50 included)", got, tt.wantFrames*tt.size+50)
			}
			if m.Get(s.ID()) != nil {
				t.Error("session still tracked after its connection failed")
			}
			if err := s.Send(newFrame(0, 0, 30)); !errors.Is(err, ErrSessionClosed) {
				t.Errorf("Send after the failed write = %v; want ErrSessionClosed", err)
			}
			if ids := parseFrames(t, oc.output()); len(ids) != 1 || ids[0] != (frameID{1, 0}) {
				t.Errorf("the other session of the same flush task got %v; want its frame", ids)
			}
			m.Closed(other)
		})
	}
}

// TestOnSendAndStats: the OnSend hook runs on the loop once per write, with
// byte counts that add up to everything sent; Stats agrees.
func TestOnSendAndStats(t *testing.T) {
	tests := []struct {
		name     string
		sizes    []int
		running  bool
		callback bool // sent from a handler callback, written by LeaveCallback
	}{
		{name: "one frame", sizes: []int{64}},
		{name: "held-up loop, several batches", sizes: append(repeat(2000, 10), 200<<10, 60<<10, 11)},
		{name: "running loop", sizes: repeat(3000, 33), running: true},
		{name: "reply from a callback", sizes: append(repeat(1500, 20), 700), callback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			var (
				mu    sync.Mutex
				calls []int
			)
			var fl *fakeLoop
			m := newManager(t, Config{OnSend: func(s *Session, n int) {
				if !fl.onLoop() {
					t.Error("OnSend called off the loop")
				}
				mu.Lock()
				calls = append(calls, n)
				mu.Unlock()
			}})
			fl = newLoop(t)
			if tt.running {
				fl.start()
			}
			s, c := newSession(t, m, fl)
			total := 0
			send := func() {
				for i, size := range tt.sizes {
					total += size
					if err := s.Send(newFrame(0, i, size)); err != nil {
						t.Error(err)
					}
				}
			}
			if tt.callback {
				fl.callback(s, send)
			} else {
				send()
			}
			if !tt.running {
				fl.drain()
			}
			waitIdle(t, fl, s)
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
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, len(tt.sizes))
			remove(fl, m, s)
		})
	}
}

// TestCloseRacesSend closes sessions on their loop while other goroutines
// keep sending: every buffer is released exactly once and what arrived is a
// prefix of each sender's frames.
func TestCloseRacesSend(t *testing.T) {
	checkBuffers(t)
	for it := range 20 {
		m := newManager(t, Config{})
		fl := newLoop(t).start()
		s, c := newSession(t, m, fl)
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for i := range 200 {
					err := s.Send(newFrame(g, i, 16+i%600))
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
		if !waitFor(5*time.Second, fl.idle) {
			t.Fatalf("iteration %d: loop never went idle", it)
		}
		if m.Len() != 0 {
			t.Fatalf("iteration %d: session still tracked after close", it)
		}
		if n := sendbuffer.Live(); n != 0 {
			t.Fatalf("iteration %d: Live() = %d after close", it, n)
		}
		next := map[int]int{}
		for _, id := range parseFrames(t, c.output()) {
			if id.seq != next[id.sender] {
				t.Fatalf("iteration %d: sender %d seq %d; want %d", it, id.sender, id.seq, next[id.sender])
			}
			next[id.sender]++
		}
		fl.stop()
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
