package sessionmgr

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
)

// TestLeaveThenBroadcastGetsNothing: a broadcast pushed after Leave (or
// Remove) returned never reaches the session, even when its loop has not
// yet drained the leave; one pushed after Join returned always does.
func TestLeaveThenBroadcastGetsNothing(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t) // stepped: nothing is drained until the test says so
	g := m.Group("room")
	s, c := newSession(t, m, fl)
	other, oc := newSession(t, m, fl)
	g.Join(other)

	g.Join(s)
	g.Broadcast(newFrame(0, 0, 20)) // after Join: reaches s
	g.Leave(s)
	g.Broadcast(newFrame(1, 0, 20)) // after Leave: not s
	g.Join(s)
	g.Broadcast(newFrame(0, 1, 20))
	m.Remove(s) // from the test goroutine; closes the connection
	g.Broadcast(newFrame(1, 1, 20))
	m.Broadcast(newFrame(1, 2, 20))
	fl.drain() // the items, in order, then the close Remove asked for

	if got, want := parseFrames(t, c.output()), []frameID{{0, 0}, {0, 1}}; !slices.Equal(got, want) {
		t.Errorf("s received %v; want %v (nothing pushed after Leave or Remove)", got, want)
	}
	if got, want := parseFrames(t, oc.output()), []frameID{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {1, 2}}; !slices.Equal(got, want) {
		t.Errorf("the other member received %v; want %v", got, want)
	}
	if !c.isClosed() || m.Get(s.ID()) != nil || g.Len() != 1 {
		t.Errorf("after Remove: closed %v, Get %v, group Len %d; want closed, nil, 1", c.isClosed(), m.Get(s.ID()), g.Len())
	}
	remove(fl, m, other)
	fl.drain()
}

// TestBroadcastRacingMembership: one goroutine broadcasts while another
// joins and leaves a session over and over, with frames of its own between
// (sender 2 right after Join returned, sender 1 right after Leave
// returned), and a third keeps joining and leaving sessions of other
// groups. The churning session gets every sender-2 frame, no sender-1
// frame, and a subsequence of the racing sender 0's frames, each whole,
// once and in order; the steady members get everything.
func TestBroadcastRacingMembership(t *testing.T) {
	checkBuffers(t)
	const rounds, racing = 300, 600
	m := newManager(t, Config{})
	fls := []*fakeLoop{newLoop(t).start(), newLoop(t).start()}
	g := m.Group("room")
	var steady []*fakeConn
	var all []*Session
	for i := range 4 {
		s, c := newSession(t, m, fls[i%2])
		g.Join(s)
		steady = append(steady, c)
		all = append(all, s)
	}
	churner, cc := newSession(t, m, fls[1])
	var others []*Session
	for i := range 4 {
		s, _ := newSession(t, m, fls[i%2])
		others = append(others, s)
	}
	all = append(append(all, churner), others...)

	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := range racing {
			g.Broadcast(newFrame(0, seq, 20+seq%50))
		}
	})
	wg.Go(func() {
		for seq := range rounds {
			g.Join(churner)
			g.Broadcast(newFrame(2, seq, 30))
			g.Leave(churner)
			g.Broadcast(newFrame(1, seq, 30))
		}
	})
	wg.Go(func() {
		for i := range rounds {
			o := m.Group(fmt.Sprint("side", i%7))
			o.Join(others[i%4])
			o.Broadcast(newFrame(3, i, 12))
			o.Leave(others[i%4])
		}
	})
	wg.Wait()
	for i, s := range all {
		waitIdle(t, fls[i%2], s)
	}
	waitIdle(t, fls[1], churner)

	for i, c := range steady {
		var ids []frameID
		for _, id := range parseFrames(t, c.output()) {
			if id.sender != 3 {
				ids = append(ids, id)
			}
		}
		checkSenderCounts(t, fmt.Sprint("steady member ", i), ids, map[int]int{0: racing, 1: rounds, 2: rounds})
	}
	next := map[int]int{}
	for i, id := range parseFrames(t, cc.output()) {
		switch id.sender {
		case 1:
			t.Fatalf("frame %d: the churner got frame %d broadcast after its Leave returned", i, id.seq)
		case 2:
			if id.seq != next[2] {
				t.Fatalf("frame %d: the churner got sender-2 frame %d; want %d (one broadcast after each Join)", i, id.seq, next[2])
			}
			next[2]++
		case 0:
			if id.seq < next[0] {
				t.Fatalf("frame %d: racing frame %d after %d: duplicated or reordered", i, id.seq, next[0]-1)
			}
			next[0] = id.seq + 1
		default:
			t.Fatalf("frame %d: the churner got a frame of sender %d, a group it never joined", i, id.sender)
		}
	}
	if next[2] != rounds {
		t.Errorf("the churner got %d of the %d frames broadcast after its Joins", next[2], rounds)
	}
	for i, s := range all {
		remove(fls[i%2], m, s)
	}
	for _, fl := range fls {
		fl.do(func() { fl.l.drain() })
	}
	if n := groupsLive(m); n != 0 {
		t.Errorf("%d groups live after every session left; want 0", n)
	}
}

