// Package natstest runs a nats-server inside a test process, on a free
// 127.0.0.1 port, so tests of herald's NATS backplane need nothing
// installed. A test can stop the server and start it again on the same
// port to play an outage.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an in-process nats-server. Its methods are for the test's own
// goroutine.
type Server struct {
	t    testing.TB
	port int
	srv  *server.Server
}

// Start starts a server on a free loopback port; t.Cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, port: -1}
	s.Restart()
	s.port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again after Stop, on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: s.port, NoLog: true, NoSigs: true})
	if err != nil {
		s.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatal("natstest: nats-server not ready in 10 s")
	}
	s.srv = srv
}

// Stop shuts the server down and waits until it has. It does nothing if the
// server is stopped.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Subscriptions is the server's subscription count, its own internal ones
// included: compare it with a count taken earlier.
func (s *Server) Subscriptions() uint32 { return s.srv.NumSubscriptions() }

// WaitSubscriptions waits up to 10 s for the subscription count to be n.
func (s *Server) WaitSubscriptions(n uint32) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Subscriptions() != n {
		if time.Now().After(deadline) {
			s.t.Fatalf("natstest: %d subscriptions after 10 s, want %d", s.Subscriptions(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
