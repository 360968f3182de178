package sessionmgr

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/panjf2000/gnet/v2"
)

// The benchmarks drive the send path without a fake event loop. recordExec
// only counts the flush tasks armed; the benchmark itself then plays the
// event loop and runs the Loop's task (Loop.Run) synchronously on its own
// goroutine, as gnet would on the loop. So one op is exactly herald's work
// for it, end to end: Send (queue, register, arm) for every recipient, then
// the flush (fill, coalesce, Writev, release, OnSend), and nothing of a
// scheduler's or a socket's cost. Debug mode is off while measuring: it
// records a stack per Get and never recycles buffers.

// recordExec is an Executor that records Execute calls and runs nothing.
type recordExec struct{ calls atomic.Int64 }

func (e *recordExec) Execute(context.Context, gnet.Runnable) error {
	e.calls.Add(1)
	return nil
}

// nullConn is a Conn whose Writev takes every byte at once, copying nothing.
type nullConn struct{ bytes, writes int }

var _ Conn = (*nullConn)(nil)

// Write is Writev of one slice: gnet's Write and Writev reach the socket the
// same way, and the fake's bookkeeping lives in Writev.
func (c *nullConn) Write(b []byte) (int, error) { return c.Writev([][]byte{b}) }

func (c *nullConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	c.bytes += n
	c.writes++
	return n, nil
}

func (c *nullConn) OutboundBuffered() int { return 0 }
func (c *nullConn) Close() error          { return nil }
func (c *nullConn) RemoteAddr() net.Addr  { return nil }

const benchPayload = 64

func newBenchManager(recipients int) (*Manager, *Loop, *recordExec, []*nullConn) {
	m, err := NewManager(Config{Limits: DefaultLimits(), OnSend: func(*Session, int) {}})
	if err != nil {
		panic(err)
	}
	ex := &recordExec{}
	l := NewLoop(ex)
	cs := make([]*nullConn, recipients)
	for i := range cs {
		cs[i] = &nullConn{}
		m.Add(m.NewSession(cs[i], l))
	}
	return m, l, ex, cs
}

// broadcastAndFlush is one op: a broadcast of a fresh buffer, then the
// loop's flush task.
func broadcastAndFlush(m *Manager, l *Loop, payload []byte) {
	b := sendbuffer.Get(len(payload))
	_, _ = b.Write(payload)
	m.Broadcast(b)
	_ = l.Run(context.Background())
}

// withoutDebug runs fn with sendbuffer debug mode off and turns it back on.
// Buffers got in non-debug mode are recycled normally.
func withoutDebug(fn func()) {
	sendbuffer.SetDebug(false)
	defer sendbuffer.SetDebug(true)
	fn()
}

func removeAll(m *Manager) {
	for _, s := range m.Sessions() {
		m.Closed(s)
	}
}

// BenchmarkBroadcast broadcasts one 64-byte frame to N sessions on one loop
// and flushes them, per op. allocs/op must not grow with N; ns/recipient is
// the per-session cost.
func BenchmarkBroadcast(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			withoutDebug(func() {
				m, l, ex, cs := newBenchManager(n)
				defer removeAll(m)
				broadcastAndFlush(m, l, payload) // warm queues and the loop's slices
				b.ReportAllocs()
				b.SetBytes(int64(benchPayload * n))
				b.ResetTimer()
				for b.Loop() {
					broadcastAndFlush(m, l, payload)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
				b.StopTimer()
				if cs[n-1].writes < b.N || ex.calls.Load() < int64(b.N) {
					b.Fatalf("%d writes, %d tasks armed for %d broadcasts", cs[n-1].writes, ex.calls.Load(), b.N)
				}
			})
		})
	}
}

