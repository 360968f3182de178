package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync/atomic"
	"time"
)

// normalizeFanout fills in a fan-out run's defaults and checks its config.
func (c FanoutConfig) normalizeFanout() (FanoutConfig, error) {
	c, err := c.normalize(DefaultSize)
	if err != nil {
		return c, err
	}
	if err := checkPayloadSize(c.Size); err != nil {
		return c, err
	}
	if c.ReadBuffer < 64<<10 || c.ReadBuffer < c.Size+256 {
		return c, configErr("ReadBuffer %d < max(64 KiB, Size+256)", c.ReadBuffer)
	}
	return c, nil
}

// RunFanout runs the fan-out scenario against a broadcast server speaking
// herald's packet codec: cfg.Clients connections register (see the package
// doc's barrier), then each sends cfg.Messages frames (or sends until
// cfg.Duration) with at most cfg.Window outstanding, and every client
// verifies every frame of every sender. It returns when every client has
// received every frame sent, or cfg.DrainTimeout after the last send.
//
// The error is nil only if everything arrived intact, exactly once and in
// order; verification failures return the Result and an error wrapping
// ErrVerify. A cancelled ctx stops the run and returns ctx's error with a
// partial Result.
func RunFanout(ctx context.Context, cfg FanoutConfig) (Result, error) {
	cfg, err := cfg.normalizeFanout()
	if err != nil {
		return Result{}, err
	}
	return runFanout(ctx, "fanout", cfg, packetProto{})
}

// msgKind classifies a decoded message.
type msgKind uint8

const (
	kindIgnore     msgKind = iota // nothing loadgen looks at
	kindData                      // a data frame; payload to verify
	kindHello                     // a packet hello; payload names its sender
	kindSubscribed                // redis confirmed SUBSCRIBE: registered
	kindUnknown                   // unexpected but well-framed: corrupt
)

// fanProto is the wire protocol a fan-out run speaks.
type fanProto interface {
	// separatePub says whether sends need a connection of their own.
	separatePub() bool
	// appendRegister appends what asks the server to register client id.
	appendRegister(dst []byte, id uint32, stamp int64, size int) []byte
	// appendData appends one data frame.
	appendData(dst []byte, sender, seq uint32, stamp int64, size int) []byte
	// decode takes one message off the front of in; n == 0 with a nil
	// error means in holds no complete message. An error means the stream
	// cannot be decoded further.
	decode(in []byte) (kind msgKind, payload []byte, n int, err error)
}

// packetProto is herald's packet codec with hello frames as the barrier.
type packetProto struct{}

func (packetProto) separatePub() bool { return false }

func (packetProto) appendRegister(dst []byte, id uint32, stamp int64, size int) []byte {
	return AppendPayloadPacket(dst, HelloID, id, 0, stamp, size)
}

func (packetProto) appendData(dst []byte, sender, seq uint32, stamp int64, size int) []byte {
	return AppendPayloadPacket(dst, FrameID, sender, seq, stamp, size)
}

func (packetProto) decode(in []byte) (msgKind, []byte, int, error) {
	id, p, n, err := DecodePacket(in)
	if n == 0 || err != nil {
		return kindIgnore, nil, n, err
	}
	switch id {
	case FrameID:
		return kindData, p, n, nil
	case HelloID:
		return kindHello, p, n, nil
	}
	return kindUnknown, p, n, nil
}

// fanRun is one fan-out (or pubsub, or selftest) run.
type fanRun struct {
	base
	cfg     FanoutConfig // fixed after construction
	proto   fanProto     // fixed after construction
	clients []*fanClient // fixed after construction

	// target is the number of distinct frames every client must receive;
	// MaxInt64 until the senders are done.
	target atomic.Int64
}

