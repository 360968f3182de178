package tests

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/loadgen"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
	"go.uber.org/goleak"
)

// Server limits: a cap on connections, idle and frame deadlines, and a
// shutdown that delivers or counts what it accepted. Each is enforced on
// real sockets while other clients carry on.

// TestMaxConns: with WithMaxConns(5) the sixth connection is closed by the
// server at once and counted as refused, the five keep working, and once
// one of them leaves a new one is accepted.
func TestMaxConns(t *testing.T) {
	const maxConns = 5
	h := newSpy()
	srv := startServer(t, h, handler.WithMaxConns(maxConns), handler.WithLoops(2))
	addr := srv.Addr().String()
	var clients []*packetClient
	for range maxConns {
		clients = append(clients, dialPacket(t, addr))
	}
	waitFor(t, 5*time.Second, "5 sessions", func() bool { return srv.Manager().Len() == maxConns })

	extra := dialPacket(t, addr)
	dialed := time.Now()
	extra.expectClosed(5 * time.Second)
	if took := time.Since(dialed); took > time.Second {
		t.Errorf("the sixth connection was closed %v after it connected, want under 1s", took)
	} else {
		t.Logf("the sixth connection was closed %v after it connected", took.Round(time.Microsecond))
	}
	if st := srv.Stats(); st.Refused != 1 || st.Sessions != maxConns {
		t.Errorf("Refused %d, Sessions %d; want 1 and %d", st.Refused, st.Sessions, maxConns)
	}
	broadcast := func(from *packetClient, to []*packetClient, text string) {
		t.Helper()
		from.send(loadgen.FrameID, []byte(text))
		for _, c := range to {
			if _, p := c.recv(5 * time.Second); string(p) != text {
				t.Fatalf("got %q, want %q", p, text)
			}
		}
	}
	broadcast(clients[0], clients, "five")

	clients[0].conn.Close()
	waitFor(t, 5*time.Second, "4 sessions", func() bool { return srv.Manager().Len() == maxConns-1 })
	newcomer := dialPacket(t, addr)
	waitFor(t, 5*time.Second, "5 sessions again", func() bool { return srv.Manager().Len() == maxConns })
	clients = append(clients[1:], newcomer)
	broadcast(newcomer, clients, "welcome")
	if st := srv.Stats(); st.Refused != 1 {
		t.Errorf("Refused %d after the newcomer, want 1", st.Refused)
	}
}

// slowGreeter is a spy whose OnConnected takes a while, as content code
// that loads a player's state when they connect does.
type slowGreeter struct {
	*spy
	delay time.Duration
}

func (h *slowGreeter) OnConnected(s *sessionmgr.Session) {
	time.Sleep(h.delay)
	h.spy.OnConnected(s)
}

// TestMaxConnsBurst: 20 clients connect at once to a server on 4 event
// loops whose OnConnected takes 20 ms. No more than WithMaxConns sessions
// are ever admitted (OnConnected called), whatever loops the connections
// land on, and every other connection is refused and counted. (When the
// limit was a check of the Manager's size and sessions joined it after
// OnConnected, 8 of these 20 got in.)
func TestMaxConnsBurst(t *testing.T) {
	const maxConns, burst = 5, 20
	h := &slowGreeter{spy: newSpy(), delay: 20 * time.Millisecond}
	srv := startServer(t, h, handler.WithMaxConns(maxConns), handler.WithLoops(4))
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { c.Close() })
		})
	}
	wg.Wait()
	waitFor(t, 5*time.Second, "every connection admitted or refused", func() bool {
		return len(h.allSessions())+int(srv.Stats().Refused) == burst
	})
	if admitted := len(h.allSessions()); admitted > maxConns || srv.Manager().Len() > maxConns {
		t.Errorf("%d sessions admitted (%d in the Manager), refused %d; want at most %d admitted",
			admitted, srv.Manager().Len(), srv.Stats().Refused, maxConns)
	}
}

