// Command gochan is the idiomatic-Go baseline for herald's broadcast demo:
// net.Listener, a goroutine per connection reading packet frames
// ([size u16 LE][id u16 LE][payload], size counting the whole frame) with a
// bufio.Reader, and per connection a buffered channel of frames drained by
// a writer goroutine through a bufio.Writer (flushed when the channel runs
// empty). Every frame is read into a fresh slice that all recipients share
// (frames are never modified), and is sent to every connected client,
// sender included.
//
// A client whose channel is full is disconnected as a slow consumer: the
// sender never blocks. That is this design's known failure mode under
// bursts larger than -queue frames; it is logged and counted.
//
//	go run ./bench/gochan -addr 127.0.0.1:7103 -queue 1024
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/herald-mmo/herald/bench/internal/benchsrv"
)

// client is one connection.
type client struct {
	conn net.Conn
	out  chan []byte   // frames to write; fixed capacity
	done chan struct{} // closed once by kill
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
	slow  atomic.Int64 // slow consumers disconnected

	mu      sync.RWMutex
	clients map[*client]struct{} // guarded by mu
	closed  bool                 // guarded by mu
	wg      sync.WaitGroup
}

func (s *server) serve(conn net.Conn) {
	c := &client{conn: conn, out: make(chan []byte, s.queue), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.clients[c] = struct{}{} // registered before its first frame is read
	s.mu.Unlock()
	s.wg.Add(2)
	go s.write(c)
	go s.read(c)
}

func (s *server) read(c *client) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		c.kill()
	}()
	br := bufio.NewReaderSize(c.conn, 64<<10)
	var hdr [2]byte
	var slow []*client
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		size := int(binary.LittleEndian.Uint16(hdr[:]))
		if size < 4 {
			return
		}
		frame := make([]byte, size)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(br, frame[2:]); err != nil {
			return
		}
		slow = slow[:0]
		s.mu.RLock()
		for to := range s.clients {
			select {
			case to.out <- frame:
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
				log.Printf("gochan: disconnecting slow consumer %v (queue of %d full; %d so far)", to.conn.RemoteAddr(), s.queue, n)
			}
			to.kill()
		}
	}
}

func (s *server) write(c *client) {
	defer s.wg.Done()
	bw := bufio.NewWriterSize(c.conn, 64<<10)
	for {
		select {
		case f := <-c.out:
			if _, err := bw.Write(f); err != nil {
				c.kill()
				return
			}
			if len(c.out) == 0 {
				if err := bw.Flush(); err != nil {
					c.kill()
					return
				}
			}
		case <-c.done:
			return
		}
	}
}

func main() {
	f := benchsrv.Register("127.0.0.1:7103")
	queue := flag.Int("queue", 1024, "frames queued per client before it is disconnected as slow")
	flag.Parse()
	if *queue < 1 {
		benchsrv.Fatal(errors.New("-queue must be at least 1"))
	}
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		benchsrv.Fatal(err)
	}
	s := &server{queue: *queue, clients: make(map[*client]struct{})}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.clients {
			c.kill()
		}
		s.mu.Unlock()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			break
		}
		s.serve(conn)
	}
	s.wg.Wait()
}
