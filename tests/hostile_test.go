package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
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

// Hostile input harms nobody else: while healthy clients broadcast through
// the server, other connections send what no valid peer sends. Each offender
// is closed alone, with its codec error as the close reason and one log line;
// the healthy clients lose, duplicate, reorder or corrupt nothing, and no
// frame of theirs is delayed by a second.
const (
	healthyClients  = 10
	healthyDuration = 3 * time.Second
	healthyRate     = 1000 // packet frames (or lines) per second, all healthy clients together
	maxHealthyDelay = time.Second
	closeWithin     = 3 * time.Second
	badFrameMsg     = "herald: closing session: bad frame"
)

// packetHeader is a packet codec header: size (the whole frame) and id.
func packetHeader(size, id uint16) []byte {
	return binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(nil, size), id)
}

// garbage is n bytes of deterministic noise.
func garbage(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// decodeAll runs c over in as the server does and reports how many frames
// it yields before the first error (nil if in ends in a partial frame).
func decodeAll(c codec.Codec, in []byte) (frames int, err error) {
	for {
		_, n, err := c.Decode(in)
		if err != nil || n == 0 {
			return frames, err
		}
		frames++
		in = in[n:]
	}
}

// TestHostileOffenderClosedAlone: each row's bytes, sent by two offenders
// while healthy clients broadcast, close both offenders as soon as the bytes
// received show the violation (a header claiming too much is enough: no body
// is ever sent), with the codec's error as the reason and one "bad frame"
// log line each naming session, remote address and error. Healthy traffic
// (loadgen fan-out on the packet codec, line clients on the line codec) is
// unaffected.
func TestHostileOffenderClosedAlone(t *testing.T) {
	const maxPacket, maxLine = 1024, 256
	noise := garbage(1, 64<<10)
	noiseFrames, noiseErr := decodeAll(codec.Packet(maxPacket), noise)
	noiseIs := codec.ErrBadLength
	if errors.Is(noiseErr, codec.ErrFrameTooLarge) {
		noiseIs = codec.ErrFrameTooLarge
	}
	tests := []struct {
		name  string
		codec codec.Codec
		bad   []byte
		// wantIs is the close reason (besides handler.ErrProtocol).
		wantIs error
		// wantFrames is how many valid frames precede the violation. The
		// handler drops frames from offenders: what content code does with
		// a well-formed frame from a hostile peer is its own policy.
		wantFrames int
	}{
		{name: "packet/too large: size 65535, header only", codec: codec.Packet(maxPacket),
			bad: packetHeader(0xFFFF, 1), wantIs: codec.ErrFrameTooLarge},
		{name: "packet/too large: size max+1, header only", codec: codec.Packet(maxPacket),
			bad: packetHeader(maxPacket+1, 1), wantIs: codec.ErrFrameTooLarge},
		{name: "packet/too large: size field alone", codec: codec.Packet(maxPacket),
			bad: []byte{0xFF, 0xFF}, wantIs: codec.ErrFrameTooLarge},
		{name: "packet/bad length: size 0", codec: codec.Packet(maxPacket),
			bad: packetHeader(0, 0), wantIs: codec.ErrBadLength},
		{name: "packet/bad length: size 3 < header", codec: codec.Packet(maxPacket),
			bad: packetHeader(3, 1), wantIs: codec.ErrBadLength},
		{name: "packet/bad length: size 1 after a valid frame", codec: codec.Packet(maxPacket),
			bad: append(packetFrame(7, []byte("fine")), packetHeader(1, 0)...), wantIs: codec.ErrBadLength, wantFrames: 1},
		{name: "packet/64 KiB of noise", codec: codec.Packet(maxPacket),
			bad: noise, wantIs: noiseIs, wantFrames: noiseFrames},
		{name: "line/max+1 bytes without newline", codec: codec.Line(maxLine),
			bad: bytes.Repeat([]byte("A"), maxLine+1), wantIs: codec.ErrFrameTooLarge},
		{name: "line/300 bytes without newline", codec: codec.Line(maxLine),
			bad: bytes.Repeat([]byte("B"), 300), wantIs: codec.ErrFrameTooLarge},
		{name: "line/a line then an endless one", codec: codec.Line(maxLine),
			bad: append([]byte("hi all\r\n"), bytes.Repeat([]byte("C"), 300)...), wantIs: codec.ErrFrameTooLarge, wantFrames: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The row itself: the codec alone must see what the server sees.
			if frames, err := decodeAll(tt.codec, tt.bad); !errors.Is(err, tt.wantIs) || frames != tt.wantFrames {
				t.Fatalf("row: codec yields %d frames then %v; want %d then %v", frames, err, tt.wantFrames, tt.wantIs)
			}
			env := startHostile(t, tt.codec)
			hl := env.startHealthy()
			hl.waitStarted(t)
			time.Sleep(200 * time.Millisecond) // land in the middle of the traffic

			offenders := []*offender{env.dialOffender(true), env.dialOffender(true)}
			for _, o := range offenders {
				o.write(tt.bad)
			}
			for i, o := range offenders {
				took, err := o.waitClosed(closeWithin)
				t.Logf("offender %d (%s) closed %v after its write: %v", i, o.local, took.Round(time.Microsecond), err)
				env.checkBadFrameClose(o, tt.wantIs)
				if got := env.h.droppedFrom(o.local); got != tt.wantFrames {
					t.Errorf("offender %d: handler got %d frames, want %d", i, got, tt.wantFrames)
				}
			}

			res := hl.wait(t)
			env.checkHealthy(res)
			waitFor(t, 5*time.Second, "healthy sessions gone", func() bool { return env.srv.Manager().Len() == 0 })
			env.checkNoOtherProtocolCloses(offenders)
			if got := len(env.badFrameLines()); got != len(offenders) {
				t.Errorf("%d %q log lines, want %d (one per offender):\n%s", got, badFrameMsg, len(offenders), env.logs)
			}
		})
	}
}

