package sessionmgr

import (
	"net"
	"sync/atomic"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// Conn is the part of gnet.Conn a Session uses. Writev is only called on the
// connection's event loop.
type Conn interface {
	Writev(bs [][]byte) (int, error)
	Close() error
	RemoteAddr() net.Addr
}

var _ Conn = gnet.Conn(nil)

// Session is one connection's sending side. Its frames pass through its
// event loop's Loop, which alone writes them.
//
// Send, Close, CloseWith, ID, RemoteAddr, Manager, Context, SetContext,
// Stats and Queued are safe from any goroutine.
type Session struct {
	// Fixed after construction.
	id     uint64
	conn   Conn
	remote net.Addr
	mgr    *Manager
	loop   *Loop

	closed atomic.Bool // set once, on the loop, when gnet reports the close
	queued atomic.Int64

	ctx    atomic.Value                // user value
	reason atomic.Pointer[closeReason] // first CloseWith reason

	sentFrames atomic.Uint64
	sentBytes  atomic.Uint64

	// Owned by the loop goroutine.
	pending      []*sendbuffer.Buffer // drained, not yet written (the Loop holds the references)
	pendingBytes int                  // of pending[pendingDone:]
	pendingDone  int                  // pending[:pendingDone] are written (during a flush)
	inDirty      bool

	groups []*Group // guarded by the Manager's mu
}

// ID returns the session's id, unique within its Manager.
func (s *Session) ID() uint64 { return s.id }

// Manager returns the Manager that made the session, to broadcast from a
// handler.
func (s *Session) Manager() *Manager { return s.mgr }

// RemoteAddr returns the peer's address, captured when the session was made.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// Context returns the value stored by SetContext, or nil.
func (s *Session) Context() any {
	v, _ := s.ctx.Load().(ctxBox)
	return v.v
}

// SetContext stores a user value (player state, for instance) on the session.
func (s *Session) SetContext(v any) { s.ctx.Store(ctxBox{v}) }

type ctxBox struct{ v any }

// Stats reports how many frames and bytes this session has handed to the
// socket (written, or copied into gnet's outbound buffer).
func (s *Session) Stats() (frames, bytes uint64) {
	return s.sentFrames.Load(), s.sentBytes.Load()
}

// Queued reports the bytes the loop has taken for this session and not yet
// handed to gnet.
func (s *Session) Queued() int { return int(s.queued.Load()) }

// Send queues b for this session and takes over one reference to it: the
// caller must not Release the reference it passed (Retain first to keep one).
// Send never blocks and never copies b. If the session is closed, Send
// releases the reference and returns ErrSessionClosed.
//
// Frames sent from one goroutine go out in the order of the Send (and
// Broadcast) calls.
func (s *Session) Send(b *sendbuffer.Buffer) error {
	if s.closed.Load() {
		b.Release()
		return ErrSessionClosed
	}
	s.loop.push(item{b: b, s: s})
	return nil
}

// EnterCallback and LeaveCallback bracket a handler callback for s on its
// event loop: what the callback sends is queued, and LeaveCallback writes
// s's frames at once, so a reply needs no round through the loop's task
// queue. For the server; both must be called on s's loop.
func (s *Session) EnterCallback() { s.loop.enter() }

// LeaveCallback ends a callback begun by EnterCallback. See EnterCallback.
func (s *Session) LeaveCallback() { s.loop.leave(s) }

// Close asks gnet to close the connection. The session's queue is released
// when gnet reports the close (OnClose), on the event loop.
func (s *Session) Close() error { return s.conn.Close() }

// CloseWith records reason as the reason the session closes (the first
// reason recorded wins) and closes it.
func (s *Session) CloseWith(reason error) error {
	s.SetCloseReason(reason)
	return s.conn.Close()
}

// SetCloseReason records reason for a close that is already under way (the
// first reason recorded wins).
func (s *Session) SetCloseReason(reason error) {
	if reason != nil {
		s.reason.CompareAndSwap(nil, &closeReason{reason})
	}
}

// CloseReason returns the reason recorded by CloseWith or SetCloseReason,
// or nil.
func (s *Session) CloseReason() error {
	if r := s.reason.Load(); r != nil {
		return r.err
	}
	return nil
}

type closeReason struct{ err error }

// sent counts a written batch and reports it to OnSend. On the loop.
func (s *Session) sent(frames, bytes int) {
	s.sentFrames.Add(uint64(frames))
	s.sentBytes.Add(uint64(bytes))
	if s.mgr.cfg.OnSend != nil {
		s.mgr.cfg.OnSend(s, bytes)
	}
}

// closeQueue marks the session closed: later Sends are refused and the loop
// skips it. It returns the frames and bytes the loop had taken for it and
// not yet written. On the loop (or once the engine has stopped).
// Idempotent.
func (s *Session) closeQueue() (frames, bytes int) {
	if s.closed.Swap(true) {
		return 0, 0
	}
	return len(s.pending) - s.pendingDone, s.pendingBytes
}
