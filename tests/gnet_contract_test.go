package tests

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// TestWrittenBytesMayBeReleased pins the gnet behaviour herald's send path
// relies on (DESIGN.md, SendBuffer rule 4): once Writev returns on the loop
// (herald's flush) or AsyncWritev's callback runs, gnet has written the bytes
// or copied the rest into its own outbound buffer, so the caller's buffers
// may be released (and, in debug mode, poisoned). A peer with a tiny receive
// buffer that reads only afterwards forces partial writes; if gnet still
// pointed at our bytes the peer would read 0xDE poison instead of the pattern.
func TestWrittenBytesMayBeReleased(t *testing.T) {
	const slices, sliceLen = 512, 8 << 10 // 4 MiB, far beyond the socket buffers
	want := make([]byte, 0, slices*sliceLen)
	for i := 0; i < slices*sliceLen; i++ {
		want = append(want, byte(i%251))
	}
	// write hands iov to gnet and calls done once gnet says it is finished
	// with it.
	tests := []struct {
		name  string
		write func(c gnet.Conn, iov [][]byte, done func(error))
	}{
		{"Writev on the loop", func(c gnet.Conn, iov [][]byte, done func(error)) {
			_, err := c.Writev(iov)
			done(err)
		}},
		{"AsyncWritev callback", func(c gnet.Conn, iov [][]byte, done func(error)) {
			err := c.AsyncWritev(iov, func(_ gnet.Conn, err error) error { done(err); return nil })
			if err != nil {
				done(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				outboundAtDone atomic.Int64
				writeErr       atomic.Value
				finished       = make(chan struct{})
			)
			srv := &writevServer{onOpen: func(c gnet.Conn) {
				bufs := make([]*sendbuffer.Buffer, slices)
				iov := make([][]byte, slices)
				for i := range bufs {
					bufs[i] = sendbuffer.Copy(want[i*sliceLen : (i+1)*sliceLen])
					iov[i] = bufs[i].Bytes()
				}
				tt.write(c, iov, func(err error) {
					if err != nil {
						writeErr.Store(err)
					}
					outboundAtDone.Store(int64(c.OutboundBuffered()))
					for _, b := range bufs {
						b.Release() // debug mode poisons the memory gnet was given
					}
					close(finished)
				})
			}}
			addr := srv.start(t)

			d := net.Dialer{Control: setRecvBuf(4 << 10)}
			conn, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("gnet never finished the write")
			}
			if v := writeErr.Load(); v != nil {
				t.Fatalf("write: %v", v)
			}
			if outboundAtDone.Load() == 0 {
				t.Fatal("the write was not partial: gnet's outbound buffer was empty, so nothing was proven")
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, len(want))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("byte %d = %#x, want %#x: gnet read our buffers after it was done with them", i, got[i], want[i])
			}
			t.Logf("%d bytes were in gnet's outbound buffer when it returned; all delivered intact", outboundAtDone.Load())
		})
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// writevServer is a bare gnet server that calls onOpen for each connection.
type writevServer struct {
	gnet.BuiltinEventEngine
	onOpen func(gnet.Conn)
	eng    atomic.Value
	booted chan struct{}
}

func (s *writevServer) OnBoot(e gnet.Engine) gnet.Action {
	s.eng.Store(e)
	close(s.booted)
	return gnet.None
}

func (s *writevServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s.onOpen(c)
	return nil, gnet.None
}

// start runs the server on a free port and stops it at the end of the test.
func (s *writevServer) start(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	s.booted = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- gnet.Run(s, "tcp://"+addr, gnet.WithSocketSendBuffer(4<<10)) }()
	select {
	case <-s.booted:
	case err := <-done:
		t.Fatalf("gnet.Run: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.eng.Load().(gnet.Engine).Stop(ctx)
		<-done
	})
	return addr
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
