package sessionmgr

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// Conn is the part of gnet.Conn a Session uses. Write, Writev and
// OutboundBuffered are only called on the connection's event loop.
type Conn interface {
	Write(b []byte) (int, error)
	Writev(bs [][]byte) (int, error)
	OutboundBuffered() int
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

	closed   atomic.Bool  // set once, on the loop, when gnet reports the close
	closing  atomic.Bool  // Close or CloseWith was called: no more frames reach the handler
	writable atomic.Bool  // below the high watermark (see Limits)
	queued   atomic.Int64 // pending bytes as of the loop's last look
	heldCost atomic.Int64 // backlogCost as of the loop's last look
	cut      atomic.Bool  // chosen by the server-wide MaxHeld bound; closing
	dropped  atomic.Uint64

	ctx    atomic.Value                // user value
	reason atomic.Pointer[closeReason] // first CloseWith reason

	sentFrames atomic.Uint64
	sentBytes  atomic.Uint64

	// Owned by the loop goroutine.
	pending      []entry        // drained, not yet written (the Loop holds the references)
	pendingBytes int            // of pending[pendingDone:]
	pendingDone  int            // pending[:pendingDone] are written (during a flush)
	backlog      []entry        // held while unwritable; one reference each, owned here
	backlogAt    []int64        // when each backlog entry was held, on the loop's clock (held.go)
	backlogBytes int            // of backlog[backlogDone:]
	backlogCost  int            // memory the backlog costs (see cost), counted against MaxPending
	backlogDone  int            // backlog[:backlogDone] are written (during a flush)
	backlogBase  int            // position of backlog[0] in the session's held stream
	keys         map[uint64]int // conflation key -> held-stream position of its frame, if still held
	refused      int            // frames refused past MaxPending while a Disconnect is under way
	refusedBytes int
	cutHeld      int64 // heldCost when the MaxHeld bound cut the session
	outbound     int   // gnet's outbound bytes at the loop's last look
	inDirty      bool
	owing        bool // listed in the Loop's owing list
	slow         bool // has passed MaxPending at least once

	slots []slot // where s stands in its groups' lists (members.go)

	// Membership, guarded by gmu (members.go). gmu is a plain sync.Mutex:
	// the lock-order checker keeps a record for every pair of lock
	// instances it sees nested, so one checked mutex per session made its
	// memory grow with every connection (tests.TestChurn under -tags
	// deadlock). gmu is the outermost membership lock; see members.go.
	gmu     sync.Mutex
	groups  []*Group // the named groups s is a member of
	tracked bool     // added to the Manager and not removed
	removed bool     // Remove or Closed ran: never tracked again

	held heldStats // published by the loop (held.go)

	// Set by the server before Add, then fixed; last, so that they move no
	// field of the TCP path.
	ws   *wsWire                  // nil: raw TCP; set by SetWebSocket
	peer atomic.Pointer[peerAddr] // SetRemoteAddr's address, if set
}

// ID returns the session's id, unique within its Manager.
func (s *Session) ID() uint64 { return s.id }

// Manager returns the Manager that made the session, to broadcast from a
// handler.
func (s *Session) Manager() *Manager { return s.mgr }

// RemoteAddr returns the peer's address: the connection's, captured when
// the session was made, or the one SetRemoteAddr set.
func (s *Session) RemoteAddr() net.Addr {
	if p := s.peer.Load(); p != nil {
		return p.a
	}
	return s.remote
}

// SetRemoteAddr replaces the address RemoteAddr reports: the client's, as
// a trusted proxy's PROXY protocol header gives it. For the server, before
// Add. Any goroutine.
func (s *Session) SetRemoteAddr(a net.Addr) { s.peer.Store(&peerAddr{a}) }

type peerAddr struct{ a net.Addr }

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

// Pending reports the bytes pending for this session as of its loop's last
// look: frames herald holds for it plus gnet's outbound buffer, which the
// peer has not read yet. Limits bound it.
func (s *Session) Pending() int { return int(s.queued.Load()) }

