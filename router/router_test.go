package router_test

import (
	"errors"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/router"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// routed is a Handler that dispatches every frame through r.
type routed struct {
	handler.Base
	r *router.Router
}

func (h routed) OnRecv(s *sessionmgr.Session, f codec.Frame) { h.r.Dispatch(s, f) }

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		fallback   func(r *router.Router) router.HandlerFunc // nil: the default
		ids        []uint16                                  // fed in this order
		wantCalled []uint16
		wantClosed bool
		wantReason error
		wantMisses uint64
	}{
		{name: "known ids", ids: []uint16{2, 1, 2}, wantCalled: []uint16{2, 1, 2}},
		{name: "unknown id closes by default", ids: []uint16{1, 9, 2}, wantCalled: []uint16{1},
			wantClosed: true, wantReason: router.ErrUnknownID, wantMisses: 1},
		{name: "unknown id ignored", fallback: func(r *router.Router) router.HandlerFunc { return r.IgnoreUnknown },
			ids: []uint16{9, 1}, wantCalled: []uint16{1}, wantMisses: 1},
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
			k := handlertest.New(t, routed{r: r})
			p := k.Connect()
			for _, id := range tt.ids {
				p.FeedFrame(codec.Frame{ID: id})
			}

			if len(called) != len(tt.wantCalled) {
				t.Fatalf("handlers called for %v; want %v", called, tt.wantCalled)
			}
			for i := range called {
				if called[i] != tt.wantCalled[i] {
					t.Fatalf("handlers called for %v; want %v", called, tt.wantCalled)
				}
			}
			if p.Closed() != tt.wantClosed {
				t.Errorf("closed = %v; want %v", p.Closed(), tt.wantClosed)
			}
			if tt.wantReason != nil && !errors.Is(p.Session().CloseReason(), tt.wantReason) {
				t.Errorf("close reason %v; want %v", p.Session().CloseReason(), tt.wantReason)
			}
			if r.Unknown() != tt.wantMisses {
				t.Errorf("Unknown() = %d; want %d", r.Unknown(), tt.wantMisses)
			}
		})
	}
}
