package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"
)

// Server runs a gnet engine and calls a Handler. Create it with NewServer,
// then Start and Stop it (or Run it until a context ends). Its methods are
// safe from any goroutine.
type Server struct {
	gnet.BuiltinEventEngine

	// Fixed after NewServer.
	h     Handler
	opts  options
	codec codec.Codec
	log   zerolog.Logger
	mgr   *sessionmgr.Manager

	booted chan struct{} // closed by OnBoot
	done   chan struct{} // closed when gnet.Run returns

	loops sync.Map // gnet.EventLoop -> *sessionmgr.Loop

	mu      sync.Mutex // guards the fields below
	started bool
	eng     gnet.Engine
	addr    net.Addr
	runErr  error
}

var _ gnet.EventHandler = (*Server)(nil)

// NewServer returns a Server that will call h.
func NewServer(h Handler, opts ...Option) *Server {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	srv := &Server{
		h:      h,
		opts:   o,
		codec:  o.codec,
		log:    o.log,
		booted: make(chan struct{}),
		done:   make(chan struct{}),
	}
	srv.mgr = sessionmgr.NewManager(sessionmgr.Config{OnSend: srv.onSend})
	return srv
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

	addr := srv.opts.addr
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	gopts := []gnet.Option{
		gnet.WithMulticore(srv.opts.multicore),
		gnet.WithNumEventLoop(srv.opts.loops),
		gnet.WithLogger(gnetLogger{srv.log}),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
	}
	go func() {
		err := gnet.Run(srv, addr, gopts...)
		srv.released()
		srv.mu.Lock()
		srv.runErr = err
		srv.mu.Unlock()
		close(srv.done)
	}()
	select {
	case <-srv.booted:
		srv.log.Info().Str("addr", srv.Addr().String()).Str("codec", srv.codec.Name()).Msg("herald: listening")
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

// Stop stops accepting, closes every session (OnDisconnected runs for each
// with ErrClosedByServer) and waits for the event loops to exit, or for ctx
// to end. Every SendBuffer reference held by a session is released, also
// those of writes gnet dropped at shutdown.
func (srv *Server) Stop(ctx context.Context) error {
	srv.mu.Lock()
	eng, started := srv.eng, srv.started
	srv.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-srv.booted:
	case <-srv.done:
		return srv.Wait()
	}
	if err := eng.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("herald/handler: stop: %w", err)
	}
	select {
	case <-srv.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// released runs once the event loops have exited. gnet closed every
// connection on its loop first; this is the safety net for a session it never
// reported closed. gnet dropped the loops' queued flush tasks, so the Loops
// release what they still hold.
func (srv *Server) released() {
	for _, s := range srv.mgr.Sessions() {
		srv.mgr.Remove(s)
	}
	srv.loops.Range(func(_, l any) bool {
		l.(*sessionmgr.Loop).Discard()
		return true
	})
}

// Run starts the server and stops it when ctx ends (for example on SIGINT,
// with signal.NotifyContext).
func (srv *Server) Run(ctx context.Context) error {
	if err := srv.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-srv.done:
		return srv.Wait()
	}
	srv.log.Info().Msg("herald: stopping")
	return srv.Stop(context.Background())
}

// OnBoot records the engine and the bound address. gnet calls it once.
func (srv *Server) OnBoot(eng gnet.Engine) gnet.Action {
	addr, err := boundAddr(eng)
	if err != nil {
		srv.log.Error().Err(err).Msg("herald: cannot read the listening address")
	}
	srv.mu.Lock()
	srv.eng, srv.addr = eng, addr
	srv.mu.Unlock()
	close(srv.booted)
	return gnet.None
}

// boundAddr asks the kernel which address the engine's listener has.
func boundAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
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

// OnOpen makes the session, tells the handler and adds it to the Manager.
func (srv *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s := srv.mgr.NewSession(c, srv.loop(c.EventLoop()))
	c.SetContext(s)
	s.EnterCallback()
	ok := srv.call(s, func() { srv.h.OnConnected(s) })
	s.LeaveCallback()
	if !ok {
		return nil, gnet.Close
	}
	srv.mgr.Add(s)
	return nil, gnet.None
}

// loop returns herald's Loop for a gnet event loop, making it on first use.
func (srv *Server) loop(el gnet.EventLoop) *sessionmgr.Loop {
	if l, ok := srv.loops.Load(el); ok {
		return l.(*sessionmgr.Loop)
	}
	l, _ := srv.loops.LoadOrStore(el, sessionmgr.NewLoop(el))
	return l.(*sessionmgr.Loop)
}

// OnTraffic decodes every complete frame gnet has buffered and hands each to
// the handler. Frames alias gnet's buffer until Discard below.
func (srv *Server) OnTraffic(c gnet.Conn) gnet.Action {
	s := c.Context().(*sessionmgr.Session)
	// Replies sent by the handler are written once, when all frames of this
	// read are handled.
	s.EnterCallback()
	defer s.LeaveCallback()
	in, _ := c.Peek(-1)
	off := 0
	for off < len(in) {
		f, n, err := srv.codec.Decode(in[off:])
		if err != nil {
			s.SetCloseReason(fmt.Errorf("%w: %w", ErrProtocol, err))
			srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
				Err(err).Msg("herald: closing session: bad frame")
			return gnet.Close
		}
		if n == 0 {
			break
		}
		off += n
		if !srv.call(s, func() { srv.h.OnRecv(s, f) }) {
			return gnet.Close
		}
	}
	if off > 0 {
		// Discard(0) would drop everything buffered, the partial frame
		// included: gnet treats n <= 0 as "all".
		_, _ = c.Discard(off)
	}
	return gnet.None
}

// OnClose takes the session out of the Manager, releases what it still
// queued, and tells the handler why it closed.
func (srv *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	s, ok := c.Context().(*sessionmgr.Session)
	if !ok {
		return gnet.None
	}
	reason := s.CloseReason()
	if reason == nil {
		reason = err
	}
	if reason == nil {
		reason = ErrClosedByServer
	}
	frames, bytes := srv.mgr.Remove(s)
	ev := srv.log.Debug()
	if frames > 0 {
		ev = srv.log.Info()
	}
	ev.Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Err(reason).
		Int("unsent_frames", frames).Int("unsent_bytes", bytes).Msg("herald: session closed")
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
			s.SetCloseReason(fmt.Errorf("%w: %v", ErrHandlerPanic, r))
			srv.log.Error().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
				Interface("panic", r).Str("stack", string(debug.Stack())).
				Msg("herald: handler panicked; closing its session")
			ok = false
		}
	}()
	fn()
	return true
}

// gnetLogger sends gnet's own log lines to the server's zerolog logger.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error().Msgf("gnet: "+f, a...) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Fatal().Msgf("gnet: "+f, a...) }