// TestHostileStallCostsNothing: peers that send part of a frame and then
// nothing (one of them not even reading what the server sends it) cost the
// healthy clients nothing. They stay connected (a frame deadline is a later
// issue) and are not logged as bad; the partial frame is kept, not lost:
// when a staller finally sends the rest, the handler gets exactly its frame.
func TestHostileStallCostsNothing(t *testing.T) {
	const maxPacket = 1024
	full := packetFrame(1, bytes.Repeat([]byte{0xA5}, maxPacket-4)) // a max frame
	small := packetFrame(1, []byte("twelve bytes"))
	stalls := []struct {
		name  string
		frame []byte
		cut   int // bytes sent before the stall; the rest come at the end
		read  bool
	}{
		{name: "header of a max frame, then nothing", frame: full, cut: 4, read: true},
		{name: "header and half the body, then nothing", frame: full, cut: 4 + (maxPacket-4)/2, read: true},
		{name: "half a size field, then nothing", frame: small, cut: 1, read: true},
		{name: "header and half the body, never reads", frame: full, cut: 4 + (maxPacket-4)/2, read: false},
	}
	env := startHostile(t, codec.Packet(maxPacket))
	hl := env.startHealthy()
	hl.waitStarted(t)
	time.Sleep(200 * time.Millisecond)
	var stallers []*offender
	for _, s := range stalls {
		o := env.dialOffender(s.read)
		o.write(s.frame[:s.cut])
		stallers = append(stallers, o)
	}

	res := hl.wait(t)
	env.checkHealthy(res)
	waitFor(t, 5*time.Second, "only the stallers left", func() bool { return env.srv.Manager().Len() == len(stallers) })
	for i, o := range stallers {
		if o.isClosed() {
			t.Errorf("staller %q was closed: %v", stalls[i].name, o.readErr)
		}
	}

	for i, o := range stallers {
		o.write(stalls[i].frame[stalls[i].cut:])
	}
	for i, o := range stallers {
		for deadline := time.Now().Add(5 * time.Second); env.h.droppedFrom(o.local) == 0 && !o.isClosed() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // a wrongly split stream would show more frames or a close
		if got := env.h.droppedFrom(o.local); got != 1 || o.isClosed() {
			t.Errorf("staller %q: after the rest of its frame, handler got %d frames (want 1), closed %v (%v)",
				stalls[i].name, got, o.isClosed(), o.readErr)
		}
	}
	if n := env.srv.Manager().Len(); n != len(stallers) {
		t.Errorf("%d sessions after the stallers completed their frames, want %d", n, len(stallers))
	}
	if lines := env.badFrameLines(); len(lines) != 0 {
		t.Errorf("stallers logged as bad frames: %+v", lines)
	}
	for _, o := range stallers {
		o.conn.Close()
	}
	waitFor(t, 5*time.Second, "stallers gone", func() bool { return env.srv.Manager().Len() == 0 })
	env.checkNoOtherProtocolCloses(nil)
}