// timedClient is a raw test client whose reader goroutine counts the
// frames it receives and notes when and how the connection ended.
type timedClient struct {
	conn   *net.TCPConn
	dialed time.Time // just before the dial, so before the server saw it
	frames atomic.Int64
	done   chan struct{} // closed when the reader returns
	endAt  time.Time     // set before done is closed
	endErr error         // set before done is closed
}

func dialTimed(t *testing.T, addr string) *timedClient {
	t.Helper()
	dialed := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := &timedClient{conn: c.(*net.TCPConn), dialed: dialed, done: make(chan struct{})}
	go func() {
		defer close(tc.done)
		r := bufio.NewReaderSize(tc.conn, 64<<10)
		var err error
		for err == nil {
			if _, _, err = readFrame(r); err == nil {
				tc.frames.Add(1)
			}
		}
		tc.endAt, tc.endErr = time.Now(), err
	}()
	t.Cleanup(func() {
		tc.conn.Close()
		<-tc.done
	})
	return tc
}

func (c *timedClient) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// write writes p, ignoring errors (the server may have closed already), and
// returns the time just before, so before the server can have seen p.
func (c *timedClient) write(p []byte) time.Time {
	at := time.Now()
	_ = c.conn.SetWriteDeadline(at.Add(5 * time.Second))
	_, _ = c.conn.Write(p)
	return at
}

// step is one write of a scripted client, after waiting.
type step struct {
	after time.Duration
	data  []byte
}

// TestIdleTimeout: with WithIdleTimeout(300ms) and WithTick(20ms) a client
// that sends nothing for 300 ms is closed (reason ErrIdle) within a second
// of its last bytes, not before; a client that sends every 100 ms stays
// open.
func TestIdleTimeout(t *testing.T) {
	const idle, tick, window = 300 * time.Millisecond, 20 * time.Millisecond, 1500 * time.Millisecond
	ping := packetFrame(privateID, []byte("ping"))
	every100ms := []step{{0, ping}}
	for range 14 {
		every100ms = append(every100ms, step{100 * time.Millisecond, ping})
	}
	tests := []struct {
		name   string
		script []step
		closed bool
	}{
		{name: "silent", closed: true},
		{name: "one frame after 200 ms, then silent", script: []step{{200 * time.Millisecond, ping}}, closed: true},
		{name: "a frame every 100 ms", script: every100ms, closed: false},
	}
	h := newSpy()
	srv := startServer(t, h, handler.WithIdleTimeout(idle), handler.WithTick(tick), handler.WithLoops(2))
	runScripts(t, srv, h, window, len(tests), func(i int) []step { return tests[i].script }, func(i int, r scriptResult) {
		tt := tests[i]
		if !tt.closed {
			if r.ended || r.frames != len(tt.script) {
				t.Errorf("%s: closed %v (%v, reason %v), %d echoes of %d; want open with every echo",
					tt.name, r.ended, r.endErr, r.reason, r.frames, len(tt.script))
			}
			return
		}
		if !r.ended || !errors.Is(r.reason, handler.ErrIdle) || !isClosedByPeer(r.endErr) {
			t.Errorf("%s: closed %v (read %v, reason %v); want closed with %v", tt.name, r.ended, r.endErr, r.reason, handler.ErrIdle)
			return
		}
		if r.sinceLast < idle || r.sinceLast > time.Second {
			t.Errorf("%s: closed %v after its last bytes, want [%v, 1s]", tt.name, r.sinceLast, idle)
		}
		t.Logf("%s: closed %v after its last bytes", tt.name, r.sinceLast.Round(time.Millisecond))
	})
	if got, want := srv.Stats().IdleClosed, uint64(2); got != want {
		t.Errorf("IdleClosed %d, want %d", got, want)
	}
}

