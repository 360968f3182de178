// Package router dispatches decoded frames to functions by packet id, the
// way a game server maps opcodes to handlers.
//
//	r := router.New(log)
//	r.Handle(MsgMove, onMove)
//	r.Handle(MsgChat, onChat)
//	// in the Handler: func (g *game) OnRecv(s *sessionmgr.Session, f codec.Frame) { g.r.Dispatch(s, f) }
package router

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

// ErrUnknownID is the close reason for a frame whose id has no handler when
// the router's fallback is CloseUnknown.
var ErrUnknownID = errors.New("herald/router: unknown packet id")

// HandlerFunc handles one frame; the frame is valid only during the call.
type HandlerFunc func(s *sessionmgr.Session, f codec.Frame)

// Router maps packet ids to HandlerFuncs. Register every id with Handle
// before the server starts; Dispatch is then safe from any goroutine.
type Router struct {
	log      zerolog.Logger
	handlers map[uint16]HandlerFunc
	unknown  HandlerFunc
	misses   atomic.Uint64
}

// New returns a Router whose fallback is CloseUnknown. log receives one
// line per unknown id seen.
func New(log zerolog.Logger) *Router {
	r := &Router{log: log, handlers: map[uint16]HandlerFunc{}}
	r.unknown = r.CloseUnknown
	return r
}

// Handle registers fn for id, replacing any earlier one.
func (r *Router) Handle(id uint16, fn HandlerFunc) { r.handlers[id] = fn }

// Fallback sets what happens to a frame with no handler: CloseUnknown (the
// default), IgnoreUnknown, or a function of your own.
func (r *Router) Fallback(fn HandlerFunc) { r.unknown = fn }

// Dispatch calls the handler registered for f.ID, or the fallback.
func (r *Router) Dispatch(s *sessionmgr.Session, f codec.Frame) {
	if fn, ok := r.handlers[f.ID]; ok {
		fn(s, f)
		return
	}
	r.misses.Add(1)
	r.unknown(s, f)
}

// Unknown reports how many frames had no handler.
func (r *Router) Unknown() uint64 { return r.misses.Load() }

// CloseUnknown logs the unknown id and closes the session with ErrUnknownID.
func (r *Router) CloseUnknown(s *sessionmgr.Session, f codec.Frame) {
	r.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Uint16("id", f.ID).
		Msg("herald/router: unknown packet id; closing session")
	_ = s.CloseWith(fmt.Errorf("%w %d", ErrUnknownID, f.ID))
}

// IgnoreUnknown logs the unknown id at debug level and drops the frame.
func (r *Router) IgnoreUnknown(s *sessionmgr.Session, f codec.Frame) {
	r.log.Debug().Uint64("session", s.ID()).Uint16("id", f.ID).Msg("herald/router: unknown packet id; ignored")
}
