package sessionmgr

import (
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/herald-mmo/herald/backplane"
)

// fakeBackplane records what a Manager asks of its backplane.
type fakeBackplane struct {
	mu        sync.Mutex
	refs      map[string]int // Joins minus Leaves
	published []string       // "group:frame" in Publish order
	flushed   int            // published frames covered by a Flush so far
	flushes   int
}

func newFakeBackplane() *fakeBackplane { return &fakeBackplane{refs: map[string]int{}} }

func (f *fakeBackplane) Publish(group string, frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, group+":"+string(frame))
	return nil
}

func (f *fakeBackplane) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = len(f.published)
	f.flushes++
}

func (f *fakeBackplane) Join(group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs[group]++
	return nil
}

func (f *fakeBackplane) Leave(group string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs[group]--; f.refs[group] == 0 {
		delete(f.refs, group)
	}
}

func (f *fakeBackplane) Counters() backplane.Counters { return backplane.Counters{} }
func (f *fakeBackplane) Close() error                 { return nil }

// state returns the joined groups with their counts, how many frames were
// published and how many of them a Flush has covered.
func (f *fakeBackplane) state() (refs map[string]int, published, flushed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	refs = map[string]int{}
	for g, n := range f.refs {
		refs[g] = n
	}
	return refs, len(f.published), f.flushed
}

// TestBackplaneJoinFollowsMembers: the Manager joins a group's name once
// while the group has members here, whatever their number and loops, and
// backplane.AllSessions while it tracks a session; it leaves them when the
// last one goes.
func TestBackplaneJoinFollowsMembers(t *testing.T) {
	checkBuffers(t)
	bp := newFakeBackplane()
	m := newManager(t, Config{Backplane: bp})
	fls := []*fakeLoop{newLoop(t).start(), newLoop(t).start()}
	g := m.Group("room")
	want := func(when string, w map[string]int) {
		t.Helper()
		if refs, _, _ := bp.state(); !maps.Equal(refs, w) {
			t.Errorf("%s: joined %v; want %v", when, refs, w)
		}
	}
	want("no sessions", map[string]int{})
	a, _ := newSession(t, m, fls[0])
	want("one session", map[string]int{backplane.AllSessions: 1})
	b, _ := newSession(t, m, fls[1])
	g.Join(a)
	g.Join(b)
	g.Join(b)
	want("two members on two loops", map[string]int{backplane.AllSessions: 1, "room": 1})
	g.Leave(a)
	want("one member left", map[string]int{backplane.AllSessions: 1, "room": 1})
	g.Leave(b)
	want("room empty", map[string]int{backplane.AllSessions: 1})
	g.Join(a) // the freed handle registers the room again
	want("room again", map[string]int{backplane.AllSessions: 1, "room": 1})
	m.Group("").Join(b) // a room called "" stays here: its name is every session's
	want(`a room called ""`, map[string]int{backplane.AllSessions: 1, "room": 1})
	remove(fls[0], m, a) // leaves every group
	want("a removed", map[string]int{backplane.AllSessions: 1})
	remove(fls[1], m, b)
	want("no sessions again", map[string]int{})
}

// backplaneSetup returns a Manager with a fake backplane and a stepped
// loop (the test goroutine runs its tasks: fl.drain), after checkBuffers.
func backplaneSetup(t *testing.T) (*fakeBackplane, *Manager, *fakeLoop) {
	checkBuffers(t)
	bp := newFakeBackplane()
	return bp, newManager(t, Config{Backplane: bp}), newLoop(t)
}

// TestBackplanePublishAndDeliver: Broadcast publishes once and delivers
// here once; Multicast and Send stay here; what the backplane delivers
// reaches the group's members here once and is not published again; frames
// for a group with no members here are counted and dropped.
func TestBackplanePublishAndDeliver(t *testing.T) {
	bp, m, fl := backplaneSetup(t)
	a, ca := newSession(t, m, fl)
	b, cb := newSession(t, m, fl)
	m.Group("room").Join(a)

	m.Group("room").Broadcast(newFrame(0, 0, 20))
	m.Broadcast(newFrame(0, 1, 20))
	m.Group("empty").Broadcast(newFrame(0, 2, 20)) // no members here: still published
	m.Group("").Broadcast(newFrame(0, 9, 20))      // a room called "": never published (no members either)
	m.Multicast(newFrame(0, 3, 20), func(*Session) bool { return true })
	_ = b.Send(newFrame(0, 4, 20))
	m.Deliver("room", [][]byte{frameBytes(1, 0, 20), frameBytes(1, 1, 20)})
	m.Deliver(backplane.AllSessions, [][]byte{frameBytes(1, 2, 20)})
	m.Deliver("empty", [][]byte{frameBytes(1, 3, 20), frameBytes(1, 4, 20)})
	fl.drain()

	_, published, flushed := bp.state()
	wantPub := []string{"room:" + string(frameBytes(0, 0, 20)), ":" + string(frameBytes(0, 1, 20)), "empty:" + string(frameBytes(0, 2, 20))}
	bp.mu.Lock()
	got := slices.Clone(bp.published)
	bp.mu.Unlock()
	if !slices.Equal(got, wantPub) {
		t.Errorf("published %q; want %q", got, wantPub)
	}
	if flushed != published {
		t.Errorf("%d of %d published frames flushed: a broadcast outside any callback must be flushed at once", flushed, published)
	}
	if got, want := parseFrames(t, ca.output()), []frameID{{0, 0}, {0, 1}, {0, 3}, {1, 0}, {1, 1}, {1, 2}}; !slices.Equal(got, want) {
		t.Errorf("a received %v; want %v", got, want)
	}
	if got, want := parseFrames(t, cb.output()), []frameID{{0, 1}, {0, 3}, {0, 4}, {1, 2}}; !slices.Equal(got, want) {
		t.Errorf("b received %v; want %v", got, want)
	}
	if n := m.Counters().NoMembers; n != 2 {
		t.Errorf("NoMembers %d; want 2 (the frames for the group with no members here)", n)
	}
	remove(fl, m, a)
	remove(fl, m, b)
	m.Deliver(backplane.AllSessions, [][]byte{frameBytes(1, 5, 20)})
	if n := m.Counters().NoMembers; n != 3 {
		t.Errorf("NoMembers %d; want 3 (a frame for every session with no session here)", n)
	}
}

// TestBackplaneFlushPerCallback: broadcasts made inside a handler callback
// are flushed once, when the callback ends, not one by one.
func TestBackplaneFlushPerCallback(t *testing.T) {
	bp, m, fl := backplaneSetup(t)
	a, _ := newSession(t, m, fl)
	fl.callback(a, func() {
		for i := range 5 {
			m.Broadcast(newFrame(0, i, 20))
		}
		if _, published, flushed := bp.state(); published != 5 || flushed != 0 {
			t.Errorf("inside the callback: %d published, %d flushed; want 5, 0", published, flushed)
		}
	})
	bp.mu.Lock()
	flushes, flushed := bp.flushes, bp.flushed
	bp.mu.Unlock()
	if flushes != 1 || flushed != 5 {
		t.Errorf("after the callback: %d flushes covering %d frames; want 1 covering 5", flushes, flushed)
	}
	fl.callback(a, func() {}) // nothing published: no flush
	bp.mu.Lock()
	flushes = bp.flushes
	bp.mu.Unlock()
	if flushes != 1 {
		t.Errorf("a callback that published nothing flushed: %d flushes", flushes)
	}
	remove(fl, m, a)
	fl.drain()
}
