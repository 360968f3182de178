package sessionmgr

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/herald-mmo/herald/sendbuffer"
)

// Config holds a Manager's settings. Start from DefaultConfig.
type Config struct {
	// Limits bound each session's pending bytes.
	Limits Limits
	// MaxHeld, if positive, bounds the memory the frames held for all
	// sessions cost together (Session.Held summed): past it the sessions
	// holding the most are closed with ErrHeldLimit, counted in
	// Counters.HeldCuts. 0: no server-wide bound.
	MaxHeld int
	// OnSend, if set, is called on the session's event loop after each
	// writev of n bytes has been handed to the socket.
	OnSend func(s *Session, n int)
	// OnWritable, if set, is called on the session's event loop when it
	// crosses a watermark: false at the high one, true again at the low.
	OnWritable func(s *Session, writable bool)
	// OnSlow, if set, is called on the session's event loop the first time
	// the session passes MaxPending, with ErrSlowConsumer (it is being
	// disconnected) or ErrFramesDropped (Drop policy).
	OnSlow func(s *Session, reason error)
}

// DefaultConfig returns a Config with DefaultLimits and no hooks.
func DefaultConfig() Config { return Config{Limits: DefaultLimits()} }

// Manager tracks live sessions and broadcasts to them. All methods are safe
// from any goroutine.
//
// Broadcasts read a copy-on-write snapshot of the membership, grouped by
// event loop, so they take no lock, push one item and one buffer reference
// per loop that has recipients, and never copy the payload.
type Manager struct {
	cfg    Config // fixed after construction
	nextID atomic.Uint64
	counts counters

	all sessionSet // every added session

	mu     lockorder.Mutex // guards byID, groups and Session.groups
	byID   map[uint64]*Session
	groups map[string]*Group
}

// NewManager returns an empty Manager. It returns an error if cfg.Limits
// are invalid.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxHeld < 0 {
		return nil, fmt.Errorf("%w: max held %d < 0", ErrBadConfig, cfg.MaxHeld)
	}
	return &Manager{cfg: cfg, byID: map[uint64]*Session{}, groups: map[string]*Group{}}, nil
}

// Counters returns the Manager's running totals.
func (m *Manager) Counters() Counters {
	return Counters{
		SlowDisconnects: m.counts.slowDisconnects.Load(),
		HeldCuts:        m.counts.heldCuts.Load(),
		Dropped:         m.counts.dropped.Load(),
		Conflated:       m.counts.conflated.Load(),
		Unsent:          m.counts.unsent.Load(),
	}
}

// NewSession makes a session for conn, written by loop (the Loop of the
// event loop conn belongs to), with a fresh id. It is not tracked until Add.
func (m *Manager) NewSession(conn Conn, loop *Loop) *Session {
	s := &Session{id: m.nextID.Add(1), conn: conn, remote: conn.RemoteAddr(), mgr: m, loop: loop}
	s.writable.Store(true)
	return s
}

// Add starts tracking s: it receives broadcasts and Get finds it. A closed
// session is not added.
func (m *Manager) Add(s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[s.id]; ok || s.closed.Load() {
		return
	}
	m.byID[s.id] = s
	m.all.add(s)
}

// Remove stops tracking s, takes it out of every group, marks it closed and
// releases the frames held for it. It returns the frames and bytes its loop
// had taken for it and never written; frames still in the loop's queue are
// released and counted (Counters.Unsent) when the loop reaches them. The
// server calls it when gnet reports the connection closed, on the session's
// event loop (or after the engine has stopped).
func (m *Manager) Remove(s *Session) (frames, bytes int) {
	m.mu.Lock()
	if _, ok := m.byID[s.id]; ok {
		delete(m.byID, s.id)
		m.all.remove(s)
	}
	for _, g := range s.groups {
		g.set.remove(s)
	}
	s.groups = nil
	m.mu.Unlock()
	return s.closeQueue()
}

// Get returns the session with the given id, or nil.
func (m *Manager) Get(id uint64) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

// Len reports the number of tracked sessions.
func (m *Manager) Len() int { return len(m.all.load()) }

// Sessions returns a snapshot of the tracked sessions. The slice is shared:
// do not modify it.
func (m *Manager) Sessions() []*Session { return m.all.load() }

// Broadcast sends b to every tracked session and takes over the caller's
// reference (see Session.Send).
func (m *Manager) Broadcast(b *sendbuffer.Buffer) { m.all.broadcast(b) }

