package handler_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// room sends every frame it receives to every connected session, through
// one shared buffer.
type room struct{ handler.Base }

func (room) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	s.Manager().Broadcast(sendbuffer.Copy(f.Wire))
}

// A server on a free loopback port: a client's frame comes back to it
// through the broadcast; Stop drains and closes every session.
func Example() {
	srv, err := handler.NewServer(room{}, handler.WithAddr("127.0.0.1:0"))
	if err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	frame, _ := srv.Codec().Encode(nil, codec.Frame{ID: 7, Body: []byte("hello")})
	_, _ = c.Write(frame)
	back := make([]byte, len(frame))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(c, back)
	f, _, _ := srv.Codec().Decode(back)
	fmt.Println(err, f.ID, string(f.Body))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Stop(ctx), srv.Stats().Sessions)
	// Output:
	// <nil> 7 hello
	// <nil> 0
}
