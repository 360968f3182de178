package sessionmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/herald-mmo/herald/sendbuffer"
)

// TestOneTaskPerLoop: Sends and broadcasts to many sessions between two turns
// of a loop cost one Execute for that loop; a broadcast is one item and one
// buffer reference per loop, whatever the number of recipients; the task
// writes each session once.
func TestOneTaskPerLoop(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fls := []*fakeLoop{newLoop(t), newLoop(t)}
	var cs []*fakeConn
	for i := range 50 {
		_, c := newSession(t, m, fls[i%2])
		cs = append(cs, c)
	}
	var bufs []*sendbuffer.Buffer
	for seq := range 10 {
		b := newFrame(0, seq, 40)
		b.Retain() // ours, to watch
		bufs = append(bufs, b)
		m.Broadcast(b)
	}
	for i, b := range bufs {
		if got := b.Refs(); got != 1+len(fls) {
			t.Errorf("broadcast %d: Refs() = %d; want one per loop plus ours, %d", i, got, 1+len(fls))
		}
	}
	for i, fl := range fls {
		if got := fl.executes.Load(); got != 1 {
			t.Errorf("loop %d: %d Execute calls for 10 broadcasts to 25 sessions; want 1", i, got)
		}
		items := fl.queuedItems()
		if len(items) != 10 {
			t.Fatalf("loop %d: %d items queued for 10 broadcasts; want 10", i, len(items))
		}
		for k, it := range items {
			if it.b != bufs[k] || it.s != nil || it.gl == nil || it.gl.n != 25 {
				t.Errorf("loop %d item %d: buffer %p, session %v, group list %v; want broadcast %d's buffer to the loop's 25 sessions", i, k, it.b, it.s, it.gl, k)
			}
		}
		if ran := fl.drain(); ran != 1 {
			t.Errorf("loop %d: %d tasks ran; want 1", i, ran)
		}
	}
	for _, b := range bufs {
		if b.Refs() != 1 {
			t.Errorf("Refs() = %d after the loops wrote every recipient; want 1 (ours)", b.Refs())
		}
		b.Release()
	}
	for i, c := range cs {
		if w := c.writeLog(); len(w) != 1 || len(w[0].iovs) != 1 {
			t.Errorf("session %d: %d writes; want one writev of one coalesced iovec", i, len(w))
		}
		checkPerSenderOrder(t, parseFrames(t, c.output()), 1, 10)
	}
	for _, s := range m.Sessions() {
		m.Closed(s)
	}
}

