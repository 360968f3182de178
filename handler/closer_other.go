//go:build !linux

package handler

import "github.com/panjf2000/gnet/v2"

// closer is closer_linux.go's: elsewhere gnet's close stays on the loop.
type closer struct{}

func startCloser() *closer { return nil }

func (*closer) take(gnet.Conn, error) {}

func (*closer) stop() {}