// TestFrameTimeout: with WithFrameTimeout(300ms) and WithTick(20ms) a
// client that starts a frame and does not finish it within 300 ms is closed
// (reason ErrFrameTimeout) within a second and not before 300 ms, also
// while it keeps dribbling bytes of it; a client that finishes
// its frame in time is not.
func TestFrameTimeout(t *testing.T) {
	const timeout, tick, window = 300 * time.Millisecond, 20 * time.Millisecond, 1500 * time.Millisecond
	frame := packetFrame(privateID, make([]byte, 1020)) // 1 KiB
	half := 4 + 510
	dribble := []step{{0, frame[:4]}}
	for i := range 20 {
		dribble = append(dribble, step{50 * time.Millisecond, frame[4+i : 5+i]})
	}
	tests := []struct {
		name   string
		script []step
		closed bool
	}{
		{name: "half a size field", script: []step{{0, frame[:1]}}, closed: true},
		{name: "header only", script: []step{{0, frame[:4]}}, closed: true},
		{name: "header and half the body", script: []step{{0, frame[:half]}}, closed: true},
		{name: "body dribbled, a byte every 50 ms", script: dribble, closed: true},
		{name: "half the frame, the rest 100 ms later", script: []step{{0, frame[:half]}, {100 * time.Millisecond, frame[half:]}}},
		{name: "a frame and half the next, the rest 200 ms later",
			script: []step{{0, append(append([]byte{}, frame...), frame[:half]...)}, {200 * time.Millisecond, frame[half:]}}},
	}
	wantEchoes := []int{0, 0, 0, 0, 1, 2}
	h := newSpy()
	srv := startServer(t, h, handler.WithFrameTimeout(timeout), handler.WithTick(tick), handler.WithLoops(2))
	closed := 0
	runScripts(t, srv, h, window, len(tests), func(i int) []step { return tests[i].script }, func(i int, r scriptResult) {
		tt := tests[i]
		if !tt.closed {
			if r.ended || r.frames != wantEchoes[i] {
				t.Errorf("%s: closed %v (%v, reason %v), %d echoes; want open with %d",
					tt.name, r.ended, r.endErr, r.reason, r.frames, wantEchoes[i])
			}
			return
		}
		closed++
		if !r.ended || !errors.Is(r.reason, handler.ErrFrameTimeout) || !isClosedByPeer(r.endErr) {
			t.Errorf("%s: closed %v (read %v, reason %v); want closed with %v", tt.name, r.ended, r.endErr, r.reason, handler.ErrFrameTimeout)
			return
		}
		if r.sinceFirst < timeout || r.sinceFirst > time.Second {
			t.Errorf("%s: closed %v after the frame began, want [%v, 1s]", tt.name, r.sinceFirst, timeout)
		}
		t.Logf("%s: closed %v after the frame began", tt.name, r.sinceFirst.Round(time.Millisecond))
	})
	if got := srv.Stats().FrameTimeouts; got != uint64(closed) {
		t.Errorf("FrameTimeouts %d, want %d", got, closed)
	}
}

// scriptResult is how a scripted client fared.
type scriptResult struct {
	frames     int           // frames received
	ended      bool          // the connection ended within the window
	endErr     error         // how the read ended
	reason     error         // the session's close reason
	sinceFirst time.Duration // from the first write (or the dial) to the end
	sinceLast  time.Duration // from the last write (or the dial) to the end
}

// runScripts connects n clients at once, plays script(i) on client i, and
// after window reports each one's result to check.
func runScripts(t *testing.T, srv *handler.Server, h *spy, window time.Duration, n int,
	script func(int) []step, check func(int, scriptResult)) {
	t.Helper()
	clients := make([]*timedClient, n)
	for i := range clients {
		clients[i] = dialTimed(t, srv.Addr().String())
	}
	waitFor(t, 5*time.Second, "sessions", func() bool { return srv.Manager().Len() == n })
	first, last := make([]time.Time, n), make([]time.Time, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		first[i], last[i] = c.dialed, c.dialed
		wg.Go(func() {
			for k, st := range script(i) {
				time.Sleep(st.after)
				if c.ended() {
					return
				}
				last[i] = c.write(st.data)
				if k == 0 {
					first[i] = last[i]
				}
			}
		})
	}
	wg.Wait()
	time.Sleep(window - time.Since(start))
	for i, c := range clients {
		r := scriptResult{frames: int(c.frames.Load()), ended: c.ended()}
		if r.ended {
			r.endErr = c.endErr
			r.sinceFirst, r.sinceLast = c.endAt.Sub(first[i]), c.endAt.Sub(last[i])
			s := h.session(t, c.conn.LocalAddr())
			waitFor(t, 5*time.Second, "OnDisconnected", func() bool { _, ok := h.closeOf(s.ID()); return ok })
			ev, _ := h.closeOf(s.ID())
			r.reason = ev.reason
		}
		check(i, r)
	}
}

