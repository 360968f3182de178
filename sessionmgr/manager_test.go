package sessionmgr

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/herald-mmo/herald/sendbuffer"
)

func TestManagerAddGetLenRemove(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	if m.Len() != 0 || len(m.Sessions()) != 0 {
		t.Fatalf("new Manager: Len() = %d, %d sessions; want 0", m.Len(), len(m.Sessions()))
	}
	var ss []*Session
	ids := map[uint64]bool{}
	for range 5 {
		s := m.NewSession(newConn(t, fl), fl.l)
		if ids[s.ID()] {
			t.Fatalf("id %d given twice", s.ID())
		}
		ids[s.ID()] = true
		if m.Get(s.ID()) != nil {
			t.Fatal("Get finds a session before Add")
		}
		m.Add(s)
		m.Add(s) // no effect
		ss = append(ss, s)
	}
	if m.Len() != 5 {
		t.Fatalf("Len() = %d after 5 Adds (one twice each); want 5", m.Len())
	}
	for _, s := range ss {
		if m.Get(s.ID()) != s {
			t.Errorf("Get(%d) does not return the session added", s.ID())
		}
	}
	if !slices.Equal(m.Sessions(), ss) {
		t.Error("Sessions() is not the sessions in the order added")
	}
	snapshot := m.Sessions()
	if f, b := m.Closed(ss[1]); f != 0 || b != 0 {
		t.Errorf("Remove of an idle session = %d, %d unsent; want 0, 0", f, b)
	}
	if m.Get(ss[1].ID()) != nil || m.Len() != 4 {
		t.Errorf("after Remove: Get = %v, Len() = %d; want nil, 4", m.Get(ss[1].ID()), m.Len())
	}
	if len(snapshot) != 5 || snapshot[1] != ss[1] {
		t.Error("Remove modified an earlier Sessions() snapshot")
	}
	m.Closed(ss[1]) // twice: no effect
	if m.Len() != 4 {
		t.Errorf("Len() = %d after a second Remove; want 4", m.Len())
	}
	m.Add(ss[1]) // a removed session can be tracked again, but stays closed
	if err := ss[1].Send(newFrame(0, 0, 16)); err == nil {
		t.Error("Send on a removed then re-added session succeeded")
	}
	for _, s := range ss {
		m.Closed(s)
	}
	if m.Len() != 0 {
		t.Errorf("Len() = %d after removing everything", m.Len())
	}
	if m.Get(12345) != nil {
		t.Error("Get of an unknown id is not nil")
	}
	if fl.executes.Load() != 0 {
		t.Error("Add or Remove queued a loop task")
	}
}