// fanClient is one client: a subscriber connection it reads, and a
// publisher connection it sends on (the same one except for pubsub).
type fanClient struct {
	run *fanRun
	id  uint32 // fixed; equal to len(run.clients) for selftest receivers
	sub net.Conn
	pub net.Conn

	// sem holds one token per outstanding frame: the sender puts, the
	// reader takes when the frame comes back.
	sem        chan struct{}
	registered chan struct{} // closed by the reader
	complete   chan struct{} // closed by the reader: target reached
	exited     chan struct{} // closed when the reader returns
	sendDone   chan struct{} // closed when the sender returns

	// Owned by the reader until exited is closed.
	tracker      *Tracker
	lat          *latBuf
	corrupt      int64
	readErr      error
	isRegistered bool
	isComplete   bool

	// Owned by the sender until sendDone is closed.
	sendErr error

	// Owned by drainReplies (pubsub); read after the run's goroutines end.
	pubErr     error
	pubReplies atomic.Int64
	pubErrors  atomic.Int64

	// Any goroutine.
	recv   atomic.Int64 // data frames received, duplicates included
	bytes  atomic.Int64 // bytes read
	reads  atomic.Int64 // reads that returned data
	unique atomic.Int64 // distinct data frames received
	sent   atomic.Int64 // frames written
}

func newFanRun(cfg FanoutConfig, proto fanProto) *fanRun {
	r := &fanRun{base: newBase(), cfg: cfg, proto: proto}
	r.target.Store(math.MaxInt64)
	return r
}

func (r *fanRun) newClient(id uint32, sub, pub net.Conn) *fanClient {
	return &fanClient{
		run:        r,
		id:         id,
		sub:        sub,
		pub:        pub,
		sem:        make(chan struct{}, max(r.cfg.Window, 1)),
		registered: make(chan struct{}),
		complete:   make(chan struct{}),
		exited:     make(chan struct{}),
		sendDone:   make(chan struct{}),
		tracker:    NewTracker(r.cfg.Clients),
		lat:        r.lat.buf(),
	}
}

func (r *fanRun) snapshot() (sent, recv, bytes int64) {
	for _, c := range r.clients {
		sent += c.sent.Load()
		recv += c.recv.Load()
		bytes += c.bytes.Load()
	}
	return
}

