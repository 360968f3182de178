package sessionmgr

import (
	"cmp"
	"slices"
	"sync/atomic"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/herald-mmo/herald/sendbuffer"
)

// Membership.
//
// Every group (and the Manager's group of all sessions) keeps, per Loop, a
// list of its members on that loop, owned by the loop. Join and Leave never
// touch those lists: they update the group's counts under the group's own
// mutex and push a membership item onto the member's Loop, the same FIFO
// queue its frames go through. A broadcast pushes one item {buffer, group
// list} per loop that has members, read from an atomic snapshot that
// changes only when a loop's member count goes 0<->1, and the loop walks its
// list when it drains the item. So a change costs O(1) whatever the group's
// size (plus O(groups of the session) to find its place), changes to
// different groups take different mutexes, and broadcasts take none.
//
// What a broadcast racing a change guarantees follows from the FIFO:
//   - a session gets a broadcast pushed after its Join returned, and none
//     pushed after its Leave (or Remove) returned;
//   - a broadcast concurrent with the change reaches it or not, whole:
//     each recipient gets the frame once or not at all.
//
// Lock order: Session.gmu, then Group.mu, then Manager.mu, Loop.mu and the
// backplane's own (Join and Leave are called under Group.mu).

// Group is a named subset of a Manager's sessions, such as a room or the
// players near one spot. Its methods are safe from any goroutine. A session
// leaves all its groups when it is removed from the Manager.
//
// The Manager holds a group only while it has members: it registers the
// group at its first Join and frees it when its last member leaves, so
// short-lived rooms leave nothing behind. A *Group stays usable after that:
// it stands for its name. Join on it registers it again (or joins the group
// now registered under the name, if another handle did so meanwhile), and
// Broadcast, Len and Members on it reach the group registered under its
// name, if any.
type Group struct {
	name string   // fixed
	mgr  *Manager // fixed
	all  bool     // fixed: the Manager's group of every session (never freed, no members map)

	loops atomic.Pointer[[]*groupLoop] // the loops with members, for broadcasts
	dead  atomic.Bool                  // freed; stored under mu

	mu      lockorder.Mutex
	members map[*Session]struct{} // guarded by mu; nil for the all group
	n       int                   // members; guarded by mu
	byLoop  []*groupLoop          // guarded by mu: the loops that have had members
}

// groupLoop is a group's members on one Loop.
type groupLoop struct {
	g *Group // fixed
	l *Loop  // fixed
	n int    // members on l, counted when the change is made; guarded by g.mu

	// Owned by l: the members as of the last membership item l drained,
	// in no particular order.
	list []*Session
}

// slot is where a session stands in one of its groupLoops' lists. Owned
// by the session's loop.
type slot struct {
	gl *groupLoop
	i  int
}

// memberBatch is how many items a Loop's queue may hold before a
// membership item arms the flush task. Below it a join or leave needs no
// task of its own: it only has to be applied before the frames pushed after
// it, and those arm the task; the bound keeps the queue of a loop without
// traffic small.
const memberBatch = 64

// Membership item ops (item.op).
const (
	opFrame uint8 = iota // a frame for s, or a broadcast to gl's list
	opJoin               // s joins gl.list
	opLeave              // s leaves gl.list
)