// sendFrom sends b to s from a new goroutine and waits for it, to play a
// sender that is not the loop.
func sendFrom(t *testing.T, s *Session, b *sendbuffer.Buffer) {
	t.Helper()
	errc := make(chan error)
	go func() { errc <- s.Send(b) }()
	if err := <-errc; err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// TestLostWakeupWindows drives, by hand, each interleaving of a Send with the
// loop where a frame could be stranded (in the Loop's queue with no task
// armed to drain it), and checks where each frame goes out. Natural cases use
// the real Run or LeaveCallback and a hook in a Writev (which runs after
// they have disarmed and drained). The windows between a flag's clear and
// the drain have no hook: there the test does the first statement of Run
// (armed.Store(false)) or of leave (busy.Store(false)) itself, sends, and
// then calls the real Run or LeaveCallback, which repeats that statement
// harmlessly; these mirror loop.go and must follow it. Every case checks that
// each frame arrives once, in order, and that the loop settles.
func TestLostWakeupWindows(t *testing.T) {
	type env struct {
		t      *testing.T
		fl     *fakeLoop
		s, s2  *Session
		c, c2  *fakeConn
		frames int // frames sent to s, numbered from 0
	}
	send := func(e *env, s *Session) {
		e.t.Helper()
		seq := 0
		if s == e.s {
			seq = e.frames
			e.frames++
		}
		sendFrom(e.t, s, newFrame(0, seq, 20))
	}
	tests := []struct {
		name       string
		run        func(e *env)
		wantExecs  int64 // Execute calls in all
		wantFrames []int // frames per write on s
	}{
		{
			name: "(1) Send after Run disarmed, before its drain: in this Run; a spare task",
			run: func(e *env) {
				send(e, e.s) // frame 0 arms task 1
				e.fl.exec(func() {
					e.fl.l.armed.Store(false) // Run, first statement
					send(e, e.s)              // frame 1 arms task 2
					_ = e.fl.l.Run(t.Context())
				})
				if got := e.c.framesPerWrite(e.t); !slices.Equal(got, []int{2}) {
					e.t.Errorf("frames per write = %v; want [2]: the late frame goes out with this drain", got)
				}
				e.fl.drain() // tasks 1 and 2 find nothing
			},
			wantExecs: 2, wantFrames: []int{2},
		},
		{
			name: "(2) Send during the Run's write of the same session: a new task",
			run: func(e *env) {
				hooked := false
				e.c.onWritev = func([][]byte) {
					if !hooked {
						hooked = true
						send(e, e.s) // frame 1, after the drain
					}
				}
				send(e, e.s) // frame 0
				e.fl.step()
				if got := e.c.framesPerWrite(e.t); !slices.Equal(got, []int{1}) || e.fl.pending() != 1 {
					e.t.Fatalf("after the first task: frames per write %v, %d tasks; want [1] and a new task for frame 1", got, e.fl.pending())
				}
				e.fl.drain()
			},
			wantExecs: 2, wantFrames: []int{1, 1},
		},
		{
			name: "(2b) Send while the Run writes another session: a new task",
			run: func(e *env) {
				send(e, e.s2)
				e.c2.onWritev = func([][]byte) { send(e, e.s) } // frame 0
				e.fl.step()
				if e.c.writevCalls.Load() != 0 || !e.fl.state().armed {
					e.t.Fatalf("s written by a Run that drained before its frame, or no task armed (armed %v)", e.fl.state().armed)
				}
				e.c2.onWritev = nil
				e.fl.drain()
			},
			wantExecs: 2, wantFrames: []int{1},
		},
		{
			name: "(3) Send while a task is armed and not started: no Execute",
			run: func(e *env) {
				send(e, e.s2) // arms
				send(e, e.s)  // frame 0
				if e.fl.executes.Load() != 1 {
					e.t.Errorf("%d Executes; want 1: the armed task covers both", e.fl.executes.Load())
				}
				e.fl.drain()
			},
			wantExecs: 1, wantFrames: []int{1},
		},
		{
			name: "(4) Send from another goroutine during a callback: no task; LeaveCallback writes it",
			run: func(e *env) {
				e.fl.exec(func() {
					e.s.EnterCallback()
					send(e, e.s) // frame 0: a reply, on the loop in real life
					send(e, e.s) // frame 1: from another goroutine
					if e.fl.executes.Load() != 0 || e.fl.l.armed.Load() {
						e.t.Errorf("Send during a callback armed a task (%d Executes)", e.fl.executes.Load())
					}
					e.s.LeaveCallback()
				})
			},
			wantExecs: 0, wantFrames: []int{2},
		},
		{
			name: "(4b) Send to another session during a callback: LeaveCallback arms the task",
			run: func(e *env) {
				e.fl.exec(func() {
					e.s2.EnterCallback()
					send(e, e.s) // frame 0
					if e.fl.executes.Load() != 0 {
						e.t.Errorf("Send during a callback on the loop armed a task")
					}
					e.s2.LeaveCallback()
				})
				if e.fl.executes.Load() != 1 || e.c.writevCalls.Load() != 0 {
					e.t.Errorf("after LeaveCallback: %d Executes, %d writes on s; want 1 task, 0 writes", e.fl.executes.Load(), e.c.writevCalls.Load())
				}
				e.fl.drain()
			},
			wantExecs: 1, wantFrames: []int{1},
		},
		{
			name: "(4c) Send after LeaveCallback cleared busy, before its drain: in this write; a spare task",
			run: func(e *env) {
				e.fl.exec(func() {
					e.s.EnterCallback()
					send(e, e.s)             // frame 0
					e.fl.l.busy.Store(false) // leave, first statement
					send(e, e.s)             // frame 1 sees busy clear and arms
					e.s.LeaveCallback()
				})
				if got := e.c.framesPerWrite(e.t); !slices.Equal(got, []int{2}) {
					e.t.Errorf("frames per write = %v; want [2]", got)
				}
				e.fl.drain() // the spare task finds nothing
			},
			wantExecs: 1, wantFrames: []int{2},
		},
		{
			name: "(4d) Send during LeaveCallback's write: a new task",
			run: func(e *env) {
				hooked := false
				e.c.onWritev = func([][]byte) {
					if !hooked {
						hooked = true
						send(e, e.s) // frame 1, after the drain
					}
				}
				e.fl.callback(e.s, func() { send(e, e.s) }) // frame 0
				if e.fl.executes.Load() != 1 {
					e.t.Errorf("%d Executes after the callback; want 1 for the late frame", e.fl.executes.Load())
				}
				e.fl.drain()
			},
			wantExecs: 1, wantFrames: []int{1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			e := &env{t: t, fl: newLoop(t)}
			e.s, e.c = newSession(t, m, e.fl)
			e.s2, e.c2 = newSession(t, m, e.fl)
			tt.run(e)
			if got := e.fl.executes.Load(); got != tt.wantExecs {
				t.Errorf("%d Execute calls; want %d", got, tt.wantExecs)
			}
			if got := e.c.framesPerWrite(t); !slices.Equal(got, tt.wantFrames) {
				t.Errorf("frames per write on s = %v; want %v", got, tt.wantFrames)
			}
			if ok, why := settled(e.fl, e.s); !ok {
				t.Errorf("not settled (lost wake-up): %s", why)
			}
			checkPerSenderOrder(t, parseFrames(t, e.c.output()), 1, e.frames)
			if n := sendbuffer.Live(); n != 0 {
				t.Errorf("Live() = %d once settled", n)
			}
			m.Closed(e.s)
			m.Closed(e.s2)
		})
	}
}

// TestEngineStop: when gnet's engine stops, queued tasks are dropped and
// Execute fails. Sends still only queue (nothing is written, the Loop does
// not retry Execute while its dropped task is armed), Remove releases what
// the loop took for a session, and Discard (which the server calls once the
// loops have exited) releases the rest; after it, pushes release at once.
func TestEngineStop(t *testing.T) {
	tests := []struct {
		name        string
		armedAtStop bool  // a flush task is queued (and dropped) at the stop
		drained     bool  // the loop drained the queue before the stop
		wantRejects int64 // Execute calls refused
	}{
		{name: "flush task dropped", armedAtStop: true, wantRejects: 0},
		{name: "frames pending for the sessions, flush task dropped", armedAtStop: true, drained: true, wantRejects: 0},
		// Every push finds the Loop disarmed and tries again.
		{name: "nothing armed: Execute fails after the stop", wantRejects: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			s2, c2 := newSession(t, m, fl)
			other, _ := newSession(t, m, fl)
			if tt.armedAtStop {
				send := func() {
					for _, x := range []*Session{s, s2} {
						if err := x.Send(newFrame(0, 0, 40)); err != nil {
							t.Fatal(err)
						}
					}
				}
				if tt.drained {
					fl.callback(other, send) // drains, arms for s and s2
				} else {
					send()
				}
			}
			fl.stopAndDrop()
			for range 3 {
				for _, x := range []*Session{s, s2} {
					if err := x.Send(newFrame(0, 1, 40)); err != nil {
						t.Fatalf("Send after the stop = %v; want it queued", err)
					}
				}
			}
			if got := fl.rejected.Load(); got != tt.wantRejects {
				t.Errorf("%d Execute calls refused; want %d", got, tt.wantRejects)
			}
			if tt.wantRejects > 0 && fl.l.armed.Load() {
				t.Error("armed left set after Execute failed")
			}
			// The loops have exited: the server removes every session,
			// then discards the Loops.
			fl.exec(func() {
				for _, x := range m.Sessions() {
					m.Closed(x)
				}
			})
			fl.l.Discard()
			if n := sendbuffer.Live(); n != 0 {
				t.Fatalf("Live() = %d after Remove and Discard", n)
			}
			if c.writevCalls.Load()+c2.writevCalls.Load() != 0 {
				t.Error("a session was written after the engine stopped")
			}
			// A session the server did not remove: its Sends release at
			// once now.
			late, _ := newSession(t, m, fl)
			b := newFrame(0, 9, 40)
			b.Retain()
			if err := late.Send(b); err != nil {
				t.Errorf("Send after Discard = %v", err)
			}
			if b.Refs() != 1 {
				t.Errorf("Refs() = %d after a Send past Discard; want 1 (released at once)", b.Refs())
			}
			b.Release()
			m.Broadcast(newFrame(0, 10, 40))
			if n := sendbuffer.Live(); n != 0 {
				t.Errorf("Live() = %d after a broadcast past Discard", n)
			}
			m.Closed(late)
		})
	}
}

