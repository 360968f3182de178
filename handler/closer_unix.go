//go:build unix

package handler

import (
	"context"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// closer takes the last close(2) of a connection's socket off the event
// loop. gnet closes a socket on its loop right after OnClose, and that
// close tears the TCP connection down in the kernel (on loopback the
// peer's half too): three quarters of what a session's close costs the
// loop. In a disconnect storm gnet closes up to 1,024 sockets in one turn
// of a loop, which runs nothing else meanwhile: no broadcast, no read.
//
// So OnClose duplicates the descriptor. gnet's close then only drops a
// reference, and the closer's goroutine makes the last close once the
// loop's turn is over: a task queued on the loop, which gnet runs after
// the turn's events and so after gnet's own closes, hands it the turn's
// duplicates. The connection ends as it would have (gnet has written what
// it buffered, the kernel sends what is left, then FIN), a little later.
// No descriptor is held longer than that: each duplicate replaces the one
// gnet frees.
type closer struct {
	fds   chan int
	done  chan struct{}
	loops sync.Map // gnet.EventLoop -> *loopFds
}

// loopFds are a loop's duplicates of this turn. Owned by the loop.
type loopFds struct {
	c   *closer
	fds []int
}

// closerQueue bounds the duplicates waiting for the closer's goroutine;
// past it a socket is closed on the loop, as without the closer.
const closerQueue = 4096

// startCloser starts the closer's goroutine. In Start.
func startCloser() *closer {
	c := &closer{fds: make(chan int, closerQueue), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for fd := range c.fds {
			_ = unix.Close(fd)
		}
	}()
	return c
}

// take duplicates conn's descriptor for the closer. A nil closer (a server
// driven by handlertest) and a connection with no descriptor take nothing;
// when the duplicate cannot be made (EMFILE) or handed over, gnet's close
// does the teardown on the loop. In OnClose.
func (c *closer) take(conn gnet.Conn) {
	fd := conn.Fd()
	if c == nil || fd < 0 {
		return
	}
	el := conn.EventLoop()
	v, ok := c.loops.Load(el)
	if !ok {
		v, _ = c.loops.LoadOrStore(el, &loopFds{c: c})
	}
	l := v.(*loopFds)
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	l.fds = append(l.fds, dup)
	if len(l.fds) == 1 && el.Execute(context.Background(), l) != nil {
		l.Run(context.Background()) // the engine is stopping; stop sweeps what is left
	}
}

// Run hands the turn's duplicates to the closer's goroutine. On the loop,
// after the turn's events.
func (l *loopFds) Run(context.Context) error {
	for _, fd := range l.fds {
		select {
		case l.c.fds <- fd:
		default:
			_ = unix.Close(fd)
		}
	}
	clear(l.fds)
	l.fds = l.fds[:0]
	return nil
}

// stop closes every duplicate still held, also those of a turn whose task
// the stopping engine did not run, and waits for the goroutine. Once gnet
// has stopped: no loop runs any more.
func (c *closer) stop() {
	c.loops.Range(func(_, v any) bool {
		l := v.(*loopFds)
		for _, fd := range l.fds {
			_ = unix.Close(fd)
		}
		l.fds = nil
		return true
	})
	close(c.fds)
	<-c.done
}
