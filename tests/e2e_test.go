package tests

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/loadgen"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// echo sends every frame back to its sender through Send, from a copy.
type echo struct{ handler.Base }

func (echo) OnRecv(s *sessionmgr.Session, f codec.Frame) { _ = s.Send(sendbuffer.Copy(f.Wire)) }

// replyEcho sends every frame back with Reply, from gnet's read buffer, as
// cmd/echo does.
type replyEcho struct{ handler.Base }

func (replyEcho) OnRecv(s *sessionmgr.Session, f codec.Frame) { _ = s.Reply(f.Wire) }

// TestEchoStream: 20 connections stream random bytes for a few seconds
// through a raw echo server; every byte comes back, in order. Once with
// replies sent from a copy (Send), once written from the read buffer
// (Reply).
func TestEchoStream(t *testing.T) {
	for name, h := range map[string]handler.Handler{"Send": echo{}, "Reply": replyEcho{}} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, h, handler.WithCodec(codec.Raw()), handler.WithLoops(2))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := loadgen.RunEcho(ctx, loadgen.EchoConfig{
				Mode: loadgen.EchoStream,
				Config: loadgen.Config{
					Addr:     srv.Addr().String(),
					Clients:  20,
					Size:     4096,
					Duration: 3 * time.Second,
				},
			})
			if err != nil {
				t.Fatalf("echo stream: %v (%v)", err, res.ErrorSamples)
			}
			if res.Received == 0 || res.Errors != 0 {
				t.Fatalf("received %d chunks with %d errors: %v", res.Received, res.Errors, res.ErrorSamples)
			}
			t.Logf("echoed %d chunks of 4 KiB, %.1f MB/s", res.Received, res.MBPerSec)
			waitFor(t, 5*time.Second, "sessions gone", func() bool { return srv.Manager().Len() == 0 })
			waitFor(t, 5*time.Second, "buffers released", func() bool { return sendbuffer.Live() == 0 })
		})
	}
}

// TestBroadcastFanout: 50 clients each send 200 packet frames carrying
// sender, sequence and checksum; every client receives all 10,000 frames
// exactly once, intact, in per-sender order. Several event loops, so
// senders and receivers live on different loops.
func TestBroadcastFanout(t *testing.T) {
	const clients, frames = 50, 200
	for _, loops := range []int{1, 4} {
		t.Run(map[int]string{1: "one loop", 4: "four loops"}[loops], func(t *testing.T) {
			srv := startServer(t, &relay{}, handler.WithLoops(loops))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := loadgen.RunFanout(ctx, loadgen.FanoutConfig{
				Addr:     srv.Addr().String(),
				Clients:  clients,
				Messages: frames,
				Size:     64,
				Window:   16,
			})
			if err != nil {
				t.Fatalf("fanout: %v (%v)", err, res.ErrorSamples)
			}
			if want := int64(clients * clients * frames); res.Received != want || res.Errors != 0 {
				t.Fatalf("delivered %d frames, want %d; errors %d: %v", res.Received, want, res.Errors, res.ErrorSamples)
			}
			waitFor(t, 5*time.Second, "sessions gone", func() bool { return srv.Manager().Len() == 0 })
			waitFor(t, 5*time.Second, "buffers released", func() bool { return sendbuffer.Live() == 0 })
			t.Logf("%d frames delivered in %v (%.0f frames/s, p99 %v)", res.Received, res.Elapsed, res.PerSec, res.Latency.P99)
		})
	}
}

// reasonSpy is replyEcho that records why its sessions closed.
type reasonSpy struct {
	replyEcho
	reasons chan error
}

func (h *reasonSpy) OnDisconnected(_ *sessionmgr.Session, reason error) { h.reasons <- reason }

// TestReplyToNonReaderIsPaused: a client streams to the Reply echo server
// and never reads (4 KiB receive buffer). Once gnet's outbound buffer for
// it passes the high watermark, herald stops reading from it (read
// backpressure): the client's writes stall on TCP instead of piling replies
// up in the server, the session is not cut, and what it holds stays under
// MaxPending. Closing the client releases everything.
func TestReplyToNonReaderIsPaused(t *testing.T) {
	const maxPending = 1 << 20
	limits := sessionmgr.Limits{LowWatermark: 16 << 10, HighWatermark: 64 << 10, MaxPending: maxPending, Policy: sessionmgr.Disconnect}
	h := &reasonSpy{reasons: make(chan error, 1)}
	srv := startServer(t, h, handler.WithCodec(codec.Raw()), handler.WithLimits(limits))
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4<<10)
	written := 0
	// Far more than the limit plus what the kernel buffers on both sides:
	// without read backpressure the session is cut as slow long before.
	for written < 64*maxPending {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Write(chunk)
		written += n
		if err != nil {
			break // stalled: the server stopped reading
		}
	}
	if written >= 64*maxPending {
		t.Fatalf("the client wrote %d bytes without stalling; the server never stopped reading", written)
	}
	select {
	case reason := <-h.reasons:
		t.Fatalf("session closed (%v); want it paused, not cut", reason)
	default:
	}
	if st := srv.Stats(); st.SlowDisconnects != 0 || st.Sessions != 1 {
		t.Errorf("SlowDisconnects %d, sessions %d; want 0 and 1", st.SlowDisconnects, st.Sessions)
	}
	for _, s := range srv.Manager().Sessions() {
		if p := s.Pending(); p > maxPending {
			t.Errorf("session pending %d > MaxPending %d", p, maxPending)
		}
	}
	t.Logf("the client stalled after writing %d bytes", written)
	c.Close()
	select {
	case <-h.reasons:
	case <-time.After(10 * time.Second):
		t.Fatal("no OnDisconnected after the client closed")
	}
	waitFor(t, 5*time.Second, "buffers released", func() bool { return sendbuffer.Live() == 0 })
}
