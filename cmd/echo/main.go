// Command echo is herald's echo server: it sends back what it receives,
// byte for byte with -codec raw (the default) or frame for frame with
// -codec packet. It listens on 127.0.0.1:7000 by default.
package main

import (
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
)

func main() {
	demo.Main("echo", "127.0.0.1:7000", "raw", echo{})
}

// echo sends every frame back to its sender unchanged. Reply writes it
// straight from gnet's read buffer, before OnRecv returns: no copy.
type echo struct{ handler.Base }

func (echo) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	_ = s.Reply(f.Wire)
}
