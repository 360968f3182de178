package sessionmgr

import (
	"context"
	"sync/atomic"

	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// Batch limits. Linux rejects writev with more than IOV_MAX (1024) vectors
// with EINVAL, and gnet does not split them, so a batch never holds more.
// The byte cap bounds how much one writev can leave for gnet to copy into
// its outbound buffer when the socket is full.
const (
	MaxBatchSlices = 1024
	MaxBatchBytes  = 256 << 10
)

// Coalescing: frames up to coalesceMax bytes are copied into the loop's
// scratch so that a run of small frames is one iovec. On loopback TCP,
// copying 32 frames and writing one iovec cost 0.75x of writing 32 iovecs at
// 68 bytes a frame, 0.83x at 512, 0.89x at 2048 and 1.01x at 4096
// (BenchmarkCoalesceCutoff, medians of 8 interleaved runs; BENCHMARKS.md), so
// the cut-off is 2 KiB. Larger frames are written from the shared buffer.
const (
	coalesceMax = 2048
	scratchSize = 64 << 10
	// flushAt is how many frames a session may have pending before the loop
	// writes it without waiting for the end of its turn: it bounds the
	// per-recipient lists a busy turn builds (16 bytes a frame a recipient)
	// while keeping each writev large. Measured in BENCHMARKS.md.
	flushAt = 256
)

// Executor runs a Runnable on an event loop; gnet.EventLoop is one.
type Executor interface {
	Execute(ctx context.Context, r gnet.Runnable) error
}

// Loop is herald's side of one gnet event loop. Every frame for a session on
// this loop passes through the Loop's queue, in the order it was sent; only
// the loop's goroutine writes to its sessions, so there is at most one write
// in flight per session and the per-recipient work of a broadcast (queueing,
// writing, releasing) is done by the loop that owns the recipient, without
// locks or atomics.
//
// A broadcast costs one queue push per loop that has recipients, whatever
// their number, and holds one buffer reference per loop. A push arms one
// Execute task for the loop, unless one is armed already or the loop is
// inside a handler callback (it drains the queue when the callback returns).
type Loop struct {
	exec Executor // fixed

	armed    atomic.Bool  // a flush task is queued on the loop
	busy     atomic.Bool  // a handler callback runs on the loop; it drains after
	nowing   atomic.Int32 // len(owing)
	inflight atomic.Int32 // items pushed and not yet written or held: len(queue) + len(held)

	// cur is the session whose callback runs, for Reply; written and read on
	// the loop only (a Reply from elsewhere is a race the detector reports).
	cur *Session

	mu      lockorder.Mutex // guards queue and stopped
	queue   []item
	nqueued atomic.Int32 // len(queue), stored under mu: lets drain skip mu when 0
	stopped bool         // Discard ran: pushes release their buffer at once

	// Owned by the event loop goroutine.
	writing bool // inside drain or flush: hooks run there, Reply must not re-enter
	spare   []item
	dirty   []*Session           // sessions with pending frames, or flushed since the last Run
	waiting int                  // sessions in dirty whose pending is not empty
	owing   []*Session           // sessions with bytes still pending after a flush, re-checked by Poll
	held    []*sendbuffer.Buffer // one reference per drained item, released once every dirty session is written
	scratch []byte
	iov     [][]byte

	stats loopStats // written by the loop goroutine, read by any (stats.go)
}

// Poll arms a task that re-checks the sessions that still had bytes pending
// after their last flush: gnet drains its outbound buffer without telling
// anyone, so an unwritable session that went quiet would otherwise wait for
// its next frame to become writable again, and Pending would stay stale.
// The server calls it from a ticker. Any goroutine.
func (l *Loop) Poll() {
	if l.nowing.Load() > 0 {
		_ = l.exec.Execute(context.Background(), poll{l})
	}
}

type poll struct{ l *Loop }

// Run re-checks the owing sessions and keeps those that still owe. On the
// loop.
func (p poll) Run(context.Context) error {
	l := p.l
	list := l.owing
	l.owing = nil
	l.nowing.Store(0)
	l.writing = true
	for _, s := range list {
		s.owing = false
		l.flush(s) // lists s again if it still owes
	}
	l.writing = false
	return nil
}

// item is one pushed frame, for one session (s) or for a group's members
// on this loop (gl), holding one reference; or a membership change of s in
// gl (op, see members.go), holding none.
type item struct {
	b  *sendbuffer.Buffer
	s  *Session
	gl *groupLoop
	op uint8
}

// NewLoop returns the Loop for the event loop exec runs tasks on.
func NewLoop(exec Executor) *Loop {
	return &Loop{exec: exec, scratch: make([]byte, scratchSize)}
}

// push queues it and makes sure the loop will drain it. Any goroutine; it
// takes over the item's reference.
func (l *Loop) push(it item) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		it.drop()
		return
	}
	l.queue = append(l.queue, it)
	n := len(l.queue)
	l.nqueued.Store(int32(n))
	if it.op == opFrame {
		l.inflight.Add(1) // a membership item is never held (members.go)
	}
	l.mu.Unlock()
	if it.op != opFrame && n < memberBatch {
		return // a membership change waits for the next drain (members.go)
	}
	// The push above (nqueued) comes before these loads, and the loop clears
	// busy and armed before it reads nqueued: either we see a flag clear and
	// arm, or the loop sees our item. No wake-up is lost.
	if !l.busy.Load() {
		l.arm()
	}
}

