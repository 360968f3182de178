// Package embedded lets package handlertest drive a handler.Server by hand:
// no gnet engine, no listener, no ticker goroutine, and a clock the caller
// moves. Package handler fills in Drive when it is initialised; the Go
// internal rule keeps everything outside handler/ from using it.
package embedded

import (
	"time"

	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/panjf2000/gnet/v2"
)

// Driver runs a handler.Server that gnet does not. The caller plays gnet:
// it calls the Server's OnOpen, OnTraffic and OnClose with connections and
// event loops of its own, all on one goroutine.
type Driver interface {
	// Boot marks the server started, as if gnet had booted it, with its
	// coarse clock at now (unix nanoseconds). Start then returns an error
	// and never runs gnet.
	Boot(now int64)
	// Tick runs one tick of the server's ticker at now: the clock moves,
	// owing sessions are re-checked, timeouts fire.
	Tick(now int64)
	// Stopped tells the server that every connection has closed: it
	// releases what its Loops still hold, and Wait returns.
	Stopped()
	// TickEvery is the server's tick (WithTick).
	TickEvery() time.Duration
	// Session returns the session the server made for c in OnOpen, or
	// nil if it refused c.
	Session(c gnet.Conn) *sessionmgr.Session
	// Loops is how many event loops the server asked for (WithLoops), at
	// least 1.
	Loops() int
}

// Drive returns the Driver of srv, which must be a *handler.Server that
// has not been started. Set by package handler.
var Drive func(srv any) Driver
