//go:build linux

package handler

import (
	"context"
	"runtime"
	"sync"

	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// closer takes the last close(2) of a connection's socket off the event
// loop. gnet closes a socket on its loop right after OnClose, and that
// close tears the TCP connection down in the kernel (on loopback the
// peer's half too): 17-21 µs a socket on the development machine, against
// 2-3 µs for each of the loop's other syscalls of a close. In a
// disconnect storm gnet closes up to 1,024 sockets in one turn of a loop,
// which runs nothing else meanwhile: no broadcast, no read.
//
// So OnClose duplicates the descriptor of a connection its peer ended
// (EOF, reset, a failed write: nobody waits for this close; one the server
// decides is made at once, so that the peer gets its FIN without waiting
// behind a storm). gnet's close then only drops a reference, and the closer's goroutine makes the last close once the
// loop's turn is over: a task queued on the loop, which gnet runs after
// the turn's events and so after gnet's own closes, hands it the turn's
// duplicates. The goroutine runs at the lowest CPU priority (nice 19), so
// that on a busy machine the teardowns wait for idle time instead of
// taking it from the loops (and yields to them in Go's scheduler after
// every close). The connection ends as it would have (gnet has written
// what it buffered, the kernel sends what is left, then FIN), later. Each
// duplicate replaces the descriptor gnet freed, so a storm leaves the
// process no more descriptors than its sessions held; churn faster than
// the goroutine closes could pile them up, so past half the process's
// descriptor limit the loops close their turn's duplicates themselves.
type closer struct {
	max     int // fixed: most duplicates pending before the loops close their own
	mu      lockorder.Mutex
	pending []int // guarded by mu: duplicates handed over, not yet closed
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	loops   sync.Map // gnet.EventLoop -> *loopFds
}

// loopFds are a loop's duplicates of this turn. Owned by the loop.
type loopFds struct {
	c   *closer
	fds []int
}

// startCloser starts the closer's goroutine. In Start.
func startCloser() *closer {
	c := &closer{max: 1024, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur/2 > uint64(c.max) {
		c.max = int(min(lim.Cur/2, 1<<20))
	}
	go c.run()
	return c
}

// run closes what the loops hand over until stop. On the closer's own
// thread, which keeps the priority to itself.
func (c *closer) run() {
	defer close(c.done)
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) // lowering needs no privilege
	var spare []int
	for {
		select {
		case <-c.wake:
		case <-c.quit:
		}
		c.mu.Lock()
		fds := c.pending
		c.pending = spare
		c.mu.Unlock()
		for _, fd := range fds {
			_ = unix.Close(fd)
			runtime.Gosched() // the loops first, for the Go scheduler too
		}
		spare = fds[:0]
		select {
		case <-c.quit:
			if len(fds) == 0 {
				return // stop handed over the last ones before quit
			}
		default:
		}
	}
}

// take duplicates conn's descriptor for the closer, if its peer ended it
// (err, OnClose's, is not nil). A nil closer (a server driven by
// handlertest) and a connection with no descriptor take nothing;
// when the duplicate cannot be made (EMFILE), gnet's close does the
// teardown on the loop. In OnClose.
func (c *closer) take(conn gnet.Conn, err error) {
	if c == nil || err == nil {
		return
	}
	fd := conn.Fd()
	if fd < 0 {
		return
	}
	el := conn.EventLoop()
	v, ok := c.loops.Load(el)
	if !ok {
		v, _ = c.loops.LoadOrStore(el, &loopFds{c: c})
	}
	l := v.(*loopFds)
	dup, derr := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if derr != nil {
		return
	}
	l.fds = append(l.fds, dup)
	if len(l.fds) == 1 && el.Execute(context.Background(), l) != nil {
		l.Run(context.Background()) // the engine is stopping: hand them over now
	}
}

// Run hands the turn's duplicates to the closer's goroutine, or closes
// them if it is too far behind. On the loop, after the turn's events.
func (l *loopFds) Run(context.Context) error {
	if !l.c.hand(l.fds, false) {
		for _, fd := range l.fds {
			_ = unix.Close(fd)
		}
	}
	clear(l.fds)
	l.fds = l.fds[:0]
	return nil
}

// hand queues fds for the goroutine and wakes it, unless that would put
// more than max pending and not all. It reports whether it did.
func (c *closer) hand(fds []int, all bool) bool {
	c.mu.Lock()
	ok := all || len(c.pending)+len(fds) <= c.max
	if ok {
		c.pending = append(c.pending, fds...)
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case c.wake <- struct{}{}:
	default: // awake already, or about to be
	}
	return true
}

// stop closes every duplicate still held, also those of a turn whose task
// the stopping engine did not run, and waits for the goroutine. Once gnet
// has stopped: no loop runs any more.
func (c *closer) stop() {
	c.loops.Range(func(_, v any) bool {
		l := v.(*loopFds)
		c.hand(l.fds, true)
		l.fds = nil
		return true
	})
	close(c.quit)
	<-c.done
}
