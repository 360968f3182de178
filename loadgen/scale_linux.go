//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// startEpoll moves every session's socket out of Go's runtime and reads
// them all on one goroutine over one epoll instance; the goroutine closes
// the descriptors when the run stops.
func (r *scaleRun) startEpoll() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("loadgen: epoll_create1: %w", err)
	}
	closeFDs := func() {
		for _, c := range r.conns {
			if c.fd >= 0 {
				unix.Close(c.fd)
			}
		}
		unix.Close(ep)
	}
	for i, c := range r.conns {
		fd, err := takeFD(c.conn)
		if err != nil {
			closeFDs()
			return fmt.Errorf("loadgen: session %d: %w", i, err)
		}
		c.conn, c.fd = nil, fd
		c.buf = make([]byte, PacketHeaderLen+r.cfg.Size)
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			closeFDs()
			return fmt.Errorf("loadgen: session %d: epoll_ctl: %w", i, err)
		}
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer closeFDs()
		r.epollLoop(ep)
	}()
	return nil
}

// epollLoop reads every ready session until the run stops.
func (r *scaleRun) epollLoop(ep int) {
	events := make([]unix.EpollEvent, 1024)
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		n, err := unix.EpollWait(ep, events, epollWaitMs)
		if err != nil && !errors.Is(err, unix.EINTR) {
			r.note("epoll_wait: %v", err)
			return
		}
		for _, ev := range events[:max(n, 0)] {
			c := r.conns[ev.Fd] // Fd holds the session's index (see startEpoll)
			if !r.readFD(c) {
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, c.fd, nil)
			}
		}
	}
}

// readFD reads what c's socket holds and verifies every whole frame; false
// means the connection is done (closed, failed or undecodable).
func (r *scaleRun) readFD(c *scaleConn) bool {
	for {
		k, err := unix.Read(c.fd, c.buf[c.fill:])
		switch {
		case k > 0:
			c.fill += k
			if c.fill >= PacketHeaderLen && !r.header(c, c.buf) {
				return false
			}
			if c.fill == len(c.buf) {
				r.frame(c, c.buf)
				c.fill = 0
			}
			continue
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case err == nil: // k == 0
			err = io.EOF
		}
		r.readFailed(c, err)
		return false
	}
}

func writeFD(fd int, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Write(fd, p[n:])
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return n, err
		}
		n += max(k, 0)
	}
	return n, nil
}

func shutdownFD(fd int) { _ = unix.Shutdown(fd, unix.SHUT_RDWR) }
