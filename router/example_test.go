package router_test

import (
	"fmt"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/router"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

// exampleT is the part of a *testing.T that handlertest uses; in a test,
// pass the test's *testing.T instead.
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                   {}
func (*exampleT) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (e *exampleT) Cleanup(f func())        { e.cleanups = append(e.cleanups, f) }
func (e *exampleT) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// A Router dispatches packets by id; unknown ids go to an explicit
// fallback, here one that closes the session.
func Example() {
	r := router.New(zerolog.Nop())
	r.Handle(1, func(s *sessionmgr.Session, f codec.Frame) {
		w, _ := codec.Packet(0).Encode(nil, codec.Frame{ID: 2, Body: append([]byte("pong "), f.Body...)})
		_ = s.Reply(w)
	})
	r.Fallback(r.CloseUnknown)

	t := &exampleT{}
	defer t.cleanup()
	k := handlertest.New(t, routed{r: r}, handler.WithCodec(codec.Packet(0)))
	p := k.Connect()
	p.FeedFrame(codec.Frame{ID: 1, Body: []byte("hi")})
	for _, f := range p.Frames() {
		fmt.Println(f.ID, string(f.Body))
	}
	p.FeedFrame(codec.Frame{ID: 9})
	fmt.Println("unknown ids:", r.Unknown())
	// Output:
	// 2 pong hi
	// unknown ids: 1
}
