package sessionmgr

import (
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
)

// TestEveryFrameCountedOnce: every frame addressed to a session ends up
// counted exactly once, as sent (Stats), as unsent when the session closed
// (Counters().Unsent), or as dropped by the Drop policy (Counters().Dropped),
// and every buffer is released, however the session goes away.
func TestEveryFrameCountedOnce(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		// run sends to s and closes it; it returns how many frames it sent.
		run func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int
	}{
		{
			name: "closed with frames the loop had taken",
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				other, _ := newSession(t, m, fl)
				fl.callback(other, func() { sendN(t, s, 0, 10, 40) }) // drained, pending for s
				c.closeOnLoop()
				return 10
			},
		},
		{
			name: "closed with frames still in the Loop's queue",
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				sendN(t, s, 0, 10, 40)
				c.closeOnLoop() // before the flush task drains them
				return 10
			},
		},
		{
			name: "a write fails while the loop drains",
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				sendN(t, s, 0, 1000, frameHeader)
				c.failWritev(2) // frames still queued when it fails
				return 1000
			},
		},
		{
			name:   "held frames at the close",
			limits: smallLimits,
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				seq := makeUnwritable(t, fl, s, c)
				sendN(t, s, seq, 7, 100)
				fl.drain()
				c.closeOnLoop()
				return seq + 7
			},
		},
		{
			name:   "a write of held frames fails after an earlier batch went out",
			limits: smallLimits,
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				seq := makeUnwritable(t, fl, s, c)
				sendN(t, s, seq, 1500, frameHeader) // held: 1024 + 476 to write
				fl.drain()
				c.stall(false)
				c.peerRead(1 << 30)
				c.failWritev(2)
				fl.l.Poll()
				return seq + 1500
			},
		},
		{
			name:   "Disconnect past MaxPending: frames refused until the close lands",
			limits: Limits{LowWatermark: 1000, HighWatermark: 4000, MaxPending: 15000, Policy: Disconnect},
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				seq := makeUnwritable(t, fl, s, c)
				sendN(t, s, seq, 10, 1000) // 5 fit under MaxPending
				return seq + 10
			},
		},
		{
			name:   "Drop past MaxPending",
			limits: Limits{LowWatermark: 1000, HighWatermark: 4000, MaxPending: 15000, Policy: Drop},
			run: func(t *testing.T, m *Manager, fl *fakeLoop, s *Session, c *fakeConn) int {
				seq := makeUnwritable(t, fl, s, c)
				sendN(t, s, seq, 10, 1000)
				fl.drain()
				c.closeOnLoop()
				return seq + 10
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{Limits: tt.limits})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			total := tt.run(t, m, fl, s, c)
			fl.drain()
			if m.Get(s.ID()) != nil {
				t.Fatal("session still tracked")
			}
			sent, _ := s.Stats()
			cnt := m.Counters()
			if got := sent + cnt.Unsent + cnt.Dropped; got != uint64(total) {
				t.Errorf("%d sent + %d unsent + %d dropped = %d; want the %d frames sent to the session, each counted once",
					sent, cnt.Unsent, cnt.Dropped, got, total)
			}
			for _, x := range m.Sessions() {
				m.Closed(x)
			}
			fl.drain()
			if n := sendbuffer.Live(); n != 0 {
				t.Errorf("Live() = %d", n)
			}
		})
	}
}

// sendN sends n frames of size bytes to s, numbered from seq.
func sendN(t *testing.T, s *Session, seq, n, size int) {
	t.Helper()
	for i := range n {
		if err := s.Send(newFrame(0, seq+i, size)); err != nil {
			t.Fatal(err)
		}
	}
}