// arm queues the flush task unless it is queued already.
func (l *Loop) arm() {
	if l.armed.CompareAndSwap(false, true) {
		if err := l.exec.Execute(context.Background(), l); err != nil {
			// The engine is stopping; Discard releases what is queued.
			l.armed.Store(false)
		}
	}
}

// Run is the flush task: it drains the queue, writes every session with
// pending frames, and releases the drained buffers. gnet runs it on the
// event loop; it is exported to satisfy gnet.Runnable.
func (l *Loop) Run(context.Context) error {
	l.armed.Store(false)
	l.writing = true
	l.drain()
	for i, s := range l.dirty {
		l.flush(s)
		s.inDirty = false
		l.dirty[i] = nil
	}
	l.dirty = l.dirty[:0]
	l.releaseHeld()
	l.writing = false
	return nil
}

// Unsettled reports how many frames were pushed to the loop and are not yet
// written to their sessions or held for them: they are in the queue, or
// drained and waiting for the end of a busy turn. Session.Pending does not
// see them; Stop's drain waits for both. Any goroutine.
func (l *Loop) Unsettled() int { return int(l.inflight.Load()) }

// enter and leave bracket a handler callback for s on the loop (see
// Session.EnterCallback). leave drains what the callback sent, writes s at
// once, and leaves the other sessions to the flush task.
func (l *Loop) enter(s *Session) {
	l.cur = s
	l.busy.Store(true)
	if s.mgr.bp != nil {
		s.mgr.enterCallback()
	}
}

func (l *Loop) leave(s *Session) {
	l.cur = nil
	l.busy.Store(false)
	if s.mgr.bp != nil {
		s.mgr.leaveCallback() // what the callback published leaves now
	}
	l.writing = true
	defer func() { l.writing = false }()
	l.drain()
	if !s.idle() {
		l.flush(s)
	}
	if l.waiting > 0 {
		l.arm()
		return
	}
	// Nobody else waits: the drained buffers are written everywhere.
	for i, d := range l.dirty {
		d.inDirty = false
		l.dirty[i] = nil
	}
	l.dirty = l.dirty[:0]
	l.releaseHeld()
}

// drain moves the queue into the recipients' pending lists. On the loop.
func (l *Loop) drain() {
	if l.nqueued.Load() == 0 { // an echo's reply: nothing queued, no lock
		return
	}
	l.mu.Lock()
	q := l.queue
	l.queue = l.spare[:0]
	l.nqueued.Store(0)
	l.mu.Unlock()
	for i, it := range q {
		q[i] = item{}
		if l.member(it) { // a join or leave (members.go)
			continue
		}
		l.held = append(l.held, it.b)
		if it.gl == nil {
			l.enqueue(it.s, it.b)
		} else {
			for _, s := range it.gl.list {
				l.enqueue(s, it.b)
			}
		}
	}
	l.spare = q[:0]
}

