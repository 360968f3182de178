package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/rs/zerolog"
)

// Server runs a gnet engine and calls a Handler. Create it with NewServer,
// then Start and Stop it (or Run it until a context ends). Its methods are
// safe from any goroutine.
type Server struct {
	gnet.BuiltinEventEngine

	// Fixed after NewServer.
	h     Handler
	wh    WritabilityHandler // h, if it is one
	opts  options
	codec codec.Codec
	sizer codec.Sizer // codec, if it is one
	log   zerolog.Logger
	mgr   *sessionmgr.Manager
	bp    backplane.Backplane // nil without WithBackplane

	bpClose sync.Once // closeBackplane

	// Fixed after NewServer: how connections open and what WebSocket
	// sessions carry.
	wsOp        ws.Opcode     // a WebSocket session's message type for the codec (WithWebSocket)
	wsTrim      []byte        // the codec's delimiter, left off a WebSocket message; nil for a binary codec
	openTimeout time.Duration // the handshake timeout; 0 when no connection has a handshake

	pages map[string][]byte // fixed after NewServer: WebSocketConfig.Pages' responses by path; nil without Pages (page.go)

	noPause sync.Once // logs once that read backpressure cannot pause gnet here
	closer  *closer   // makes the sockets' last close(2) off the loops (closer_linux.go); set in Start

	booted chan struct{} // closed by OnBoot
	done   chan struct{} // closed when gnet.Run returns

	loops sync.Map // gnet.EventLoop -> *sessionmgr.Loop
	lags  sync.Map // gnet.EventLoop -> *lagProbe (lag.go)
	conns sync.Map // *conn -> struct{}: open sessions, for the ticker

	draining      atomic.Bool  // Stop has begun: refuse new connections
	now           atomic.Int64 // unix nanoseconds, refreshed every tick: a coarse clock for timeouts
	admitted      atomic.Int64 // connections past the WithMaxConns check, not yet closed
	refused       atomic.Uint64
	idleClosed    atomic.Uint64
	frameTimeouts atomic.Uint64
	wsPort        atomic.Int64 // the WebSocket listener's port, set by OnBoot; 0: none
	proxyRefused  atomic.Uint64
	counts        counters // for the metrics (metrics.go)

	mu      lockorder.Mutex // guards the fields below
	started bool
	eng     gnet.Engine
	addr    net.Addr
	wsAddr  net.Addr
	runErr  error
}

var _ gnet.EventHandler = (*Server)(nil)

// conn is what the Server keeps in gnet.Conn's context.
type conn struct {
	s            *sessionmgr.Session
	lastRecv     atomic.Int64 // unix nanoseconds of the last inbound bytes
	partialSince atomic.Int64 // unix nanoseconds a partial frame began, or 0

	// read backpressure: s is unwritable, its frames wait in gnet's inbound
	// buffer. Stored on the loop, read by the ticker too.
	paused atomic.Bool

	need int              // owned by the loop: bytes the partial frame needs buffered before decoding again (codec.Sizer), or 0
	loop *sessionmgr.Loop // s's Loop, which counts its reads

	// ws is the transport: nil for a raw TCP session (OnTraffic decodes
	// the codec's frames from the stream), else a WebSocket session's
	// state (websocket.go: wsTraffic). Fixed in OnOpen.
	ws *wsConn
	// opening: the session has not opened yet (not in the Manager, no
	// OnConnected): its PROXY header or WebSocket handshake is awaited,
	// under the handshake timeout. Set in OnOpen, cleared by openNow.
	opening   atomic.Bool
	needProxy bool // owned by the loop: the PROXY header is awaited (proxy.go)
}