// TestHostileResetStorm: 200 connections open at once, half of them send
// half a frame, and all are reset (SO_LINGER 0, so Close sends RST) at once,
// while the server is broadcasting to them. The healthy clients are
// unaffected, the Manager drops back to exactly the healthy clients while
// they still run and to zero after, no reset is mistaken for a protocol
// error, and no SendBuffer leaks (startServer's cleanup).
func TestHostileResetStorm(t *testing.T) {
	const storm = 200
	env := startHostile(t, codec.Packet(1024))
	hl := env.startHealthy()
	hl.waitStarted(t)
	time.Sleep(200 * time.Millisecond)

	conns := make([]*net.TCPConn, storm)
	var wg sync.WaitGroup
	errs := make(chan error, storm)
	for i := range conns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", env.srv.Addr().String(), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c.(*net.TCPConn)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatalf("storm dial: %v", err)
	}
	stormAddrs := map[string]bool{}
	for _, c := range conns {
		stormAddrs[c.LocalAddr().String()] = true
	}
	opened := time.Now()
	waitFor(t, 10*time.Second, "storm sessions open", func() bool { return env.srv.Manager().Len() == healthyClients+storm })
	t.Logf("%d storm sessions open after %v", storm, time.Since(opened).Round(time.Millisecond))

	half := append(packetHeader(64, 1), make([]byte, 30)...)
	fire := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			if i%2 == 0 {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(half)
			}
			_ = c.SetLinger(0)
			<-fire
			_ = c.Close() // RST
		})
	}
	close(fire)
	wg.Wait()
	reset := time.Now()
	waitFor(t, 5*time.Second, "storm sessions gone", func() bool { return env.srv.Manager().Len() == healthyClients })
	t.Logf("storm sessions removed %v after the resets", time.Since(reset).Round(time.Millisecond))
	if hl.isDone() {
		t.Fatalf("healthy traffic ended before the storm cleared; the check above proves nothing")
	}

	res := hl.wait(t)
	env.checkHealthy(res)
	waitFor(t, 5*time.Second, "healthy sessions gone", func() bool { return env.srv.Manager().Len() == 0 })
	stormClosed := 0
	for remote, rec := range env.h.closedSnapshot() {
		if stormAddrs[remote] {
			stormClosed++
		}
		if errors.Is(rec.reason, handler.ErrProtocol) || errors.Is(rec.reason, handler.ErrHandlerPanic) {
			t.Errorf("session %d (%s) closed with %v", rec.id, remote, rec.reason)
		}
	}
	if stormClosed != storm {
		t.Errorf("OnDisconnected ran for %d storm sessions, want %d", stormClosed, storm)
	}
	if lines := env.badFrameLines(); len(lines) != 0 {
		t.Errorf("resets logged as bad frames: %+v", lines)
	}
}

// guardRelay is the broadcast server (cmd/broadcast) with a quarantine:
// frames from the offenders' addresses are counted and dropped instead of
// broadcast. It records every session's close reason by remote address.
type guardRelay struct {
	handler.Base

	mu         sync.Mutex
	quarantine map[string]int // remote address -> frames dropped
	closed     map[string]closeRecord
}

type closeRecord struct {
	id     uint64
	reason error
}

func newGuardRelay() *guardRelay {
	return &guardRelay{quarantine: map[string]int{}, closed: map[string]closeRecord{}}
}

func (g *guardRelay) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	remote := s.RemoteAddr().String()
	g.mu.Lock()
	n, q := g.quarantine[remote]
	if q {
		g.quarantine[remote] = n + 1
	}
	g.mu.Unlock()
	if !q {
		s.Manager().Broadcast(sendbuffer.Copy(f.Wire))
	}
}

func (g *guardRelay) OnDisconnected(s *sessionmgr.Session, reason error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed[s.RemoteAddr().String()] = closeRecord{id: s.ID(), reason: reason}
}

func (g *guardRelay) quarantined(remote string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quarantine[remote] = 0
}

func (g *guardRelay) droppedFrom(remote string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.quarantine[remote]
}

func (g *guardRelay) closedRecord(remote string) (closeRecord, bool) {
	return lockedLookup(&g.mu, &g.closed, remote)
}

func (g *guardRelay) closedSnapshot() map[string]closeRecord {
	return lockedCopy(&g.mu, &g.closed)
}

// hostileEnv is a server under attack: a guardRelay on two loops, logging
// JSON into logs.
type hostileEnv struct {
	t    *testing.T
	srv  *handler.Server
	h    *guardRelay
	logs *syncBuffer
	// line: healthy clients speak lines (runLineFanout), not packets
	// (loadgen).
	line bool
}

