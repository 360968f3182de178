package loadgen

// Outcome classifies one frame seen by a Tracker.
type Outcome uint8

// Outcomes of Tracker.Observe.
const (
	// InOrder: the frame is the next one expected from its sender.
	InOrder Outcome = iota
	// Ahead: the frame skips frames of its sender that were not seen yet;
	// they are missing until they arrive (then Late) or the run ends (lost).
	Ahead
	// Late: the frame fills a gap left earlier, so it arrived after a later
	// frame of its sender: reordered.
	Late
	// Duplicate: the frame was seen before.
	Duplicate
	// UnknownSender: the sender is out of the Tracker's range.
	UnknownSender
)

// span is a half-open range [lo, hi) of missing sequence numbers.
type span struct{ lo, hi uint32 }

// Tracker checks the frames one receiver gets from a fixed set of senders:
// each sender's frames must arrive exactly once, in sequence order, starting
// at sequence 0. It records gaps as ranges, so it allocates only when frames
// go missing; the in-order path does not allocate.
//
// A Tracker is owned by one goroutine; it is not safe for concurrent use.
type Tracker struct {
	next     []uint32          // next expected seq per sender
	holes    map[uint32][]span // gaps per sender, sorted; nil until the first gap
	received int64             // frames observed from known senders, duplicates included
	dups     int64
	late     int64
}

// NewTracker returns a Tracker for senders numbered 0 to senders-1.
func NewTracker(senders int) *Tracker {
	return &Tracker{next: make([]uint32, senders)}
}

// Observe records that frame seq of sender arrived and says how it fits.
func (t *Tracker) Observe(sender, seq uint32) Outcome {
	if int(sender) >= len(t.next) {
		return UnknownSender
	}
	t.received++
	nx := t.next[sender]
	switch {
	case seq == nx:
		t.next[sender] = nx + 1
		return InOrder
	case seq > nx:
		if t.holes == nil {
			t.holes = make(map[uint32][]span)
		}
		t.holes[sender] = append(t.holes[sender], span{nx, seq})
		t.next[sender] = seq + 1
		return Ahead
	}
	hs := t.holes[sender]
	for i, h := range hs {
		if seq < h.lo || seq >= h.hi {
			continue
		}
		switch {
		case h.hi-h.lo == 1:
			hs = append(hs[:i], hs[i+1:]...)
		case seq == h.lo:
			hs[i].lo++
		case seq == h.hi-1:
			hs[i].hi--
		default:
			hs = append(hs[:i+1], hs[i:]...)
			hs[i].hi = seq
			hs[i+1].lo = seq + 1
		}
		t.holes[sender] = hs
		t.late++
		return Late
	}
	t.dups++
	return Duplicate
}

// Unique returns the number of distinct frames observed.
func (t *Tracker) Unique() int64 { return t.received - t.dups }

// Verdict is a Tracker's account of one receiver.
type Verdict struct {
	// Received counts frames observed from known senders, duplicates
	// included.
	Received int64
	// Lost counts frames sent but never observed.
	Lost int64
	// Duplicated counts frames observed more than once (each extra copy).
	Duplicated int64
	// Reordered counts frames that arrived after a later frame of the same
	// sender.
	Reordered int64
}

// Verdict compares what was observed with what each sender sent: sent(s) is
// the number of frames sender s sent (sequences 0 to sent(s)-1).
func (t *Tracker) Verdict(sent func(sender int) uint32) Verdict {
	v := Verdict{Received: t.received, Duplicated: t.dups, Reordered: t.late}
	for s, nx := range t.next {
		for _, h := range t.holes[uint32(s)] {
			v.Lost += int64(h.hi - h.lo)
		}
		if n := sent(s); n > nx {
			v.Lost += int64(n - nx)
		}
	}
	return v
}