// TestBatchLimits queues many buffers while the loop is held up, then lets
// it run: no write carries more than MaxBatchSlices buffers (nor, the fake
// checks, more than IOV_MAX iovecs), none more than MaxBatchBytes unless it
// is one oversized buffer, a session is written whenever flushAt frames wait
// (wantWrites), and order is kept. TestBatchLimitsHeldFrames covers writes
// of more than flushAt frames.
func TestBatchLimits(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
	}{
		{name: "5000 tiny buffers, coalesced", sizes: repeat(5000, frameHeader)},
		{name: "2000 buffers of 2000 bytes: the byte cap, by reference", sizes: repeat(2000, 2000)},
		{name: "100 KiB buffers: two per MaxBatchBytes", sizes: repeat(7, 100<<10)},
		{name: "an oversized buffer goes alone", sizes: []int{100, 100, MaxBatchBytes + 1000, 100, 100}},
		{name: "exactly MaxBatchBytes fits one write", sizes: []int{MaxBatchBytes / 2, MaxBatchBytes / 2, 10}},
		{name: "alternating small and large", sizes: alternate(2100, 10, 513)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t) // stepped: nothing runs until drain
			s, c := newSession(t, m, fl)
			c.sockTake = 1000
			for i, size := range tt.sizes {
				if err := s.Send(newFrame(0, i, size)); err != nil {
					t.Fatal(err)
				}
			}
			if ran := fl.drain(); ran != 1 {
				t.Errorf("%d tasks ran; want 1 (one task writes the whole queue)", ran)
			}
			checkWriteLimits(t, c)
			if got, want := c.framesPerWrite(t), wantWrites(tt.sizes); !slices.Equal(got, want) {
				t.Errorf("frames per write = %v; want %v", got, want)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, len(tt.sizes))
			if ok, why := settled(fl, s); !ok || s.Pending() != 0 {
				t.Errorf("after drain: Pending() = %d; %s", s.Pending(), why)
			}
			m.Closed(s)
		})
	}
}

