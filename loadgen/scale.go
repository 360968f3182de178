package loadgen

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ScaleConfig configures RunScale. Of the shared fields it uses Addr,
// Clients (sessions to open, default DefaultClients), Messages (broadcasts,
// default DefaultScaleBroadcasts), Size (payload bytes), ConnectTimeout
// (for all the connects together) and DrainTimeout (for each broadcast to
// reach everyone).
type ScaleConfig struct {
	Config
	// ServerPID, if not 0, is the server's process id: its VmRSS is read
	// from /proc before and after the connections open, for the memory per
	// session.
	ServerPID int
	// Settle is how long to wait after the last connect before the first
	// broadcast (and the memory reading). Default 1s.
	Settle time.Duration
	// Dialers is how many connects are in flight at once. Default 64.
	Dialers int
	// Engine reads the sessions: EngineEpoll (the default on Linux) reads
	// them all on one goroutine over epoll, which leaves more of the
	// machine to the server than a goroutine per session
	// (EngineGoroutines, the default elsewhere).
	Engine string
	// Storm adds a disconnect storm after the broadcasts: the Clients
	// connections are closed at once while a probe keeps asking the server
	// for a round trip that costs it no broadcast: it connects, sends a
	// malformed frame (size 0) and times how long the server takes to close
	// the connection for it, one probe at a time, StormInterval apart, from
	// 20 intervals before the first close until StormTail after the last.
	// The longest of those probes bounds how long the server's event loops
	// stalled.
	Storm bool
	// StormInterval spaces the probes. Default 2ms.
	StormInterval time.Duration
	// StormTail is how long probing goes on after the last close. Default
	// 500ms.
	StormTail time.Duration
	// Metrics, if not empty, is a herald server's /metrics URL: the storm
	// reads its loop lag histogram (herald_loop_lag_seconds, a probe task
	// queued on every event loop every 10 ms) right before the first close
	// and after StormTail, for how long the storm kept the loops from
	// running anything else (StormLag*).
	Metrics string
}

// DefaultScaleBroadcasts is RunScale's default number of broadcasts.
const DefaultScaleBroadcasts = 5

// ScaleResult is RunScale's outcome.
type ScaleResult struct {
	Mode     string `json:"mode"` // "scale"
	Addr     string `json:"addr"`
	Sessions int    `json:"sessions"` // Clients
	Size     int    `json:"size"`
	// ConnectTime is how long opening every connection took.
	ConnectTime time.Duration `json:"connect_ns"`
	// RSSBefore and RSSAfter are the server's VmRSS in bytes before the
	// first connect and Settle after the last; PerSession is their
	// difference over Sessions. Zero without ServerPID.
	RSSBefore  int64   `json:"rss_before"`
	RSSAfter   int64   `json:"rss_after"`
	PerSession float64 `json:"bytes_per_session"`
	// Broadcasts holds, per broadcast, the time from its write until the
	// last session received it.
	Broadcasts []time.Duration `json:"broadcast_ns"`
	// FirstBroadcast is Broadcasts[0] (the one right after the burst);
	// MedianBroadcast is the median of all.
	FirstBroadcast  time.Duration `json:"first_broadcast_ns"`
	MedianBroadcast time.Duration `json:"median_broadcast_ns"`
	// Storm figures: how long closing the Clients connections took; the
	// longest probe before the storm (the server idle with every session);
	// how many probes ran from the first close to StormTail after the
	// last, the longest and the median.
	StormCloseTime time.Duration `json:"storm_close_ns"`
	IdleMaxProbe   time.Duration `json:"idle_max_probe_ns"`
	StormProbes    int           `json:"storm_probes"`
	StormMaxProbe  time.Duration `json:"storm_max_probe_ns"`
	StormMedProbe  time.Duration `json:"storm_median_probe_ns"`
	// With Metrics: the server's loop lag probes that ran during the
	// storm, those that waited more than 10 ms, and the upper bound in
	// seconds of the histogram bucket holding the longest wait (+Inf, in
	// JSON -1, past the last bound).
	StormLagProbes int     `json:"storm_lag_probes"`
	StormLagOver10 int     `json:"storm_lag_over_10ms"`
	StormLagWorst  float64 `json:"storm_lag_worst_le"`
	// Received counts broadcast copies that arrived intact.
	Received int64 `json:"received"`
	// Lost, Duplicated, Corrupt: copies missing when a broadcast's wait
	// ended, extra copies, copies that failed verification (or frames of
	// no broadcast). Disconnects: connections the server closed before
	// the run closed them. Errors is their sum.
	Lost        int64    `json:"lost"`
	Duplicated  int64    `json:"duplicated"`
	Corrupt     int64    `json:"corrupt"`
	Disconnects int64    `json:"disconnects"`
	Errors      int64    `json:"errors"`
	Samples     []string `json:"error_samples,omitempty"`
}

