package tests

import (
	"syscall"
)

// setRecvBuf returns a net.Dialer Control func that shrinks the socket's
// receive buffer before connecting, so the peer's writes go partial.
func setRecvBuf(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
