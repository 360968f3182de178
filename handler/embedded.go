package handler

import (
	"time"

	"github.com/herald-mmo/herald/handler/internal/embedded"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/panjf2000/gnet/v2"
)

// The hooks handlertest drives a Server through (handler/internal/embedded).
func init() {
	embedded.Drive = func(srv any) embedded.Driver { return driver{srv.(*Server)} }
}

type driver struct{ srv *Server }

func (d driver) Boot(now int64) {
	d.srv.mu.Lock()
	d.srv.started = true
	d.srv.mu.Unlock()
	d.srv.now.Store(now)
	close(d.srv.booted)
}

func (d driver) Tick(now int64) { d.srv.tick(now) }

func (d driver) Stopped() {
	d.srv.released()
	close(d.srv.done)
}

func (d driver) TickEvery() time.Duration { return d.srv.opts.tick }

func (d driver) Session(c gnet.Conn) *sessionmgr.Session {
	if st, ok := c.Context().(*conn); ok {
		return st.s
	}
	return nil
}

func (d driver) Loops() int { return max(d.srv.opts.loops, 1) }