// Stats are the server's running totals.
type Stats struct {
	Sessions      int    // open sessions
	Queued        int    // frames pushed to the event loops, not yet written or held
	Refused       uint64 // connections refused over WithMaxConns or while stopping
	IdleClosed    uint64 // sessions closed by WithIdleTimeout
	FrameTimeouts uint64 // sessions closed by WithFrameTimeout or WithHandshakeTimeout
	ProxyRefused  uint64 // connections refused by WithProxyProtocol: not from a trusted proxy
	sessionmgr.Counters
	Backplane backplane.Counters // zero without WithBackplane
}

// NewServer returns a Server that will call h, or an error if an option is
// invalid.
func NewServer(h Handler, opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.codec == nil || o.tick <= 0 || o.maxConns < 0 || o.idleTimeout < 0 || o.frameTimeout < 0 {
		return nil, fmt.Errorf("%w: need a codec, tick > 0, and no negative limit", ErrBadOption)
	}
	srv := &Server{
		h:      h,
		opts:   o,
		codec:  o.codec,
		log:    o.log,
		booted: make(chan struct{}),
		done:   make(chan struct{}),
	}
	srv.sizer, _ = o.codec.(codec.Sizer)
	srv.wh, _ = h.(WritabilityHandler)
	if err := srv.wsSetup(); err != nil {
		return nil, err
	}
	if err := srv.pageSetup(); err != nil {
		return nil, err
	}
	if err := srv.proxySetup(); err != nil {
		return nil, err
	}
	if o.handshake < 0 {
		return nil, fmt.Errorf("%w: negative handshake timeout", ErrBadOption)
	}
	if o.wsAddr != "" || o.proxy {
		srv.openTimeout = openTimeout(o)
	}
	bp, bind, err := o.openBackplane()
	if err != nil {
		return nil, err
	}
	cfg := sessionmgr.Config{Limits: o.limits, MaxHeld: o.maxHeld, OnSend: srv.onSend, OnSlow: srv.onSlow, OnWritable: srv.onWritable, Backplane: bp}
	mgr, err := sessionmgr.NewManager(cfg)
	if err != nil {
		if bp != nil {
			_ = bp.Close()
		}
		return nil, err
	}
	srv.mgr, srv.bp = mgr, bp
	bind(mgr)
	return srv, nil
}

// Stats returns the server's running totals.
func (srv *Server) Stats() Stats {
	return Stats{
		Sessions:      srv.mgr.Len(),
		Queued:        srv.queued(),
		Refused:       srv.refused.Load(),
		IdleClosed:    srv.idleClosed.Load(),
		FrameTimeouts: srv.frameTimeouts.Load(),
		ProxyRefused:  srv.proxyRefused.Load(),
		Counters:      srv.mgr.Counters(),
		Backplane:     srv.backplaneCounters(),
	}
}

// Manager returns the server's session manager, for broadcasts and groups.
func (srv *Server) Manager() *sessionmgr.Manager { return srv.mgr }

// Codec returns the server's codec, to encode outgoing frames.
func (srv *Server) Codec() codec.Codec { return srv.codec }

// Addr returns the address the server listens on once Start has returned,
// with the real port when the configured one was 0.
func (srv *Server) Addr() net.Addr {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.addr
}

// Start listens and runs the event loops in the background. It returns once
// the server accepts connections, or with the error that stopped it.
func (srv *Server) Start() error {
	srv.mu.Lock()
	if srv.started {
		srv.mu.Unlock()
		return ErrServerStarted
	}
	srv.started = true
	srv.mu.Unlock()

	addrs := []string{protoAddr(srv.opts.addr)}
	if srv.opts.wsAddr != "" {
		if err := srv.pickWSPort(); err != nil {
			return err
		}
		addrs = append(addrs, protoAddr(srv.opts.wsAddr))
	}
	gopts := []gnet.Option{
		gnet.WithMulticore(srv.opts.multicore),
		gnet.WithNumEventLoop(srv.opts.loops),
		gnet.WithLogger(gnetLogger{srv.log}),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
	}
	srv.now.Store(time.Now().UnixNano())
	stopTicker := make(chan struct{})
	tickerDone := make(chan struct{})
	go srv.ticker(stopTicker, tickerDone)
	srv.closer = startCloser()
	go func() {
		err := gnet.Rotate(srv, addrs, gopts...) // one engine, one listener per address
		srv.closer.stop()
		close(stopTicker)
		<-tickerDone
		srv.released()
		srv.mu.Lock()
		srv.runErr = err
		srv.mu.Unlock()
		close(srv.done)
	}()
	select {
	case <-srv.booted:
		ev := srv.log.Info().Stringer("addr", srv.Addr()).Str("codec", srv.codec.Name())
		if a := srv.WebSocketAddr(); a != nil {
			ev = ev.Stringer("websocket", a)
		}
		ev.Msg("herald: listening")
		return nil
	case <-srv.done:
		return srv.Wait()
	}
}

