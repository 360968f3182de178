package tests

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// relay broadcasts every frame to every session and records close reasons.
// A frame with id panicID makes it panic.
type relay struct {
	handler.Base
	panicID uint16

	mu      sync.Mutex
	reasons map[uint64]error
}

func (r *relay) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	if r.panicID != 0 && f.ID == r.panicID {
		panic(fmt.Sprintf("content bug on frame %d", f.ID))
	}
	s.Manager().Broadcast(sendbuffer.Copy(f.Wire))
}

func (r *relay) OnDisconnected(s *sessionmgr.Session, reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reasons == nil {
		r.reasons = map[uint64]error{}
	}
	r.reasons[s.ID()] = reason
}

func (r *relay) reasonsSnapshot() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []error
	for _, err := range r.reasons {
		out = append(out, err)
	}
	return out
}

// panicky is the packet codec with a bug: it panics decoding a frame with id
// panicID, as a custom codec might.
type panicky struct{ codec.Codec }

func (p panicky) Decode(in []byte) (codec.Frame, int, error) {
	f, n, err := p.Codec.Decode(in)
	if n > 0 && f.ID == panicID {
		panic("codec bug")
	}
	return f, n, err
}

const panicID = 666

// TestOffendersCloseAlone: a frame whose size field is below the header or
// above the max frame closes that client only, with the codec's reason; a
// panic in the handler or in a custom codec closes only the session it
// happened on; healthy clients keep exchanging frames throughout.
func TestOffendersCloseAlone(t *testing.T) {
	tests := []struct {
		name       string
		bad        []byte
		codecPanic bool // the codec panics on panicID, not the handler
		wantIs     error
	}{
		{name: "size below header", bad: []byte{3, 0, 1, 0}, wantIs: codec.ErrBadLength},
		{name: "size zero", bad: []byte{0, 0, 0, 0}, wantIs: codec.ErrBadLength},
		{name: "size above max frame", bad: []byte{0x01, 0x04, 1, 0}, wantIs: codec.ErrFrameTooLarge}, // 1025 > 1024
		{name: "handler panic", bad: packetFrame(panicID, []byte("boom")), wantIs: handler.ErrHandlerPanic},
		{name: "codec panic", bad: packetFrame(panicID, []byte("boom")), codecPanic: true, wantIs: handler.ErrHandlerPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &relay{panicID: panicID}
			var c codec.Codec = codec.Packet(1024)
			if tt.codecPanic {
				h.panicID, c = 0, panicky{c}
			}
			srv := startServer(t, h, handler.WithCodec(c), handler.WithLoops(2))
			addr := srv.Addr().String()
			healthy := []*packetClient{dialPacket(t, addr), dialPacket(t, addr)}
			bad := dialPacket(t, addr)
			waitFor(t, 5*time.Second, "3 sessions", func() bool { return srv.Manager().Len() == 3 })

			healthy[0].send(1, []byte("before"))
			for _, c := range append(healthy, bad) {
				if _, p := c.recv(5 * time.Second); string(p) != "before" {
					t.Fatalf("got %q, want %q", p, "before")
				}
			}
			if _, err := bad.conn.Write(tt.bad); err != nil {
				t.Fatal(err)
			}
			bad.expectClosed(5 * time.Second)
			waitFor(t, 5*time.Second, "offender removed", func() bool { return srv.Manager().Len() == 2 })

			healthy[1].send(2, []byte("after"))
			for _, c := range healthy {
				if _, p := c.recv(5 * time.Second); string(p) != "after" {
					t.Fatalf("got %q, want %q", p, "after")
				}
			}
			reasons := h.reasonsSnapshot()
			if len(reasons) != 1 || !errors.Is(reasons[0], tt.wantIs) {
				t.Fatalf("close reasons %v; want one matching %v", reasons, tt.wantIs)
			}
		})
	}
}
