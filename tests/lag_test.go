package tests

import (
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
)

// TestLoopLagSeesABlockedLoop: a handler that blocks its loop for 150 ms
// shows in LoopLag, since the probe queued meanwhile waits for the loop.
func TestLoopLagSeesABlockedLoop(t *testing.T) {
	h := &sleeper{entered: make(chan struct{})} // sleeps 200 ms on frame id 1
	srv := startServer(t, h, handler.WithLoops(1), handler.WithTick(10*time.Millisecond))
	c := dialPacket(t, srv.Addr().String())
	waitFor(t, 5*time.Second, "a probe to run", func() bool { return srv.LoopLag() > 0 })
	c.send(1, nil)
	<-h.entered
	waitFor(t, 5*time.Second, "the lag of the blocked loop", func() bool { return srv.LoopLag() >= 150*time.Millisecond })
}