// checkWriteLimits checks every write c took against the batch limits.
func checkWriteLimits(t *testing.T, c *fakeConn) {
	t.Helper()
	for i, w := range c.writeLog() {
		if len(w.iovs) > MaxBatchSlices {
			t.Errorf("write %d: %d iovecs > MaxBatchSlices", i, len(w.iovs))
		}
		if w.bytes > MaxBatchBytes && len(w.iovs) != 1 {
			t.Errorf("write %d: %d bytes in %d iovecs > MaxBatchBytes", i, w.bytes, len(w.iovs))
		}
	}
	for i, n := range c.framesPerWrite(t) {
		if n > MaxBatchSlices {
			t.Errorf("write %d: %d frames > MaxBatchSlices", i, n)
		}
	}
}

// TestBatchLimitsHeldFrames: frames held for an unwritable session are
// written, once it is writable again, in writes of up to MaxBatchSlices
// frames and MaxBatchBytes bytes: the IOV_MAX and byte caps at work on long
// runs.
func TestBatchLimitsHeldFrames(t *testing.T) {
	tests := []struct {
		name       string
		size, n    int
		wantFrames []int // frames per write of the held frames
		wantMaxIov int
	}{
		{name: "3000 tiny frames: 1024 a write, coalesced", size: frameHeader, n: 3000, wantFrames: []int{1024, 1024, 952}, wantMaxIov: 1},
		{name: "1200 frames of 2100 bytes: 124 a write by the byte cap", size: 2100, n: 1200, wantFrames: []int{124, 124, 124, 124, 124, 124, 124, 124, 124, 84}, wantMaxIov: 124},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			lim := smallLimits
			lim.MaxPending = 8 << 20 // every frame is held (1200 in 4 KiB classes)
			m := newManager(t, Config{Limits: lim})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			seq := makeUnwritable(t, fl, s, c)
			for range tt.n {
				if err := s.Send(newFrame(0, seq, tt.size)); err != nil {
					t.Fatal(err)
				}
				seq++
			}
			fl.drain()
			before := len(c.writeLog())
			c.stall(false)
			c.peerRead(1 << 30)
			fl.l.Poll()
			fl.drain()
			checkWriteLimits(t, c)
			got := c.framesPerWrite(t)[before:]
			if !slices.Equal(got, tt.wantFrames) {
				t.Errorf("frames per write of the held frames = %v; want %v", got, tt.wantFrames)
			}
			maxIov := 0
			for _, w := range c.writeLog()[before:] {
				maxIov = max(maxIov, len(w.iovs))
			}
			if maxIov != tt.wantMaxIov {
				t.Errorf("largest write has %d iovecs; want %d", maxIov, tt.wantMaxIov)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, seq)
			m.Closed(s)
			fl.drain()
		})
	}
}

