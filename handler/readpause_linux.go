//go:build linux && !poll_opt

package handler

import (
	"reflect"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// Read backpressure. gnet v2 reads every readable socket into its inbound
// buffer and has no API to stop: a peer that floods requests whose replies
// it reads slowly would pile them up in herald. While a session is
// unwritable the server takes EPOLLIN off its socket in the event loop's
// epoll instance, so the kernel's receive window fills and TCP slows the
// peer down; at the low watermark it puts it back. SO_RCVLOWAT was tried
// and does not hold a flooding peer (the kernel caps it at half the
// receive buffer and grows the buffer to match).
//
// gnet keeps the epoll descriptor unexported (eventloop.poller.fd); it is
// read by reflection; TestReplyToNonReaderIsPaused (tests/) fails if it is
// not found or the MOD does not stop the reads.
// gnet's default poller stores the socket's fd as the event's data, which
// the MOD below keeps; the poll_opt build stores a pointer instead, so it
// gets the no-op fallback in readpause_other.go.
//
// gnet itself re-arms EPOLLIN when its outbound buffer empties (ModRead) and
// arms IN|OUT when a write leaves bytes behind with the buffer empty before:
// both happen only at or below the low watermark, where herald resumes
// reading too. An OnTraffic that arrives while paused re-applies the pause.

// epollFD returns the epoll descriptor of gnet's event loop el, or -1.
func epollFD(el gnet.EventLoop) int {
	v := reflect.ValueOf(el)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return -1
	}
	p := v.Elem().FieldByName("poller")
	if !p.IsValid() || p.Kind() != reflect.Pointer || p.IsNil() {
		return -1
	}
	fd := p.Elem().FieldByName("fd")
	if !fd.IsValid() || fd.Kind() != reflect.Int {
		return -1
	}
	return int(fd.Int())
}

// setReading arms or disarms EPOLLIN for c, keeping EPOLLOUT while gnet has
// outbound bytes to write. On c's event loop. It reports whether epoll
// took the change.
func setReading(c gnet.Conn, on bool) bool {
	ep := epollFD(c.EventLoop())
	if ep < 0 {
		return false
	}
	var ev uint32
	if on {
		ev = syscall.EPOLLIN | syscall.EPOLLPRI
	}
	if c.OutboundBuffered() > 0 {
		ev |= syscall.EPOLLOUT
	}
	fd := c.Fd()
	return syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, fd, &syscall.EpollEvent{Events: ev, Fd: int32(fd)}) == nil
}