func startHostile(t *testing.T, c codec.Codec) *hostileEnv {
	t.Helper()
	env := &hostileEnv{t: t, h: newGuardRelay(), logs: &syncBuffer{}, line: c.Name() == "line"}
	env.srv = startServer(t, env.h, handler.WithCodec(c), handler.WithLoops(2),
		handler.WithLogger(zerolog.New(env.logs)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", env.logs)
		}
	})
	return env
}

// badFrameLines returns the server's "bad frame" log lines.
func (e *hostileEnv) badFrameLines() []logLine {
	e.t.Helper()
	return logLines(e.t, e.logs, func(l logLine) bool { return strings.Contains(l.Message, "bad frame") })
}

// checkBadFrameClose checks that the server logged one bad frame line for
// o, naming its session, its address and an error, and that the session
// closed with that session id and a reason wrapping ErrProtocol and wantIs.
func (e *hostileEnv) checkBadFrameClose(o *offender, wantIs error) {
	t := e.t
	t.Helper()
	var mine []logLine
	for _, l := range e.badFrameLines() {
		if l.Remote == o.local {
			mine = append(mine, l)
		}
	}
	if len(mine) != 1 {
		t.Errorf("%d %q lines for %s, want 1", len(mine), badFrameMsg, o.local)
		return
	}
	l := mine[0]
	if l.Message != badFrameMsg || l.Level != "warn" || l.Session == 0 || l.Error == "" {
		t.Errorf("log line %+v: want level warn, message %q, a session id and an error", l, badFrameMsg)
	}
	var rec closeRecord
	waitFor(t, 5*time.Second, "OnDisconnected of "+o.local, func() bool {
		var ok bool
		rec, ok = e.h.closedRecord(o.local)
		return ok
	})
	if rec.id != l.Session {
		t.Errorf("log names session %d, OnDisconnected got session %d", l.Session, rec.id)
	}
	if !errors.Is(rec.reason, handler.ErrProtocol) || !errors.Is(rec.reason, wantIs) {
		t.Errorf("close reason %v, want %v wrapping %v", rec.reason, handler.ErrProtocol, wantIs)
	}
	if !strings.Contains(rec.reason.Error(), l.Error) {
		t.Errorf("log error %q is not the close reason %q", l.Error, rec.reason)
	}
}

// checkNoOtherProtocolCloses fails the test if a session other than the
// given offenders closed with a protocol error or a handler panic.
func (e *hostileEnv) checkNoOtherProtocolCloses(offenders []*offender) {
	e.t.Helper()
	bad := map[string]bool{}
	for _, o := range offenders {
		bad[o.local] = true
	}
	for remote, rec := range e.h.closedSnapshot() {
		if bad[remote] {
			continue
		}
		if errors.Is(rec.reason, handler.ErrProtocol) || errors.Is(rec.reason, handler.ErrHandlerPanic) {
			e.t.Errorf("healthy session %d (%s) closed with %v", rec.id, remote, rec.reason)
		}
	}
}

// healthyTraffic is a broadcast run of healthy clients in the background.
type healthyTraffic struct {
	started chan struct{} // closed when the clients are registered and sending
	done    chan struct{} // closed when the run has returned
	res     healthyResult // set before done is closed
}

type healthyResult struct {
	received   int64 // frames (lines) delivered, counted once per receiver
	errors     int64 // lost, duplicated, reordered, corrupt, disconnects
	maxLatency time.Duration
	p99        time.Duration
	samples    []string
	err        error
}

// startHealthy starts healthyClients clients broadcasting through the server
// for healthyDuration: loadgen's verified fan-out on a packet server,
// runLineFanout on a line server. The test's cleanup waits for the run.
func (e *hostileEnv) startHealthy() *healthyTraffic {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	hl := &healthyTraffic{started: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	started := func() { once.Do(func() { close(hl.started) }) }
	addr := e.srv.Addr().String()
	go func() {
		defer close(hl.done)
		defer cancel()
		if e.line {
			r := runLineFanout(ctx, lineFanoutConfig{
				Addr: addr, Clients: healthyClients, Duration: healthyDuration,
				Window: 4, Interval: healthyClients * time.Second / healthyRate, Size: 100,
				CRLF: func(i int) bool { return i%2 == 0 }, Started: started,
			})
			hl.res = healthyResult{received: r.Received, errors: int64(r.ErrorCount), maxLatency: r.MaxLatency, samples: r.Errors}
			return
		}
		r, err := loadgen.RunFanout(ctx, loadgen.FanoutConfig{
			Addr: addr, Clients: healthyClients, Duration: healthyDuration, Rate: healthyRate,
			Window: 8, Size: 64, ProgressInterval: 20 * time.Millisecond,
			Progress: func(p loadgen.Progress) {
				if p.Sent > 0 {
					started()
				}
			},
		})
		hl.res = healthyResult{received: r.Received, errors: r.Errors, maxLatency: r.Latency.Max,
			p99: r.Latency.P99, samples: r.ErrorSamples, err: err}
	}()
	e.t.Cleanup(func() {
		cancel()
		<-hl.done
	})
	return hl
}

func (hl *healthyTraffic) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-hl.started:
	case <-hl.done:
		t.Fatalf("healthy traffic ended before it started: %v %v", hl.res.err, hl.res.samples)
	case <-time.After(20 * time.Second):
		t.Fatal("healthy traffic did not start within 20s")
	}
}

