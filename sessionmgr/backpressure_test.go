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
	m.Closed(s)
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
	c.onClose = func() { frames, bytes = m.Closed(s) }
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
				m.Closed(s)
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
	m.Closed(s)
	fl.drain()
}

// TestNoHoleBeforeSlowClose (issue 10.7): under Disconnect a refused frame
// is the last the peer could get. A smaller frame after it used to fit and
// be written before the close: the peer saw 108, 109, 111.
func TestNoHoleBeforeSlowClose(t *testing.T) {
	checkBuffers(t)
	lim := smallLimits
	probe := newFrame(0, 0, 1000)
	small := newFrame(0, 0, 100)
	held, smallHeld := entry{b: probe}.cost(), entry{b: small}.cost()
	probe.Release()
	small.Release()
	lim.MaxPending = 10000 + 2*held + 2*smallHeld // the 1000s and the 100s fit; the 3000 does not
	m := newManager(t, Config{Limits: lim})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	for _, size := range []int{1000, 1000, 3000, 100, 100} { // the 3000 is refused; the 100s would fit
		if err := s.Send(newFrame(0, seq, size)); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	fl.step() // the flush task: the 3000 is refused, the close is queued behind it
	fl.do(func() {
		for _, e := range s.backlog {
			if seq := parseFrames(t, e.b.Bytes())[0].seq; seq > 11 {
				t.Errorf("frame %d is held for writing after the refused frame 12", seq)
			}
		}
		if s.refused != 3 {
			t.Errorf("%d frames refused; want 3 (frame 12 and both after it)", s.refused)
		}
	})
	// The peer reads before the close lands: only frames before the
	// refused one may go out.
	c.stall(false)
	c.peerRead(1 << 30)
	fl.l.Poll()
	fl.drain()
	if !c.isClosed() || !errors.Is(s.CloseReason(), ErrSlowConsumer) {
		t.Fatalf("closed %v with %v; want closed as a slow consumer", c.isClosed(), s.CloseReason())
	}
	for _, id := range parseFrames(t, c.output()) {
		if id.seq > 11 {
			t.Errorf("frame %d was written after the refused frame 12", id.seq)
		}
	}
	if u := m.Counters().Unsent; u < 3 {
		t.Errorf("Unsent = %d; want at least the 3 refused frames", u)
	}
	remove(fl, m, s)
}

// TestConflationKeysBoundedByHeld (issue 10.10): keys of written frames
// are forgotten, so the key map holds at most what is held. It grew to
// 7,500 entries with one frame held.
func TestConflationKeysBoundedByHeld(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: smallLimits})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	for round := range 50 {
		for k := range 150 {
			b := newFrame(0, seq, 100)
			b.SetKey(uint64(round*150 + k + 1))
			_ = s.Send(b)
			seq++
		}
		fl.drain()
		c.peerRead(1 << 30) // the peer catches up: the held frames go out
		fl.l.Poll()
		fl.drain()
		c.stall(true)
		_ = s.Send(newFrame(0, seq, 5000)) // unwritable again, one frame held behind it
		seq++
		fl.drain()
		fl.do(func() {
			if len(s.keys) > len(s.backlog) {
				t.Fatalf("round %d: %d conflation keys for %d held frames", round, len(s.keys), len(s.backlog))
			}
		})
	}
	remove(fl, m, s)
}

// TestLimitsValidate (issue 10.10): every accepted value is defined; a zero
// high watermark, which passed and then sent nothing, is rejected.
func TestLimitsValidate(t *testing.T) {
	for _, tt := range []struct {
		l  Limits
		ok bool
	}{
		{DefaultLimits(), true},
		{Limits{LowWatermark: 0, HighWatermark: 1, MaxPending: 1}, true},
		{Limits{LowWatermark: 0, HighWatermark: 0, MaxPending: 1}, false},
		{Limits{LowWatermark: 2, HighWatermark: 1, MaxPending: 4}, false},
		{Limits{LowWatermark: 1, HighWatermark: 8, MaxPending: 4}, false},
		{Limits{LowWatermark: -1, HighWatermark: 8, MaxPending: 8}, false},
		{Limits{LowWatermark: 1, HighWatermark: 8, MaxPending: 8, Policy: 7}, false},
	} {
		if err := tt.l.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
			t.Errorf("%+v: Validate() = %v; want ok %v", tt.l, err, tt.ok)
		}
	}
	if _, err := NewManager(Config{Limits: DefaultLimits(), MaxHeld: -1}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("MaxHeld -1: %v; want ErrBadConfig", err)
	}
}
