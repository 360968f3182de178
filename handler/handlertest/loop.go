package handlertest

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
)

// eventLoop plays one gnet event loop: Execute queues a task (from any
// goroutine), and the kit runs the queue on the test's goroutine.
type eventLoop struct {
	k   *Kit // fixed
	idx int  // fixed

	mu      sync.Mutex // guards tasks and stopped
	tasks   []func()
	stopped bool
}

var _ gnet.EventLoop = (*eventLoop)(nil)

// post queues fn, or reports false once the kit has closed. Any goroutine.
func (l *eventLoop) post(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.tasks = append(l.tasks, fn)
	return true
}

// run runs the tasks queued now (not those they queue) and reports how
// many ran. On the test's goroutine.
func (l *eventLoop) run() int {
	l.mu.Lock()
	q := l.tasks
	l.tasks = nil
	l.mu.Unlock()
	for _, fn := range q {
		fn()
	}
	return len(q)
}

// drop discards the queued tasks and refuses new ones, as a stopped gnet
// engine does.
func (l *eventLoop) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tasks, l.stopped = nil, true
}

// Execute queues r to run on the loop, as gnet's does; after the kit has
// closed it returns gnet's ErrEngineInShutdown.
func (l *eventLoop) Execute(ctx context.Context, r gnet.Runnable) error {
	if r == nil {
		return gerrors.ErrNilRunnable
	}
	if !l.post(func() { _ = r.Run(ctx) }) {
		return gerrors.ErrEngineInShutdown
	}
	return nil
}

// Schedule is not supported, as in gnet v2.
func (l *eventLoop) Schedule(context.Context, gnet.Runnable, time.Duration) error {
	return gerrors.ErrUnsupportedOp
}

// Register is not supported: the kit opens no sockets.
func (l *eventLoop) Register(context.Context, net.Addr) (<-chan gnet.RegisteredResult, error) {
	return nil, ErrNoSockets
}

// Enroll is not supported: the kit opens no sockets.
func (l *eventLoop) Enroll(context.Context, net.Conn) (<-chan gnet.RegisteredResult, error) {
	return nil, ErrNoSockets
}

// Close closes c at once; on the loop, as in gnet.
func (l *eventLoop) Close(c gnet.Conn) error {
	if kc, ok := c.(*conn); ok {
		kc.close(nil)
	}
	return nil
}
