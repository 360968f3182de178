// Package handler connects content code to the network: the Handler
// interface a game or chat server implements, and the Server that runs a
// gnet engine and turns its events into Handler calls.
//
// One frame's way through herald: gnet calls OnTraffic on the connection's
// event loop; the Server decodes every complete frame from the bytes gnet has
// buffered (codec.Codec.Decode, no copy) and calls Handler.OnRecv for each;
// content code encodes a reply or an event once into a sendbuffer.Buffer and
// hands it to Session.Send or a Manager/Group broadcast (package sessionmgr),
// which queue it on the recipients' event loops; each loop writes its
// sessions with one writev apiece. Session.Reply writes bytes the callback
// already has (the received frame, for an echo) at once, without a buffer.
//
// A malformed frame closes only its own session, with a logged reason. A
// panic in a Handler method, or in a custom codec's Decode, is recovered,
// logged with its stack, and closes only the session it happened on.
package handler

import (
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
)

// Handler is implemented by content code. All methods for one session run on
// that session's event loop, one at a time; methods for sessions on other
// loops run concurrently. Embed Base to implement only what you need.
//
// Methods must not block: the event loop serves many sessions.
type Handler interface {
	// OnConnected is called when a session opens, once it is in the
	// Manager: it may join groups, and a broadcast made here reaches it too.
	OnConnected(s *sessionmgr.Session)

	// OnDisconnected is called once when the session has closed and left
	// the Manager. reason says why: the peer's EOF or reset (wrapped by
	// gnet), a codec error (errors.Is with codec.ErrFrameTooLarge ...),
	// ErrHandlerPanic, or ErrClosedByServer.
	OnDisconnected(s *sessionmgr.Session, reason error)

	// OnRecv is called for each decoded frame. The frame's slices are valid
	// only until OnRecv returns: send f.Wire back with s.Reply, forward it
	// by copying it into a sendbuffer.Buffer, and copy anything you keep.
	OnRecv(s *sessionmgr.Session, f codec.Frame)

	// OnSend is called after a batch of n bytes for s has been handed to the
	// socket (written, or copied into gnet's outbound buffer). It runs
	// inside herald's write: Send and the broadcasts are safe here (the
	// frame goes out after the write under way), Reply returns
	// sessionmgr.ErrInWrite. The same holds for OnWritabilityChanged.
	OnSend(s *sessionmgr.Session, n int)
}

// WritabilityHandler is implemented by a Handler that wants to know when a
// session crosses its watermarks (see sessionmgr.Limits): writable false at
// the high watermark, when content code should stop producing for it (herald
// holds and conflates its frames meanwhile), true again at the low one.
// Called on the session's event loop.
type WritabilityHandler interface {
	OnWritabilityChanged(s *sessionmgr.Session, writable bool)
}

// Base implements every Handler method as a no-op; embed it.
type Base struct{}

// OnConnected does nothing.
func (Base) OnConnected(*sessionmgr.Session) {}

// OnDisconnected does nothing.
func (Base) OnDisconnected(*sessionmgr.Session, error) {}

// OnRecv does nothing.
func (Base) OnRecv(*sessionmgr.Session, codec.Frame) {}

// OnSend does nothing.
func (Base) OnSend(*sessionmgr.Session, int) {}

var _ Handler = Base{}