// scaleSender is the sender id of a scale run's broadcasts.
const scaleSender = 0

// RunScale measures what admitting, holding and dropping many idle
// sessions costs a broadcast server speaking herald's packet codec (every
// frame goes to every session, sender included): it opens Clients
// connections (Dialers at a time), waits Settle, reads the server's memory,
// then sends Messages broadcasts one at a time from the first connection,
// each once the previous reached every session, and verifies every copy.
// With Storm it then closes every connection at once while probing the
// server (see ScaleConfig). The error wraps ErrVerify if a copy
// was lost, duplicated or corrupt, or the server closed a connection.
func RunScale(ctx context.Context, cfg ScaleConfig) (res ScaleResult, err error) {
	if cfg.Addr == "" {
		return res, configErr("Addr is empty")
	}
	cfg.Clients = cmp.Or(cfg.Clients, DefaultClients)
	cfg.Messages = cmp.Or(cfg.Messages, DefaultScaleBroadcasts)
	cfg.Size = cmp.Or(cfg.Size, DefaultSize)
	cfg.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, time.Minute)
	cfg.DrainTimeout = cmp.Or(cfg.DrainTimeout, DefaultDrainTimeout)
	cfg.Settle = cmp.Or(cfg.Settle, time.Second)
	cfg.Dialers = cmp.Or(cfg.Dialers, 64)
	cfg.StormInterval = cmp.Or(cfg.StormInterval, 2*time.Millisecond)
	cfg.StormTail = cmp.Or(cfg.StormTail, 500*time.Millisecond)
	if epollSupported {
		cfg.Engine = cmp.Or(cfg.Engine, EngineEpoll)
	}
	cfg.Engine = cmp.Or(cfg.Engine, EngineGoroutines)
	switch {
	case cfg.Engine != EngineGoroutines && cfg.Engine != EngineEpoll:
		return res, configErr("Engine %q is neither %q nor %q", cfg.Engine, EngineGoroutines, EngineEpoll)
	case cfg.Engine == EngineEpoll && !epollSupported:
		return res, configErr("Engine %q needs Linux", EngineEpoll)
	case cfg.Clients < 1 || cfg.Messages < 1 || cfg.Dialers < 1:
		return res, configErr("need Clients, Messages and Dialers >= 1")
	case cfg.Settle < 0 || cfg.StormInterval < 0 || cfg.StormTail < 0:
		return res, configErr("negative duration")
	}
	if err := checkPayloadSize(cfg.Size); err != nil {
		return res, err
	}
	r := &scaleRun{cfg: cfg, epoch: time.Now(), n: cfg.Clients}
	res = ScaleResult{Mode: "scale", Addr: cfg.Addr, Sessions: r.n, Size: cfg.Size}
	r.got = make([]atomic.Int64, cfg.Messages)
	r.done = make([]chan struct{}, cfg.Messages)
	for i := range r.done {
		r.done[i] = make(chan struct{})
	}
	r.stop = make(chan struct{})
	defer func() {
		r.closing.Store(true)
		for _, c := range r.conns {
			if c != nil && c.conn != nil {
				c.conn.Close()
			}
		}
		close(r.stop)
		r.wg.Wait()
		r.collect(&res)
		if err == nil && res.Errors > 0 {
			err = fmt.Errorf("%w: %d errors (lost %d, duplicated %d, corrupt %d, disconnects %d)",
				ErrVerify, res.Errors, res.Lost, res.Duplicated, res.Corrupt, res.Disconnects)
		}
	}()

	if cfg.ServerPID != 0 {
		if res.RSSBefore, err = vmRSS(cfg.ServerPID); err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	if err := r.dial(ctx); err != nil {
		return res, err
	}
	res.ConnectTime = time.Since(t0)
	if cfg.Engine == EngineEpoll {
		if err := r.startEpoll(); err != nil {
			return res, err
		}
	} else {
		for _, c := range r.conns {
			r.wg.Add(1)
			go r.read(c)
		}
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if cfg.ServerPID != 0 {
		if res.RSSAfter, err = vmRSS(cfg.ServerPID); err != nil {
			return res, err
		}
		res.PerSession = float64(res.RSSAfter-res.RSSBefore) / float64(r.n)
	}

	frameLen := PacketHeaderLen + cfg.Size
	for k := range cfg.Messages {
		msg := AppendPayloadPacket(make([]byte, 0, frameLen), FrameID, scaleSender, uint32(k), r.now(), cfg.Size)
		start := time.Now()
		if _, err := r.conns[0].write(msg); err != nil {
			return res, fmt.Errorf("loadgen: broadcast %d: %w", k, err)
		}
		timer := time.NewTimer(cfg.DrainTimeout)
		select {
		case <-r.done[k]:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return res, ctx.Err()
		}
		timer.Stop()
		res.Broadcasts = append(res.Broadcasts, time.Since(start))
		r.sent.Store(int64(k + 1))
	}
	res.FirstBroadcast = res.Broadcasts[0]
	res.MedianBroadcast = median(res.Broadcasts)
	if cfg.Storm {
		r.storm(ctx, &res)
	}
	return res, ctx.Err()
}

// scaleRun is one RunScale run.
type scaleRun struct {
	cfg   ScaleConfig // fixed
	epoch time.Time   // fixed
	n     int         // sessions; fixed
	conns []*scaleConn

	got     []atomic.Int64  // per broadcast: sessions that received it
	done    []chan struct{} // per broadcast: closed by the reader that completes it
	sent    atomic.Int64    // broadcasts whose wait is over
	closing atomic.Bool     // the run closes connections: their errors are not failures
	stop    chan struct{}   // closed when the run ends: the epoll reader returns
	wg      sync.WaitGroup

	mu      sync.Mutex // guards samples
	samples []string
}

// scaleConn is one session's connection and its reader's account.
type scaleConn struct {
	conn net.Conn // nil once the epoll engine took its descriptor
	fd   int      // the descriptor, with the epoll engine

	// Owned by the epoll reader: bytes of a frame not yet complete.
	buf  []byte
	fill int

	// Owned by the reader until the run's wait group is done.
	next      uint32 // the broadcast expected next
	dups      int64
	corrupt   int64
	failed    bool // the server closed the connection, or a read failed
	closedByR atomic.Bool
}

func (r *scaleRun) now() int64 { return int64(time.Since(r.epoch)) }

func (r *scaleRun) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 10 {
		r.samples = append(r.samples, fmt.Sprintf(format, args...))
	}
}

