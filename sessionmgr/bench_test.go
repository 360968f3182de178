package sessionmgr

import (
	"fmt"
	"net"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/panjf2000/gnet/v2"
)

// instantConn is a Conn whose "event loop" costs nothing: AsyncWritev
// completes the write at once and calls the callback before returning, on
// the caller's goroutine, without copying. Every Send therefore runs the
// whole per-recipient send path (queue, arm, fill the batch, callback,
// release, OnSend, re-check, clear the flag) and nothing else, so a
// broadcast benchmark over it measures herald's broadcast path itself, not a
// loop's scheduling or gnet's copy into its outbound buffer.
type instantConn struct {
	bytes int
}

var _ Conn = (*instantConn)(nil)

func (c *instantConn) AsyncWritev(bs [][]byte, cb gnet.AsyncCallback) error {
	_, _ = c.Writev(bs)
	return cb(nil, nil)
}

func (c *instantConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	c.bytes += n
	return n, nil
}

func (c *instantConn) Close() error         { return nil }
func (c *instantConn) RemoteAddr() net.Addr { return nil }

const benchPayload = 64

func newInstantManager(recipients int) (*Manager, []*instantConn) {
	m := NewManager(Config{OnSend: func(*Session, int) {}})
	cs := make([]*instantConn, recipients)
	for i := range cs {
		cs[i] = &instantConn{}
		m.Add(m.NewSession(cs[i]))
	}
	return m, cs
}

func broadcastOnce(m *Manager, payload []byte) {
	b := sendbuffer.Get(len(payload))
	_, _ = b.Write(payload)
	m.Broadcast(b)
}

// withoutDebug runs fn with sendbuffer debug mode off: debug mode records a
// stack per Get and never recycles buffers, which would swamp allocation
// counts. Buffers got in non-debug mode are recycled normally.
func withoutDebug(fn func()) {
	sendbuffer.SetDebug(false)
	defer sendbuffer.SetDebug(true)
	fn()
}

func removeAll(m *Manager) {
	for _, s := range m.Sessions() {
		m.Remove(s)
	}
}

// BenchmarkBroadcast broadcasts one 64-byte frame to N sessions per op over
// instantConn. allocs/op must not grow with N.
func BenchmarkBroadcast(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			withoutDebug(func() {
				m, cs := newInstantManager(n)
				defer removeAll(m)
				broadcastOnce(m, payload) // warm queues and batches
				b.ReportAllocs()
				b.SetBytes(int64(benchPayload * n))
				b.ResetTimer()
				for b.Loop() {
					broadcastOnce(m, payload)
				}
				b.StopTimer()
				if cs[n-1].bytes == 0 {
					b.Fatal("nothing written")
				}
			})
		})
	}
}

// TestBroadcastAllocsDoNotGrow: a broadcast allocates nothing per
// recipient. AllocsPerRun divides the total by the run count with integer
// division, so a rare pool refill after a GC cannot add a whole allocation
// per run; no slack is needed.
func TestBroadcastAllocsDoNotGrow(t *testing.T) {
	checkBuffers(t)
	payload := make([]byte, benchPayload)
	allocs := func(n int) float64 {
		var a float64
		withoutDebug(func() {
			m, _ := newInstantManager(n)
			defer removeAll(m)
			a = testing.AllocsPerRun(200, func() { broadcastOnce(m, payload) })
		})
		return a
	}
	few, many := allocs(10), allocs(1000)
	t.Logf("allocs per broadcast: %v to 10 sessions, %v to 1000", few, many)
	if many > few {
		t.Errorf("a broadcast to 1000 sessions allocates %v times, to 10 sessions %v: allocations grow with recipients", many, few)
	}
}
