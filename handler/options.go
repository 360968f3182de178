package handler

import (
	"github.com/herald-mmo/herald/codec"
	"github.com/rs/zerolog"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	addr      string
	codec     codec.Codec
	multicore bool
	loops     int
	log       zerolog.Logger
}

func defaultOptions() options {
	return options{
		addr:  "127.0.0.1:7001",
		codec: codec.Packet(0),
		log:   zerolog.Nop(),
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
