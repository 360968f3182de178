package sessionmgr

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// Batch limits. Linux rejects writev with more than IOV_MAX (1024) vectors
// with EINVAL, and gnet does not split them, so a batch never holds more.
// The byte cap bounds how much one flush copies into gnet's outbound buffer
// when the socket is full.
const (
	MaxBatchSlices = 1024
	MaxBatchBytes  = 256 << 10
	// syncRounds bounds how many batches one write callback drains
	// synchronously before it hands the rest to a fresh AsyncWritev, which
	// queues behind the other sessions' tasks on the loop.
	syncRounds = 16
)

// Conn is the part of gnet.Conn a Session writes to. Writev and the
// callback of AsyncWritev run on the connection's event loop.
type Conn interface {
	AsyncWritev(bs [][]byte, callback gnet.AsyncCallback) error
	Writev(bs [][]byte) (int, error)
	Close() error
	RemoteAddr() net.Addr
}

var _ Conn = gnet.Conn(nil)

// Session is one connection's sending side: a FIFO queue of shared buffers
// and at most one write in flight.
//
// Send, Close, ID, RemoteAddr, Context and SetContext are safe from any
// goroutine.
type Session struct {
	// Fixed after construction.
	id     uint64
	conn   Conn
	remote net.Addr
	mgr    *Manager
	// writtenFn is s.written as a func value, made once: a method value
	// built at each AsyncWritev call would allocate.
	writtenFn gnet.AsyncCallback

	// sending is the seed's "send registered" flag: true while one writer
	// (an AsyncWritev and its callback) owns the flush. Any goroutine.
	sending atomic.Bool
	ctx     atomic.Value                // user value: any goroutine
	reason  atomic.Pointer[closeReason] // first CloseWith reason

	sentFrames atomic.Uint64
	sentBytes  atomic.Uint64

	// Guarded by mu.
	mu       sync.Mutex
	queue    []*sendbuffer.Buffer // queue[head:] waits to be sent
	head     int
	queued   int    // bytes in queue[head:]
	closed   bool   // no more sends; queue released
	inflight *batch // handed to AsyncWritev; released by its callback or by close
	groups   []*Group

	// Owned by whoever holds sending.
	async batch // the batch given to AsyncWritev
	sync  batch // reused for the synchronous drains in the callback
}

