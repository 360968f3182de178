// Command gnetcopy is the "before" baseline for herald's broadcast demo: a
// gnet v2 server that, for every packet frame ([size u16 LE][id u16 LE]
// [payload], size counting the whole frame) received from any client,
// copies the frame once per connected client, sender included, and queues
// each copy with c.AsyncWrite. No shared buffers, no batching, no
// backpressure: what herald replaces.
//
//	go run ./bench/gnetcopy -addr 127.0.0.1:7101
package main

import (
	"encoding/binary"
	"flag"
	"sync"

	"github.com/herald-mmo/herald/bench/internal/benchsrv"
	"github.com/panjf2000/gnet/v2"
)

type server struct {
	*benchsrv.Booter

	mu    sync.RWMutex
	conns map[gnet.Conn]struct{} // guarded by mu
}

var _ gnet.EventHandler = (*server)(nil)

func (s *server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return nil, gnet.None
}

func (s *server) OnClose(c gnet.Conn, _ error) gnet.Action {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	return gnet.None
}

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	off := 0
	for len(buf)-off >= 4 {
		size := int(binary.LittleEndian.Uint16(buf[off:]))
		if size < 4 {
			return gnet.Close
		}
		if len(buf)-off < size {
			break
		}
		frame := buf[off : off+size]
		s.mu.RLock()
		for to := range s.conns {
			cp := make([]byte, size)
			copy(cp, frame)
			_ = to.AsyncWrite(cp, nil)
		}
		s.mu.RUnlock()
		off += size
	}
	if off > 0 {
		_, _ = c.Discard(off) // Discard(0) would drop everything
	}
	return gnet.None
}

func main() {
	f := benchsrv.Register("127.0.0.1:7101")
	flag.Parse()
	b := benchsrv.NewBooter()
	if err := benchsrv.RunGnet(&server{Booter: b, conns: make(map[gnet.Conn]struct{})}, b, f); err != nil {
		benchsrv.Fatal(err)
	}
}