// groupsLive counts the groups the Manager holds.
func groupsLive(m *Manager) int {
	n := 0
	m.groups.Range(func(any, any) bool { n++; return true })
	return n
}

// TestGroupFreedWhenEmpty: 100,000 rooms that each had a member for a
// moment leave nothing behind, in the Manager or on the loop; a handle to
// a freed room still works, and two handles to one name are one group.
func TestGroupFreedWhenEmpty(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	s2, _ := newSession(t, m, fl)
	const rooms = 100_000
	for i := range rooms {
		g := m.Group(fmt.Sprint("room", i))
		g.Join(s)
		if i%2 == 0 {
			g.Join(s2)
			g.Leave(s2)
		}
		g.Leave(s)
		if i%1000 == 999 {
			fl.exec(fl.l.drain)
		}
	}
	fl.drain()
	fl.exec(fl.l.drain)
	if n := groupsLive(m); n != 0 {
		t.Errorf("%d of %d emptied rooms still held by the Manager", n, rooms)
	}
	fl.exec(func() {
		if len(s.slots) != 1 || len(s2.slots) != 1 {
			t.Errorf("sessions stand in %d and %d lists; want 1 each (the Manager's)", len(s.slots), len(s2.slots))
		}
		if q := len(fl.l.queue); q != 0 {
			t.Errorf("%d items left in the loop's queue", q)
		}
	})

	// A freed handle comes back to life on Join; a second handle made
	// before that joins the same group.
	h1, h2 := m.Group("x"), m.Group("x")
	h1.Join(s)
	h2.Join(s2)
	if h1.Len() != 2 || h2.Len() != 2 || m.Group("x") != h1 {
		t.Fatalf("two handles to x: Len %d and %d, Group(x) == first %v; want one group of 2", h1.Len(), h2.Len(), m.Group("x") == h1)
	}
	h2.Leave(s)  // by the other handle
	h1.Leave(s2) // empty: freed
	if groupsLive(m) != 0 || h1.Len() != 0 || len(h2.Members()) != 0 {
		t.Fatalf("x emptied through either handle: %d groups live, Len %d", groupsLive(m), h1.Len())
	}
	h2.Join(s) // h2 is registered now; h1 forwards to it
	h1.Broadcast(newFrame(5, 0, 16))
	h1.Join(s2)
	if h2.Len() != 2 || !slices.Equal(h1.Members(), []*Session{s, s2}) {
		t.Errorf("after rejoining through h2: Len %d, h1.Members() %v; want s, s2", h2.Len(), h1.Members())
	}
	fl.drain()
	if got := parseFrames(t, c.output()); !slices.Equal(got, []frameID{{5, 0}}) {
		t.Errorf("s received %v through the freed handle; want the one broadcast", got)
	}
	remove(fl, m, s)
	remove(fl, m, s2)
	fl.drain()
	if groupsLive(m) != 0 || m.Len() != 0 {
		t.Errorf("after removing both sessions: %d groups, %d sessions", groupsLive(m), m.Len())
	}
}