// Wait blocks until the server has stopped and returns the error gnet
// stopped with, if any.
func (srv *Server) Wait() error {
	<-srv.done
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.runErr
}

// Stop shuts the server down gracefully: it refuses new connections, lets
// every session's pending frames drain to the peers until none is left or
// ctx ends, then closes every session (OnDisconnected runs for each with
// ErrClosedByServer) and waits for the event loops to exit. Frames still
// pending then are dropped and counted (Stats().Unsent). Every SendBuffer
// reference is released, also those of writes gnet dropped at shutdown.
// A backplane (WithBackplane) is closed first.
func (srv *Server) Stop(ctx context.Context) error {
	srv.closeBackplane() // first: nothing more arrives from other nodes while the loops drain
	srv.mu.Lock()
	started := srv.started
	srv.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-srv.done: // stopped already; checked first, as a select picks at random
		return srv.Wait()
	default:
	}
	select {
	case <-srv.booted:
	case <-srv.done:
		return srv.Wait()
	}
	srv.mu.Lock()
	eng := srv.eng // set by OnBoot
	srv.mu.Unlock()
	srv.draining.Store(true)
	srv.drain(ctx)
	// gnet's Stop starts the shutdown, then polls for its end every 500 ms.
	// Given a context that is already done it returns once the shutdown has
	// started; srv.done, closed when gnet.Run returns after every loop has
	// exited, is the end. ErrEngineInShutdown: a concurrent Stop got there
	// first; wait with it.
	now, cancel := context.WithCancel(context.Background())
	cancel()
	if err := eng.Stop(now); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, gerrors.ErrEngineInShutdown) {
		return fmt.Errorf("herald/handler: stop: %w", err)
	}
	<-srv.done
	return nil
}

// drain waits until no session has bytes pending and no loop has frames
// queued, or ctx ends.
func (srv *Server) drain(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, s := range srv.mgr.Sessions() {
			pending += s.Pending()
		}
		unsettled := srv.queued() // frames in a Loop's queue: no session's Pending sees them yet
		if pending == 0 && unsettled == 0 {
			return
		}
		select {
		case <-ctx.Done():
			srv.log.Warn().Int("pending_bytes", pending).Int("queued_frames", unsettled).
				Msg("herald: drain deadline passed; closing with frames pending")
			return
		case <-t.C:
			srv.pollLoops()
		}
	}
}

// ticker enforces timeouts and re-checks owing sessions every tick until
// stop closes.
func (srv *Server) ticker(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(srv.opts.tick)
	defer t.Stop()
	lag := time.NewTicker(min(srv.opts.tick, lagEvery))
	defer lag.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			srv.tick(time.Now().UnixNano())
		case <-lag.C:
			srv.probeLoops()
		}
	}
}

// queued sums the loops' Unsettled frames.
func (srv *Server) queued() int {
	n := 0
	srv.loops.Range(func(_, l any) bool {
		n += l.(*sessionmgr.Loop).Unsettled()
		return true
	})
	return n
}

// tick is one tick of the ticker at time now (unix nanoseconds).
func (srv *Server) tick(now int64) {
	prev := srv.now.Swap(now)
	srv.clockLoops(now)
	srv.pollLoops()
	srv.checkTimeouts(now, now-prev)
}

