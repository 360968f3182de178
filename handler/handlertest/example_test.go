package handlertest_test

import (
	"fmt"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// room sends every frame to the other members of the sender's room.
type room struct{ handler.Base }

func (room) OnConnected(s *sessionmgr.Session) { s.Manager().Group("lobby").Join(s) }

func (room) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	s.Manager().Group("lobby").Multicast(sendbuffer.Copy(f.Wire), func(o *sessionmgr.Session) bool { return o != s })
}

// A handler's unit test: two players in a room, one speaks, the other
// hears; an idle one is cut on virtual time. In a test, pass the test's
// *testing.T to New instead of example{}.
func Example() {
	t := &example{}
	defer t.cleanup()

	k := handlertest.New(t, room{}, handler.WithIdleTimeout(time.Minute))
	alice, bob := k.Connect(), k.Connect()
	alice.FeedFrame(codec.Frame{ID: 1, Body: []byte("hello")})
	for _, f := range bob.Frames() {
		fmt.Printf("bob hears %d %q\n", f.ID, f.Body)
	}
	fmt.Println("alice hears", len(alice.Frames()), "frames")

	k.Advance(time.Minute + time.Second)
	fmt.Println("bob still connected:", !bob.Closed())
	// Output:
	// bob hears 1 "hello"
	// alice hears 0 frames
	// bob still connected: false
}

// example is the part of a *testing.T the kit uses, for the Example.
type example struct{ cleanups []func() }

func (*example) Helper()                           {}
func (*example) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (e *example) Cleanup(f func())                { e.cleanups = append(e.cleanups, f) }
func (e *example) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}
