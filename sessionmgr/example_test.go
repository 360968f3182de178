package sessionmgr_test

import (
	"errors"
	"fmt"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// A Manager is made from a Config whose Limits bound each session; the
// server (handler.Server) adds a session per connection. A broadcast to a
// room takes over the caller's reference: with nobody in the room the
// buffer is released at once.
func Example() {
	lim := sessionmgr.DefaultLimits()
	lim.HighWatermark = 0 // would never write: rejected
	if _, err := sessionmgr.NewManager(sessionmgr.Config{Limits: lim}); errors.Is(err, sessionmgr.ErrBadConfig) {
		fmt.Println("rejected: high watermark 0")
	}
	m, err := sessionmgr.NewManager(sessionmgr.DefaultConfig())
	if err != nil {
		panic(err)
	}
	b := sendbuffer.Copy([]byte("hello, zone 12"))
	m.Group("zone-12").Broadcast(b)
	fmt.Println("sessions:", m.Len(), "refs left:", b.Refs())
	// Output:
	// rejected: high watermark 0
	// sessions: 0 refs left: 0
}