func (srv *Server) pollLoops() {
	srv.loops.Range(func(_, l any) bool {
		l.(*sessionmgr.Loop).Poll()
		return true
	})
}

// checkTimeouts closes sessions idle past WithIdleTimeout and sessions with
// a frame unfinished past WithFrameTimeout, never early. The stamps come
// from the coarse clock: an event stamped with the value stored before now
// happened at most gap (now minus that value) after its stamp, so a
// timeout fires when its stamp is more than d + gap old. It fires within
// about two ticks after d.
func (srv *Server) checkTimeouts(now, gap int64) {
	idle, frame := int64(srv.opts.idleTimeout), int64(srv.opts.frameTimeout)
	hs := int64(srv.openTimeout)
	if idle == 0 && frame == 0 && hs == 0 {
		return
	}
	srv.conns.Range(func(k, _ any) bool {
		st := k.(*conn)
		partial, reason := frame, ErrFrameTimeout
		if st.opening.Load() {
			partial, reason = hs, ErrHandshakeTimeout
		}
		switch {
		// A paused session's bytes wait unread in the kernel (read
		// backpressure): its silence proves nothing.
		case idle > 0 && now-st.lastRecv.Load() > idle+gap && !st.paused.Load():
			srv.idleClosed.Add(1)
			srv.closeFor(st.s, ErrIdle)
		case partial > 0 && st.partialSince.Load() != 0 && now-st.partialSince.Load() > partial+gap:
			srv.frameTimeouts.Add(1)
			srv.closeFor(st.s, reason)
		}
		return true
	})
}

// closeFor logs and closes s for reason.
func (srv *Server) closeFor(s *sessionmgr.Session, reason error) {
	srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Err(reason).Msg("herald: closing session")
	_ = s.CloseWith(reason)
}

// onSlow is the Manager's OnSlow hook: one log line per slow session.
func (srv *Server) onSlow(s *sessionmgr.Session, reason error) {
	srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Err(reason).
		Int("pending_bytes", s.Pending()).Msg("herald: slow consumer")
}

// released runs once the event loops have exited. gnet closed every
// connection on its loop first; this is the safety net for a session it never
// reported closed. gnet dropped the loops' queued flush tasks, so the Loops
// release what they still hold.
func (srv *Server) released() {
	srv.conns.Range(func(k, _ any) bool { // removed sessions included
		srv.mgr.Closed(k.(*conn).s)
		return true
	})
	srv.loops.Range(func(_, l any) bool {
		l.(*sessionmgr.Loop).Discard()
		return true
	})
}

// Run starts the server and, when ctx ends (for example on SIGINT, with
// signal.NotifyContext), stops it, giving pending frames up to drain to
// reach the peers (see Stop).
func (srv *Server) Run(ctx context.Context, drain time.Duration) error {
	if err := srv.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-srv.done:
		return srv.Wait()
	}
	srv.log.Info().Dur("drain", drain).Msg("herald: stopping")
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Stop(dctx)
	st := srv.Stats()
	srv.log.Info().Uint64("unsent_frames", st.Unsent).Uint64("slow_disconnects", st.SlowDisconnects).
		Uint64("dropped_frames", st.Dropped).Uint64("refused", st.Refused).Msg("herald: stopped")
	return err
}

// protoAddr is addr as gnet takes it: with a scheme, tcp:// by default.
func protoAddr(addr string) string {
	if !strings.Contains(addr, "://") {
		return "tcp://" + addr
	}
	return addr
}

