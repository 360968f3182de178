package handler

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/herald-mmo/herald/sessionmgr"
)

// SessionInfo is what one session holds, for finding who holds the memory.
type SessionInfo struct {
	ID      uint64 `json:"id"`
	Remote  string `json:"remote"`
	Pending int    `json:"pending_bytes"` // held by herald plus gnet's outbound buffer (Session.Pending)
	Held    int    `json:"held_frames"`   // frames herald holds while the session is unwritable
	// HeldBytes is the memory those frames cost (Session.HeldCost): buffer
	// size classes plus per-frame bookkeeping, as MaxPending counts them.
	HeldBytes int `json:"held_bytes"`
	// OldestHeld is how long the oldest held frame has been held, on the
	// server's coarse clock (as precise as WithTick); 0 when none is.
	OldestHeld time.Duration `json:"-"`
	OldestAge  float64       `json:"oldest_held_age_seconds"` // OldestHeld in seconds
	Writable   bool          `json:"writable"`
}

// TopSessions returns the n open sessions holding the most memory, the
// most first: by the cost of their held frames, then by pending bytes (all of them for n <= 0). The figures are each session's
// loop's last look. Safe from any goroutine; it walks every session, so it
// is for an operator's request, not a hot path.
func (srv *Server) TopSessions(n int) []SessionInfo {
	now := srv.now.Load()
	all := srv.mgr.Sessions()
	out := make([]SessionInfo, 0, len(all))
	for _, s := range all {
		out = append(out, sessionInfo(s, now))
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(cmp.Compare(b.HeldBytes, a.HeldBytes), cmp.Compare(b.Pending, a.Pending),
			cmp.Compare(b.OldestHeld, a.OldestHeld), cmp.Compare(a.ID, b.ID))
	})
	if n > 0 && n < len(out) {
		out = out[:n]
	}
	return out
}

func sessionInfo(s *sessionmgr.Session, now int64) SessionInfo {
	info := SessionInfo{ID: s.ID(), Pending: s.Pending(), HeldBytes: s.HeldCost(), Writable: s.Writable()}
	if a := s.RemoteAddr(); a != nil {
		info.Remote = a.String()
	}
	frames, since := s.Held()
	if frames > 0 {
		info.Held = frames
		info.OldestHeld = max(time.Duration(now-since.UnixNano()), 0)
		info.OldestAge = info.OldestHeld.Seconds()
	}
	return info
}

// oldestHeld returns the age of the oldest frame any session holds.
func (srv *Server) oldestHeld(sessions []*sessionmgr.Session) time.Duration {
	now := srv.now.Load()
	var oldest time.Duration
	for _, s := range sessions {
		if frames, since := s.Held(); frames > 0 {
			oldest = max(oldest, time.Duration(now-since.UnixNano()))
		}
	}
	return oldest
}

// SessionsHandler serves TopSessions as JSON: GET ?top=N (default 20; 0 for
// every session). Mount it beside /metrics, at /debug/herald/sessions; it
// shows remote addresses, so keep it off public listeners.
func (srv *Server) SessionsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		top := 20
		if q := r.URL.Query().Get("top"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 0 {
				http.Error(w, "herald/handler: top must be a number >= 0", http.StatusBadRequest)
				return
			}
			top = n
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Sessions int           `json:"sessions"`
			Top      []SessionInfo `json:"top"`
		}{srv.mgr.Len(), srv.TopSessions(top)})
	})
}

// clockLoops gives every Loop the coarse clock, which stamps held frames.
func (srv *Server) clockLoops(now int64) {
	srv.loops.Range(func(_, l any) bool {
		l.(*sessionmgr.Loop).SetClock(now)
		return true
	})
}
