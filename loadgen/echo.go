package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"
)

// Echo modes.
const (
	// EchoPingPong sends one message per client and waits for it to come
	// back before sending the next; it measures round-trip latency.
	EchoPingPong = "pingpong"
	// EchoStream writes bytes continuously and checks every byte comes
	// back in order; it measures throughput.
	EchoStream = "stream"
)

// Pingpong engines.
const (
	// EngineGoroutines runs each pingpong client on a goroutine of its own
	// over a net.Conn.
	EngineGoroutines = "goroutines"
	// EngineEpoll runs every pingpong client on one goroutine over one
	// epoll instance (Linux only, unpaced runs only): the client spends
	// less CPU per round trip, which matters when it shares the machine's
	// cores with the server.
	EngineEpoll = "epoll"
)

// EchoConfig configures RunEcho: the mode, and Config's fields as their
// comments describe them for pingpong and stream.
type EchoConfig struct {
	Config
	// Mode is EchoPingPong (default) or EchoStream.
	Mode string
	// Engine is how pingpong's clients run: EngineGoroutines (default) or
	// EngineEpoll. Stream always runs two goroutines per client.
	Engine string
}

func (c EchoConfig) normalize() (EchoConfig, error) {
	c.Mode = cmp.Or(c.Mode, EchoPingPong)
	if c.Mode != EchoPingPong && c.Mode != EchoStream {
		return c, configErr("Mode %q is neither %q nor %q", c.Mode, EchoPingPong, EchoStream)
	}
	c.Engine = cmp.Or(c.Engine, EngineGoroutines)
	switch {
	case c.Engine != EngineGoroutines && c.Engine != EngineEpoll:
		return c, configErr("Engine %q is neither %q nor %q", c.Engine, EngineGoroutines, EngineEpoll)
	case c.Engine == EngineEpoll && c.Mode != EchoPingPong:
		return c, configErr("Engine %q runs pingpong only", EngineEpoll)
	case c.Engine == EngineEpoll && c.Rate > 0:
		return c, configErr("Engine %q does not pace: Rate must be 0", EngineEpoll)
	case c.Engine == EngineEpoll && !epollSupported:
		return c, configErr("Engine %q needs Linux", EngineEpoll)
	case c.Engine == EngineEpoll && c.Transport == TransportWS:
		return c, configErr("Engine %q speaks TCP only: use %q with Transport %q", EngineEpoll, EngineGoroutines, TransportWS)
	}
	defaultSize := DefaultSize
	if c.Mode == EchoStream {
		defaultSize = DefaultStreamSize
	}
	var err error
	if c.Config, err = c.Config.normalize(defaultSize); err != nil {
		return c, err
	}
	if c.Mode == EchoPingPong {
		err = checkPayloadSize(c.Size)
	} else if c.Size < 1 || c.Size > 1<<20 {
		err = configErr("Size %d not in [1, 1 MiB]", c.Size)
	}
	if err != nil {
		return c, err
	}
	if c.ReadBuffer < 4<<10 || c.ReadBuffer > 16<<20 {
		return c, configErr("ReadBuffer %d not in [4 KiB, 16 MiB]", c.ReadBuffer)
	}
	return c, nil
}

