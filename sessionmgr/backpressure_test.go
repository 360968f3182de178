package sessionmgr

import (
	"errors"
	"slices"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
)

// These tests cover how held frames (a session past its high watermark)
// keep the send path's rules: nothing leaks, nothing is released twice,
// order is kept, and every frame is counted once, as sent or as unsent.
// A stalled fake peer keeps every byte in gnet's outbound buffer.

// smallLimits make a session unwritable after a few KiB.
var smallLimits = Limits{LowWatermark: 1000, HighWatermark: 4000, MaxPending: 1 << 20, Policy: Disconnect}

// makeUnwritable stalls c's peer and sends frames 0..9 of 1000 bytes: the
// first flush hands them all to gnet, whose outbound buffer then passes the
// high watermark. It returns the next sequence number.
func makeUnwritable(t *testing.T, fl *fakeLoop, s *Session, c *fakeConn) int {
	t.Helper()
	c.stall(true)
	for i := range 10 {
		if err := s.Send(newFrame(0, i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	fl.drain()
	if s.Writable() || s.Pending() != 10000 {
		t.Fatalf("after 10000 bytes to a stalled peer: Writable() = %v, Pending() = %d; want false, 10000", s.Writable(), s.Pending())
	}
	return 10
}

// TestHeldFramesGoOutInOrder: frames sent while a session is unwritable are
// held, not written; once the peer has read and the loop polls, they go out
// in order and the session is writable again.
func TestHeldFramesGoOutInOrder(t *testing.T) {
	checkBuffers(t)
	var writable []bool
	m := newManager(t, Config{Limits: smallLimits, OnWritable: func(_ *Session, w bool) { writable = append(writable, w) }})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	for range 1500 {
		if err := s.Send(newFrame(0, seq, 10)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	fl.drain()
	if w := c.writevCalls.Load(); w != 1 {
		t.Fatalf("%d writes; want only the first: the rest is held", w)
	}
	if got, want := s.Pending(), 10000+1500*10; got != want {
		t.Errorf("Pending() = %d; want %d (outbound plus held)", got, want)
	}
	c.stall(false)
	c.peerRead(1 << 30)
	fl.l.Poll()
	fl.drain()
	if !s.Writable() || s.Pending() != 0 {
		t.Errorf("after the peer read and a poll: Writable() = %v, Pending() = %d; want true, 0", s.Writable(), s.Pending())
	}
	if !slices.Equal(writable, []bool{false, true}) {
		t.Errorf("OnWritable calls = %v; want [false true]", writable)
	}
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, seq)
	if f, _ := s.Stats(); f != uint64(seq) {
		t.Errorf("Stats() = %d frames; want %d", f, seq)
	}
	m.Remove(s)
	fl.drain()
}

// TestRemoveReleasesHeldFrames: closing an unwritable session releases the
// frames held for it and counts them as unsent.
func TestRemoveReleasesHeldFrames(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: smallLimits})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	for range 7 {
		if err := s.Send(newFrame(0, seq, 100)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	fl.drain()
	var frames, bytes int
	c.onClose = func() { frames, bytes = m.Remove(s) }
	c.closeOnLoop()
	if frames != 7 || bytes != 700 {
		t.Errorf("Remove = %d frames, %d bytes unsent; want 7, 700", frames, bytes)
	}
	if n := sendbuffer.Live(); n != 0 {
		t.Errorf("Live() = %d after Remove; want 0", n)
	}
	if f, _ := s.Stats(); f+uint64(frames) != uint64(seq) {
		t.Errorf("%d frames sent + %d unsent; want %d in all", f, frames, seq)
	}
}

// TestSlowPolicy: past MaxPending, Disconnect closes the session with
// ErrSlowConsumer and Drop drops (and counts) the new frames; either way
// every buffer is released.
func TestSlowPolicy(t *testing.T) {
	tests := []struct {
		name        string
		policy      SlowPolicy
		wantReason  error
		wantDropped uint64
	}{
		{name: "disconnect", policy: Disconnect, wantReason: ErrSlowConsumer},
		{name: "drop", policy: Drop, wantDropped: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			lim := smallLimits
			probe := newFrame(0, 0, 1000)
			held := entry{b: probe}.cost() // what one held 1000-byte frame counts
			probe.Release()
			lim.MaxPending, lim.Policy = 10000+5*held, tt.policy
			var slow []error
			m := newManager(t, Config{Limits: lim, OnSlow: func(_ *Session, err error) { slow = append(slow, err) }})
			fl := newLoop(t)
			s, c := newSession(t, m, fl)
			seq := makeUnwritable(t, fl, s, c) // 10000 bytes outbound
			// 5 held frames fit under MaxPending; the next 5 do not.
			for range 10 {
				_ = s.Send(newFrame(0, seq, 1000))
				seq++
			}
			fl.drain()
			wantSlow := []error{ErrFramesDropped}
			if tt.policy == Disconnect {
				wantSlow = []error{ErrSlowConsumer}
			}
			if !slices.Equal(slow, wantSlow) {
				t.Errorf("OnSlow calls = %v; want %v", slow, wantSlow)
			}
			if s.Dropped() != tt.wantDropped || m.Counters().Dropped != tt.wantDropped {
				t.Errorf("Dropped() = %d, Counters().Dropped = %d; want %d", s.Dropped(), m.Counters().Dropped, tt.wantDropped)
			}
			if !errors.Is(s.CloseReason(), tt.wantReason) || (tt.wantReason == nil && s.CloseReason() != nil) {
				t.Errorf("CloseReason() = %v; want %v", s.CloseReason(), tt.wantReason)
			}
			if tt.policy == Disconnect {
				if !c.isClosed() || m.Get(s.ID()) != nil || m.Counters().SlowDisconnects != 1 {
					t.Errorf("slow consumer not disconnected and removed (closed %v, SlowDisconnects %d)", c.isClosed(), m.Counters().SlowDisconnects)
				}
			} else {
				m.Remove(s)
			}
			fl.drain()
			if n := sendbuffer.Live(); n != 0 {
				t.Errorf("Live() = %d", n)
			}
		})
	}
}

// TestConflation: a held frame with a key is replaced by a newer frame with
// the same key, in the older one's place; the replaced buffer is released.
func TestConflation(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: smallLimits})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	keyed := func(key uint64) {
		b := newFrame(0, seq, 50)
		b.SetKey(key)
		seq++
		if err := s.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	keyed(1) // 10
	keyed(2) // 11
	keyed(0) // 12, no key
	keyed(1) // 13 replaces 10
	keyed(1) // 14 replaces 13
	fl.drain()
	if got := m.Counters().Conflated; got != 2 {
		t.Errorf("Counters().Conflated = %d; want 2", got)
	}
	if n := sendbuffer.Live(); n != 3 {
		t.Errorf("Live() = %d while held; want 3 (the replaced buffers released)", n)
	}
	c.stall(false)
	c.peerRead(1 << 30)
	fl.l.Poll()
	fl.drain()
	var got []int
	for _, id := range parseFrames(t, c.output()) {
		got = append(got, id.seq)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 11, 12}; !slices.Equal(got, want) {
		t.Errorf("frames arrived %v; want %v", got, want)
	}
	m.Remove(s)
	fl.drain()
}
