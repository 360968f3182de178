package router_test

import (
	"errors"
	"net"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/router"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// closeRecorder is a sessionmgr.Conn that only records Close.
type closeRecorder struct{ closed int }

func (c *closeRecorder) Write([]byte) (int, error)    { return 0, nil }
func (c *closeRecorder) Writev([][]byte) (int, error) { return 0, nil }
func (c *closeRecorder) Close() error                 { c.closed++; return nil }
func (c *closeRecorder) OutboundBuffered() int        { return 0 }
func (c *closeRecorder) RemoteAddr() net.Addr         { return &net.TCPAddr{} }

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		fallback   func(r *router.Router) router.HandlerFunc // nil: the default
		id         uint16
		wantCalled []uint16
		wantClosed bool
		wantReason error
	}{
		{name: "known id", id: 2, wantCalled: []uint16{2}},
		{name: "unknown id closes by default", id: 9, wantClosed: true, wantReason: router.ErrUnknownID},
		{name: "unknown id ignored", fallback: func(r *router.Router) router.HandlerFunc { return r.IgnoreUnknown }, id: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := router.New(zerolog.Nop())
			var called []uint16
			for _, id := range []uint16{1, 2} {
				r.Handle(id, func(_ *sessionmgr.Session, f codec.Frame) { called = append(called, f.ID) })
			}
			if tt.fallback != nil {
				r.Fallback(tt.fallback(r))
			}
			conn := &closeRecorder{}
			mgr, err := sessionmgr.NewManager(sessionmgr.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			s := mgr.NewSession(conn, nil)
			r.Dispatch(s, codec.Frame{ID: tt.id})

			if len(called) != len(tt.wantCalled) || (len(called) > 0 && called[0] != tt.wantCalled[0]) {
				t.Errorf("handlers called for %v; want %v", called, tt.wantCalled)
			}
			if (conn.closed > 0) != tt.wantClosed {
				t.Errorf("closed %d times; want closed=%v", conn.closed, tt.wantClosed)
			}
			if tt.wantReason != nil && !errors.Is(s.CloseReason(), tt.wantReason) {
				t.Errorf("close reason %v; want %v", s.CloseReason(), tt.wantReason)
			}
			wantMisses := uint64(0)
			if len(tt.wantCalled) == 0 {
				wantMisses = 1
			}
			if r.Unknown() != wantMisses {
				t.Errorf("Unknown() = %d; want %d", r.Unknown(), wantMisses)
			}
		})
	}
}