// RunEcho runs an echo scenario (cfg.Mode) against an echo server: every
// client checks that exactly what it wrote comes back, in order.
// Result.PerSec is round trips/s (pingpong) or chunks/s (stream);
// Result.MBPerSec is the echoed bytes' rate. Errors as for RunFanout.
func RunEcho(ctx context.Context, cfg EchoConfig) (res Result, err error) {
	if cfg, err = cfg.normalize(); err != nil {
		return Result{}, err
	}
	res = Result{Mode: cfg.Mode, Addr: cfg.Addr, Clients: cfg.Clients, Size: cfg.Size, Window: 1}
	if cfg.Mode == EchoStream {
		res.Window = cfg.Window
	}
	conns, err := dialConns(ctx, &cfg.Config, cfg.Mode == EchoPingPong)
	if err != nil {
		return res, err
	}
	r := &echoRun{base: newBase(), cfg: cfg}
	if cfg.Mode == EchoStream {
		r.pattern = makePattern(max(cfg.Size, cfg.ReadBuffer))
	}
	for i, conn := range conns {
		c := &echoClient{
			run:    r,
			id:     uint32(i),
			conn:   conn,
			sem:    make(chan struct{}, max(cfg.Window, 1)),
			exited: make(chan struct{}), complete: make(chan struct{}), sendDone: make(chan struct{}),
		}
		c.target.Store(math.MaxInt64)
		r.clients = append(r.clients, c)
		switch {
		case cfg.Engine == EngineEpoll: // all clients on one loop, below
		case cfg.Mode == EchoPingPong:
			r.wg.Add(1)
			go c.pingPong()
		default:
			r.wg.Add(2)
			go c.streamWrite()
			go c.streamRead()
		}
	}
	if cfg.Engine == EngineEpoll {
		if err := r.startPingPongEpoll(); err != nil {
			closeAll(conns)
			return res, err
		}
	}
	end := r.track(r, cfg.ProgressInterval, cfg.Progress)
	defer func() {
		end(&res)
		err = res.finish(err)
	}()

	r.startClock(cfg.Duration)
	for _, c := range r.clients {
		select {
		case <-c.sendDone:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	drain := time.NewTimer(cfg.DrainTimeout)
	defer drain.Stop()
	for _, c := range r.clients {
		if c.rbytes.Load() >= c.target.Load() {
			continue
		}
		select {
		case <-c.complete:
		case <-c.exited:
		case <-drain.C:
		case <-ctx.Done():
		}
	}
	res.Elapsed = r.elapsed()
	return res, ctx.Err()
}

// echoRun is one echo run.
type echoRun struct {
	base
	cfg     EchoConfig    // fixed after construction
	clients []*echoClient // fixed after construction
	// pattern is the stream's bytes: a random block of patternPeriod bytes
	// followed by its own beginning, so any window of up to
	// len(pattern)-patternPeriod bytes from an offset below patternPeriod
	// is contiguous. Fixed after construction.
	pattern []byte
}

// patternPeriod is odd and no power of two, so a slip of whole chunks
// or reads does not line the pattern up again.
const patternPeriod = 1<<20 + 13

func makePattern(maxWindow int) []byte {
	p := make([]byte, patternPeriod+maxWindow)
	rng := rand.NewChaCha8([32]byte{'h', 'e', 'r', 'a', 'l', 'd'})
	_, _ = rng.Read(p[:patternPeriod])
	copy(p[patternPeriod:], p)
	return p
}

// echoClient is one echo connection.
type echoClient struct {
	run  *echoRun
	id   uint32 // fixed
	conn net.Conn

	sem      chan struct{} // stream: one token per chunk in flight
	exited   chan struct{} // closed when the reader (pingpong: the client) returns
	complete chan struct{} // stream: closed by the reader when target is reached
	sendDone chan struct{} // closed when the writer returns

	// Owned by the reader until exited is closed.
	corrupt int64
	readErr error
	// Owned by the writer until sendDone is closed (pingpong: the client).
	sendErr error

	// Any goroutine.
	sent   atomic.Int64 // messages or chunks written
	wbytes atomic.Int64 // bytes written
	recv   atomic.Int64 // pingpong: round trips completed
	rbytes atomic.Int64 // bytes read
	reads  atomic.Int64 // stream: reads that returned data
	target atomic.Int64 // stream: bytes to read back; MaxInt64 until the writer is done
}

func (r *echoRun) snapshot() (sent, recv, bytes int64) {
	for _, c := range r.clients {
		sent += c.sent.Load()
		bytes += c.rbytes.Load()
		if r.cfg.Mode == EchoPingPong {
			recv += c.recv.Load()
		} else {
			recv += c.rbytes.Load() / int64(r.cfg.Size)
		}
	}
	return
}

func (r *echoRun) closeConns() {
	for _, c := range r.clients {
		c.conn.Close()
	}
}

func (r *echoRun) collect(res *Result) {
	size := int64(r.cfg.Size)
	for _, c := range r.clients {
		res.Sent += c.sent.Load()
		res.Bytes += c.rbytes.Load()
		res.Reads += c.reads.Load()
		res.Corrupt += c.corrupt
		if c.readErr != nil || c.sendErr != nil {
			res.Disconnects++
		}
		if r.cfg.Mode == EchoPingPong {
			res.Received += c.recv.Load()
			continue
		}
		res.Received += c.rbytes.Load() / size
		if missing := c.wbytes.Load() - c.rbytes.Load(); missing > 0 && c.corrupt == 0 {
			res.Lost += (missing + size - 1) / size
			r.errs.note("client %d: %d bytes not echoed", c.id, missing)
		}
	}
}

// pingPong runs one pingpong client.
func (c *echoClient) pingPong() {
	r := c.run
	defer r.wg.Done()
	defer close(c.sendDone)
	defer close(c.exited)
	lat := r.lat.buf()
	defer func() { lat.done(r.now()) }()
	if !r.waitStart() {
		return
	}
	size := r.cfg.Size
	limit := r.cfg.sendLimit()
	msg := make([]byte, 0, size+PacketHeaderLen)
	back := make([]byte, size+PacketHeaderLen)
	pace := newPacer(&r.base, r.cfg.Rate, r.cfg.Clients)
	for seq := uint32(0); seq < limit; seq++ {
		select {
		case <-r.stopSend:
			return
		default:
		}
		if !pace.wait(seq) {
			return
		}
		stamp := r.now()
		msg = AppendPayloadPacket(msg[:0], FrameID, c.id, seq, stamp, size)
		if _, err := c.conn.Write(msg); err != nil {
			r.connFailed(&c.sendErr, c.id, "write", err)
			return
		}
		c.sent.Store(int64(seq) + 1)
		n, err := io.ReadFull(c.conn, back)
		c.rbytes.Add(int64(n))
		if err != nil {
			r.connFailed(&c.readErr, c.id, "read", err)
			return
		}
		if !bytes.Equal(back, msg) {
			c.corrupt++
			r.fail("client %d: message %d came back changed", c.id, seq)
			return
		}
		now := r.now()
		lat.record(now, now-stamp)
		c.recv.Add(1)
	}
}

// streamWrite writes c's stream, chunk by chunk, at most Window ahead of
// what came back.
func (c *echoClient) streamWrite() {
	r := c.run
	defer r.wg.Done()
	defer close(c.sendDone)
	defer func() { c.target.Store(c.wbytes.Load()) }()
	if !r.waitStart() {
		return
	}
	size := r.cfg.Size
	limit := r.cfg.sendLimit()
	off := int(c.id) * 104729 % patternPeriod
	pace := newPacer(&r.base, r.cfg.Rate, r.cfg.Clients)
	for seq := uint32(0); seq < limit; seq++ {
		select {
		case c.sem <- struct{}{}:
		case <-r.stopSend:
			return
		case <-c.exited:
			return
		}
		if !pace.wait(seq) {
			return
		}
		select {
		case <-r.stopSend:
			return
		default:
		}
		n, err := c.conn.Write(r.pattern[off : off+size])
		c.wbytes.Add(int64(n))
		if err != nil {
			r.connFailed(&c.sendErr, c.id, "write", err)
			return
		}
		c.sent.Store(int64(seq) + 1)
		off = (off + size) % patternPeriod
	}
}

// streamRead checks that c's stream comes back byte for byte.
func (c *echoClient) streamRead() {
	r := c.run
	defer r.wg.Done()
	defer close(c.exited)
	size := int64(r.cfg.Size)
	buf := make([]byte, r.cfg.ReadBuffer)
	off := int(c.id) * 104729 % patternPeriod
	var total, released int64
	isComplete := false
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], r.pattern[off:off+n]) {
				i := 0
				for i < n && buf[i] == r.pattern[off+i] {
					i++
				}
				c.corrupt++
				r.fail("client %d: stream differs at byte %d", c.id, total+int64(i))
				c.rbytes.Add(int64(n))
				return
			}
			off = (off + n) % patternPeriod
			total += int64(n)
			c.rbytes.Store(total)
			c.reads.Add(1)
			for ; released < total/size; released++ {
				select {
				case <-c.sem:
				default:
				}
			}
			if !isComplete && total >= c.target.Load() {
				isComplete = true
				close(c.complete)
			}
		}
		if err != nil {
			r.connFailed(&c.readErr, c.id, "read", err)
			return
		}
	}
}