// TestChurn: for 3 s (and until 2,000 connections are made), four
// goroutines connect, send a few frames (every
// other time cutting the last one short), sometimes wait for an echo, and
// reset (SO_LINGER 0), while 10 stable clients broadcast through the same
// server, to the churning sessions too. The stable clients lose nothing;
// no churning session is taken for a protocol error; afterwards no session
// and no SendBuffer is left, and the live heap is where it started.
func TestChurn(t *testing.T) {
	const (
		churners = 4
		duration = 3 * time.Second
		stable   = 10
		// heapGrowth bounds what the live heap may gain over the run. What
		// legitimately remains is capacity kept at its peak, not per
		// connection: the Loops' queues (40 bytes an item, a few hundred
		// KiB at a busy moment) and maps; measured 0.3 to 0.65 MiB. A
		// session kept after its close costs about 1 KiB with its gnet
		// connection (measured), so keeping all of them over the 2,000 or
		// more connections churned passes the bound.
		heapGrowth = 3 * mib / 2
		minChurned = 2000
	)
	h := newSpy()
	h.perSession = true
	srv := startServer(t, h, handler.WithLoops(2))
	addr := srv.Addr().String()
	// Warm up: the first connection on each loop makes the loop's state
	// (a 64 KiB write scratch among it), which is no growth per connection.
	for range 4 {
		dialTimed(t, addr).conn.Close()
	}
	waitFor(t, 5*time.Second, "warm-up sessions gone", func() bool { return len(h.closedSnapshot()) == 4 })
	h.forget()
	heapStart := liveHeap()

	type fanout struct {
		res loadgen.Result
		err error
	}
	started, done := make(chan struct{}), make(chan fanout, 1)
	var once sync.Once
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := loadgen.RunFanout(ctx, loadgen.FanoutConfig{
			Addr: addr, Clients: stable, Duration: duration, Rate: 2000, Window: 8, Size: 64,
			ProgressInterval: 20 * time.Millisecond,
			Progress: func(p loadgen.Progress) {
				if p.Sent > 0 {
					once.Do(func() { close(started) })
				}
			},
		})
		done <- fanout{res, err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("stable clients ended before sending: %v %v", r.err, r.res.ErrorSamples)
	case <-time.After(20 * time.Second):
		t.Fatal("stable clients did not start within 20s")
	}

	var conns, cut, dialErrs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range churners {
		wg.Go(func() {
			buf := make([]byte, 4<<10)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				tc := c.(*net.TCPConn)
				var out []byte
				for k := range 1 + n%4 {
					out = append(out, packetFrame(privateID, []byte(fmt.Sprintf("churner %d conn %d frame %d", g, n, k)))...)
				}
				if n%2 == 1 {
					f := packetFrame(privateID, make([]byte, 100))
					out = append(out, f[:1+n%(len(f)-1)]...)
					cut.Add(1)
				}
				_ = tc.SetWriteDeadline(time.Now().Add(2 * time.Second))
				_, _ = tc.Write(out)
				if n%3 == 0 {
					_ = tc.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
					_, _ = tc.Read(buf)
				}
				_ = tc.SetLinger(0)
				_ = tc.Close()
				conns.Add(1)
			}
		})
	}
	var r fanout
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("stable clients did not finish within 60s")
	}
	// The heap bound needs minChurned connections, a count, not a rate: on
	// a loaded machine the churners go on after the stable run until they
	// have made that many (bounded in time).
	waitFor(t, 60*time.Second, fmt.Sprintf("%d connections churned", minChurned), func() bool { return conns.Load() >= minChurned })
	close(stop)
	wg.Wait()

	if r.err != nil || r.res.Errors != 0 || r.res.Received == 0 {
		t.Errorf("stable clients: %d delivered, %d errors, err %v: %v", r.res.Received, r.res.Errors, r.err, r.res.ErrorSamples)
	}
	if dialErrs.Load() != 0 || conns.Load() < minChurned {
		t.Errorf("%d connections churned, %d dials failed; want at least %d and none", conns.Load(), dialErrs.Load(), minChurned)
	}
	// Every connection dialed becomes a session that opens and closes once.
	// Linux hands a connection reset in the accept queue to accept(2) like
	// any other, so none is lost there; but the server may still be working
	// through accepted connections queued for its loops (gnet's register
	// task) after the churners stop, and the Manager lets a session go just
	// before OnDisconnected runs: so wait for the counts, not for Len() == 0.
	dialed := int(conns.Load()) + stable
	waitFor(t, 10*time.Second, "a session opened and closed for every connection dialed", func() bool {
		nOpened, nClosed := len(h.openedSnapshot()), len(h.closedSnapshot())
		return nOpened >= dialed && nClosed == nOpened && srv.Manager().Len() == 0
	})
	waitFor(t, 5*time.Second, "no live SendBuffers", func() bool { return sendbuffer.Live() == 0 })
	opened, closes := h.openedSnapshot(), h.closedSnapshot() // the spy forgot the warm-up
	for id, ev := range closes {
		if !opened[id] {
			t.Errorf("OnDisconnected for session %d without OnConnected", id)
		}
		if errors.Is(ev.reason, handler.ErrProtocol) || errors.Is(ev.reason, handler.ErrHandlerPanic) {
			t.Errorf("session %d closed with %v", id, ev.reason)
		}
	}
	if len(opened) != dialed || len(closes) != dialed {
		t.Errorf("%d sessions opened and %d closed for %d connections dialed (%d churned + %d stable)",
			len(opened), len(closes), dialed, conns.Load(), stable)
	}
	st := srv.Stats()
	accepted, written := uint64(h.accepted.Load()), uint64(h.written.Load())
	t.Logf("frames accepted %d = written %d + unsent %d + dropped %d (%+d unaccounted)",
		accepted, written, st.Unsent, st.Dropped, int64(accepted)-int64(written+st.Unsent+st.Dropped))
	if accepted != written+st.Unsent+st.Dropped {
		t.Errorf("accepted %d frames, but written %d + unsent %d + dropped %d = %d",
			accepted, written, st.Unsent, st.Dropped, written+st.Unsent+st.Dropped)
	}
	h.forget()
	heapEnd := liveHeap()
	growth := int64(heapEnd) - int64(heapStart)
	t.Logf("%d connections churned (%d cut mid-frame); stable clients: %d delivered, p99 %v; live heap %.2f -> %.2f MiB (%+d bytes, %+.0f per churned connection)",
		conns.Load(), cut.Load(), r.res.Received, r.res.Latency.P99, float64(heapStart)/mib, float64(heapEnd)/mib,
		growth, float64(growth)/float64(max(conns.Load(), 1)))
	if growth > heapGrowth {
		t.Errorf("live heap grew by %d bytes over the run, want at most %d", growth, heapGrowth)
	}
}