func (hl *healthyTraffic) isDone() bool {
	select {
	case <-hl.done:
		return true
	default:
		return false
	}
}

func (hl *healthyTraffic) wait(t *testing.T) healthyResult {
	t.Helper()
	select {
	case <-hl.done:
		return hl.res
	case <-time.After(60 * time.Second):
		t.Fatal("healthy traffic did not end within 60s")
		return healthyResult{}
	}
}

// checkHealthy: everything arrived once, intact, in order, and no frame took
// maxHealthyDelay or more.
func (e *hostileEnv) checkHealthy(r healthyResult) {
	e.t.Helper()
	if r.err != nil || r.errors != 0 || r.received == 0 {
		e.t.Errorf("healthy clients: %d delivered, %d errors, err %v: %v", r.received, r.errors, r.err, r.samples)
	}
	if r.maxLatency >= maxHealthyDelay {
		e.t.Errorf("healthy clients: max latency %v, want < %v", r.maxLatency, maxHealthyDelay)
	}
	if r.p99 > 0 {
		e.t.Logf("healthy clients: %d delivered, max latency %v (p99 %v)", r.received, r.maxLatency, r.p99)
	} else {
		e.t.Logf("healthy clients: %d delivered, max latency %v", r.received, r.maxLatency)
	}
}

// offender is a hostile connection. Its address is quarantined in the
// guardRelay before it sends anything.
type offender struct {
	t     *testing.T
	conn  *net.TCPConn
	local string

	wrote time.Time // when the hostile bytes were written; test goroutine

	closed   chan struct{} // closed when a read fails (reading offenders only)
	closedAt time.Time     // set before closed is closed
	readErr  error         // set before closed is closed
}

// dialOffender connects an offender. If read, a goroutine drains what the
// server sends it (broadcasts) and notes when the connection ends.
func (e *hostileEnv) dialOffender(read bool) *offender {
	t := e.t
	t.Helper()
	c, err := net.DialTimeout("tcp", e.srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o := &offender{t: t, conn: c.(*net.TCPConn), local: c.LocalAddr().String(), closed: make(chan struct{})}
	e.h.quarantined(o.local)
	if !read {
		t.Cleanup(func() { o.conn.Close() })
		return o
	}
	go func() {
		buf := make([]byte, 32<<10)
		_ = o.conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		var err error
		for err == nil {
			_, err = o.conn.Read(buf)
		}
		o.closedAt, o.readErr = time.Now(), err
		close(o.closed)
	}()
	t.Cleanup(func() {
		o.conn.Close()
		<-o.closed
	})
	return o
}

// write sends b. The server may close the connection before all of b is
// written; that write error is expected and ignored.
func (o *offender) write(b []byte) {
	o.wrote = time.Now()
	_ = o.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = o.conn.Write(b)
}

// waitClosed waits up to d for the server to close the connection (EOF or
// reset) and returns how long after the write that was seen.
func (o *offender) waitClosed(d time.Duration) (time.Duration, error) {
	o.t.Helper()
	select {
	case <-o.closed:
	case <-time.After(d):
		o.t.Fatalf("offender %s not closed within %v", o.local, d)
	}
	if !errors.Is(o.readErr, io.EOF) && !errors.Is(o.readErr, syscall.ECONNRESET) {
		o.t.Errorf("offender %s: read ended with %v, want EOF or connection reset", o.local, o.readErr)
	}
	return o.closedAt.Sub(o.wrote), o.readErr
}

func (o *offender) isClosed() bool {
	select {
	case <-o.closed:
		return true
	default:
		return false
	}
}