func runFanout(ctx context.Context, mode string, cfg FanoutConfig, proto fanProto) (res Result, err error) {
	res = Result{Mode: mode, Addr: cfg.Addr, Clients: cfg.Clients, Size: cfg.Size, Window: cfg.Window}
	r := newFanRun(cfg, proto)

	subs, err := dialConns(ctx, &cfg, true)
	if err != nil {
		return res, err
	}
	pubs := subs
	if proto.separatePub() {
		if pubs, err = dialConns(ctx, &cfg, true); err != nil {
			closeAll(subs)
			return res, err
		}
	}
	for i := range subs {
		r.clients = append(r.clients, r.newClient(uint32(i), subs[i], pubs[i]))
	}
	for _, c := range r.clients {
		r.wg.Add(2)
		go c.readLoop()
		go c.sendLoop()
		if proto.separatePub() {
			r.wg.Add(1)
			go c.drainReplies()
		}
	}
	end := r.track(r, cfg.ProgressInterval, cfg.Progress)
	defer func() {
		end(&res)
		err = res.finish(err)
	}()

	// Barrier: every client registered before anyone sends.
	stamp := r.now()
	hello, _ := proto.(interface{ pubHello() []byte }) // a publisher's handshake (NATS CONNECT)
	for _, c := range r.clients {
		if _, err := c.sub.Write(proto.appendRegister(nil, c.id, stamp, cfg.Size)); err != nil {
			return res, fmt.Errorf("loadgen: register client %d: %w", c.id, err)
		}
		if hello != nil {
			if _, err := c.pub.Write(hello.pubHello()); err != nil {
				return res, fmt.Errorf("loadgen: publisher %d: %w", c.id, err)
			}
		}
	}
	barrier := time.NewTimer(cfg.ConnectTimeout)
	defer barrier.Stop()
	for _, c := range r.clients {
		select {
		case <-c.registered:
		case <-c.exited:
			return res, fmt.Errorf("%w: client %d's connection failed: %v", ErrBarrier, c.id, c.readErr)
		case <-barrier.C:
			n := 0
			for _, c := range r.clients {
				select {
				case <-c.registered:
				default:
					n++
				}
			}
			return res, fmt.Errorf("%w: %d of %d clients not registered after %v (does the server send frames back to their sender?)",
				ErrBarrier, n, cfg.Clients, cfg.ConnectTimeout)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}

	r.startClock(cfg.Duration)
	for _, c := range r.clients {
		select {
		case <-c.sendDone:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	var total int64
	for _, c := range r.clients {
		total += c.sent.Load()
	}
	r.target.Store(total)
	drain := time.NewTimer(cfg.DrainTimeout)
	defer drain.Stop()
	r.waitComplete(ctx, total, drain.C)
	res.Elapsed = r.elapsed()
	return res, ctx.Err()
}

// waitComplete waits until every client has received total distinct frames
// or its reader has exited, until stop fires or ctx is done.
func (r *fanRun) waitComplete(ctx context.Context, total int64, stop <-chan time.Time) {
	for _, c := range r.clients {
		if c.unique.Load() >= total {
			continue
		}
		select {
		case <-c.complete:
		case <-c.exited:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// closeConns closes every client's connections.
func (r *fanRun) closeConns() {
	for _, c := range r.clients {
		c.sub.Close()
		if c.pub != c.sub {
			c.pub.Close()
		}
	}
}

// collect adds every client's account to res. Call once every goroutine of the run has exited.
func (r *fanRun) collect(res *Result) {
	sent := func(s int) uint32 { return uint32(r.clients[s].sent.Load()) }
	for _, c := range r.clients {
		v := c.tracker.Verdict(sent)
		res.Sent += c.sent.Load()
		res.Received += v.Received
		res.Bytes += c.bytes.Load()
		res.Reads += c.reads.Load()
		res.Lost += v.Lost
		res.Duplicated += v.Duplicated
		res.Reordered += v.Reordered
		res.Corrupt += c.corrupt + c.pubErrors.Load()
		if v.Lost > 0 {
			r.errs.note("client %d: %d frames lost", c.id, v.Lost)
		}
		if c.readErr != nil || c.sendErr != nil || c.pubErr != nil {
			res.Disconnects++
		}
	}
}

// readLoop reads and verifies everything that comes to c.sub.
func (c *fanClient) readLoop() {
	r := c.run
	defer r.wg.Done()
	defer close(c.exited)
	defer func() { c.lat.done(r.now()) }()
	buf := make([]byte, r.cfg.ReadBuffer)
	start, end := 0, 0
	for {
		n, err := c.sub.Read(buf[end:])
		end += n
		var frames int64
		for start < end {
			kind, p, used, derr := r.proto.decode(buf[start:end])
			if derr != nil {
				c.corrupt++
				r.fail("client %d: undecodable stream after %d bytes: %v", c.id, c.bytes.Load(), derr)
				c.bytes.Add(int64(n))
				return
			}
			if used == 0 {
				break
			}
			start += used
			switch kind {
			case kindData:
				frames++
				c.data(p)
			case kindHello:
				if pl, err := ParsePayload(p); err != nil {
					c.corrupt++
					r.fail("client %d: corrupt hello: %v", c.id, err)
				} else if pl.Sender == c.id {
					c.markRegistered()
				}
			case kindSubscribed:
				c.markRegistered()
			case kindUnknown:
				c.corrupt++
				r.fail("client %d: unexpected message (%d bytes)", c.id, used)
			}
		}
		switch {
		case start == end:
			start, end = 0, 0
		case end == len(buf) && start == 0:
			c.corrupt++
			r.fail("client %d: message larger than the %d-byte read buffer", c.id, len(buf))
			return
		case start > 0:
			end = copy(buf, buf[start:end])
			start = 0
		}
		c.recv.Add(frames)
		if n > 0 {
			c.bytes.Add(int64(n))
			c.reads.Add(1)
		}
		u := c.tracker.Unique()
		c.unique.Store(u)
		if !c.isComplete && u >= r.target.Load() {
			c.isComplete = true
			close(c.complete)
		}
		if err != nil {
			r.connFailed(&c.readErr, c.id, "read", err)
			return
		}
	}
}

func (c *fanClient) markRegistered() {
	if !c.isRegistered {
		c.isRegistered = true
		close(c.registered)
	}
}

// data verifies one data frame's payload p.
func (c *fanClient) data(p []byte) {
	r := c.run
	pl, err := ParsePayload(p)
	if err == nil && len(p) != r.cfg.Size {
		err = fmt.Errorf("%w: payload %d bytes, want %d", ErrCorrupt, len(p), r.cfg.Size)
	}
	if err != nil {
		c.corrupt++
		r.fail("client %d: %v", c.id, err)
		return
	}
	switch out := c.tracker.Observe(pl.Sender, pl.Seq); out {
	case InOrder:
	case UnknownSender:
		c.corrupt++
		r.fail("client %d: frame from unknown sender %d", c.id, pl.Sender)
		return
	case Duplicate:
		r.fail("client %d: duplicate frame %d of sender %d", c.id, pl.Seq, pl.Sender)
		return
	case Late:
		r.fail("client %d: frame %d of sender %d arrived after a later one", c.id, pl.Seq, pl.Sender)
	case Ahead:
		// Counted when it is found late or lost.
	}
	if pl.Sender == c.id {
		now := r.now()
		c.lat.record(now, now-pl.Stamp)
		select {
		case <-c.sem:
		default:
		}
	}
}

// sendLoop sends c's frames once the clock starts.
func (c *fanClient) sendLoop() {
	r := c.run
	defer r.wg.Done()
	defer close(c.sendDone)
	if !r.waitStart() {
		return
	}
	size := r.cfg.Size
	limit := r.cfg.sendLimit()
	frameLen := len(r.proto.appendData(nil, 0, 0, 0, size))
	buf := make([]byte, 0, max(r.cfg.Window, 1)*frameLen)
	pace := newPacer(&r.base, r.cfg.Rate, r.cfg.Clients)
	var seq uint32
	for seq < limit {
		select {
		case c.sem <- struct{}{}:
		case <-r.stopSend:
			return
		case <-c.exited:
			return
		}
		n := uint32(1)
		if pace.interval == 0 {
		more:
			for seq+n < limit {
				select {
				case c.sem <- struct{}{}:
					n++
				default:
					break more
				}
			}
		} else if !pace.wait(seq) {
			return
		}
		select {
		case <-r.stopSend:
			return
		default:
		}
		buf = buf[:0]
		stamp := r.now()
		for i := range n {
			buf = r.proto.appendData(buf, c.id, seq+i, stamp, size)
		}
		if _, err := c.pub.Write(buf); err != nil {
			r.connFailed(&c.sendErr, c.id, "write", err)
			return
		}
		seq += n
		c.sent.Store(int64(seq))
	}
}

// drainReplies reads the replies to c's PUBLISH commands (pubsub), counting
// error replies.
func (c *fanClient) drainReplies() {
	r := c.run
	defer r.wg.Done()
	buf := make([]byte, 16<<10)
	lineStart := true
	for {
		n, err := c.pub.Read(buf)
		for i, b := range buf[:n] {
			if lineStart {
				if b == '-' {
					c.pubErrors.Add(1)
					line := buf[i:n]
					if len(line) > 120 {
						line = line[:120]
					}
					r.fail("client %d: publish: %q", c.id, line)
				} else {
					c.pubReplies.Add(1)
				}
			}
			lineStart = b == '\n'
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.connFailed(&c.pubErr, c.id, "publisher read", err)
			}
			return
		}
	}
}
