package handler

import (
	"net/netip"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	addr         string
	codec        codec.Codec
	multicore    bool
	loops        int
	log          zerolog.Logger
	limits       sessionmgr.Limits
	maxConns     int
	maxHeld      int
	idleTimeout  time.Duration
	frameTimeout time.Duration
	tick         time.Duration
	wsAddr       string // WithWebSocket; "": no WebSocket listener
	ws           WebSocketConfig
	proxy        bool           // WithProxyProtocol
	proxyFrom    []netip.Prefix // its trusted proxies
	handshake    time.Duration  // WithHandshakeTimeout; 0: the default (openTimeout)
	backplane    NewBackplane
}

func defaultOptions() options {
	return options{
		addr:   "127.0.0.1:7001",
		codec:  codec.Packet(0),
		log:    zerolog.Nop(),
		limits: sessionmgr.DefaultLimits(),
		tick:   100 * time.Millisecond,
	}
}

// WithAddr sets the TCP address to listen on, as host:port (default
// 127.0.0.1:7001). Port 0 picks a free port; Server.Addr reports it.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithCodec sets the codec for every session (default codec.Packet(65535)).
// The codec carries the max frame size.
func WithCodec(c codec.Codec) Option { return func(o *options) { o.codec = c } }

// WithMulticore runs one event loop per CPU (gnet's WithMulticore).
func WithMulticore(on bool) Option { return func(o *options) { o.multicore = on } }

// WithLoops sets the number of event loops; it overrides WithMulticore.
func WithLoops(n int) Option { return func(o *options) { o.loops = n } }

// WithLogger sets the logger (default: discard).
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// WithLimits sets the per-session pending-bytes limits: watermarks and the
// hard limit with its slow-consumer policy (default
// sessionmgr.DefaultLimits).
func WithLimits(l sessionmgr.Limits) Option { return func(o *options) { o.limits = l } }

// WithMaxConns refuses connections beyond n open sessions (0: no limit).
// Each refusal is logged and counted.
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// WithMaxHeld bounds the memory the frames held for all slow sessions cost
// together (sessionmgr.Config.MaxHeld, 0: no bound): past it the sessions
// holding the most are closed first with sessionmgr.ErrHeldLimit, counted
// (Stats().HeldCuts) and logged, as Redis's maxmemory-clients does.
func WithMaxHeld(n int) Option { return func(o *options) { o.maxHeld = n } }

// WithIdleTimeout closes a session that sends no bytes for d (0: never).
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idleTimeout = d } }

// WithFrameTimeout closes a session that starts a frame and does not finish
// it within d (0: never), so a peer cannot park half a frame on the server.
func WithFrameTimeout(d time.Duration) Option { return func(o *options) { o.frameTimeout = d } }

// WithHandshakeTimeout closes a connection that has not finished opening
// within d: its PROXY protocol header (WithProxyProtocol) or its WebSocket
// handshake (WithWebSocket) has not arrived whole. Default: the frame
// timeout, or 10 s without one. Counted and logged as a frame timeout
// (ErrHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option { return func(o *options) { o.handshake = d } }

// WithTick sets how often the server checks timeouts and re-checks
// sessions whose bytes are still in gnet's outbound buffer (default 100 ms).
// Timeouts never fire early, and fire within about two ticks after their
// duration.
func WithTick(d time.Duration) Option { return func(o *options) { o.tick = d } }