// dial opens every connection, Dialers at a time, and starts its reader.
func (r *scaleRun) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	r.conns = make([]*scaleConn, r.n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(r.cfg.Dialers, r.n) {
		wg.Go(func() {
			var d net.Dialer
			for {
				i := int(next.Add(1) - 1)
				if i >= r.n || ctx.Err() != nil {
					return
				}
				c, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("loadgen: dial %s (connection %d of %d): %w", r.cfg.Addr, i+1, r.n, err)
						cancel()
					})
					return
				}
				r.conns[i] = &scaleConn{conn: c, fd: -1}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// read verifies everything that reaches one connection (EngineGoroutines).
func (r *scaleRun) read(c *scaleConn) {
	defer r.wg.Done()
	br := bufio.NewReaderSize(c.conn, 4<<10)
	frame := make([]byte, PacketHeaderLen+r.cfg.Size)
	for {
		if _, err := readFull(br, frame[:PacketHeaderLen]); err != nil {
			r.readFailed(c, err)
			return
		}
		if !r.header(c, frame) {
			return
		}
		if _, err := readFull(br, frame[PacketHeaderLen:]); err != nil {
			r.readFailed(c, err)
			return
		}
		r.frame(c, frame)
	}
}

// header checks a frame's size field; false means the stream cannot be
// followed further.
func (r *scaleRun) header(c *scaleConn, frame []byte) bool {
	if size := int(frame[0]) | int(frame[1])<<8; size != PacketHeaderLen+r.cfg.Size {
		c.corrupt++
		r.note("session: frame of %d bytes; want %d", size, PacketHeaderLen+r.cfg.Size)
		return false
	}
	return true
}

// frame verifies and counts one whole frame that reached c.
func (r *scaleRun) frame(c *scaleConn, frame []byte) {
	pl, err := ParsePayload(frame[PacketHeaderLen:])
	id := uint16(frame[2]) | uint16(frame[3])<<8
	switch {
	case err != nil || id != FrameID:
		c.corrupt++
		r.note("session: corrupt frame (id %d): %v", id, err)
	case pl.Sender != scaleSender || int(pl.Seq) >= len(r.got):
		c.corrupt++
		r.note("session: frame of sender %d seq %d, no broadcast of this run", pl.Sender, pl.Seq)
	case pl.Seq < c.next:
		c.dups++
		r.note("session: broadcast %d again", pl.Seq)
	default:
		c.next = pl.Seq + 1
		if r.got[pl.Seq].Add(1) == int64(r.n) {
			close(r.done[pl.Seq])
		}
	}
}

func readFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := br.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *scaleRun) readFailed(c *scaleConn, err error) {
	if r.closing.Load() || c.closedByR.Load() {
		return
	}
	c.failed = true
	r.note("session: read: %v", err)
}

// storm closes every connection at once while a probe measures how long
// the server takes to close a connection that sent a malformed frame.
func (r *scaleRun) storm(ctx context.Context, res *ScaleResult) {
	type probe struct {
		at  time.Time
		dur time.Duration
	}
	var probes []probe
	stop := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		bad := []byte{0, 0, 0, 0} // size 0: a protocol error to every server here
		buf := make([]byte, 64)
		var d net.Dialer
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(r.cfg.StormInterval):
			}
			c, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
			if err != nil {
				r.note("probe: dial: %v", err)
				return
			}
			_ = c.SetDeadline(time.Now().Add(r.cfg.DrainTimeout))
			start := time.Now()
			if _, err := c.Write(bad); err != nil {
				r.note("probe: write: %v", err)
				c.Close()
				return
			}
			for {
				if _, err := c.Read(buf); err != nil { // EOF or reset: the server closed it
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						r.note("probe: not closed after %v", r.cfg.DrainTimeout)
					}
					break
				}
			}
			probes = append(probes, probe{start, time.Since(start)})
			c.Close()
		}
	}()
	time.Sleep(20 * r.cfg.StormInterval) // probes of the idle server first
	var lag0 lagHist
	if r.cfg.Metrics != "" {
		var err error
		if lag0, err = readLag(ctx, r.cfg.Metrics); err != nil {
			r.note("loop lag before the storm: %v", err)
		}
	}
	start := time.Now()
	r.closing.Store(true)
	var wg sync.WaitGroup
	const closers = 8
	for w := range closers {
		wg.Go(func() {
			for i := w; i < len(r.conns); i += closers {
				r.conns[i].hangUp()
			}
		})
	}
	wg.Wait()
	res.StormCloseTime = time.Since(start)
	time.Sleep(r.cfg.StormTail)
	if lag0.le != nil {
		if lag1, err := readLag(ctx, r.cfg.Metrics); err != nil {
			r.note("loop lag after the storm: %v", err)
		} else {
			res.StormLagProbes, res.StormLagOver10, res.StormLagWorst = lag1.since(lag0, 0.01)
			if math.IsInf(res.StormLagWorst, 1) {
				res.StormLagWorst = -1 // JSON has no infinity
			}
		}
	}
	close(stop)
	<-probed
	var during []time.Duration
	for _, p := range probes {
		if p.at.Before(start) {
			res.IdleMaxProbe = max(res.IdleMaxProbe, p.dur)
		} else {
			during = append(during, p.dur)
		}
	}
	res.StormProbes = len(during)
	if len(during) > 0 {
		res.StormMaxProbe = slices.Max(during)
		res.StormMedProbe = median(during)
	}
}

