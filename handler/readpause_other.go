//go:build !linux || poll_opt

package handler

import "github.com/panjf2000/gnet/v2"

// setReading cannot pause gnet's reads here (see readpause_linux.go): the
// server stops decoding an unwritable session's frames, but gnet keeps
// reading its socket.
func setReading(gnet.Conn, bool) bool { return false }
