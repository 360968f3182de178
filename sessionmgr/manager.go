package sessionmgr

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/herald-mmo/herald/backplane"
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
	// Backplane, if set, carries Manager.Broadcast and Group.Broadcast to
	// the other nodes' members and theirs to this node's (see
	// backplane.go). Its Deliver must call the Manager's Deliver. nil: one
	// node, and the broadcast path pays one nil check.
	Backplane backplane.Backplane
}

// DefaultConfig returns a Config with DefaultLimits and no hooks.
func DefaultConfig() Config { return Config{Limits: DefaultLimits()} }

// Manager tracks live sessions and broadcasts to them. Its methods are safe
// from any goroutine, except Closed, which belongs to the session's loop.
//
// Broadcasts take no lock: they push one item and one buffer reference per
// loop that has recipients and never copy the payload. Adding, removing,
// joining and leaving cost O(1) whatever the number of sessions (see
// members.go).
type Manager struct {
	cfg    Config              // fixed after construction
	bp     backplane.Backplane // cfg.Backplane; fixed
	nextID atomic.Uint64
	counts counters
	relay  relay // the backplane's flush state (backplane.go)

	all    *Group       // every tracked session; fixed
	groups sync.Map     // name -> *Group: the live groups
	n      atomic.Int64 // tracked sessions

	mu   lockorder.Mutex // guards byID
	byID map[uint64]*Session
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
	m := &Manager{cfg: cfg, bp: cfg.Backplane, byID: map[uint64]*Session{}}
	m.all = newGroup(m, "", true)
	return m, nil
}

// Counters returns the Manager's running totals.
func (m *Manager) Counters() Counters {
	return Counters{
		SlowDisconnects: m.counts.slowDisconnects.Load(),
		HeldCuts:        m.counts.heldCuts.Load(),
		Dropped:         m.counts.dropped.Load(),
		Conflated:       m.counts.conflated.Load(),
		Unsent:          m.counts.unsent.Load(),
		NoMembers:       m.counts.noMembers.Load(),
		Deflated:        m.counts.deflated.Load(),
	}
}

// NewSession makes a session for conn, written by loop (the Loop of the
// event loop conn belongs to), with a fresh id. It is not tracked until Add.
func (m *Manager) NewSession(conn Conn, loop *Loop) *Session {
	s := &Session{id: m.nextID.Add(1), conn: conn, remote: conn.RemoteAddr(), mgr: m, loop: loop}
	s.writable.Store(true)
	return s
}

// Add starts tracking s: it receives broadcasts and Get finds it. A session
// that was removed, or has closed, is not added.
func (m *Manager) Add(s *Session) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.tracked || s.removed || s.closed.Load() || s.mgr != m {
		return
	}
	s.tracked = true
	m.mu.Lock()
	m.byID[s.id] = s
	m.mu.Unlock()
	m.n.Add(1)
	m.all.add(s)
}

// Remove stops tracking s, takes it out of every group and closes its
// connection; nothing broadcast after Remove returns reaches s. When gnet
// reports the close, the server calls Closed on s's loop, which releases
// what s still has queued. Idempotent.
func (m *Manager) Remove(s *Session) {
	if m.untrack(s) {
		_ = s.Close() // closing: no further frame of s reaches the handler
	}
}

// Closed is the server's report that s's connection has closed, on s's
// event loop (or once the engine has stopped): it does what Remove does but
// close the connection, marks s closed and releases the frames held for
// it. It returns the frames and bytes its loop had taken for it and never
// written; frames still in the loop's queue are released and counted
// (Counters.Unsent) when the loop reaches them. Idempotent.
func (m *Manager) Closed(s *Session) (frames, bytes int) {
	m.untrack(s)
	return s.closeQueue()
}

// untrack does Remove's bookkeeping and reports whether s had not been
// removed before.
func (m *Manager) untrack(s *Session) (first bool) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	first = !s.removed
	s.removed = true
	if !s.tracked {
		return first
	}
	s.tracked = false
	for _, g := range s.groups {
		g.del(s)
	}
	s.groups = nil
	m.all.del(s)
	m.n.Add(-1)
	m.mu.Lock()
	delete(m.byID, s.id)
	m.mu.Unlock()
	return first
}

// Get returns the session with the given id, or nil.
func (m *Manager) Get(id uint64) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

// Len reports the number of tracked sessions.
func (m *Manager) Len() int { return int(m.n.Load()) }

// Sessions returns the tracked sessions, ordered by id, in a new slice. It
// costs O(sessions); broadcasts do not need it.
func (m *Manager) Sessions() []*Session {
	m.mu.Lock()
	out := make([]*Session, 0, len(m.byID))
	for _, s := range m.byID {
		out = append(out, s)
	}
	m.mu.Unlock()
	sortByID(out)
	return out
}

// Broadcast sends b to every tracked session and takes over the caller's
// reference (see Session.Send). With a backplane it reaches every session
// on every node (group backplane.AllSessions).
func (m *Manager) Broadcast(b *sendbuffer.Buffer) { m.all.Broadcast(b) }

// Multicast sends b to every tracked session for which keep returns true and
// takes over the caller's reference. keep runs on the caller's goroutine. It
// stays on this node: keep cannot run on another node's sessions.
func (m *Manager) Multicast(b *sendbuffer.Buffer, keep func(*Session) bool) {
	m.all.Multicast(b, keep)
}

// Group returns the group called name: the Manager's while it has members,
// else a new handle that registers the group on its first Join. The Manager
// holds a group only while it has members (see Group).
func (m *Manager) Group(name string) *Group {
	if v, ok := m.groups.Load(name); ok {
		return v.(*Group)
	}
	g := newGroup(m, name, false)
	g.dead.Store(true) // not registered yet
	return g
}
