package sessionmgr

import (
	"net"
	"sync"
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

// Session is one connection's sending side: a FIFO queue of shared buffers,
// written by its event loop's Loop.
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

	// registered is the seed's "send registered" flag: true from the Send
	// that put the session on its Loop's list until the flush takes it off.
	registered atomic.Bool
	// inCallback is true while the server runs a handler callback for this
	// session on its loop; the server flushes the session when it returns,
	// so a Send meanwhile needs no flush task.
	inCallback atomic.Bool

	ctx    atomic.Value                // user value
	reason atomic.Pointer[closeReason] // first CloseWith reason

	sentFrames atomic.Uint64
	sentBytes  atomic.Uint64

	// Guarded by mu.
	mu     sync.Mutex
	queue  []*sendbuffer.Buffer // queue[head:] waits to be written
	head   int
	queued int  // bytes in queue[head:]
	closed bool // no more sends; queue released
	groups []*Group
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

// Queued reports the bytes waiting in the session's own queue (not yet handed
// to gnet).
func (s *Session) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Send queues b for this session and takes over one reference to it: the
// caller must not Release the reference it passed (Retain first to keep one).
// Send never blocks and never copies b. If the session is closed, Send
// releases the reference and returns ErrSessionClosed.
//
// Frames sent from one goroutine go out in the order of the Send calls.
func (s *Session) Send(b *sendbuffer.Buffer) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		b.Release()
		return ErrSessionClosed
	}
	s.queue = append(s.queue, b)
	s.queued += b.Len()
	s.mu.Unlock()
	// The queue push above comes before these loads; the flushers clear
	// the flags before they look at the queue. So either we see a flag
	// clear and register, or the flusher sees our buffer: no lost wake-up.
	if s.inCallback.Load() {
		return nil
	}
	if s.registered.CompareAndSwap(false, true) {
		s.loop.register(s)
	}
	return nil
}

// EnterCallback and LeaveCallback bracket a handler callback for s on its
// event loop: Sends meanwhile only queue, and LeaveCallback writes them
// at once, so a reply goes out without a round through the loop's task
// queue. For the server; must be called on s's loop.
func (s *Session) EnterCallback() { s.inCallback.Store(true) }

// LeaveCallback ends a callback begun by EnterCallback and writes what
// queued. See EnterCallback.
func (s *Session) LeaveCallback() {
	s.inCallback.Store(false)
	s.loop.Flush(s)
}

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

// fill moves up to MaxBatchSlices buffers and about MaxBatchBytes from the
// queue into l.bufs and reports whether it moved any (always at least one
// when the queue is not empty). Caller holds mu, on the session's loop.
func (s *Session) fill(l *Loop) bool {
	if s.closed || s.head == len(s.queue) {
		return false
	}
	bytes := 0
	for s.head < len(s.queue) && len(l.bufs) < MaxBatchSlices {
		b := s.queue[s.head]
		if len(l.bufs) > 0 && bytes+b.Len() > MaxBatchBytes {
			break
		}
		s.queue[s.head] = nil
		s.head++
		l.bufs = append(l.bufs, b)
		bytes += b.Len()
	}
	s.queued -= bytes
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	return true
}

// sent counts a written batch and reports it to OnSend. On the loop.
func (s *Session) sent(frames, bytes int) {
	s.sentFrames.Add(uint64(frames))
	s.sentBytes.Add(uint64(bytes))
	if s.mgr.cfg.OnSend != nil {
		s.mgr.cfg.OnSend(s, bytes)
	}
}

// closeQueue marks the session closed and releases everything it still
// queues. It returns the frames and bytes that were never sent. Idempotent.
func (s *Session) closeQueue() (frames, bytes int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, 0
	}
	s.closed = true
	rest := s.queue[s.head:]
	frames, bytes = len(rest), s.queued
	s.queue, s.head, s.queued = nil, 0, 0
	s.mu.Unlock()
	for _, b := range rest {
		b.Release()
	}
	return frames, bytes
}
