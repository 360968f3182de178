package sessionmgr

import (
	"sync/atomic"
	"time"
)

// heldStats is what a session's loop publishes about the frames it holds
// for the session, for Held. Written by the loop, read by any goroutine.
type heldStats struct {
	frames atomic.Int64
	oldest atomic.Int64 // when the oldest held frame was held (unix nanoseconds), or 0
}

// Held reports how many frames herald holds for the session (while it is
// unwritable, see Limits) and when the oldest of them was held, as of its
// loop's last look; zero values when it holds none. The time comes from the
// server's coarse clock (Loop.SetClock), so it is as precise as the
// server's tick. Any goroutine.
func (s *Session) Held() (frames int, since time.Time) {
	n := s.held.frames.Load()
	if n == 0 {
		return 0, time.Time{}
	}
	return int(n), time.Unix(0, s.held.oldest.Load())
}

// publishHeld makes the held frames readable elsewhere; only a change is
// stored. On the loop, from publish.
func (s *Session) publishHeld() {
	n := int64(len(s.backlog) - s.backlogDone)
	if s.held.frames.Load() == n {
		if n == 0 || s.held.oldest.Load() == s.backlogAt[s.backlogDone] {
			return
		}
	}
	var at int64
	if n > 0 {
		at = s.backlogAt[s.backlogDone]
	}
	s.held.oldest.Store(at)
	s.held.frames.Store(n)
}

// SetClock sets the Loop's clock, which stamps the frames it holds; the
// server calls it every tick with its coarse clock (unix nanoseconds). Any
// goroutine.
func (l *Loop) SetClock(now int64) { l.stats.now.Store(now) }

// clock returns the Loop's clock, or the time now if it was never set.
func (l *Loop) clock() int64 {
	if now := l.stats.now.Load(); now != 0 {
		return now
	}
	return time.Now().UnixNano()
}