// TestBroadcastSharesOneBuffer: a broadcast is one item and one reference per
// event loop with recipients, no copy; each loop puts that same buffer in
// every recipient's pending list; a frame larger than coalesceMax then
// reaches every socket from the buffer's own bytes.
func TestBroadcastSharesOneBuffer(t *testing.T) {
	tests := []struct {
		name       string
		recipients int // spread over two loops
		removed    int // of them removed before the broadcast
		group      bool
		size       int
	}{
		{name: "manager, one recipient", recipients: 1, size: 1000},
		{name: "manager, 50 recipients, large frame", recipients: 50, size: 1000},
		{name: "manager, 50 recipients, small frame (copied at the write)", recipients: 50, size: 40},
		{name: "manager, 20 recipients, 5 removed", recipients: 20, removed: 5, size: 600},
		{name: "group, 30 members, 3 removed", recipients: 30, removed: 3, group: true, size: 4000},
		{name: "manager, nobody", recipients: 0, size: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fls := []*fakeLoop{newLoop(t), newLoop(t)} // stepped: held up until drain
			g := m.Group("room")
			var (
				mu   sync.Mutex
				data = map[*byte]int{} // iovec data pointer -> count
			)
			var ss []*Session
			var cs []*fakeConn
			for i := range tt.recipients {
				s, c := newSession(t, m, fls[i%2])
				c.onWritev = func(bs [][]byte) {
					mu.Lock()
					defer mu.Unlock()
					for _, b := range bs {
						data[unsafe.SliceData(b)]++
					}
				}
				g.Join(s)
				ss, cs = append(ss, s), append(cs, c)
			}
			for _, s := range ss[:tt.removed] {
				m.Closed(s)
			}
			live := tt.recipients - tt.removed
			members := [][]*Session{nil, nil} // live recipients per loop
			for i := tt.removed; i < tt.recipients; i++ {
				members[i%2] = append(members[i%2], ss[i])
			}
			loopsWithMembers := 0
			for _, ms := range members {
				if len(ms) > 0 {
					loopsWithMembers++
				}
			}

			b := newFrame(7, 1, tt.size)
			payload := bytes.Clone(b.Bytes())
			want := unsafe.SliceData(b.Bytes())
			b.Retain() // the test's own reference, to watch the count
			if tt.group {
				g.Broadcast(b)
			} else {
				m.Broadcast(b)
			}
			if got := b.Refs(); got != loopsWithMembers+1 {
				t.Errorf("Refs() = %d after broadcasting to %d sessions on %d loops; want one per loop plus ours, %d", got, live, loopsWithMembers, loopsWithMembers+1)
			}
			for i, fl := range fls {
				items := fl.queuedItems()
				if len(members[i]) == 0 {
					if len(items) != 0 || fl.executes.Load() != 0 {
						t.Errorf("loop %d has no recipient but %d items, %d Executes", i, len(items), fl.executes.Load())
					}
					continue
				}
				if len(items) != 1 || items[0].b != b || items[0].gl == nil || items[0].gl.n != len(members[i]) || fl.executes.Load() != 1 {
					t.Fatalf("loop %d: %d items, %d Executes; want one item with the buffer and the loop's %d live recipients, one Execute", i, len(items), fl.executes.Load(), len(members[i]))
				}
				fl.exec(fl.l.drain) // the first step of the flush task
				if got := sortedByID(items[0].gl.list); !slices.Equal(got, members[i]) {
					t.Fatalf("loop %d: list %v after the drain; want the live recipients %v", i, got, members[i])
				}
				for k, s := range members[i] {
					if q := pendingBufs(fl, s); len(q) != 1 || q[0] != b {
						t.Fatalf("loop %d recipient %d has %v pending; want exactly the broadcast buffer %p", i, k, q, b)
					}
				}
			}
			b.Release()
			for _, fl := range fls {
				fl.drain()
			}
			if tt.size > coalesceMax {
				if len(data) > 1 || (live > 0 && data[want] != live) {
					t.Errorf("iovecs point at %d arrays (%v); want all %d at the broadcast buffer's bytes", len(data), data, live)
				}
			}
			for i, c := range cs {
				out := c.output()
				if i < tt.removed {
					if len(out) != 0 || c.writevCalls.Load() != 0 {
						t.Errorf("removed session %d received %d bytes", i, len(out))
					}
					continue
				}
				if !bytes.Equal(out, payload) {
					t.Errorf("session %d received %d bytes that differ from the %d broadcast", i, len(out), len(payload))
				}
			}
			for _, s := range ss {
				m.Closed(s)
			}
		})
	}
}