// Multicast sends b to every tracked session for which keep returns true and
// takes over the caller's reference. keep runs on the caller's goroutine.
func (m *Manager) Multicast(b *sendbuffer.Buffer, keep func(*Session) bool) {
	m.all.multicast(b, keep)
}

// Group returns the group called name, creating it on first use.
func (m *Manager) Group(name string) *Group {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[name]
	if g == nil {
		g = &Group{name: name, mgr: m}
		m.groups[name] = g
	}
	return g
}

// Group is a named subset of a Manager's sessions, such as a room or the
// players near one spot. Methods are safe from any goroutine. A session
// leaves all its groups when it is removed from the Manager.
type Group struct {
	name string   // fixed
	mgr  *Manager // fixed
	set  sessionSet
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Join adds s to the group. It has no effect if s is already a member or has
// been removed from the Manager.
func (g *Group) Join(s *Session) {
	g.mgr.mu.Lock()
	defer g.mgr.mu.Unlock()
	if _, ok := g.mgr.byID[s.id]; !ok || slices.Contains(s.groups, g) {
		return
	}
	s.groups = append(s.groups, g)
	g.set.add(s)
}

// Leave removes s from the group.
func (g *Group) Leave(s *Session) {
	g.mgr.mu.Lock()
	defer g.mgr.mu.Unlock()
	if i := slices.Index(s.groups, g); i >= 0 {
		s.groups = slices.Delete(s.groups, i, i+1)
		g.set.remove(s)
	}
}

// Len reports the number of members.
func (g *Group) Len() int { return len(g.set.load()) }

// Members returns a snapshot of the members. Do not modify it.
func (g *Group) Members() []*Session { return g.set.load() }

// Broadcast sends b to every member and takes over the caller's reference.
func (g *Group) Broadcast(b *sendbuffer.Buffer) { g.set.broadcast(b) }

// Multicast sends b to every member for which keep returns true and takes
// over the caller's reference.
func (g *Group) Multicast(b *sendbuffer.Buffer, keep func(*Session) bool) {
	g.set.multicast(b, keep)
}

// sessionSet is a copy-on-write membership list: writers (under the
// Manager's mu) replace the snapshot, broadcasters read it without a lock.
type sessionSet struct {
	snap atomic.Pointer[snapshot]
}

// snapshot is an immutable membership list, also grouped by event loop so
// that a broadcast is one push per loop.
type snapshot struct {
	all    []*Session
	byLoop []loopMembers
}

type loopMembers struct {
	loop     *Loop
	sessions []*Session
}

func (ss *sessionSet) load() []*Session {
	if p := ss.snap.Load(); p != nil {
		return p.all
	}
	return nil
}

// add and remove are called with the Manager's mu held.
func (ss *sessionSet) add(s *Session) {
	ss.store(append(slices.Clone(ss.load()), s))
}

func (ss *sessionSet) remove(s *Session) {
	cur := ss.load()
	if i := slices.Index(cur, s); i >= 0 {
		ss.store(slices.Delete(slices.Clone(cur), i, i+1))
	}
}

func (ss *sessionSet) store(all []*Session) {
	snap := &snapshot{all: all}
	for _, s := range all {
		i := slices.IndexFunc(snap.byLoop, func(m loopMembers) bool { return m.loop == s.loop })
		if i < 0 {
			snap.byLoop = append(snap.byLoop, loopMembers{loop: s.loop})
			i = len(snap.byLoop) - 1
		}
		snap.byLoop[i].sessions = append(snap.byLoop[i].sessions, s)
	}
	ss.snap.Store(snap)
}

// broadcast hands b to every member's loop, one push and one reference per
// loop, and takes over the caller's reference.
func (ss *sessionSet) broadcast(b *sendbuffer.Buffer) {
	if snap := ss.snap.Load(); snap != nil {
		b.Handoff(len(snap.byLoop))
		for _, m := range snap.byLoop {
			m.loop.push(item{b: b, to: m.sessions})
		}
		return
	}
	b.Release()
}

func (ss *sessionSet) multicast(b *sendbuffer.Buffer, keep func(*Session) bool) {
	for _, s := range ss.load() {
		if keep(s) {
			b.Retain()
			_ = s.Send(b)
		}
	}
	b.Release()
}