// TestBroadcastAllocsDoNotGrow: a broadcast and its flush allocate nothing
// per recipient. AllocsPerRun divides the total by the run count with
// integer division, so a rare pool refill after a GC cannot add a whole
// allocation per run; no slack is needed.
func TestBroadcastAllocsDoNotGrow(t *testing.T) {
	checkBuffers(t)
	payload := make([]byte, benchPayload)
	allocs := func(n int) float64 {
		var a float64
		withoutDebug(func() {
			m, l, _, cs := newBenchManager(n)
			defer removeAll(m)
			broadcastAndFlush(m, l, payload)
			a = testing.AllocsPerRun(200, func() { broadcastAndFlush(m, l, payload) })
			// One warm-up above, one by AllocsPerRun, 200 measured.
			if cs[n-1].bytes != 202*benchPayload {
				t.Errorf("last recipient got %d bytes; want %d", cs[n-1].bytes, 202*benchPayload)
			}
		})
		return a
	}
	few, many := allocs(10), allocs(1000)
	t.Logf("allocs per broadcast and flush: %v to 10 sessions, %v to 1000", few, many)
	if many > few {
		t.Errorf("a broadcast to 1000 sessions allocates %v times, to 10 sessions %v: allocations grow with recipients", many, few)
	}
}

// socketConn is a Conn over one end of a Unix stream socketpair whose other
// end a goroutine drains: Writev is a real writev(2) (net.Buffers), so the
// kernel's cost per iovec shows.
type socketConn struct {
	w    net.Conn
	done chan struct{}
}

func newSocketConn(b *testing.B) *socketConn {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	c := &socketConn{w: conn(fds[0]), done: make(chan struct{})}
	r := conn(fds[1])
	go func() {
		defer close(c.done)
		_, _ = io.Copy(io.Discard, r)
		r.Close()
	}()
	b.Cleanup(func() {
		c.w.Close()
		<-c.done
	})
	return c
}

// Write is Writev of one slice: gnet's Write and Writev reach the socket the
// same way, and the fake's bookkeeping lives in Writev.
func (c *socketConn) Write(b []byte) (int, error) { return c.Writev([][]byte{b}) }

func (c *socketConn) Writev(bs [][]byte) (int, error) {
	nb := net.Buffers(bs)
	n, err := nb.WriteTo(c.w)
	return int(n), err
}

// OutboundBuffered is 0: the Writev above blocks until the kernel took
// everything.
func (c *socketConn) OutboundBuffered() int { return 0 }
func (c *socketConn) Close() error          { return c.w.Close() }
func (c *socketConn) RemoteAddr() net.Addr  { return nil }

// BenchmarkFlush measures one batch of frames through the send path per op:
// Send of every frame (the same pooled buffers, retained again each time)
// and the loop's flush task. "null" writes nowhere and is herald's own cost;
// "socket" writes to a socketpair. The raw-writev cases skip herald and show
// what the kernel charges for the two shapes of the same 64 small frames:
// one iovec (what coalescing produces) or one iovec per frame (what a
// reference per frame would cost).
func BenchmarkFlush(b *testing.B) {
	tests := []struct {
		name   string
		frames int
		size   int
		socket bool
		raw    int // 0: through herald; else writev the frames' bytes directly as this many iovecs
	}{
		{name: "null/64x68B", frames: 64, size: 68},
		{name: "null/64x600B", frames: 64, size: 600},
		{name: "socket/64x68B", frames: 64, size: 68, socket: true},
		{name: "socket/64x600B", frames: 64, size: 600, socket: true},
		{name: "socket/raw-writev-64x68B-as-1-iovec", frames: 64, size: 68, socket: true, raw: 1},
		{name: "socket/raw-writev-64x68B-as-64-iovecs", frames: 64, size: 68, socket: true, raw: 64},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			withoutDebug(func() {
				var conn Conn = &nullConn{}
				if tt.socket {
					conn = newSocketConn(b)
				}
				bufs := make([]*sendbuffer.Buffer, tt.frames)
				for i := range bufs {
					bufs[i] = sendbuffer.Get(tt.size)
					_, _ = bufs[i].Extend(tt.size)
				}
				defer func() {
					for _, buf := range bufs {
						buf.Release()
					}
				}()
				b.ReportAllocs()
				b.SetBytes(int64(tt.frames * tt.size))
				if tt.raw > 0 {
					joined := make([]byte, 0, tt.frames*tt.size)
					for _, buf := range bufs {
						joined = append(joined, buf.Bytes()...)
					}
					iov := make([][]byte, tt.raw)
					for b.Loop() {
						if tt.raw == 1 {
							iov[0] = joined
						} else {
							for i, buf := range bufs {
								iov[i] = buf.Bytes()
							}
						}
						if _, err := conn.Writev(iov); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				m, err := NewManager(Config{Limits: DefaultLimits(), OnSend: func(*Session, int) {}})
				if err != nil {
					b.Fatal(err)
				}
				l := NewLoop(&recordExec{})
				s := m.NewSession(conn, l)
				m.Add(s)
				defer m.Closed(s)
				for b.Loop() {
					for _, buf := range bufs {
						buf.Retain()
						_ = s.Send(buf)
					}
					_ = l.Run(context.Background())
				}
				if f, _ := s.Stats(); f < uint64(b.N*tt.frames) {
					b.Fatalf("%d frames sent; want %d", f, b.N*tt.frames)
				}
			})
		})
	}
}