// collect adds the readers' accounts to res once every reader has exited.
func (r *scaleRun) collect(res *ScaleResult) {
	sent := int(r.sent.Load())
	for k := range sent {
		got := r.got[k].Load()
		res.Received += got
		res.Lost += int64(r.n) - got
		if got < int64(r.n) {
			r.note("broadcast %d reached %d of %d sessions", k, got, r.n)
		}
	}
	for _, c := range r.conns {
		if c == nil {
			continue
		}
		res.Duplicated += c.dups
		res.Corrupt += c.corrupt
		if c.failed {
			res.Disconnects++
		}
	}
	res.Errors = res.Lost + res.Duplicated + res.Corrupt + res.Disconnects
	res.Samples = r.samples
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// vmRSS reads a process's resident set size from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: server memory: %w", err)
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("loadgen: no VmRSS in /proc/%d/status", pid)
}

// write writes p on c's connection.
func (c *scaleConn) write(p []byte) (int, error) {
	if c.conn != nil {
		return c.conn.Write(p)
	}
	return writeFD(c.fd, p)
}

// hangUp ends c's connection as a client that leaves does: the server
// sees the connection closed. Any goroutine.
func (c *scaleConn) hangUp() {
	if c.conn != nil {
		c.conn.Close()
		return
	}
	shutdownFD(c.fd) // the descriptor stays the epoll reader's until it returns
}
