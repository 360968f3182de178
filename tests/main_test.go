// Package tests holds herald's end-to-end tests: real gnet servers and real
// clients over 127.0.0.1 sockets on free ports, each bounded in time.
package tests

import (
	"context"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// startServer starts a herald server for h on a free 127.0.0.1 port and
// stops it when the test ends, checking that no session and no SendBuffer
// outlives it.
func startServer(t *testing.T, h handler.Handler, opts ...handler.Option) *handler.Server {
	t.Helper()
	leakcheck.Check(t) // registered first, so it runs after Stop below
	srv, err := handler.NewServer(h, append([]handler.Option{handler.WithAddr("127.0.0.1:0")}, opts...)...)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if n := srv.Manager().Len(); n != 0 {
			t.Errorf("%d sessions left after stop", n)
		}
	})
	return srv
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