// TestShutdownUnderLoad: Stop, while four clients broadcast and four more
// only listen, returns within its 2 s drain deadline plus a second, with no
// session, SendBuffer or goroutine left, and accounts for every frame:
//
//   - in the server, every frame herald accepted for a session (a Send that
//     returned nil, counted by the handler) was handed to the socket (the
//     session's Stats), counted as unsent (Stats().Unsent) or dropped:
//     accepted == written + Unsent + Dropped;
//   - on the wire, a listener, which sends nothing (so its socket closes
//     with a FIN, not a reset), received exactly the frames written to it;
//     a broadcaster's socket may close with a reset (it still sends while
//     the server closes), which can discard bytes already written, so it
//     received at most as many.
//
// Stop is then called again, as startServer's cleanup does too: it returns
// nil at once.
func TestShutdownUnderLoad(t *testing.T) {
	const (
		senders   = 4
		listeners = 4
		load      = time.Second
		drain     = 2 * time.Second
		perWrite  = 8 // frames per write, one write every 2 ms: 4,000 frames/s per sender
	)
	ignore := goleak.IgnoreCurrent()
	h := newSpy()
	h.perSession = true
	srv := startServer(t, h, handler.WithLoops(2))
	addr := srv.Addr().String()

	clients := make([]*timedClient, senders+listeners)
	for i := range clients {
		clients[i] = dialTimed(t, addr)
	}
	waitFor(t, 5*time.Second, "sessions", func() bool { return srv.Manager().Len() == len(clients) })
	var wg sync.WaitGroup
	for i, c := range clients[:senders] {
		wg.Go(func() {
			var seq uint32
			p := make([]byte, 64)
			var out []byte
			for {
				out = out[:0]
				for range perWrite {
					binary.LittleEndian.PutUint32(p, uint32(i))
					binary.LittleEndian.PutUint32(p[4:], seq)
					out = append(out, packetFrame(loadgen.FrameID, p)...)
					seq++
				}
				_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.conn.Write(out); err != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	time.Sleep(load)
	if h.accepted.Load() == 0 {
		t.Fatal("no traffic before Stop; the test proves nothing")
	}

	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	begin := time.Now()
	err := srv.Stop(ctx)
	took := time.Since(begin)
	if err != nil {
		t.Errorf("stop: %v", err)
	}
	if took > drain+time.Second {
		t.Errorf("Stop took %v, want at most %v", took, drain+time.Second)
	}
	if n, live := srv.Manager().Len(), sendbuffer.Live(); n != 0 || live != 0 {
		t.Errorf("after Stop: %d sessions, %d live SendBuffers; want none", n, live)
	}
	for i, c := range clients {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still connected 5s after Stop", i)
		}
		if !isClosedByPeer(c.endErr) {
			t.Errorf("client %d: read ended with %v, want EOF or reset", i, c.endErr)
		}
	}
	wg.Wait()

	st := srv.Stats()
	accepted := uint64(h.accepted.Load())
	var written, received uint64
	for i, c := range clients {
		s := h.session(t, c.conn.LocalAddr())
		w, _ := s.Stats()
		got := uint64(c.frames.Load())
		written += w
		received += got
		switch {
		case i >= senders && got != w:
			t.Errorf("listener %d: received %d frames, %d were written to it", i-senders, got, w)
		case got > w:
			t.Errorf("sender %d: received %d frames, only %d were written to it", i, got, w)
		}
	}
	t.Logf("Stop took %v; frames accepted %d = written %d + unsent %d + dropped %d (%+d unaccounted); received %d",
		took.Round(time.Millisecond), accepted, written, st.Unsent, st.Dropped,
		int64(accepted)-int64(written+st.Unsent+st.Dropped), received)
	if accepted == 0 || accepted != written+st.Unsent+st.Dropped {
		t.Errorf("accepted %d frames, but written %d + unsent %d + dropped %d = %d",
			accepted, written, st.Unsent, st.Dropped, written+st.Unsent+st.Dropped)
	}

	for i := range 10 {
		begin := time.Now()
		if err := srv.Stop(context.Background()); err != nil || time.Since(begin) > 100*time.Millisecond {
			t.Fatalf("Stop again (call %d): %v after %v; want nil at once", i+2, err, time.Since(begin))
		}
	}
	for _, c := range clients {
		c.conn.Close()
	}
	if err := goleak.Find(ignore,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock")); err != nil {
		t.Errorf("goroutines left after Stop: %v", err)
	}
}