func TestMulticast(t *testing.T) {
	even := func(s *Session) bool { return s.ID()%2 == 0 }
	tests := []struct {
		name  string
		keep  func(*Session) bool
		group bool
	}{
		{name: "manager: even ids", keep: even},
		{name: "manager: nobody", keep: func(*Session) bool { return false }},
		{name: "manager: everybody", keep: func(*Session) bool { return true }},
		{name: "group: even ids", keep: even, group: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBuffers(t)
			m := newManager(t, Config{})
			fl := newLoop(t)
			g := m.Group("g")
			var ss []*Session
			var cs []*fakeConn
			for i := range 9 {
				s, c := newSession(t, m, fl)
				if !tt.group || i < 6 {
					g.Join(s)
				}
				ss, cs = append(ss, s), append(cs, c)
			}
			b := newFrame(1, 2, 40)
			if tt.group {
				g.Multicast(b, tt.keep)
			} else {
				m.Multicast(b, tt.keep)
			}
			fl.drain()
			for i, s := range ss {
				member := !tt.group || i < 6
				got := cs[i].outLen() > 0
				if want := member && tt.keep(s); got != want {
					t.Errorf("session %d (id %d): received = %v; want %v", i, s.ID(), got, want)
				}
				if got {
					if ids := parseFrames(t, cs[i].output()); !slices.Equal(ids, []frameID{{1, 2}}) {
						t.Errorf("session %d received %v; want the one frame", i, ids)
					}
				}
			}
			for _, s := range ss {
				m.Closed(s)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	a, b := m.Group("a"), m.Group("b")
	if a.Name() != "a" || a.Len() != 0 || len(a.Members()) != 0 {
		t.Fatalf("new group: Name() = %q, Len() = %d", a.Name(), a.Len())
	}
	s1, c1 := newSession(t, m, fl)
	s2, c2 := newSession(t, m, fl)
	s3, c3 := newSession(t, m, fl)

	a.Join(s1)
	if m.Group("a") != a {
		t.Fatal("Group returns a different group for the name of a group with members")
	}
	a.Join(s1) // no effect
	a.Join(s2)
	b.Join(s2)
	b.Join(s3)
	if a.Len() != 2 || !slices.Equal(a.Members(), []*Session{s1, s2}) {
		t.Fatalf("a.Members() = %v; want s1, s2", a.Members())
	}
	if !slices.Equal(b.Members(), []*Session{s2, s3}) {
		t.Fatalf("b.Members() = %v; want s2, s3", b.Members())
	}

	a.Broadcast(newFrame(0, 0, 20))
	b.Broadcast(newFrame(1, 0, 20))
	fl.drain()
	wantFrames := func(c *fakeConn, want ...frameID) {
		t.Helper()
		if got := parseFrames(t, c.output()); !slices.Equal(got, want) {
			t.Errorf("received %v; want %v", got, want)
		}
	}
	wantFrames(c1, frameID{0, 0})
	wantFrames(c2, frameID{0, 0}, frameID{1, 0})
	wantFrames(c3, frameID{1, 0})

	a.Leave(s2)
	a.Leave(s3) // not a member: no effect
	if !slices.Equal(a.Members(), []*Session{s1}) {
		t.Errorf("after Leave: a.Members() = %v; want s1", a.Members())
	}
	// Removal takes a session out of every group.
	m.Closed(s2)
	if !slices.Equal(b.Members(), []*Session{s3}) {
		t.Errorf("after Remove(s2): b.Members() = %v; want s3", b.Members())
	}
	// Joining a removed session is a no-op.
	a.Join(s2)
	b.Join(s2)
	if a.Len() != 1 || b.Len() != 1 {
		t.Errorf("Join of a removed session changed the groups: a %d, b %d members", a.Len(), b.Len())
	}
	a.Broadcast(newFrame(0, 1, 20))
	b.Broadcast(newFrame(1, 1, 20))
	fl.drain()
	wantFrames(c1, frameID{0, 0}, frameID{0, 1})
	wantFrames(c2, frameID{0, 0}, frameID{1, 0})
	wantFrames(c3, frameID{1, 0}, frameID{1, 1})

	m.Closed(s1)
	m.Closed(s3)
	if a.Len() != 0 || b.Len() != 0 {
		t.Errorf("groups not empty after every member was removed: a %d, b %d", a.Len(), b.Len())
	}
	a.Broadcast(newFrame(0, 2, 20)) // to nobody: released
	if n := fl.drain(); n != 0 {
		t.Errorf("a broadcast to an empty group ran %d tasks", n)
	}
}

// TestBroadcastOrderAcrossReceivers: several goroutines broadcast to
// sessions spread over two running loops; every receiver gets every frame
// once and each sender's frames in the order sent.
func TestBroadcastOrderAcrossReceivers(t *testing.T) {
	checkBuffers(t)
	const senders, perSender, receivers = 3, 200, 8
	m := newManager(t, Config{})
	fls := []*fakeLoop{newLoop(t).start(), newLoop(t).start()}
	g := m.Group("all")
	var ss []*Session
	var cs []*fakeConn
	for i := range receivers {
		s, c := newSession(t, m, fls[i%2])
		c.sockTake = 1 + i
		g.Join(s)
		ss, cs = append(ss, s), append(cs, c)
	}
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Go(func() {
			for seq := range perSender {
				b := newFrame(sender, seq, frameHeader+seq*13%900)
				if sender == 0 {
					g.Broadcast(b)
				} else {
					m.Broadcast(b)
				}
			}
		})
	}
	wg.Wait()
	for i, s := range ss {
		waitIdle(t, fls[i%2], s)
		checkPerSenderOrder(t, parseFrames(t, cs[i].output()), senders, perSender)
	}
	for i, s := range ss {
		remove(fls[i%2], m, s)
	}
}

// TestBroadcastWhileLoopPaused: frames broadcast while a running loop is
// held up wait in its queue (one item per broadcast, one task armed) and all
// go out, in order, once it resumes.
func TestBroadcastWhileLoopPaused(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t).start()
	var ss []*Session
	var cs []*fakeConn
	for range 5 {
		s, c := newSession(t, m, fl)
		ss, cs = append(ss, s), append(cs, c)
	}
	fl.pause()
	for seq := range 100 {
		m.Broadcast(newFrame(0, seq, 30+seq*7))
	}
	if got := len(fl.queuedItems()); got != 100 {
		t.Fatalf("%d items queued while the loop is paused; want 100", got)
	}
	if got := fl.executes.Load(); got != 1 {
		t.Errorf("%d Execute calls for 100 broadcasts while the loop is paused; want 1", got)
	}
	fl.resume()
	for i, s := range ss {
		waitIdle(t, fl, s)
		checkPerSenderOrder(t, parseFrames(t, cs[i].output()), 1, 100)
		if w := len(cs[i].writeLog()); w != 1 {
			t.Errorf("session %d: %d writes; want the 100 frames in one", i, w)
		}
	}
	for _, s := range ss {
		remove(fl, m, s)
	}
	if n := sendbuffer.Live(); n != 0 {
		t.Errorf("Live() = %d", n)
	}
}
