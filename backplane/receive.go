package backplane

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// subscription is this node's subscription to one group.
type subscription struct {
	n     *NATS              // fixed
	group string             // fixed
	sub   *nats.Subscription // owned by the sending goroutine

	// Owned by the subscription's delivery goroutine (nats.go calls onMsg
	// serially for one subscription).
	next   map[uint64]uint64 // expected sequence per publishing node
	frames [][]byte          // scratch for decoded frames
}

// onMsg checks a received batch, counts what its sequence says is missing
// and delivers its frames.
func (s *subscription) onMsg(m *nats.Msg) {
	n := s.n
	n.gate.RLock()
	defer n.gate.RUnlock()
	if n.stopped {
		return
	}
	h, frames, err := decodeBatch(m.Data, s.frames[:0])
	s.frames = frames[:0]
	if err != nil {
		n.counts.malformed.Add(1)
		n.report.add(msgMalformed, s.group, err, 1)
		return
	}
	if h.node == n.node { // NoEcho makes this unreachable; never deliver our own
		clear(frames)
		return
	}
	// Sequence 1 starts a stream: a new sender, or one that forgot this
	// idle group (see pubState). Anything else must follow on.
	if want, ok := s.next[h.node]; ok && h.seq != want && h.seq != 1 {
		if h.seq > want {
			n.counts.gaps.Add(h.seq - want)
			n.report.add(msgGap, s.group, fmt.Errorf("from node %016x", h.node), h.seq-want)
		} else {
			n.report.add(msgBack, s.group, fmt.Errorf("from node %016x", h.node), want-h.seq)
		}
	}
	s.next[h.node] = h.seq + uint64(h.count)
	n.counts.received.Add(uint64(h.count))
	n.cfg.Deliver(s.group, frames)
	clear(frames)
}
