package sessionmgr

import (
	"context"
	"sync"
	"sync/atomic"

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
// scratch so that a run of small frames is one iovec. The kernel's cost per
// iovec dwarfs a copy of a few hundred bytes (BENCHMARKS.md has the
// measurement); larger frames are written from the shared buffer itself.
const (
	coalesceMax = 512
	scratchSize = 64 << 10
)

// Executor runs a Runnable on an event loop; gnet.EventLoop is one.
type Executor interface {
	Execute(ctx context.Context, r gnet.Runnable) error
}

// Loop is herald's side of one gnet event loop: the sessions on it that have
// frames waiting, and the memory its writes reuse. Sessions on a loop are
// only ever written from that loop's goroutine, one at a time, which is what
// keeps at most one write in flight per session.
//
// A Send from any goroutine registers its session here (once, until it is
// flushed) and arms one Execute task for the whole loop; the task writes
// every registered session with one writev each. Many Sends, to many
// sessions, between two turns of the loop cost one task.
type Loop struct {
	exec Executor // fixed

	armed atomic.Bool // a flush task is queued on the loop

	mu    sync.Mutex // guards dirty
	dirty []*Session // registered sessions, each once (Session.registered)

	// Owned by the event loop goroutine.
	spare   []*Session
	scratch []byte
	iov     [][]byte
	bufs    []*sendbuffer.Buffer
}

// NewLoop returns the Loop for the event loop exec runs tasks on.
func NewLoop(exec Executor) *Loop {
	return &Loop{exec: exec, scratch: make([]byte, scratchSize)}
}

// register queues s for the loop's next flush and arms the flush task.
// Any goroutine; the caller has won s.registered.
func (l *Loop) register(s *Session) {
	l.mu.Lock()
	l.dirty = append(l.dirty, s)
	l.mu.Unlock()
	if l.armed.CompareAndSwap(false, true) {
		if err := l.exec.Execute(context.Background(), l); err != nil {
			// The engine is stopping: its close of every connection
			// releases what the sessions queued.
			l.armed.Store(false)
		}
	}
}

// Run is the flush task: it writes every registered session. gnet runs it on
// the event loop; it is exported to satisfy gnet.Runnable.
func (l *Loop) Run(context.Context) error {
	// Disarm before taking the list: a session registered after the swap
	// arms a new task, so none is left waiting.
	l.armed.Store(false)
	l.mu.Lock()
	list := l.dirty
	l.dirty = l.spare[:0]
	l.mu.Unlock()
	for i, s := range list {
		// Clear before writing: a Send after this point registers again.
		s.registered.Store(false)
		l.Flush(s)
		list[i] = nil
	}
	l.spare = list[:0]
	return nil
}

// Flush writes everything queued for s. It must run on s's event loop; the
// server calls it when a handler callback for s returns.
func (l *Loop) Flush(s *Session) {
	for {
		s.mu.Lock()
		if !s.fill(l) {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		l.coalesce()
		_, err := s.conn.Writev(l.iov)
		frames, bytes := len(l.bufs), l.release()
		if err != nil {
			return // gnet closed the connection; OnClose released the queue
		}
		s.sent(frames, bytes)
	}
}

// coalesce builds l.iov for l.bufs: runs of small frames are copied into the
// scratch and become one iovec; large frames are referenced in place. gnet
// writes the iovecs or copies what the socket does not take before Writev
// returns, so the scratch and the buffers are free again right after.
func (l *Loop) coalesce() {
	used := 0
	for _, b := range l.bufs {
		p := b.Bytes()
		if len(p) > coalesceMax || used+len(p) > len(l.scratch) {
			l.iov = append(l.iov, p)
			continue
		}
		n := copy(l.scratch[used:], p)
		if k := len(l.iov) - 1; k >= 0 && used > 0 && isTail(l.iov[k], l.scratch[:used]) {
			l.iov[k] = l.scratch[used-len(l.iov[k]) : used+n]
		} else {
			l.iov = append(l.iov, l.scratch[used:used+n])
		}
		used += n
	}
}

// isTail reports whether v ends exactly where used does, so v can grow.
func isTail(v, used []byte) bool {
	return len(v) > 0 && len(v) <= len(used) && &v[len(v)-1] == &used[len(used)-1]
}

// release drops the batch's references, clears it for reuse and returns
// its size in bytes.
func (l *Loop) release() (bytes int) {
	for i, b := range l.bufs {
		bytes += b.Len()
		b.Release()
		l.bufs[i] = nil
	}
	for i := range l.iov {
		l.iov[i] = nil
	}
	l.bufs, l.iov = l.bufs[:0], l.iov[:0]
	return bytes
}
