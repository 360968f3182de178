package sessionmgr

import "slices"

// The server-wide bound on held frames (Config.MaxHeld), in the manner of
// Redis's maxmemory-clients: every session's held-frame cost is summed, and
// when a hold takes the sum past the bound the sessions holding the most are
// cut first, until what the others hold fits. A cut session refuses every
// later frame and is closed with ErrHeldLimit; its frames are released when
// its close lands on its loop.

// Held reports the memory the frames held for all sessions cost (see
// Session.Held). Any goroutine.
func (m *Manager) Held() int { return int(m.counts.held.Load()) }

// addHeld adds d to the held total; past MaxHeld it cuts the heaviest
// sessions. On s's loop.
func (s *Session) addHeld(d int) {
	m := s.mgr
	total := m.counts.held.Add(int64(d))
	if d <= 0 || m.cfg.MaxHeld <= 0 || total-m.counts.cutHeld.Load() <= int64(m.cfg.MaxHeld) {
		return
	}
	s.heldCost.Store(int64(s.backlogCost)) // this session's own figure is current
	m.cutHeaviest()
}

// cutHeaviest closes the sessions holding the most until the rest fit
// MaxHeld. One caller at a time; the others carry on (the next hold over
// the bound looks again). Any goroutine.
func (m *Manager) cutHeaviest() {
	if !m.counts.cutting.CompareAndSwap(false, true) {
		return
	}
	defer m.counts.cutting.Store(false)
	excess := m.counts.held.Load() - m.counts.cutHeld.Load() - int64(m.cfg.MaxHeld)
	if excess <= 0 {
		return
	}
	type holder struct {
		s    *Session
		held int64
	}
	var hs []holder
	for _, s := range m.Sessions() {
		if h := s.heldCost.Load(); h > 0 && !s.cut.Load() {
			hs = append(hs, holder{s, h})
		}
	}
	slices.SortFunc(hs, func(a, b holder) int { return int(b.held - a.held) })
	for _, h := range hs {
		if excess <= 0 {
			break
		}
		h.s.cutHeld = h.held
		h.s.cut.Store(true)
		m.counts.cutHeld.Add(h.held)
		m.counts.heldCuts.Add(1)
		_ = h.s.CloseWith(ErrHeldLimit)
		excess -= h.held
	}
}

// uncut takes a closed session's share out of cutHeld. On its loop, when
// its frames are released.
func (s *Session) uncut() {
	if s.cut.Load() {
		s.mgr.counts.cutHeld.Add(-s.cutHeld)
		s.cutHeld = 0
	}
}