// TestRemoveFromAnotherGoroutine: Remove called off the loop while the
// loop writes, holds and releases frames for the session closes the
// connection, takes the session out of everything, and every buffer is
// released once the loop has handled the close (run under -race).
func TestRemoveFromAnotherGoroutine(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 100, HighWatermark: 400, MaxPending: 1 << 20}})
	fl := newLoop(t).start()
	g := m.Group("room")
	var ss []*Session
	var cs []*fakeConn
	for i := range 6 {
		s, c := newSession(t, m, fl)
		c.sockTake = 50
		if i%2 == 0 {
			c.stall(true) // frames pile up in the backlog
		}
		g.Join(s)
		ss, cs = append(ss, s), append(cs, c)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := range 400 {
			g.Broadcast(newFrame(0, seq, 40+seq%300))
			m.Broadcast(newFrame(1, seq, 24))
			_ = ss[seq%len(ss)].Send(newFrame(2, seq, 30))
		}
	})
	for i, s := range ss {
		wg.Go(func() {
			for range i * 3 {
				_ = s.Send(newFrame(3, 0, 20))
			}
			m.Remove(s)
		})
	}
	wg.Wait()
	for i, c := range cs {
		if !waitFor(5e9, c.isClosed) {
			t.Fatalf("session %d: connection not closed after Remove", i)
		}
	}
	fl.do(func() { fl.l.drain() })
	if !waitFor(5e9, func() bool { return fl.idle() }) {
		t.Fatal("loop not idle")
	}
	for _, s := range ss {
		if m.Get(s.ID()) != nil || !s.closed.Load() {
			t.Errorf("session %d: Get %v, closed %v after Remove; want nil, closed", s.ID(), m.Get(s.ID()), s.closed.Load())
		}
		if err := s.Send(newFrame(9, 0, 16)); err == nil {
			t.Errorf("session %d: Send after Remove succeeded", s.ID())
		}
	}
	if m.Len() != 0 || g.Len() != 0 || groupsLive(m) != 0 {
		t.Errorf("after removing all: Len %d, group Len %d, %d groups live", m.Len(), g.Len(), groupsLive(m))
	}
	fl.do(func() {
		for i, s := range ss {
			if len(s.slots) != 0 || len(s.backlog) != 0 || len(s.pending) != 0 {
				t.Errorf("session %d: %d slots, %d held, %d pending after the close", i, len(s.slots), len(s.backlog), len(s.pending))
			}
		}
	})
	if n := sendbuffer.Live(); n != 0 {
		t.Errorf("%d buffers live after every session closed: %s", n, sendbuffer.Leaks())
	}
}

// TestJoinInCallbackThenBroadcast: a session that joins from its own
// callback gets a broadcast made right after, in the same callback; a
// removed session cannot join, be added or be counted again.
func TestJoinInCallbackThenBroadcast(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t).start()
	s, c := newSession(t, m, fl)
	g := m.Group("lobby")
	fl.callback(s, func() {
		g.Join(s)
		g.Broadcast(newFrame(0, 0, 16))
	})
	waitIdle(t, fl, s)
	if got := parseFrames(t, c.output()); !slices.Equal(got, []frameID{{0, 0}}) {
		t.Errorf("received %v; want the broadcast made right after Join", got)
	}
	remove(fl, m, s)
	g.Join(s)
	m.Add(s)
	if g.Len() != 0 || m.Len() != 0 || m.Get(s.ID()) != nil {
		t.Errorf("a removed session joined or was added again: group %d, manager %d", g.Len(), m.Len())
	}
	fl.do(func() { fl.l.drain() })
}

// checkSenderCounts checks that ids holds frames 0..want[sender]-1 of each
// sender exactly once, each sender's in order, and no other sender's.
func checkSenderCounts(t testing.TB, who string, ids []frameID, want map[int]int) {
	t.Helper()
	next := map[int]int{}
	for i, id := range ids {
		if _, ok := want[id.sender]; !ok || id.seq != next[id.sender] {
			t.Fatalf("%s: frame %d is sender %d seq %d; want seq %d (lost, duplicated, reordered or foreign)", who, i, id.sender, id.seq, next[id.sender])
		}
		next[id.sender]++
	}
	for sender, n := range want {
		if next[sender] != n {
			t.Errorf("%s: %d frames of sender %d; want %d", who, next[sender], sender, n)
		}
	}
}