// OnBoot records the engine and the bound addresses. gnet calls it once,
// before any connection opens.
func (srv *Server) OnBoot(eng gnet.Engine) gnet.Action {
	addr, err := boundAddr(eng, srv.opts.addr)
	if err != nil {
		srv.log.Error().Err(err).Msg("herald: cannot read the listening address")
	}
	var wsAddr net.Addr
	if srv.opts.wsAddr != "" {
		if wsAddr, err = boundAddr(eng, srv.opts.wsAddr); err != nil {
			srv.log.Error().Err(err).Msg("herald: cannot read the WebSocket listening address")
		} else {
			srv.wsPort.Store(int64(wsAddr.(*net.TCPAddr).Port))
		}
	}
	srv.mu.Lock()
	srv.eng, srv.addr, srv.wsAddr = eng, addr, wsAddr
	srv.mu.Unlock()
	close(srv.booted)
	return gnet.None
}

// boundAddr asks the kernel which address the engine's listener for addr
// (as configured) has.
func boundAddr(eng gnet.Engine, addr string) (net.Addr, error) {
	network, hostPort, _ := strings.Cut(protoAddr(addr), "://")
	fd, err := eng.DupListener(network, hostPort)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	}
	return nil, fmt.Errorf("herald/handler: unexpected listener address %T", sa)
}

