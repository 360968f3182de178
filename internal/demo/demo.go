// Package demo holds what herald's demo servers share: their command-line
// flags, logger setup and signal handling, and the chat page (ChatPage)
// their -ws listener serves.
package demo

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/proxyproto"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Main parses the common flags (with defaults addr and codecName), builds a
// server that calls h, and runs it until SIGINT or SIGTERM.
func Main(name, addr, codecName string, h handler.Handler) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	addrF := fs.String("addr", addr, "TCP address to listen on")
	wsF := fs.String("ws", "", "also accept WebSocket sessions on this address, endpoint /ws, and serve a chat page at / (e.g. 127.0.0.1:7080); a message carries one frame of -codec")
	wsOrigin := fs.String("ws-origin", "", "with -ws: the Origin values a browser's handshake may carry, as URL,... (e.g. https://chat.example.com); others get 403; empty: any")
	wsDeflate := fs.Bool("ws-deflate", false, "with -ws: accept permessage-deflate; messages of 1 KiB or more go compressed, once per broadcast (pays for large text only)")
	proxyF := fs.Bool("proxy-protocol", false, "every connection (TCP and -ws) starts with a PROXY protocol v1/v2 header from a trusted proxy; sessions see the client's address")
	proxyFrom := fs.String("proxy-from", proxyproto.DefaultTrusted, "with -proxy-protocol: the proxies allowed to connect, as CIDR,...; anyone else is refused")
	codecF := fs.String("codec", codecName, fmt.Sprintf("codec: one of %v, fixed:N, delimiter:BYTES", codec.Names))
	maxFrame := fs.Int("max-frame", 65535, "largest frame accepted, header included")
	multicore := fs.Bool("multicore", false, "one event loop per CPU")
	loops := fs.Int("loops", 0, "number of event loops (overrides -multicore)")
	def := sessionmgr.DefaultLimits()
	maxPending := fs.Int("max-pending", def.MaxPending, "hard limit of bytes pending per session (herald's queue + gnet's outbound buffer)")
	high := fs.Int("high-watermark", def.HighWatermark, "pending bytes at which a session becomes unwritable (herald holds its frames)")
	low := fs.Int("low-watermark", def.LowWatermark, "pending bytes below which an unwritable session resumes")
	slowPolicy := fs.String("slow-policy", def.Policy.String(), "past -max-pending: disconnect the session, or drop its new frames")
	maxConns := fs.Int("max-conns", 0, "refuse connections beyond this many sessions (0: no limit)")
	maxHeld := fs.Int("max-held", 0, "bound on the memory all slow sessions' held frames cost together; past it the heaviest are cut (0: no bound)")
	idle := fs.Duration("idle-timeout", 0, "close sessions that send nothing for this long (0: never)")
	frameTimeout := fs.Duration("frame-timeout", 10*time.Second, "close sessions that leave a frame unfinished this long (0: never)")
	drain := fs.Duration("drain", 5*time.Second, "on SIGINT/SIGTERM, wait this long for pending frames to reach the peers")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060)")
	natsF := addNATSFlags(fs, name)
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics (herald, Go runtime and process metrics) and /debug/herald/sessions?top=N (the sessions holding the most bytes) on this address (e.g. 127.0.0.1:9090)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\nherald's %s demo server (listens on %s by default); SIGINT or SIGTERM stops it gracefully.\n\n", name, name, addr)
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])

	log := Logger(*level)
	if *pprofAddr != "" {
		go func() { log.Err(http.ListenAndServe(*pprofAddr, nil)).Msg(name + ": pprof server stopped") }()
	}
	c, err := codec.ByName(*codecF, *maxFrame)
	if err != nil {
		log.Fatal().Err(err).Msg(name + ": bad -codec")
	}
	policy, err := sessionmgr.ParseSlowPolicy(*slowPolicy)
	if err != nil {
		log.Fatal().Err(err).Msg(name + ": bad -slow-policy")
	}
	limits := sessionmgr.Limits{LowWatermark: *low, HighWatermark: *high, MaxPending: *maxPending, Policy: policy}
	opts := []handler.Option{
		handler.WithAddr(*addrF), handler.WithCodec(c), handler.WithMulticore(*multicore),
		handler.WithLoops(*loops), handler.WithLogger(log), handler.WithLimits(limits),
		handler.WithMaxConns(*maxConns), handler.WithMaxHeld(*maxHeld), handler.WithIdleTimeout(*idle), handler.WithFrameTimeout(*frameTimeout),
	}
	if *wsF != "" {
		wc := WebSocketConfig(*maxFrame)
		wc.Origins = SplitList(*wsOrigin)
		wc.Deflate = *wsDeflate
		opts = append(opts, handler.WithWebSocket(*wsF, wc))
	}
	if *proxyF {
		trusted, err := proxyproto.ParsePrefixes(*proxyFrom)
		if err != nil {
			log.Fatal().Err(err).Msg(name + ": bad -proxy-from")
		}
		opts = append(opts, handler.WithProxyProtocol(trusted))
	}
	opts = append(opts, natsF.option(log))
	srv, err := handler.NewServer(h, opts...)
	if err != nil {
		log.Fatal().Err(err).Msg(name + ": bad flags")
	}

	if *metricsAddr != "" {
		mux := MetricsMux(srv)
		go func() { log.Err(http.ListenAndServe(*metricsAddr, mux)).Msg(name + ": metrics server stopped") }()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx, *drain); err != nil {
		log.Fatal().Err(err).Msg(name + ": server failed")
	}
	log.Info().Msg(name + ": stopped")
}

// SplitList splits a comma-separated flag value into its items, spaces
// trimmed and empty ones dropped: nil for "", so an empty -ws-origin allows
// any Origin.
func SplitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Logger returns a zerolog logger at the named level: human-readable on a
// terminal, JSON lines otherwise.
func Logger(level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	var l zerolog.Logger
	if isatty.IsTerminal(os.Stderr.Fd()) {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(lvl).With().Timestamp().Logger()
}
