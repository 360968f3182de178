package handler_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
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

// A WebSocket listener beside the TCP one, serving a page at / whose
// script would open ws://<the same address>/ws; a page request never
// becomes a session.
func ExampleWebSocketConfig_pages() {
	page := handler.Page{ContentType: "text/html; charset=utf-8", Body: []byte("<!doctype html><title>chat</title>")}
	srv, err := handler.NewServer(room{}, handler.WithAddr("127.0.0.1:0"),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{
			Config: ws.Config{Path: "/ws"},
			Pages:  map[string]handler.Page{"/": page},
		}))
	if err != nil {
		panic(err)
	}
	if err := srv.Start(); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	defer srv.Stop(ctx)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + srv.WebSocketAddr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"))
	fmt.Println(string(body))
	fmt.Println("sessions:", srv.Stats().Sessions)
	// Output:
	// 200 OK text/html; charset=utf-8
	// <!doctype html><title>chat</title>
	// sessions: 0
}