// alternate returns n sizes alternating a, b, a, b, ...
func alternate(n, a, b int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = a
		if i%2 == 1 {
			s[i] = b
		}
	}
	return s
}

// copies returns the shape of writes of n[i] coalesced frames each.
func copies(n []int) []string {
	var s []string
	for _, k := range n {
		s = append(s, fmt.Sprintf("copy %d", k))
	}
	return s
}

// sentFrame is a frame the test sent, and where its bytes live.
type sentFrame struct {
	size int
	data *byte // unsafe.SliceData of the buffer's bytes
}

// describeIovecs checks that the writes carry frames in order, that every
// iovec is either a copy in the Loop's scratch (of frames of at most
// coalesceMax bytes) or exactly one frame's own bytes (by reference), and
// that no frame larger than coalesceMax was copied. It returns the shape of
// each write, e.g. "copy 3, ref, copy 1".
func describeIovecs(t *testing.T, writes []writeRec, frames []sentFrame) []string {
	t.Helper()
	var shapes []string
	next := 0
	for wi, w := range writes {
		var parts []string
		for ii, iov := range w.iovs {
			if next >= len(frames) {
				t.Fatalf("write %d iovec %d: more bytes than frames sent", wi, ii)
			}
			if !iov.scratch {
				f := frames[next]
				if iov.data != f.data || iov.n != f.size {
					t.Fatalf("write %d iovec %d: %d bytes not in the scratch and not frame %d's buffer (%d bytes)", wi, ii, iov.n, next, f.size)
				}
				parts = append(parts, "ref")
				next++
				continue
			}
			k, left := 0, iov.n
			for left > 0 {
				if next >= len(frames) || frames[next].size > left {
					t.Fatalf("write %d iovec %d: a copied iovec of %d bytes does not end at a frame boundary", wi, ii, iov.n)
				}
				if frames[next].size > coalesceMax {
					t.Errorf("write %d iovec %d: frame %d of %d bytes > coalesceMax was copied", wi, ii, next, frames[next].size)
				}
				left -= frames[next].size
				next++
				k++
			}
			parts = append(parts, fmt.Sprintf("copy %d", k))
		}
		for ii := 1; ii < len(w.iovs); ii++ {
			a, b := w.iovs[ii-1], w.iovs[ii]
			if a.scratch && b.scratch && uintptr(unsafe.Pointer(a.data))+uintptr(a.n) == uintptr(unsafe.Pointer(b.data)) {
				t.Errorf("write %d: contiguous copied iovecs %d and %d were not merged", wi, ii-1, ii)
			}
		}
		shapes = append(shapes, strings.Join(parts, ", "))
	}
	if next != len(frames) {
		t.Fatalf("writes carried %d frames; %d were sent", next, len(frames))
	}
	return shapes
}