// BenchmarkReply is an echo server's work for one message, without the
// socket, inside the session's callback: "Send" copies the frame into a
// SendBuffer and Sends it, and LeaveCallback writes it; "Reply" writes the
// frame's bytes at once.
func BenchmarkReply(b *testing.B) {
	for _, mode := range []string{"Send", "Reply"} {
		b.Run(mode, func(b *testing.B) {
			withoutDebug(func() {
				m, _, _, cs := newBenchManager(1)
				s := m.Sessions()[0]
				payload := make([]byte, benchPayload)
				b.ReportAllocs()
				for b.Loop() {
					s.EnterCallback()
					if mode == "Reply" {
						_ = s.Reply(payload)
					} else {
						_ = s.Send(sendbuffer.Copy(payload))
					}
					s.LeaveCallback()
				}
				if cs[0].writes != b.N {
					b.Fatalf("%d writes for %d replies", cs[0].writes, b.N)
				}
				removeAll(m)
			})
		})
	}
}

// BenchmarkCoalesceCutoff is what coalesceMax is chosen by: the kernel's
// cost for 32 frames of one size written to a loopback TCP connection,
// either copied into one buffer and written as one iovec (what the loop does
// for frames up to coalesceMax) or written as one iovec per frame. Compare
// the two modes at each size: the cut-off belongs where copying stops
// paying.
func BenchmarkCoalesceCutoff(b *testing.B) {
	const frames = 32
	for _, size := range []int{68, 256, 512, 1024, 2048, 4096} {
		for _, mode := range []string{"copy-1-iovec", frames32Name} {
			b.Run(fmt.Sprintf("size=%d/%s", size, mode), func(b *testing.B) {
				w := loopbackTCP(b)
				src := make([][]byte, frames)
				for i := range src {
					src[i] = make([]byte, size)
				}
				scratch := make([]byte, frames*size)
				iov := make(net.Buffers, 0, frames)
				b.SetBytes(int64(frames * size))
				b.ReportAllocs()
				for b.Loop() {
					iov = iov[:0]
					if mode == frames32Name {
						iov = append(iov, src...)
					} else {
						used := 0
						for _, p := range src {
							used += copy(scratch[used:], p)
						}
						iov = append(iov, scratch[:used])
					}
					if _, err := iov.WriteTo(w); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

const frames32Name = "32-iovecs"

// loopbackTCP returns the writing end of a 127.0.0.1 TCP connection whose
// other end a goroutine reads and discards until the benchmark ends.
func loopbackTCP(b *testing.B) *net.TCPConn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r)
		r.Close()
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		w.Close()
		<-done
	})
	return w.(*net.TCPConn)
}

// benchText is n bytes of chat-like text: lines of words drawn from a small
// vocabulary, so it compresses as people's messages do, not as repeats.
func benchText(n int) []byte {
	words := strings.Fields("the a to and of you I it is in that have for on with we can see north gate blue key " +
		"anyone seen was near room team quest boss loot level up guild raid tonight who wants heal tank " +
		"ready go wait here there back left right attack run hide found lost gold sword shield potion")
	r := rand.New(rand.NewPCG(7, 11))
	var p []byte
	for len(p) < n {
		p = fmt.Appendf(p, "player%d:", r.IntN(500))
		for range 4 + r.IntN(10) {
			p = append(append(p, ' '), words[r.IntN(len(words))]...)
		}
		p = append(p, '\n')
	}
	return p[:n]
}

// BenchmarkBroadcastDeflate measures whether permessage-deflate pays:
// each op broadcasts one frame to 10 or 100 WebSocket sessions on one loop and
// flushes them, the sessions plain or all deflate with every message
// compressed when it shrinks (SetDeflate(1)), for a 64-byte binary packet
// (random bytes), a 100-byte chat line and 4 KiB of chat text. "null"
// conns copy nothing: ns/recipient is herald's own CPU per delivered
// message. "socket" conns write to socketpairs drained by other
// goroutines, and cpu-ns/recipient is the CPU time of the writing thread
// alone (getrusage RUSAGE_THREAD, user and system): the server's cost per
// delivered message with the kernel's copy of the bytes, which deflate
// saves. wireB/recipient is the bytes each socket is handed. Quote deflate
// against plain from the same run.
func BenchmarkBroadcastDeflate(b *testing.B) {
	inputs := []struct {
		name string
		op   ws.Opcode
		p    []byte
	}{
		{"binary64", ws.OpBinary, payload(64)},
		{"chat100", ws.OpText, benchText(100)},
		{"text4k", ws.OpText, benchText(4096)},
	}
	for _, conn := range []string{"null", "socket"} {
		for _, n := range []int{10, 100} {
			for _, in := range inputs {
				for _, deflate := range []bool{false, true} {
					b.Run(fmt.Sprintf("%s/recipients=%d/%s/deflate=%v", conn, n, in.name, deflate), func(b *testing.B) {
						withoutDebug(func() { benchBroadcastDeflate(b, n, conn == "socket", in.op, in.p, deflate) })
					})
				}
			}
		}
	}
}

func benchBroadcastDeflate(b *testing.B, n int, socket bool, op ws.Opcode, p []byte, deflate bool) {
	m, err := NewManager(Config{Limits: DefaultLimits(), OnSend: func(*Session, int) {}})
	if err != nil {
		b.Fatal(err)
	}
	l := NewLoop(&recordExec{})
	for range n {
		var c Conn = &nullConn{}
		if socket {
			c = newSocketConn(b)
		}
		s := m.NewSession(c, l)
		s.SetWebSocket(op, nil)
		if deflate {
			s.SetDeflate(1)
		}
		m.Add(s)
	}
	defer removeAll(m)
	first := m.Sessions()[0]
	broadcastAndFlush(m, l, p) // warm queues, pools and the loop's slices
	_, wire0 := first.Stats()
	runtime.LockOSThread() // the thread's CPU time is the benchmark's
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	b.ReportAllocs()
	b.SetBytes(int64(len(p) * n))
	b.ResetTimer()
	for b.Loop() {
		broadcastAndFlush(m, l, p)
	}
	b.StopTimer()
	cpu1, _ := threadCPU()
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/recipient")
	if cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/per, "cpu-ns/recipient")
	}
	_, wire := first.Stats()
	b.ReportMetric(float64(wire-wire0)/float64(b.N), "wireB/recipient")
	if want := uint64(b.N + 1); deflate && m.Counters().Deflated != want {
		b.Fatalf("%d compressions for %d broadcasts to %d deflate sessions", m.Counters().Deflated, want, n)
	}
}

// threadCPU returns the calling thread's CPU time (user and system) in
// nanoseconds, where getrusage supports RUSAGE_THREAD (Linux).
func threadCPU() (int64, bool) {
	const rusageThread = 1 // Linux's RUSAGE_THREAD
	var ru syscall.Rusage
	if runtime.GOOS != "linux" || syscall.Getrusage(rusageThread, &ru) != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}

// payload is n random bytes, as a binary game packet's state is to a
// compressor.
func payload(n int) []byte {
	p := make([]byte, n)
	r := rand.New(rand.NewPCG(3, 5))
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}
