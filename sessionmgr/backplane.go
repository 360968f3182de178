package sessionmgr

import (
	"sync/atomic"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/sendbuffer"
)

// Rooms that span nodes (Config.Backplane).
//
// A broadcast is delivered to this node's members as without a backplane,
// and its bytes are published once to the backplane under the group's name
// (backplane.AllSessions for Manager.Broadcast). The frames are the
// codec's wire bytes, so every node of a room must use the same codec.
// Multicast and Send stay on this node, and so does a room called "" (its
// name is backplane.AllSessions, every session's).
//
// The Manager joins a group's name on the backplane while the group has
// members here (its count goes 0 -> 1 and back, in members.go), and
// backplane.AllSessions while it tracks any session, so a node receives
// only the traffic of groups it has members of. What arrives goes to
// Deliver, which copies each frame once into a SendBuffer and broadcasts it
// here without publishing it again. A node never gets its own frames back
// (the backplane's contract: NATS uses NoEcho and drops its own node id).
//
// Flushing: the backplane batches what is published between two Flushes
// into one message per group. A broadcast made inside a handler callback
// (between Session.EnterCallback and LeaveCallback, on any loop) is flushed
// when a callback ends, so the frames one read of a client makes travel
// together; a broadcast made while no callback runs anywhere (a ticker's
// goroutine) is flushed at once.

// relay is a Manager's flush state for its backplane.
type relay struct {
	callbacks atomic.Int32 // handler callbacks running now, on every loop
	dirty     atomic.Bool  // published since the last Flush
}

// publish hands p to the backplane for group's members on other nodes.
// A frame the backplane refuses is counted and logged there.
func (m *Manager) publish(group string, p []byte) {
	_ = m.bp.Publish(group, p)
	// Published before dirty is read: a flush that swaps dirty after this
	// load sees the frame; one that swapped before it leaves dirty clear
	// for the store.
	if !m.relay.dirty.Load() {
		m.relay.dirty.Store(true)
	}
	if m.relay.callbacks.Load() == 0 {
		m.flushBackplane()
	}
}

// flushBackplane flushes the backplane if anything was published since the
// last flush.
func (m *Manager) flushBackplane() {
	if m.relay.dirty.Load() && m.relay.dirty.Swap(false) {
		m.bp.Flush()
	}
}

// enterCallback and leaveCallback bracket a handler callback (Loop.enter,
// Loop.leave) when there is a backplane. The decrement comes before the
// flush, so a broadcast from outside any callback that saw this callback
// running is flushed here.
func (m *Manager) enterCallback() { m.relay.callbacks.Add(1) }

func (m *Manager) leaveCallback() {
	m.relay.callbacks.Add(-1)
	m.flushBackplane()
}

// Deliver is the backplane's Deliver for this Manager (see
// backplane.Deliver): it broadcasts frames, which other nodes published to
// group, to group's members on this node only, copying each frame once into
// a SendBuffer that all of them share. Frames for a group with no members
// here are dropped and counted (Counters.NoMembers). Any goroutine; it does
// not block.
func (m *Manager) Deliver(group string, frames [][]byte) {
	g := m.all
	if group != backplane.AllSessions {
		v, ok := m.groups.Load(group)
		if !ok {
			m.counts.noMembers.Add(uint64(len(frames)))
			return
		}
		g = v.(*Group)
	}
	if g.loops.Load() == nil {
		m.counts.noMembers.Add(uint64(len(frames)))
		return
	}
	for _, f := range frames {
		g.local(sendbuffer.Copy(f))
	}
}
