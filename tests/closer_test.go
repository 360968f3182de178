package tests

import (
	"context"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
)

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(ents)
}

// TestClosesFreeDescriptors: the server makes a socket's last close off its
// event loop (handler/closer_linux.go). Whoever closes first, the peer still
// sees the connection end, and every descriptor the server held is freed,
// the duplicates included, also those of sessions still open at Stop.
func TestClosesFreeDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd: Linux only")
	}
	const n = 300
	before := openFDs(t)
	srv, err := handler.NewServer(handler.Base{}, handler.WithAddr("127.0.0.1:0"), handler.WithLoops(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(stop)
	clients := make([]*packetClient, n)
	for i := range clients {
		clients[i] = dialPacket(t, srv.Addr().String())
	}
	waitFor(t, 5*time.Second, "every session", func() bool { return srv.Manager().Len() == n })
	open := openFDs(t)

	// A third close from the client's side, a third from the server's;
	// the server's must reach the peer as the connection's end.
	for _, c := range clients[:n/3] {
		_ = c.conn.Close()
	}
	for _, s := range srv.Manager().Sessions() {
		if s.RemoteAddr().(*net.TCPAddr).Port%2 == 0 { // about half of what is left
			_ = s.Close()
		}
	}
	closedByServer := 0
	for _, c := range clients[n/3:] {
		_ = c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.r.ReadByte(); err != nil && !isTimeout(err) {
			closedByServer++
			_ = c.conn.Close() // the server closed it: the peer's end goes too
		}
	}
	if closedByServer == 0 {
		t.Fatal("no session the server closed ended at the peer")
	}
	left := n - n/3 - closedByServer
	waitFor(t, 5*time.Second, "the closed sessions to go", func() bool { return srv.Manager().Len() == left })
	// Each closed connection frees two descriptors: the client's and the
	// server's (with its duplicate).
	waitFor(t, 5*time.Second, "the server to free the closed sessions' descriptors", func() bool {
		return openFDs(t) == open-2*(n-left)
	})

	// Stop with sessions open: the server frees its side of them too.
	stop()
	waitFor(t, 5*time.Second, "the stopped server to free every descriptor", func() bool {
		return openFDs(t) == before+left
	})
	for _, c := range clients {
		_ = c.conn.Close()
	}
	if got := openFDs(t); got != before {
		t.Fatalf("%d descriptors open after the test, %d before", got, before)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
