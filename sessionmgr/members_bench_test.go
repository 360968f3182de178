package sessionmgr

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
)

// Membership benchmarks at 100, 1k and 10k members: the cost of a change
// must not grow with the group. The benchmark goroutine is the loops'
// goroutine too: it drains the membership items its changes pushed (the
// loop's share of a change is in the figure).

var memberCounts = []int{100, 1000, 10_000}

// benchGroup returns a Manager whose n sessions, spread over two loops, are
// all in group "room", with the loops drained.
func benchGroup(n int) (*Manager, *Group, []*Loop) {
	m, err := NewManager(Config{Limits: DefaultLimits()})
	if err != nil {
		panic(err)
	}
	loops := []*Loop{NewLoop(&recordExec{}), NewLoop(&recordExec{})}
	g := m.Group("room")
	for i := range n {
		s := m.NewSession(&nullConn{}, loops[i%2])
		m.Add(s)
		g.Join(s)
	}
	drainLoops(loops)
	return m, g, loops
}

func drainLoops(loops []*Loop) {
	for _, l := range loops {
		_ = l.Run(context.Background())
	}
}

// BenchmarkJoinLeave: one session joins and leaves a group of n members.
func BenchmarkJoinLeave(b *testing.B) {
	for _, n := range memberCounts {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m, g, loops := benchGroup(n)
			s := m.NewSession(&nullConn{}, loops[0])
			m.Add(s)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				g.Join(s)
				g.Leave(s)
				if i++; i%16 == 0 {
					loops[0].drain()
				}
			}
			b.StopTimer()
			drainLoops(loops)
			removeAll(m)
		})
	}
}

// BenchmarkAddRemove: a new session is added to a Manager of n sessions
// and removed as the server's OnClose does (Closed).
func BenchmarkAddRemove(b *testing.B) {
	for _, n := range memberCounts {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			m, _, loops := benchGroup(n)
			conn := &nullConn{}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s := m.NewSession(conn, loops[0])
				m.Add(s)
				m.Closed(s)
				if i++; i%16 == 0 {
					loops[0].drain()
				}
			}
			b.StopTimer()
			drainLoops(loops)
			removeAll(m)
		})
	}
}

// BenchmarkBroadcastChurn: a 64-byte broadcast to a group of n members and
// the loops' flush, while another goroutine keeps joining and leaving
// sessions of the same group (and of one other group). ns/op is the
// broadcast with its flush; churn/op is how many changes the other
// goroutine made meanwhile; ns/recipient, against BenchmarkBroadcast's,
// is what the churn costs a broadcast.
func BenchmarkBroadcastChurn(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, n := range memberCounts {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			withoutDebug(func() {
				m, g, loops := benchGroup(n)
				other := m.Group("other")
				var churners []*Session
				for i := range 32 {
					s := m.NewSession(&nullConn{}, loops[i%2])
					m.Add(s)
					churners = append(churners, s)
				}
				drainLoops(loops)
				stop := make(chan struct{})
				var changes atomic.Int64
				var wg sync.WaitGroup
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						s := churners[i%len(churners)]
						g.Join(s)
						other.Join(s)
						g.Leave(s)
						other.Leave(s)
						changes.Add(4)
					}
				})
				b.ReportAllocs()
				b.SetBytes(int64(benchPayload * n))
				for b.Loop() {
					buf := sendbuffer.Get(len(payload))
					_, _ = buf.Write(payload)
					g.Broadcast(buf)
					drainLoops(loops)
				}
				b.StopTimer()
				close(stop)
				wg.Wait()
				b.ReportMetric(float64(changes.Load())/float64(b.N), "churn/op")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/recipient")
				drainLoops(loops)
				removeAll(m)
				drainLoops(loops)
			})
		})
	}
}

// BenchmarkDisconnectStorm: every one of n sessions, each in the Manager
// and in one of 100 rooms, closes on its loop (Closed, as OnClose does),
// and the loop applies the leaves. ms/storm is herald's whole share of the
// loop's time for the storm; ns/close must not grow with n.
func BenchmarkDisconnectStorm(b *testing.B) {
	for _, n := range memberCounts {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				m, err := NewManager(Config{Limits: DefaultLimits()})
				if err != nil {
					b.Fatal(err)
				}
				l := NewLoop(&recordExec{})
				ss := make([]*Session, n)
				for i := range ss {
					ss[i] = m.NewSession(&nullConn{}, l)
					m.Add(ss[i])
					m.Group(fmt.Sprint("room", i%100)).Join(ss[i])
				}
				l.drain()
				b.StartTimer()
				for i, s := range ss {
					m.Closed(s)
					if i%memberBatch == 0 { // the task the leaves armed
						l.drain()
					}
				}
				l.drain()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/storm")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/close")
		})
	}
}