// Writable reports whether the session is below its high watermark. While
// it is not, herald holds its frames (and conflates keyed ones); content
// code may stop producing for it (see Config.OnWritable).
func (s *Session) Writable() bool { return s.writable.Load() }

// Dropped reports how many frames the Drop policy dropped for this session.
func (s *Session) Dropped() uint64 { return s.dropped.Load() }

// Send queues b for this session and takes over one reference to it: the
// caller must not Release the reference it passed (Retain first to keep one).
// Send never blocks and never copies b. If the session is closed, Send
// releases the reference and returns ErrSessionClosed.
//
// Frames sent from one goroutine go out in the order of the Send (and
// Broadcast) calls.
func (s *Session) Send(b *sendbuffer.Buffer) error {
	b.Handoff(1)
	if s.closed.Load() {
		b.Drop()
		return ErrSessionClosed
	}
	s.loop.push(item{b: b, s: s})
	return nil
}

// Reply writes p to the session before it returns, after every frame sent
// to the session before it. It does not keep p, so p may be the frame just
// received (an echo server's reply): no SendBuffer and no copy. If the
// session is unwritable or has frames held, p is copied into a SendBuffer
// and held behind them, as Send would.
//
// Reply is for the session's own handler callbacks only (OnConnected,
// OnRecv), on its event loop, like gnet's Conn.Write; elsewhere use Send.
// Outside them it returns ErrNotInCallback; once the session has closed,
// ErrSessionClosed.
func (s *Session) Reply(p []byte) error { return s.loop.reply(s, p) }

// EnterCallback and LeaveCallback bracket a handler callback for s on its
// event loop: what the callback sends is queued, and LeaveCallback writes
// s's frames at once, so a reply needs no round through the loop's task
// queue. For the server; both must be called on s's loop.
func (s *Session) EnterCallback() { s.loop.enter(s) }

// LeaveCallback ends a callback begun by EnterCallback. See EnterCallback.
func (s *Session) LeaveCallback() { s.loop.leave(s) }

// Close asks gnet to close the connection. From then on no frame of the
// session reaches the handler; the session's queue is released when gnet
// reports the close (OnClose), on the event loop.
func (s *Session) Close() error {
	s.closing.Store(true)
	return s.conn.Close()
}

// CloseWith records reason as the reason the session closes (the first
// reason recorded wins) and closes it.
func (s *Session) CloseWith(reason error) error {
	s.SetCloseReason(reason)
	return s.Close()
}

// Closing reports whether the session is closed or a close has been asked
// for (Close, CloseWith, a slow-consumer cut). The server delivers no frame
// of a closing session to the handler.
func (s *Session) Closing() bool { return s.closing.Load() || s.closed.Load() }

// Conn returns the session's connection, for the server (a gnet.Conn when
// the server made the session).
func (s *Session) Conn() Conn { return s.conn }

// HeldCost reports the memory the frames herald holds for this session
// cost, as of its loop's last look: their buffers' size classes plus
// per-frame bookkeeping (see Limits.MaxPending). Any goroutine.
func (s *Session) HeldCost() int { return int(s.heldCost.Load()) }

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
	s.loop.stats.sent(frames, bytes)
	if s.mgr.cfg.OnSend != nil {
		s.mgr.cfg.OnSend(s, bytes)
	}
}

// closeQueue marks the session closed: later Sends are refused and the loop
// skips it. It releases the frames held for it and returns the frames and
// bytes taken for it and never written. On the loop (or once the engine
// has stopped). Idempotent.
func (s *Session) closeQueue() (frames, bytes int) {
	if s.closed.Swap(true) {
		return 0, 0
	}
	s.closing.Store(true)
	frames, bytes = s.releaseBacklog()
	frames += len(s.pending) - s.pendingDone + s.refused
	bytes += s.pendingBytes + s.refusedBytes
	s.mgr.counts.unsent.Add(uint64(frames))
	return frames, bytes
}
