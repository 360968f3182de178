// Command wsbase is the idiomatic-Go WebSocket baseline for herald's
// broadcast demo over WebSocket: net/http and gorilla/websocket, a read
// goroutine per connection, and per connection a buffered channel of
// messages drained by a writer goroutine. Every message received (binary
// or text, one codec frame each) is sent to every connected client, sender
// included, as a gorilla PreparedMessage: the frame is encoded once and
// the encoding shared by all recipients, the library's own answer to
// broadcast cost.
//
// A client whose channel is full is disconnected as a slow consumer: the
// sender never blocks. That is logged and counted, as in bench/gochan.
// gorilla writes each message with a write call of its own, so a client
// drains more slowly than bench/gochan's bufio.Writer, and a fast client's
// window does not bound how far a slow one lags: the default -queue is
// what run.sh's fan-out (200 clients x 200 frames, window 16) measured
// lossless; 1024 and 8192 disconnected clients.
//
//	go run ./bench/wsbase -addr 127.0.0.1:7104 -queue 16384
package main

import (
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/bench/internal/benchsrv"
)

type server struct {
	queue int
	max   int64
	up    websocket.Upgrader
	hub   benchsrv.Hub[*websocket.PreparedMessage]
	wg    sync.WaitGroup // writers
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := s.up.Upgrade(w, r, nil) // writes its own refusal
	if err != nil {
		return
	}
	conn.SetReadLimit(s.max)
	c := benchsrv.NewQueue[*websocket.PreparedMessage](s.queue, conn.RemoteAddr(), conn)
	if !s.hub.Add(c) { // registered before its first message is read
		conn.Close()
		return
	}
	s.wg.Add(1)
	go s.write(conn, c)
	s.read(conn, c) // net/http's goroutine for this connection reads
}

func (s *server) read(conn *websocket.Conn, c *benchsrv.Queue[*websocket.PreparedMessage]) {
	defer func() {
		s.hub.Remove(c)
		c.Kill()
	}()
	var slow []*benchsrv.Queue[*websocket.PreparedMessage]
	for {
		kind, p, err := conn.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(kind, p)
		if err != nil {
			return
		}
		slow = s.hub.Broadcast(pm, slow)
	}
}

func (s *server) write(conn *websocket.Conn, c *benchsrv.Queue[*websocket.PreparedMessage]) {
	defer s.wg.Done()
	for {
		select {
		case pm := <-c.Out:
			if err := conn.WritePreparedMessage(pm); err != nil {
				c.Kill()
				return
			}
		case <-c.Done:
			return
		}
	}
}

func main() {
	f := benchsrv.Register("127.0.0.1:7104")
	queue := flag.Int("queue", 16384, "messages queued per client before it is disconnected as slow (128 KiB of channel per client at the default)")
	maxMessage := flag.Int64("max-frame", 0xFFFF, "largest message accepted, in bytes")
	flag.Parse()
	if *queue < 1 || *maxMessage < 1 {
		benchsrv.Fatal(errors.New("-queue and -max-frame must be at least 1"))
	}
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		benchsrv.Fatal(err)
	}
	s := &server{
		queue: *queue, max: *maxMessage,
		up:  websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		hub: benchsrv.Hub[*websocket.PreparedMessage]{Name: "wsbase", Quiet: f.LogLevel == "error"},
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(os.Stderr, "wsbase: ", 0)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		hs.Close() // closes the listener; hijacked WebSocket conns are ours
		s.hub.Close()
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		benchsrv.Fatal(err)
	}
	s.wg.Wait()
}
