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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/bench/internal/benchsrv"
)

// client is one connection.
type client struct {
	conn *websocket.Conn
	out  chan *websocket.PreparedMessage // fixed capacity
	done chan struct{}                   // closed once by kill
	once sync.Once
}

// kill closes the connection; the reader and writer then exit.
func (c *client) kill() {
	c.once.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

type server struct {
	queue int
	max   int64
	up    websocket.Upgrader
	slow  atomic.Int64 // slow consumers disconnected
	quiet bool         // -log-level error: no per-event logs

	mu      sync.RWMutex
	clients map[*client]struct{} // guarded by mu
	closed  bool                 // guarded by mu
	wg      sync.WaitGroup
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := s.up.Upgrade(w, r, nil) // writes its own refusal
	if err != nil {
		return
	}
	conn.SetReadLimit(s.max)
	c := &client{conn: conn, out: make(chan *websocket.PreparedMessage, s.queue), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.clients[c] = struct{}{} // registered before its first message is read
	s.mu.Unlock()
	s.wg.Add(1)
	go s.write(c)
	s.read(c) // net/http's goroutine for this connection reads
}

func (s *server) read(c *client) {
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.kill()
	}()
	var slow []*client
	for {
		kind, p, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(kind, p)
		if err != nil {
			return
		}
		slow = slow[:0]
		s.mu.RLock()
		for to := range s.clients {
			select {
			case to.out <- pm:
			default:
				slow = append(slow, to)
			}
		}
		s.mu.RUnlock()
		for _, to := range slow {
			s.mu.Lock()
			_, ok := s.clients[to] // another reader may have dropped it already
			delete(s.clients, to)
			s.mu.Unlock()
			if ok {
				n := s.slow.Add(1)
				if !s.quiet {
					log.Printf("wsbase: disconnecting slow consumer %v (queue of %d full; %d so far)", to.conn.RemoteAddr(), s.queue, n)
				}
			}
			to.kill()
		}
	}
}

func (s *server) write(c *client) {
	defer s.wg.Done()
	for {
		select {
		case pm := <-c.out:
			if err := c.conn.WritePreparedMessage(pm); err != nil {
				c.kill()
				return
			}
		case <-c.done:
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
		queue: *queue, max: *maxMessage, clients: make(map[*client]struct{}),
		up:    websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		quiet: f.LogLevel == "error",
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(os.Stderr, "wsbase: ", 0)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		hs.Close() // closes the listener; hijacked WebSocket conns are ours
		s.mu.Lock()
		s.closed = true
		for c := range s.clients {
			c.kill()
		}
		s.mu.Unlock()
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		benchsrv.Fatal(err)
	}
	s.wg.Wait()
}