// TestCoalesce: a run of small frames becomes one iovec holding their bytes
// in order (copied into the Loop's scratch); frames over coalesceMax bytes
// are passed by reference to the shared buffer itself; when the scratch is
// full, small frames are passed by reference too. The peer's bytes are
// exact in every case, through partial writes.
func TestCoalesce(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		want  []string // shape of each write
	}{
		{name: "64 frames of 68 bytes: one iovec", sizes: repeat(64, 68), want: []string{"copy 64"}},
		{name: "coalesceMax is copied, one byte more is referenced", sizes: []int{coalesceMax, coalesceMax + 1, coalesceMax}, want: []string{"copy 1, ref, copy 1"}},
		{name: "large frames by reference", sizes: []int{coalesceMax + 100, 4000, 40000}, want: []string{"ref, ref, ref"}},
		{name: "mixed keeps order", sizes: []int{20, 30, 2100, 40, 2200, 2300, 50, 60}, want: []string{"copy 2, ref, copy 1, ref, ref, copy 2"}},
		{
			name:  "scratch overflow: the rest by reference",
			sizes: repeat(200, 500),
			want:  []string{"copy 131" + strings.Repeat(", ref", 69)},
		},
		{
			name:  "scratch overflow, then a frame that still fits, then one that does not",
			sizes: append(repeat(131, 500), 500, 30, 36, 20),
			want:  []string{"copy 131, ref, copy 1, ref, ref"},
		},
		{
			name:  "scratch reused for every write",
			sizes: repeat(2100, 12),
			want:  copies(wantWrites(repeat(2100, 12))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			c.sockTake = 3 // partial writes rewrite the iovecs in place
			var frames []sentFrame
			for i, size := range tt.sizes {
				b := newFrame(0, i, size)
				frames = append(frames, sentFrame{size, unsafe.SliceData(b.Bytes())})
				if err := s.Send(b); err != nil {
					t.Fatal(err)
				}
			}
			fl.drain()
			if got := describeIovecs(t, c.writeLog(), frames); !slices.Equal(got, tt.want) {
				t.Errorf("writes:\n got %q\nwant %q", got, tt.want)
			}
			checkPerSenderOrder(t, parseFrames(t, c.output()), 1, len(tt.sizes))
			m.Closed(s)
		})
	}
}

