package demo

import (
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// Echo is cmd/echo's handler: it sends every frame back to its sender
// unchanged. Reply writes it straight from gnet's read buffer, before OnRecv
// returns: no copy.
type Echo struct{ handler.Base }

// OnRecv replies with f as it arrived.
func (Echo) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	_ = s.Reply(f.Wire)
}

// Broadcast is cmd/broadcast's handler: every frame goes, unchanged, to
// every session including the sender, through one shared SendBuffer.
type Broadcast struct{ handler.Base }

// OnRecv copies f once and broadcasts it.
func (Broadcast) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	s.Manager().Broadcast(sendbuffer.Copy(f.Wire))
}