// OnOpen makes the session, adds it to the Manager and tells the handler,
// unless the server is full or stopping.
func (srv *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if !srv.trusted(c) {
		return nil, gnet.Close
	}
	if srv.draining.Load() || !srv.admit() {
		srv.refused.Add(1)
		srv.log.Warn().Stringer("remote", c.RemoteAddr()).Int("sessions", srv.mgr.Len()).
			Bool("stopping", srv.draining.Load()).Msg("herald: refusing connection")
		return nil, gnet.Close
	}
	l := srv.loop(c.EventLoop())
	s := srv.mgr.NewSession(c, l)
	st := &conn{s: s, loop: l}
	st.lastRecv.Store(srv.now.Load())
	transport := transportTCP
	if p := srv.wsPort.Load(); p != 0 {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok && int64(a.Port) == p {
			transport = transportWS
			srv.openWS(st) // the session opens once its handshake is done
		}
	}
	srv.counts.opened[transport].Add(1)
	st.needProxy = srv.opts.proxy
	if st.needProxy || st.ws != nil {
		st.opening.Store(true) // openNow opens it
		st.partialSince.Store(srv.now.Load())
	}
	c.SetContext(st)
	srv.conns.Store(st, struct{}{})
	if st.opening.Load() {
		return nil, gnet.None
	}
	srv.mgr.Add(s) // before OnConnected, so it can join groups
	s.EnterCallback()
	ok := srv.call(s, func() { srv.h.OnConnected(s) })
	s.LeaveCallback()
	if !ok {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

// admit takes a place for a new connection under WithMaxConns, or reports
// false if there is none. The place is taken before OnConnected runs and
// given back in OnClose, so connections opening at once on several loops
// cannot all pass a check of the Manager's size. On the loop.
func (srv *Server) admit() bool {
	n := srv.admitted.Add(1)
	if srv.opts.maxConns > 0 && n > int64(srv.opts.maxConns) {
		srv.admitted.Add(-1)
		return false
	}
	return true
}

// loop returns herald's Loop for a gnet event loop, making it on first use.
func (srv *Server) loop(el gnet.EventLoop) *sessionmgr.Loop {
	if l, ok := srv.loops.Load(el); ok {
		return l.(*sessionmgr.Loop)
	}
	nl := sessionmgr.NewLoop(el)
	nl.SetClock(srv.now.Load()) // stamps held frames; the ticker moves it
	l, _ := srv.loops.LoadOrStore(el, nl)
	return l.(*sessionmgr.Loop)
}

// OnTraffic decodes every complete frame gnet has buffered and hands each to
// the handler. Frames alias gnet's buffer until Discard below. It delivers
// nothing while the session is closing, nor while it is paused by read
// backpressure (the frames wait in gnet's buffer), and it does not look at
// the buffer again until a partial frame whose size the codec told
// (codec.Sizer) has all its bytes.
func (srv *Server) OnTraffic(c gnet.Conn) (action gnet.Action) {
	st := c.Context().(*conn)
	s := st.s
	now := srv.now.Load()
	if st.lastRecv.Load() != now { // the coarse clock moves once a tick
		st.lastRecv.Store(now)
	}
	switch {
	case s.Closing():
		return gnet.None
	case st.paused.Load():
		// gnet re-armed reading: its outbound buffer emptied. A flush
		// resumes the session if it is below its low watermark by now;
		// otherwise pause again.
		s.EnterCallback()
		s.LeaveCallback()
		if st.paused.Load() {
			setReading(c, false)
		}
		return gnet.None
	case st.need > 0 && c.InboundBuffered() < st.need:
		return gnet.None
	}
	st.need = 0
	// What the handler sends is written when all frames of this read are
	// handled. One deferred recover covers every OnRecv of the read: this
	// runs once per message on the loop's critical path.
	s.EnterCallback()
	defer func() {
		if r := recover(); r != nil {
			srv.panicked(s, r)
			action = gnet.Close
		}
		s.LeaveCallback()
	}()
	in, _ := c.Peek(-1)
	off, frames := 0, 0
	defer func() { st.loop.CountRecv(frames, off) }()
	// Two defers and at most seven returns: one more return and Go stops
	// open-coding the defers, which cost 15% more per echoed message
	// (BenchmarkOnTraffic). The other transports' work is in transport.
	if st.ws != nil || st.needProxy {
		var stop bool
		if off, frames, stop, action = srv.transport(c, st, in); stop {
			return action
		}
	}
	if st.ws == nil {
		for off < len(in) {
			f, n, err := srv.codec.Decode(in[off:])
			if err != nil {
				srv.counts.countProtocol(err)
				s.SetCloseReason(fmt.Errorf("%w: %w", ErrProtocol, err))
				srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
					Err(err).Msg("herald: closing session: bad frame")
				return gnet.Close
			}
			if n == 0 {
				if srv.sizer != nil {
					st.need = srv.sizer.FrameSize(in[off:])
				}
				break
			}
			off += n
			frames++
			srv.h.OnRecv(s, f)
			if s.Closing() {
				// Closed inside the handler, or by gnet when a write failed
				// (then c is released already): nothing more of it is read.
				return gnet.None
			}
			if st.paused.Load() {
				break // the rest waits for the resume (onWritable)
			}
		}
	}
	if off > 0 {
		// Discard(0) would drop everything buffered, the partial frame
		// included: gnet treats n <= 0 as "all".
		_, _ = c.Discard(off)
	}
	switch {
	case off == len(in) || st.paused.Load():
		if st.partialSince.Load() != 0 {
			st.partialSince.Store(0)
		}
	case off > 0 || st.partialSince.Load() == 0:
		st.partialSince.Store(now) // a new frame has begun
	}
	return gnet.None
}

// transport is OnTraffic's work for a session that is not plain TCP from
// its first byte: the PROXY header first (proxy.go), then for a WebSocket
// session its handshake and messages (websocket.go). It returns the bytes
// of in consumed and the frames delivered; stop means OnTraffic returns
// action at once. A raw TCP session whose PROXY header is in goes on to
// OnTraffic's codec loop with the rest.
func (srv *Server) transport(c gnet.Conn, st *conn, in []byte) (off, frames int, stop bool, action gnet.Action) {
	if st.needProxy {
		if off, stop, action = srv.proxyTraffic(c, st, in); stop {
			return off, 0, stop, action
		}
	}
	if st.ws == nil {
		return off, 0, false, gnet.None
	}
	n, frames, stop, action := srv.wsTraffic(c, st, in[off:])
	return off + n, frames, stop, action
}

// onWritable is the Manager's OnWritable hook, on the session's loop: read
// backpressure (see readpause_linux.go), then the handler's
// WritabilityHandler.
func (srv *Server) onWritable(s *sessionmgr.Session, w bool) {
	if c, ok := s.Conn().(gnet.Conn); ok {
		if st, ok := c.Context().(*conn); ok {
			st.paused.Store(!w)
			if !setReading(c, w) && !w {
				srv.noPause.Do(func() {
					srv.log.Warn().Msg("herald: cannot pause reading on this platform; an unwritable session's frames wait in gnet's buffer")
				})
			}
			if w && c.InboundBuffered() > 0 {
				// Frames left in gnet's buffer at the pause: no new bytes
				// need arrive for them to be decoded.
				_ = c.Wake(nil)
			}
		}
	}
	if srv.wh != nil {
		srv.call(s, func() { srv.wh.OnWritabilityChanged(s, w) })
	}
}

// OnClose takes the session out of the Manager, releases what it still
// queued, and tells the handler why it closed.
func (srv *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	srv.closer.take(c, err) // the socket's last close off the loop (closer_linux.go)
	st, ok := c.Context().(*conn)
	if !ok {
		return gnet.None // refused in OnOpen
	}
	srv.admitted.Add(-1)
	srv.conns.Delete(st)
	s := st.s
	reason := s.CloseReason()
	srv.counts.countClose(reason, err)
	if reason == nil {
		reason = err
	}
	if reason == nil {
		reason = ErrClosedByServer
	}
	frames, bytes := srv.mgr.Closed(s)
	ev := srv.log.Debug()
	switch {
	case errors.Is(reason, sessionmgr.ErrHeldLimit):
		ev = srv.log.Warn() // cut by WithMaxHeld: an operator wants to know
	case frames > 0:
		ev = srv.log.Info()
	}
	ev.Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Err(reason).
		Int("unsent_frames", frames).Int("unsent_bytes", bytes).Msg("herald: session closed")
	if st.opening.Load() {
		return gnet.None // never opened (handshake or PROXY header not completed): no OnConnected, no OnDisconnected
	}
	srv.call(s, func() { srv.h.OnDisconnected(s, reason) })
	return gnet.None
}

// onSend is the Manager's OnSend hook; it runs on the session's loop.
func (srv *Server) onSend(s *sessionmgr.Session, n int) {
	if !srv.call(s, func() { srv.h.OnSend(s, n) }) {
		_ = s.Close()
	}
}

// call runs a handler method and recovers a panic: it logs the panic with
// its stack, records ErrHandlerPanic as the close reason, and reports false
// so the caller closes the session.
func (srv *Server) call(s *sessionmgr.Session, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			srv.panicked(s, r)
			ok = false
		}
	}()
	fn()
	return true
}

