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
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/herald-mmo/herald/bench/internal/benchsrv"
)

type server struct {
	queue int
	hub   benchsrv.Hub[[]byte]
	wg    sync.WaitGroup
}

func (s *server) serve(conn net.Conn) {
	c := benchsrv.NewQueue[[]byte](s.queue, conn.RemoteAddr(), conn)
	if !s.hub.Add(c) { // registered before its first frame is read
		conn.Close()
		return
	}
	s.wg.Add(2)
	go s.write(conn, c)
	go s.read(conn, c)
}

func (s *server) read(conn net.Conn, c *benchsrv.Queue[[]byte]) {
	defer s.wg.Done()
	defer func() {
		s.hub.Remove(c)
		c.Kill()
	}()
	br := bufio.NewReaderSize(conn, 64<<10)
	var hdr [2]byte
	var slow []*benchsrv.Queue[[]byte]
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
		slow = s.hub.Broadcast(frame, slow)
	}
}

func (s *server) write(conn net.Conn, c *benchsrv.Queue[[]byte]) {
	defer s.wg.Done()
	bw := bufio.NewWriterSize(conn, 64<<10)
	for {
		select {
		case f := <-c.Out:
			if _, err := bw.Write(f); err != nil {
				c.Kill()
				return
			}
			if len(c.Out) == 0 {
				if err := bw.Flush(); err != nil {
					c.Kill()
					return
				}
			}
		case <-c.Done:
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
	s := &server{queue: *queue, hub: benchsrv.Hub[[]byte]{Name: "gochan"}}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
		s.hub.Close()
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