func newGroup(m *Manager, name string, all bool) *Group {
	return &Group{name: name, mgr: m, all: all}
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Join adds s to the group. It has no effect if s is already a member or is
// not tracked by the group's Manager (not added, or removed).
func (g *Group) Join(s *Session) {
	if s.mgr != g.mgr || g.all {
		return
	}
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if !s.tracked || slices.ContainsFunc(s.groups, func(x *Group) bool { return x.name == g.name }) {
		return
	}
	if live := g.add(s); live != nil {
		s.groups = append(s.groups, live)
	}
}

// Leave removes s from the group. It has no effect if s is not a member.
// Nothing broadcast after Leave returns reaches s.
func (g *Group) Leave(s *Session) {
	if g.all {
		return
	}
	s.gmu.Lock()
	defer s.gmu.Unlock()
	// A session's groups are live (it is a member), and live groups have
	// distinct names: a freed handle finds the group of its name.
	i := slices.IndexFunc(s.groups, func(x *Group) bool { return x.name == g.name })
	if i < 0 {
		return
	}
	live := s.groups[i]
	s.groups = slices.Delete(s.groups, i, i+1)
	live.del(s)
}

// Len reports the number of members.
func (g *Group) Len() int {
	g = g.current()
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// Members returns the members, ordered by id, in a new slice. It costs
// O(members); broadcasts do not need it.
func (g *Group) Members() []*Session {
	g = g.current()
	if g == nil {
		return nil
	}
	if g.all {
		return g.mgr.Sessions()
	}
	g.mu.Lock()
	out := make([]*Session, 0, len(g.members))
	for s := range g.members {
		out = append(out, s)
	}
	g.mu.Unlock()
	sortByID(out)
	return out
}

func sortByID(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int { return cmp.Compare(a.id, b.id) })
}

// Broadcast sends b to every member and takes over the caller's reference
// (see Session.Send): one push and one reference per loop with members.
// With a backplane it also publishes b's bytes once for the group's members
// on the other nodes (see backplane.go), whether or not it has members here.
func (g *Group) Broadcast(b *sendbuffer.Buffer) {
	if g.mgr.bp != nil && g.spans() {
		g.mgr.publish(g.name, b.Bytes())
	}
	g.local(b)
}

// spans reports whether g's broadcasts cross the backplane: every group's
// but a room called "", whose name is the backplane's for every session
// (backplane.AllSessions), so it stays on its node.
func (g *Group) spans() bool { return g.all || g.name != backplane.AllSessions }

// local is Broadcast on this node only.
func (g *Group) local(b *sendbuffer.Buffer) {
	p := g.loops.Load()
	if p == nil && g.dead.Load() {
		if live := g.current(); live != nil && live != g {
			live.local(b)
			return
		}
	}
	if p == nil {
		b.Release()
		return
	}
	b.Handoff(len(*p))
	for _, gl := range *p {
		gl.l.push(item{b: b, gl: gl})
	}
}

// Multicast sends b to every member for which keep returns true and takes
// over the caller's reference. keep runs on the caller's goroutine; it costs
// one push per recipient. It stays on this node, even with a backplane: keep
// cannot run on another node's sessions.
func (g *Group) Multicast(b *sendbuffer.Buffer, keep func(*Session) bool) {
	for _, s := range g.Members() {
		if keep(s) {
			b.Retain()
			_ = s.Send(b)
		}
	}
	b.Release()
}

// current returns g, or if g was freed the group now registered under its
// name, or nil.
func (g *Group) current() *Group {
	if !g.dead.Load() {
		return g
	}
	if v, ok := g.mgr.groups.Load(g.name); ok {
		return v.(*Group)
	}
	return nil
}

// add makes s a member of g, or of the group now registered under g's name
// if g was freed, and returns the group s joined, or nil if s was a member
// already. Called with s.gmu held.
func (g *Group) add(s *Session) *Group {
	for {
		g.mu.Lock()
		if !g.dead.Load() {
			break
		}
		v, loaded := g.mgr.groups.LoadOrStore(g.name, g)
		if !loaded { // nobody took the name: g lives again
			g.dead.Store(false)
			break
		}
		g.mu.Unlock()
		g = v.(*Group)
	}
	if !g.all {
		if _, ok := g.members[s]; ok {
			g.mu.Unlock()
			return nil
		}
		if g.members == nil {
			g.members = map[*Session]struct{}{}
		}
		g.members[s] = struct{}{}
	}
	if g.n++; g.n == 1 && g.mgr.bp != nil && g.spans() {
		// Under mu, so the backplane's Joins and Leaves for the name pair
		// up as the count crosses zero. Join only queues; a name the
		// backplane refuses (too long) stays on this node, and its
		// broadcasts are counted lost there.
		_ = g.mgr.bp.Join(g.name)
	}
	gl := g.loopFor(s.loop)
	if gl.n++; gl.n == 1 {
		g.publish()
	}
	g.mu.Unlock()
	// Pushed under s.gmu, so s's joins and leaves reach its loop in order.
	s.loop.push(item{s: s, gl: gl, op: opJoin})
	return g
}

// del takes s out of g, a member, and frees g if s was the last. Called
// with s.gmu held.
func (g *Group) del(s *Session) {
	g.mu.Lock()
	delete(g.members, s)
	if g.n--; g.n == 0 && g.mgr.bp != nil && g.spans() {
		g.mgr.bp.Leave(g.name)
	}
	gl := g.loopFor(s.loop)
	if gl.n--; gl.n == 0 {
		g.publish()
	}
	if g.n == 0 && !g.all {
		g.dead.Store(true)
		g.mgr.groups.CompareAndDelete(g.name, g)
		g.byLoop, g.members = nil, nil
	}
	g.mu.Unlock()
	s.loop.push(item{s: s, gl: gl, op: opLeave})
}

// loopFor returns g's list for l, making it on first use. Called with g.mu
// held.
func (g *Group) loopFor(l *Loop) *groupLoop {
	for _, gl := range g.byLoop {
		if gl.l == l {
			return gl
		}
	}
	gl := &groupLoop{g: g, l: l}
	g.byLoop = append(g.byLoop, gl)
	return gl
}

// publish stores the snapshot of the loops with members. Called with g.mu
// held, when a loop's count goes 0<->1.
func (g *Group) publish() {
	var ls []*groupLoop
	for _, gl := range g.byLoop {
		if gl.n > 0 {
			ls = append(ls, gl)
		}
	}
	if ls == nil {
		g.loops.Store(nil)
		return
	}
	g.loops.Store(&ls)
}

// member applies a membership item and reports true, or reports false for
// a frame. On the loop, in queue order.
func (l *Loop) member(it item) bool {
	switch it.op {
	case opJoin:
		gl, s := it.gl, it.s
		s.slots = append(s.slots, slot{gl: gl, i: len(gl.list)})
		gl.list = append(gl.list, s)
	case opLeave:
		gl, s := it.gl, it.s
		k := slotOf(s, gl)
		i := s.slots[k].i
		s.slots = slices.Delete(s.slots, k, k+1)
		last := len(gl.list) - 1
		if i != last {
			moved := gl.list[last]
			gl.list[i] = moved
			moved.slots[slotOf(moved, gl)].i = i
		}
		gl.list[last] = nil
		gl.list = gl.list[:last]
		if c := cap(gl.list); c > 64 && last < c/4 { // give back what a crowd left
			gl.list = slices.Clone(gl.list)
		}
		if len(s.slots) == 0 {
			s.slots = nil
		}
	default:
		return false
	}
	return true
}

// slotOf returns the index of s's slot in gl. On the loop.
func slotOf(s *Session, gl *groupLoop) int {
	for k, sl := range s.slots {
		if sl.gl == gl {
			return k
		}
	}
	panic("herald/sessionmgr: membership item for a session not in the list")
}

// recipients returns the item's recipients on its loop: the session, or
// the group's list. On the loop, or once it has stopped.
func (it item) recipients() int {
	switch {
	case it.gl != nil:
		return len(it.gl.list)
	case it.s != nil:
		return 1
	}
	return 0
}

// drop discards an item that will never be drained: a frame's recipients
// are counted as unsent and its reference released; a membership item
// needs nothing. The engine has stopped.
func (it item) drop() {
	if it.op != opFrame {
		return
	}
	if n := it.recipients(); n > 0 {
		mgrOf(it).counts.unsent.Add(uint64(n))
	}
	it.b.Drop()
}

func mgrOf(it item) *Manager {
	if it.s != nil {
		return it.s.mgr
	}
	return it.gl.g.mgr
}