// panicked records ErrHandlerPanic as s's close reason and logs the panic
// r with its stack. Called by the deferred function that recovered r.
func (srv *Server) panicked(s *sessionmgr.Session, r any) {
	s.SetCloseReason(fmt.Errorf("%w: %v", ErrHandlerPanic, r))
	srv.log.Error().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
		Interface("panic", r).Str("stack", string(debug.Stack())).
		Msg("herald: handler panicked; closing its session")
}

// gnetLogger sends gnet's own log lines to the server's zerolog logger.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Fatal().Msgf("gnet: "+f, a...) }

// openNow opens a session whose opening handshake has completed: it joins
// the Manager and the handler's OnConnected runs. It reports whether the
// session is closing by then. On the loop, inside OnTraffic's callback.
func (srv *Server) openNow(st *conn) (closing bool) {
	st.opening.Store(false)
	srv.mgr.Add(st.s) // before OnConnected, so it can join groups
	srv.h.OnConnected(st.s)
	return st.s.Closing()
}

// openTimeout is the handshake timeout: WithHandshakeTimeout's, else the
// frame timeout, else 10 s.
func openTimeout(o options) time.Duration {
	switch {
	case o.handshake > 0:
		return o.handshake
	case o.frameTimeout > 0:
		return o.frameTimeout
	}
	return 10 * time.Second
}