// batch is one writev worth of buffers. Each batch owns its iov: gnet
// rewrites the caller's [][]byte in place on a partial write.
type batch struct {
	bufs  []*sendbuffer.Buffer
	iov   [][]byte
	bytes int
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
// socket (written or copied into gnet's outbound buffer).
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
	if s.sending.CompareAndSwap(false, true) {
		s.flush()
	}
	return nil
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

// flush starts one AsyncWritev with what is queued. The caller holds sending.
func (s *Session) flush() {
	for {
		s.mu.Lock()
		if s.fill(&s.async) == 0 {
			s.mu.Unlock()
			if s.unregister() {
				continue
			}
			return
		}
		s.inflight = &s.async
		iov := s.async.iov
		s.mu.Unlock()
		if err := s.conn.AsyncWritev(iov, s.writtenFn); err != nil {
			// The loop did not take the task (engine stopped): nothing
			// will call back, so the batch is ours to release.
			if b := s.takeInflight(); b != nil {
				release(b)
			}
			s.sending.Store(false)
		}
		return
	}
}

// written is the AsyncWritev callback, run on the session's event loop once
// gnet has written the batch or copied what the socket did not take into its
// own outbound buffer: the batch's references may be dropped now. It then
// drains what queued meanwhile with synchronous writes, without a new task.
func (s *Session) written(_ gnet.Conn, err error) error {
	if b := s.takeInflight(); b != nil {
		if err != nil {
			release(b)
		} else {
			s.done(b)
		}
	}
	if err != nil {
		// gnet has closed the connection (OnClose released the queue).
		s.sending.Store(false)
		return nil
	}
	for round := 0; ; round++ {
		s.mu.Lock()
		n := s.fill(&s.sync)
		s.mu.Unlock()
		if n == 0 {
			if s.unregister() {
				continue
			}
			return nil
		}
		if round == syncRounds {
			// Budget spent: put the batch back in front and let a fresh
			// task carry on behind the loop's other work.
			s.unfill(&s.sync)
			s.flush()
			return nil
		}
		if _, err := s.conn.Writev(s.sync.iov); err != nil {
			// gnet has closed the connection (OnClose released the
			// queue): the batch never reached the socket, so it is
			// released without counting it as sent.
			release(&s.sync)
			s.sending.Store(false)
			return nil
		}
		s.done(&s.sync)
	}
}

// unregister clears sending and reports whether the caller took it back
// because a Send queued a buffer between the last fill and the clear: that
// Send saw the flag set and left the flush to us, so we must not drop it.
func (s *Session) unregister() bool {
	s.sending.Store(false)
	s.mu.Lock()
	more := s.queued > 0 || len(s.queue) > s.head
	s.mu.Unlock()
	return more && s.sending.CompareAndSwap(false, true)
}

// fill moves up to MaxBatchSlices buffers and about MaxBatchBytes from the
// queue into b and returns how many it moved (always at least one buffer
// when the queue is not empty). Caller holds mu and sending.
func (s *Session) fill(b *batch) int {
	if s.closed {
		return 0
	}
	b.bufs, b.iov, b.bytes = b.bufs[:0], b.iov[:0], 0
	for s.head < len(s.queue) && len(b.bufs) < MaxBatchSlices {
		buf := s.queue[s.head]
		if len(b.bufs) > 0 && b.bytes+buf.Len() > MaxBatchBytes {
			break
		}
		s.queue[s.head] = nil
		s.head++
		b.bufs = append(b.bufs, buf)
		b.iov = append(b.iov, buf.Bytes())
		b.bytes += buf.Len()
	}
	s.queued -= b.bytes
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	return len(b.bufs)
}

// unfill puts a filled batch back at the front of the queue.
func (s *Session) unfill(b *batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, buf := range b.bufs {
			buf.Release()
		}
		return
	}
	rest := s.queue[s.head:]
	q := make([]*sendbuffer.Buffer, 0, len(b.bufs)+len(rest))
	s.queue = append(append(q, b.bufs...), rest...)
	s.head = 0
	s.queued += b.bytes
	b.bufs, b.iov, b.bytes = b.bufs[:0], b.iov[:0], 0
}

// done releases a written batch and reports it.
func (s *Session) done(b *batch) {
	s.sentFrames.Add(uint64(len(b.bufs)))
	s.sentBytes.Add(uint64(b.bytes))
	n := b.bytes
	release(b)
	if s.mgr != nil && s.mgr.cfg.OnSend != nil {
		s.mgr.cfg.OnSend(s, n)
	}
}

// release drops the batch's references and clears it for reuse.
func release(b *batch) {
	for i, buf := range b.bufs {
		buf.Release()
		b.bufs[i] = nil
		b.iov[i] = nil
	}
	b.bufs, b.iov, b.bytes = b.bufs[:0], b.iov[:0], 0
}

// takeInflight hands the batch given to AsyncWritev to the caller, unless
// close already took it: whoever takes it under mu releases it, exactly once.
func (s *Session) takeInflight() *batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.inflight
	s.inflight = nil
	return b
}

// closeQueue marks the session closed and releases everything it still
// holds: the queue and a batch whose AsyncWritev callback has not run. gnet
// runs a pending AsyncWritev task for a closed connection without reading
// its bytes, and drops queued tasks at engine stop, so releasing the
// in-flight batch here is both safe and necessary. It returns the number of
// queued frames and bytes that were never sent. Idempotent.
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
	in := s.inflight
	s.inflight = nil
	s.mu.Unlock()
	for _, b := range rest {
		b.Release()
	}
	if in != nil {
		release(in)
	}
	return frames, bytes
}
