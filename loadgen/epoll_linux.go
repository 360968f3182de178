//go:build linux

package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

const epollSupported = true

// testSndBuf, if > 0, is set as the epoll engine's sockets' SO_SNDBUF, so
// that a test can make the socket take a message in parts.
var testSndBuf int

// epollWaitMs bounds each wait, so the loop sees the run stopping.
const epollWaitMs = 20

// ppConn is one pingpong client on the epoll engine. Owned by the loop.
type ppConn struct {
	c     *echoClient
	fd    int    // the socket, taken from the net.Conn; closed when the loop returns
	seq   uint32 // of the message in flight
	stamp int64  // when it was sent, ns since the run's epoch
	msg   []byte // the message in flight
	wrote int    // bytes of msg written
	back  []byte // its echo so far
	// watchOut: the descriptor is watched for EPOLLOUT (msg is unfinished).
	watchOut bool
	done     bool
}

// startPingPongEpoll runs every pingpong client on one goroutine over one
// epoll instance: one client's round trip costs a
// write, a read and a share of one epoll_wait, where a goroutine per
// client adds the Go scheduler's park and wake-up on both ends. On a
// machine whose cores the server shares, that leaves more of them to the
// server. The loop owns the clients' sockets (see takeFD) and closes them
// when it returns.
func (r *echoRun) startPingPongEpoll() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("loadgen: epoll_create1: %w", err)
	}
	conns := make([]*ppConn, 0, len(r.clients))
	closeFDs := func() {
		for _, p := range conns {
			unix.Close(p.fd)
		}
		unix.Close(ep)
	}
	for i, c := range r.clients {
		fd, err := takeFD(c.conn)
		if err != nil {
			closeFDs()
			return fmt.Errorf("loadgen: client %d: %w", i, err)
		}
		conns = append(conns, &ppConn{c: c, fd: fd}) // conns[c.id]: ids are indexes of r.clients
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.id)}); err != nil {
			closeFDs()
			return fmt.Errorf("loadgen: client %d: epoll_ctl: %w", i, err)
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer closeFDs()
		r.pingPongEpoll(ep, conns)
	}()
	return nil
}

// takeFD moves c's socket out of Go's runtime: it returns a duplicate of
// c's descriptor (non-blocking, like the original) and closes c, which takes
// the original out of the runtime's netpoller. Left in it, every echo
// would also wake a runtime thread polling for a goroutine that never waits.
func takeFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	c.Close()
	if testSndBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, testSndBuf); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// pingPongEpoll is the loop: it starts every client's first message, then
// reads echoes and sends the next message until every client is done (its
// Messages sent, the senders stopped, or its connection failed).
func (r *echoRun) pingPongEpoll(ep int, conns []*ppConn) {
	lat := r.lat.buf()
	defer func() { lat.done(r.now()) }()
	defer func() {
		for _, p := range conns {
			p.finish()
		}
	}()
	if !r.waitStart() {
		return
	}
	size, limit := r.cfg.Size, r.cfg.sendLimit()
	active := len(conns)
	for _, p := range conns {
		p.back = make([]byte, 0, size+PacketHeaderLen)
		if !r.send(ep, p, 0) {
			p.finish()
			active--
		}
	}
	events := make([]unix.EpollEvent, min(len(conns), 256))
	stopping := false
	for active > 0 && !r.closing.Load() {
		n, err := unix.EpollWait(ep, events, epollWaitMs)
		if err != nil && !errors.Is(err, unix.EINTR) {
			r.fail("epoll_wait: %v", err)
			return
		}
		if !stopping {
			select {
			case <-r.stopSend:
				stopping = true
			default:
			}
		}
		for _, ev := range events[:max(n, 0)] {
			p := conns[ev.Fd]
			if p.done {
				continue
			}
			if p.wrote < len(p.msg) && ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && !r.write(ep, p) {
				p.finish()
				active--
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
				continue
			}
			switch r.read(p) {
			case readMore:
				continue
			case readFailed:
				p.finish()
				active--
				continue
			}
			now := r.now()
			lat.record(now, now-p.stamp)
			p.c.recv.Add(1)
			if stopping || p.seq+1 >= limit || !r.send(ep, p, p.seq+1) {
				p.finish()
				active--
			}
		}
	}
}

// send starts message seq on p. It reports false if p failed.
func (r *echoRun) send(ep int, p *ppConn, seq uint32) bool {
	p.seq, p.stamp = seq, r.now()
	p.msg = AppendPayloadPacket(p.msg[:0], FrameID, p.c.id, seq, p.stamp, r.cfg.Size)
	p.wrote = 0
	p.back = p.back[:0]
	return r.write(ep, p)
}

// write writes what is left of p's message; what the socket does not take
// now waits for EPOLLOUT. It reports false if p failed.
func (r *echoRun) write(ep int, p *ppConn) bool {
	for p.wrote < len(p.msg) {
		n, err := unix.Write(p.fd, p.msg[p.wrote:])
		if n > 0 {
			p.wrote += n
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			r.connFailed(&p.c.sendErr, p.c.id, "write", err)
			return false
		}
	}
	// Watch for room only while the message is unfinished.
	if short := p.wrote < len(p.msg); short != p.watchOut {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.c.id)}
		if short {
			ev.Events |= unix.EPOLLOUT
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, p.fd, &ev); err != nil {
			r.connFailed(&p.c.sendErr, p.c.id, "epoll", err)
			return false
		}
		p.watchOut = short
	}
	if p.wrote == len(p.msg) {
		p.c.sent.Store(int64(p.seq) + 1)
	}
	return true
}

type readResult int

const (
	readMore   readResult = iota // the echo is not all back yet
	readDone                     // the echo is back and intact
	readFailed                   // the connection failed, or the echo differs
)

// read reads what has come back of p's message.
func (r *echoRun) read(p *ppConn) readResult {
	for len(p.back) < len(p.msg) {
		n, err := unix.Read(p.fd, p.back[len(p.back):len(p.msg)])
		switch {
		case n > 0:
			p.back = p.back[:len(p.back)+n]
			p.c.rbytes.Add(int64(n))
			continue
		case errors.Is(err, unix.EAGAIN):
			return readMore
		case err == nil: // n == 0
			err = io.EOF
		}
		r.connFailed(&p.c.readErr, p.c.id, "read", err)
		return readFailed
	}
	if !bytes.Equal(p.back, p.msg) {
		p.c.corrupt++
		r.fail("client %d: message %d came back changed", p.c.id, p.seq)
		return readFailed
	}
	return readDone
}

// finish ends p's client: its senders' and readers' channels close. Idempotent.
func (p *ppConn) finish() {
	if !p.done {
		p.done = true
		close(p.c.sendDone)
		close(p.c.exited)
	}
}
