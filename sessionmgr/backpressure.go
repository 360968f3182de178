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
	// At HighWatermark pending bytes a session becomes unwritable: herald
	// stops handing it to gnet and holds its frames (shared buffers, not
	// copies; conflated by key). Below LowWatermark it is writable again.
	LowWatermark, HighWatermark int
	// MaxPending is the hard limit; Policy says what happens past it.
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
	if l.LowWatermark < 0 || l.LowWatermark > l.HighWatermark || l.HighWatermark > l.MaxPending || l.MaxPending <= 0 {
		return fmt.Errorf("%w: need 0 <= low (%d) <= high (%d) <= max pending (%d), max > 0",
			ErrBadConfig, l.LowWatermark, l.HighWatermark, l.MaxPending)
	}
	if l.Policy > Drop {
		return fmt.Errorf("%w: unknown slow policy %d", ErrBadConfig, l.Policy)
	}
	return nil
}

// Counters are a Manager's running totals, by reason. Read them with
// Manager.Counters.
type Counters struct {
	SlowDisconnects uint64 // sessions closed for passing MaxPending
	Dropped         uint64 // frames dropped under the Drop policy
	Conflated       uint64 // held frames replaced by a newer one with the same key
	Unsent          uint64 // frames still pending when their session closed
}

type counters struct {
	slowDisconnects, dropped, conflated, unsent atomic.Uint64
}

// entry is one frame pending for a session, with its conflation key.
type entry struct {
	b   *sendbuffer.Buffer
	key uint64
	at  int64 // when it was held, on the loop's clock (held.go)
}

// hold keeps e for the unwritable session s, taking a reference of its own,
// unless the hard limit says otherwise. On the loop.
func (s *Session) hold(e entry) {
	limits := &s.mgr.cfg.Limits
	e.at = s.loop.clock()
	if e.key != 0 {
		// An entry is stale once its frame was written (it is before
		// backlog[0]) or its slot holds another key.
		if i := s.keys[e.key] - s.backlogBase; i >= 0 && i < len(s.backlog) && s.backlog[i].key == e.key {
			old := s.backlog[i].b
			s.backlogBytes += e.b.Len() - old.Len()
			e.b.Retain()
			old.Release()
			// The newest state goes where the oldest stood: the latest
			// value, at the earliest place it could be sent.
			s.backlog[i] = e
			s.mgr.counts.conflated.Add(1)
			return
		}
	}
	if s.backlogBytes+s.outbound+e.b.Len() > limits.MaxPending {
		s.overLimit(e)
		return
	}
	if e.key != 0 {
		if s.keys == nil {
			s.keys = map[uint64]int{}
		}
		s.keys[e.key] = s.backlogBase + len(s.backlog)
	}
	e.b.Retain()
	s.backlog = append(s.backlog, e)
	s.backlogBytes += e.b.Len()
}

// dropWritten releases the first n held frames, which are written.
func (s *Session) dropWritten(n int) {
	for i := range s.backlog[:n] {
		s.backlog[i].b.Release()
	}
	k := copy(s.backlog, s.backlog[n:])
	clear(s.backlog[k:])
	s.backlog, s.backlogDone = s.backlog[:k], 0
	s.backlogBase += n
	if k == 0 {
		clear(s.keys)
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
	// Never sent: counted as unsent when the close lands.
	s.refused++
	s.refusedBytes += e.b.Len()
	if first {
		s.mgr.counts.slowDisconnects.Add(1)
		if s.mgr.cfg.OnSlow != nil {
			s.mgr.cfg.OnSlow(s, ErrSlowConsumer)
		}
		_ = s.CloseWith(ErrSlowConsumer)
	}
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
	s.publishHeld()
}

// releaseBacklog drops the session's held frames and returns how many there
// were. On the loop, or once the engine has stopped.
func (s *Session) releaseBacklog() (frames, bytes int) {
	frames, bytes = len(s.backlog)-s.backlogDone, s.backlogBytes
	for i, e := range s.backlog {
		e.b.Release()
		s.backlog[i] = entry{}
	}
	s.backlog, s.backlogBytes, s.backlogDone, s.backlogBase = s.backlog[:0], 0, 0, 0
	clear(s.keys)
	return frames, bytes
}
