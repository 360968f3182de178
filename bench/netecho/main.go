// Command netecho is the idiomatic Go echo baseline for herald's echo demo:
// net.Listener, one goroutine per connection running io.Copy(conn, conn)
// (which the runtime may turn into splice(2) between the two directions of
// the socket).
//
//	go run ./bench/netecho -addr 127.0.0.1:7102
package main

import (
	"flag"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/herald-mmo/herald/bench/internal/benchsrv"
)

func main() {
	f := benchsrv.Register("127.0.0.1:7102")
	flag.Parse()
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		benchsrv.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{} // guarded by mu
		closed bool                      // guarded by mu
		wg     sync.WaitGroup
	)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		if closed {
			c.Close()
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
}