// TestCoalesceRandomSequences sends random mixes of small, large and huge
// frames through several flushes and checks the rules of TestCoalesce and
// TestBatchLimits on each: byte-exact, in order, large frames by reference.
func TestCoalesceRandomSequences(t *testing.T) {
	checkBuffers(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for it := range 10 {
		m := newManager(t, Config{})
		fl := newLoop(t)
		s, c := newSession(t, m, fl)
		c.sockTake = rng.IntN(5000)
		var frames []sentFrame
		n := 1 + rng.IntN(1500)
		for i := range n {
			var size int
			switch r := rng.IntN(100); {
			case r < 80:
				size = frameHeader + rng.IntN(coalesceMax-frameHeader+1)
			case r < 99:
				size = coalesceMax + 1 + rng.IntN(3000)
			default:
				size = 20000 + rng.IntN(60000)
			}
			b := newFrame(0, i, size)
			frames = append(frames, sentFrame{size, unsafe.SliceData(b.Bytes())})
			if err := s.Send(b); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(300) == 0 {
				fl.drain()
			}
		}
		fl.drain()
		writes := c.writeLog()
		describeIovecs(t, writes, frames)
		for i, w := range c.framesPerWrite(t) {
			if w > MaxBatchSlices || (writes[i].bytes > MaxBatchBytes && w != 1) {
				t.Fatalf("iteration %d write %d: %d frames, %d bytes: over the batch limits", it, i, w, writes[i].bytes)
			}
		}
		checkPerSenderOrder(t, parseFrames(t, c.output()), 1, n)
		m.Closed(s)
	}
}

// TestReleasedOnceEveryRecipientIsWritten: the Loop holds its reference
// while any recipient on the loop still has the frame pending, so a write by
// LeaveCallback to one recipient does not free it for the others; the flush
// task releases it once all are written. Every write reads the buffer's own
// bytes (frames over coalesceMax) and the peers' bytes are exact.
func TestReleasedOnceEveryRecipientIsWritten(t *testing.T) {
	for _, size := range []int{40, 3000} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			checkBuffers(t)
			var b *sendbuffer.Buffer
			var refsAtOnSend []int
			m := newManager(t, Config{OnSend: func(*Session, int) { refsAtOnSend = append(refsAtOnSend, b.Refs()) }})
			fl := newLoop(t)
			s1, c1 := newSession(t, m, fl)
			s2, c2 := newSession(t, m, fl)
			var data []*byte
			for _, c := range []*fakeConn{c1, c2} {
				c.sockTake = 1
				c.onWritev = func(bs [][]byte) { data = append(data, unsafe.SliceData(bs[0])) }
			}
			b = newFrame(0, 0, size)
			b.Retain() // ours, to watch
			want := unsafe.SliceData(b.Bytes())
			fl.callback(s1, func() { m.Broadcast(b) })
			if c1.writevCalls.Load() != 1 || c2.writevCalls.Load() != 0 {
				t.Fatalf("after the callback: %d writes to s1, %d to s2; want 1, 0", c1.writevCalls.Load(), c2.writevCalls.Load())
			}
			if b.Refs() != 2 {
				t.Errorf("Refs() = %d while s2 still waits; want 2 (the loop's and ours)", b.Refs())
			}
			fl.drain()
			if b.Refs() != 1 {
				t.Errorf("Refs() = %d once every recipient is written; want 1 (ours)", b.Refs())
			}
			if !slices.Equal(refsAtOnSend, []int{2, 2}) {
				t.Errorf("Refs() at OnSend = %v; want [2 2]: released after the writes, not before", refsAtOnSend)
			}
			if size > coalesceMax && (len(data) != 2 || data[0] != want || data[1] != want) {
				t.Errorf("iovecs read from %v; want the buffer's bytes %p both times", data, want)
			}
			b.Release()
			checkPerSenderOrder(t, parseFrames(t, c1.output()), 1, 1)
			checkPerSenderOrder(t, parseFrames(t, c2.output()), 1, 1)
			m.Closed(s1)
			m.Closed(s2)
		})
	}
}

