package sessionmgr

import (
	"fmt"
	"sync/atomic"

	"github.com/herald-mmo/herald/sendbuffer"
)

// SlowPolicy says what happens to a session whose pending bytes would pass
// Limits.MaxPending.
type SlowPolicy uint8

const (
	// Disconnect closes the slow session with ErrSlowConsumer (the
	// default, as NATS does).
	Disconnect SlowPolicy = iota
	// Drop drops new frames for the slow session and keeps it connected,
	// for lossy updates such as positions.
	Drop
)

// String returns "disconnect" or "drop".
func (p SlowPolicy) String() string {
	if p == Drop {
		return "drop"
	}
	return "disconnect"
}

// ParseSlowPolicy parses "disconnect" or "drop".
func ParseSlowPolicy(s string) (SlowPolicy, error) {
	switch s {
	case "disconnect":
		return Disconnect, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("%w: slow policy %q (want disconnect or drop)", ErrBadConfig, s)
}

// Limits bound what a session may have pending: frames herald holds for it
// plus bytes in gnet's outbound buffer (what the peer has not read yet).
type Limits struct {
	// At HighWatermark bytes in gnet's outbound buffer a session becomes
	// unwritable: herald stops handing it to gnet and holds its frames
	// (shared buffers, not copies; conflated by key). At LowWatermark or
	// below it is writable again. 0 <= LowWatermark <= HighWatermark, and
	// HighWatermark > 0.
	LowWatermark, HighWatermark int
	// MaxPending is the hard limit on what a session costs: gnet's outbound
	// bytes plus the memory of the frames herald holds for it, each counted
	// at its buffer's size class plus the buffer header and queue entry
	// (so eight-byte frames count 176 bytes each, not 8). Policy says what
	// happens to a frame that would pass it. MaxPending >= HighWatermark.
	MaxPending int
	Policy     SlowPolicy
}

// DefaultLimits returns the limits herald uses when none are given:
// watermarks of 64 and 256 KiB and a 4 MiB hard limit with Disconnect.
// BENCHMARKS.md has the measurements behind them.
func DefaultLimits() Limits {
	return Limits{LowWatermark: 64 << 10, HighWatermark: 256 << 10, MaxPending: 4 << 20, Policy: Disconnect}
}

// Validate reports whether the limits are usable.
func (l Limits) Validate() error {
	if l.LowWatermark < 0 || l.LowWatermark > l.HighWatermark || l.HighWatermark <= 0 || l.HighWatermark > l.MaxPending {
		return fmt.Errorf("%w: need 0 <= low (%d) <= high (%d) <= max pending (%d), high > 0",
			ErrBadConfig, l.LowWatermark, l.HighWatermark, l.MaxPending)
	}
	if l.Policy > Drop {
		return fmt.Errorf("%w: unknown slow policy %d", ErrBadConfig, l.Policy)
	}
	return nil
}

// What a held frame costs besides its buffer's size class: the Buffer
// header (a 64-byte allocation), its backlog entry and hold time (24 bytes,
// up to 48 with the slices' growth), and for a keyed frame its conflation
// map slot.
// tests/slow_test.go checks the heap against these.
const (
	heldFrameCost = 64 + 48
	heldKeyCost   = 48
)

// cost is what holding e costs a session, counted against MaxPending.
func (e entry) cost() int {
	c := e.b.Cap() + heldFrameCost
	if e.key != 0 {
		c += heldKeyCost
	}
	return c
}

// Counters are a Manager's running totals, by reason. Read them with
// Manager.Counters.
type Counters struct {
	SlowDisconnects uint64 // sessions closed for passing MaxPending
	HeldCuts        uint64 // sessions closed by the server-wide Config.MaxHeld
	Dropped         uint64 // frames dropped under the Drop policy
	Conflated       uint64 // held frames replaced by a newer one with the same key
	Unsent          uint64 // frames still pending when their session closed
	// NoMembers counts frames the backplane delivered for a group with no
	// members on this node (it left the group while they were on the way).
	NoMembers uint64
	// Deflated counts the frames compressed for permessage-deflate
	// WebSocket sessions (Session.SetDeflate): one per broadcast frame
	// whatever the number of such recipients, and one per large Reply.
	Deflated uint64
}

type counters struct {
	slowDisconnects, heldCuts, dropped, conflated, unsent atomic.Uint64
	noMembers, deflated                                   atomic.Uint64

	held    atomic.Int64 // every session's backlogCost (Config.MaxHeld bounds it)
	cutHeld atomic.Int64 // of held: what cut sessions hold until their close lands
	cutting atomic.Bool  // cutHeaviest runs
}

// entry is one frame pending for a session, with its conflation key.
type entry struct {
	b   *sendbuffer.Buffer
	key uint64
}

// hold keeps e for the unwritable session s, taking a reference of its own,
// unless the hard limit says otherwise. On the loop.
func (s *Session) hold(e entry) {
	if s.refused > 0 || s.cut.Load() {
		s.refuse(e.b) // nothing after a refused frame is written: no hole
		return
	}
	if e.key != 0 {
		// An entry is stale once its frame was written (it is before
		// backlog[0]) or its slot holds another key.
		if i := s.keys[e.key] - s.backlogBase; i >= 0 && i < len(s.backlog) && s.backlog[i].key == e.key {
			old := s.backlog[i]
			d := e.cost() - old.cost()
			s.backlogBytes += s.size(e.b) - s.size(old.b)
			s.backlogCost += d
			s.addHeld(d)
			e.b.Share(1)
			old.b.Drop()
			// The newest state goes where the oldest stood: the latest
			// value, at the earliest place it could be sent.
			s.backlog[i] = e
			s.mgr.counts.conflated.Add(1)
			return
		}
	}
	c := e.cost()
	if max := s.mgr.cfg.Limits.MaxPending; s.backlogCost+s.outbound+c > max {
		// Decide on what the peer has read by now, not at the last look.
		if s.outbound = s.conn.OutboundBuffered(); s.backlogCost+s.outbound+c > max {
			s.overLimit(e)
			return
		}
	}
	if e.key != 0 {
		if s.keys == nil {
			s.keys = map[uint64]int{}
		}
		s.keys[e.key] = s.backlogBase + len(s.backlog)
	}
	e.b.Share(1)
	s.backlog = append(s.backlog, e)
	s.backlogAt = append(s.backlogAt, s.loop.clock())
	s.backlogBytes += s.size(e.b)
	s.backlogCost += c
	s.addHeld(c)
}

// dropWritten releases the first n held frames, which are written, and
// forgets their conflation keys.
func (s *Session) dropWritten(n int) {
	freed := 0
	for i, e := range s.backlog[:n] {
		if e.key != 0 && s.keys[e.key] == s.backlogBase+i {
			delete(s.keys, e.key)
		}
		freed += e.cost()
		e.b.Drop()
	}
	s.backlogCost -= freed
	s.addHeld(-freed)
	k := copy(s.backlog, s.backlog[n:])
	clear(s.backlog[k:])
	copy(s.backlogAt, s.backlogAt[n:])
	s.backlog, s.backlogAt, s.backlogDone = s.backlog[:k], s.backlogAt[:k], 0
	s.backlogBase += n
	if k == 0 {
		s.backlogBase = 0
	}
}

// overLimit applies the slow policy to a frame that would pass MaxPending.
func (s *Session) overLimit(e entry) {
	first := !s.slow
	s.slow = true
	if s.mgr.cfg.Limits.Policy == Drop {
		s.mgr.counts.dropped.Add(1)
		s.dropped.Add(1)
		if first && s.mgr.cfg.OnSlow != nil {
			s.mgr.cfg.OnSlow(s, ErrFramesDropped)
		}
		return
	}
	s.refuse(e.b)
	if first {
		s.mgr.counts.slowDisconnects.Add(1)
		if s.mgr.cfg.OnSlow != nil {
			s.mgr.cfg.OnSlow(s, ErrSlowConsumer)
		}
		_ = s.CloseWith(ErrSlowConsumer)
	}
}

// refuse counts b as never sent to s, which is being closed (slow
// consumer, or cut by MaxHeld): it is counted as unsent when the close
// lands. s stays unwritable until then, so every later frame reaches hold,
// which refuses it too (enqueue's fast path has no check of its own): no
// hole before the close.
func (s *Session) refuse(b *sendbuffer.Buffer) {
	s.refused++
	s.refusedBytes += s.size(b)
	s.writable.Store(false)
}

// setWritable flips the session's writability and tells OnWritable.
func (s *Session) setWritable(w bool) {
	if s.writable.Load() == w {
		return
	}
	s.writable.Store(w)
	if s.mgr.cfg.OnWritable != nil {
		s.mgr.cfg.OnWritable(s, w)
	}
}

// publish makes the loop's view of the pending bytes readable elsewhere.
// Only the loop stores queued, so it stores only a change.
func (s *Session) publish() {
	if v := int64(s.pendingBytes + s.backlogBytes + s.outbound); s.queued.Load() != v {
		s.queued.Store(v)
	}
	if v := int64(s.backlogCost); s.heldCost.Load() != v {
		s.heldCost.Store(v)
	}
	s.publishHeld()
}

// releaseBacklog drops the session's held frames and returns how many there
// were. On the loop, or once the engine has stopped.
func (s *Session) releaseBacklog() (frames, bytes int) {
	frames, bytes = len(s.backlog)-s.backlogDone, s.backlogBytes
	for i, e := range s.backlog {
		e.b.Drop()
		s.backlog[i] = entry{}
	}
	s.addHeld(-s.backlogCost)
	s.uncut()
	s.backlog, s.backlogAt = s.backlog[:0], s.backlogAt[:0]
	s.backlogBytes, s.backlogDone, s.backlogBase, s.backlogCost = 0, 0, 0, 0
	s.keys = nil
	s.heldCost.Store(0)
	return frames, bytes
}