// enqueue appends b to s's pending frames, or holds it if s is unwritable.
// On the loop.
func (l *Loop) enqueue(s *Session, b *sendbuffer.Buffer) {
	if s.closed.Load() {
		// Sent before the close, still in the queue then: never written.
		s.mgr.counts.unsent.Add(1)
		return
	}
	e := entry{b: b, key: b.Key()}
	if !s.inDirty {
		s.inDirty = true
		l.dirty = append(l.dirty, s)
	}
	if !s.writable.Load() || len(s.backlog) > 0 {
		s.hold(e)
		return
	}
	if len(s.pending) == 0 {
		l.waiting++
	}
	s.pending = append(s.pending, e)
	s.pendingBytes += s.size(b)
	if len(s.pending) >= flushAt {
		l.flush(s)
	}
}

// reply is Session.Reply: inside s's callback, write p at once behind
// whatever was sent to s before it. On the loop.
func (l *Loop) reply(s *Session, p []byte) error {
	switch {
	case l.cur != s:
		return ErrNotInCallback
	case s.closed.Load() || s.refused > 0:
		return ErrSessionClosed
	case l.writing:
		return ErrInWrite
	}
	l.writing = true
	defer func() { l.writing = false }()
	l.drain()
	if !s.idle() {
		l.flush(s) // what was sent before p goes first; refreshes writability
	}
	switch {
	case s.closed.Load() || s.refused > 0:
		return ErrSessionClosed
	case !s.writable.Load() || len(s.backlog) > 0:
		b := sendbuffer.Copy(p)
		b.Handoff(1)               // the loop's reference, dropped with the drained ones
		l.held = append(l.held, b) // as drain does: enqueue holds its own reference
		l.inflight.Add(1)
		l.enqueue(s, b)
		return nil
	}
	n := len(p)
	var err error
	if s.ws == nil {
		_, err = s.conn.Write(p)
	} else {
		n, err = l.writeWS(s, p)
	}
	if err != nil {
		return ErrSessionClosed // gnet closed the connection; OnClose marked s closed
	}
	s.sent(1, n)
	s.outbound = s.conn.OutboundBuffered()
	l.settle(s)
	s.publish()
	return nil
}

// flush hands s's frames to gnet: first what it held, then what is pending,
// in batches of at most MaxBatchSlices buffers and about MaxBatchBytes,
// until gnet's outbound buffer for s reaches the high watermark; what is
// left is held. gnet writes each batch or copies what the socket does not
// take before Writev returns, so the scratch is free again at once. On the
// loop.
func (l *Loop) flush(s *Session) {
	if len(s.pending) > 0 {
		l.waiting--
	}
	if !s.closed.Load() {
		lim := &s.mgr.cfg.Limits
		s.outbound = s.conn.OutboundBuffered()
		if !s.writable.Load() && s.outbound <= lim.LowWatermark && s.refused == 0 {
			s.setWritable(true)
		}
		if s.writable.Load() && len(s.backlog) > 0 {
			n := l.write(s, s.backlog, false)
			if !s.closed.Load() {
				s.dropWritten(n)
			}
		}
		rest := s.pending
		if s.writable.Load() && len(s.backlog) == 0 {
			n := l.write(s, rest, true)
			rest = rest[n:]
		}
		if !s.closed.Load() {
			for _, e := range rest {
				s.hold(e)
			}
			l.settle(s)
		}
	}
	clear(s.pending)
	s.pending, s.pendingBytes, s.pendingDone = s.pending[:0], 0, 0
	s.publish()
}

// idle reports whether a flush of s would only re-read gnet's outbound
// buffer: nothing pending, nothing held, writable. On the loop.
func (s *Session) idle() bool {
	return len(s.pending) == 0 && len(s.backlog) == 0 && s.writable.Load()
}

