package backplane

import (
	"time"

	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/rs/zerolog"
)

// reporter logs losses and gaps per group, summed over at most one line per
// group and reason every interval, so a NATS outage at full rate cannot
// flood the log; nothing is ever dropped from the sums. Safe from any
// goroutine.
type reporter struct {
	log   zerolog.Logger // fixed
	every time.Duration  // fixed

	mu      lockorder.Mutex // guards the fields below; never held while logging
	pending map[reportKey]uint64
	last    time.Time   // when pending was last emitted
	timer   *time.Timer // armed while pending waits for the interval
	stopped bool
}

// reportKey names one log line: what happened, to which group, why.
type reportKey struct {
	msg    string
	group  string
	reason string
}

const (
	msgLost      = "backplane: frames lost (not published)"
	msgGap       = "backplane: frames missing from a sender (sequence gap)"
	msgBack      = "backplane: a sender's sequence went back (frames repeated or sender reset)"
	msgMalformed = "backplane: malformed messages dropped"
)

// add records frames for key and emits now if the interval has passed.
func (r *reporter) add(msg, group string, reason error, frames uint64) {
	k := reportKey{msg: msg, group: group}
	if reason != nil {
		k.reason = reason.Error()
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		r.write(map[reportKey]uint64{k: frames})
		return
	}
	if r.pending == nil {
		r.pending = map[reportKey]uint64{}
	}
	r.pending[k] += frames
	var out map[reportKey]uint64
	if wait := r.every - time.Since(r.last); wait <= 0 {
		out = r.takeLocked()
	} else if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.emit)
	}
	r.mu.Unlock()
	r.write(out)
}

// emit writes what is pending (the timer's function).
func (r *reporter) emit() {
	r.mu.Lock()
	out := r.takeLocked()
	r.mu.Unlock()
	r.write(out)
}

// stop writes what is pending; later adds are written at once.
func (r *reporter) stop() {
	r.mu.Lock()
	r.stopped = true
	out := r.takeLocked()
	r.mu.Unlock()
	r.write(out)
}

func (r *reporter) takeLocked() map[reportKey]uint64 {
	out := r.pending
	r.pending = nil
	r.last = time.Now()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	return out
}

func (r *reporter) write(lines map[reportKey]uint64) {
	for k, frames := range lines {
		ev := r.log.Warn().Str("group", k.group).Uint64("frames", frames)
		if k.reason != "" {
			ev = ev.Str("reason", k.reason)
		}
		ev.Msg(k.msg)
	}
}