// TestCallback: Sends to a session while the server runs a handler callback
// for it only queue (no Execute); LeaveCallback writes them at once, in as
// few writes as the batch limits allow.
func TestCallback(t *testing.T) {
	tests := []struct {
		name       string
		before     int  // frames sent to s before the callback (a task is armed)
		during     int  // frames s sends itself during the callback
		closed     bool // the session closed before the callback
		wantExecs  int64
		wantFrames []int // frames per write on s
	}{
		{name: "three replies: no task, one write", during: 3, wantFrames: []int{3}},
		{name: "a reply of many frames", during: 2500, wantFrames: wantWrites(repeat(2500, 30))},
		{name: "a task armed before the callback: LeaveCallback writes all, the task nothing", before: 2, during: 2, wantExecs: 1, wantFrames: []int{4}},
		{name: "a callback that sends nothing writes nothing", wantFrames: nil},
		{name: "closed session: replies refused, nothing written", during: 2, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			if tt.closed {
				c.closeOnLoop()
			}
			seq := 0
			for range tt.before {
				if err := s.Send(newFrame(0, seq, 30)); err != nil {
					t.Fatal(err)
				}
				seq++
			}
			fl.callback(s, func() {
				for range tt.during {
					err := s.Send(newFrame(0, seq, 30))
					if tt.closed != errors.Is(err, ErrSessionClosed) {
						t.Fatalf("Send = %v (closed: %v)", err, tt.closed)
					}
					seq++
				}
				if got := c.writevCalls.Load(); got != 0 {
					t.Errorf("%d writes during the callback; want them at LeaveCallback", got)
				}
			})
			if got := fl.executes.Load(); got != tt.wantExecs {
				t.Errorf("%d Execute calls; want %d", got, tt.wantExecs)
			}
			if got := c.framesPerWrite(t); !slices.Equal(got, tt.wantFrames) {
				t.Errorf("frames per write after LeaveCallback = %v; want %v", got, tt.wantFrames)
			}
			fl.drain()
			if got := c.framesPerWrite(t); !slices.Equal(got, tt.wantFrames) {
				t.Errorf("frames per write after the tasks = %v; want %v", got, tt.wantFrames)
			}
			if !tt.closed {
				checkPerSenderOrder(t, parseFrames(t, c.output()), 1, seq)
			}
			if ok, why := settled(fl, s); !ok {
				t.Errorf("not settled after the callback: %s", why)
			}
			m.Closed(s)
		})
	}
}

// TestCallbackSendToAnotherSession: during a callback every Send to a session
// of the loop only queues; LeaveCallback writes the callback's session and
// arms one task for the others.
func TestCallbackSendToAnotherSession(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	s2, c2 := newSession(t, m, fl)
	fl.callback(s, func() {
		for i := range 3 {
			if err := s2.Send(newFrame(0, i, 30)); err != nil {
				t.Fatal(err)
			}
		}
		if fl.executes.Load() != 0 {
			t.Error("a Send during a callback armed a task")
		}
	})
	if fl.executes.Load() != 1 || c2.writevCalls.Load() != 0 || c.writevCalls.Load() != 0 {
		t.Errorf("after LeaveCallback: %d Executes, %d writes on s2; want 1 task, nothing written yet", fl.executes.Load(), c2.writevCalls.Load())
	}
	fl.drain()
	if got := c2.framesPerWrite(t); !slices.Equal(got, []int{3}) {
		t.Errorf("frames per write on s2 = %v; want [3]", got)
	}
	m.Closed(s)
	m.Closed(s2)
}

// TestRunIsBounded: a producer that sends again during every write (faster
// than the loop writes) does not keep one flush task going: each task writes
// what it drained and leaves the rest to a new task behind the loop's other
// work, and the other sessions of the loop are written in the first task.
func TestRunIsBounded(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	s2, c2 := newSession(t, m, fl)
	const refills = 50
	seq := 0
	c.onWritev = func([][]byte) {
		if seq < refills {
			seq++
			if err := s.Send(newFrame(0, seq, 20)); err != nil {
				t.Error(err)
			}
		}
	}
	if err := s.Send(newFrame(0, 0, 20)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Send(newFrame(0, 0, 20)); err != nil {
		t.Fatal(err)
	}
	fl.step()
	if c.writevCalls.Load() != 1 || c2.writevCalls.Load() != 1 {
		t.Errorf("first task: %d writes to the busy session, %d to the other; want 1 and 1", c.writevCalls.Load(), c2.writevCalls.Load())
	}
	for i := 2; fl.step(); i++ {
		if got := c.writevCalls.Load(); got != int64(i) {
			t.Fatalf("task %d: %d writes in all; want one per task", i, got)
		}
	}
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, refills+1)
	m.Closed(s)
	m.Closed(s2)
}
