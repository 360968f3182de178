// Command broadcast is herald's broadcast server: every frame received from
// any session goes, unchanged, to every connected session including the
// sender, through one shared SendBuffer. It listens on 127.0.0.1:7001 with
// the packet codec by default; with -codec line it is a chat room that nc or
// telnet can join.
package main

import (
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

func main() {
	demo.Main("broadcast", "127.0.0.1:7001", "packet", broadcast{})
}

// broadcast forwards every frame to every session.
type broadcast struct{ handler.Base }

func (broadcast) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	b := sendbuffer.Copy(f.Wire)
	s.Manager().Broadcast(b)
}