// settle applies what the last write left in gnet's outbound buffer: at the
// high watermark s becomes unwritable, and while gnet or herald still owes
// s bytes, Poll re-checks it. On the loop, after a write to open s.
func (l *Loop) settle(s *Session) {
	if s.closed.Load() {
		return
	}
	if s.outbound >= s.mgr.cfg.Limits.HighWatermark {
		s.setWritable(false)
	}
	if (s.outbound > 0 || len(s.backlog) > 0) && !s.owing {
		s.owing = true
		l.owing = append(l.owing, s)
		l.nowing.Store(int32(len(l.owing)))
	}
}

// write writes entries from list (s.pending if pending, else s.backlog)
// until all are written, gnet's outbound buffer reaches the high watermark,
// or the connection fails. It returns how many entries it wrote.
func (l *Loop) write(s *Session, list []entry, pending bool) (n int) {
	high := s.mgr.cfg.Limits.HighWatermark
	maxK := MaxBatchSlices
	if s.ws != nil {
		maxK = MaxBatchSlices / 2 // a large frame takes two iovecs: header and frame
	}
	for n < len(list) && s.outbound < high && !s.closed.Load() {
		k, kb := 0, 0
		for n+k < len(list) && k < maxK && (k == 0 || kb+s.size(list[n+k].b) <= MaxBatchBytes) {
			kb += s.size(list[n+k].b)
			k++
		}
		if s.ws == nil {
			l.coalesce(list[n : n+k])
		} else {
			l.coalesceWS(s.ws, list[n:n+k])
		}
		var err error
		// One iovec goes through write(2): it took herald's CPU per echo
		// round trip from 1.14x to 1.01x of gnet echo's (BENCHMARKS.md).
		if len(l.iov) == 1 {
			_, err = s.conn.Write(l.iov[0])
		} else {
			_, err = s.conn.Writev(l.iov)
		}
		clear(l.iov)
		l.iov = l.iov[:0]
		if err != nil {
			return n // gnet closed the connection; OnClose marked s closed
		}
		s.sent(k, kb)
		n += k
		if pending {
			s.pendingDone, s.pendingBytes = n, s.pendingBytes-kb
		} else {
			s.backlogDone, s.backlogBytes = n, s.backlogBytes-kb
		}
		s.outbound = s.conn.OutboundBuffered()
	}
	return n
}

// coalesce builds l.iov for list: runs of small frames are copied into the
// scratch and become one iovec; large frames are referenced in place.
func (l *Loop) coalesce(list []entry) {
	if len(list) == 1 { // nothing to coalesce with
		l.iov = append(l.iov, list[0].b.Bytes())
		return
	}
	used := 0
	run := false // the last iovec is a scratch run ending at used
	for _, e := range list {
		p := e.b.Bytes()
		if len(p) > coalesceMax || used+len(p) > len(l.scratch) {
			l.iov = append(l.iov, p)
			run = false
			continue
		}
		n := copy(l.scratch[used:], p)
		if run {
			k := len(l.iov) - 1
			l.iov[k] = l.scratch[used-len(l.iov[k]) : used+n]
		} else {
			l.iov = append(l.iov, l.scratch[used:used+n])
			run = true
		}
		used += n
	}
}

// releaseHeld drops the loop's references to the drained buffers. On the
// loop, once no session still has them pending.
func (l *Loop) releaseHeld() {
	if len(l.held) == 0 {
		return
	}
	for i, b := range l.held {
		b.Drop()
		l.held[i] = nil
	}
	l.inflight.Add(-int32(len(l.held)))
	l.held = l.held[:0]
}

// Discard releases every buffer the Loop still holds and makes later pushes
// release theirs at once. The server calls it after the engine has stopped
// (gnet drops queued tasks then, so no flush will come); it must not run
// while the loop is running.
func (l *Loop) Discard() {
	l.mu.Lock()
	l.stopped = true
	q := l.queue
	l.queue = nil
	l.nqueued.Store(0)
	l.mu.Unlock()
	for _, it := range q {
		it.drop()
	}
	for _, s := range l.dirty {
		clear(s.pending)
		s.pending, s.pendingBytes, s.inDirty = s.pending[:0], 0, false
	}
	l.dirty, l.waiting, l.owing = nil, 0, nil
	l.nowing.Store(0)
	l.releaseHeld()
	l.inflight.Store(0)
}
