package backplane

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-mmo/herald/internal/lockorder"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Config configures a NATS backplane. Start from DefaultConfig.
type Config struct {
	// URL is the NATS server (or comma-separated servers) to connect to.
	URL string
	// Name names this node in NATS (connection name) and in logs.
	Name string
	// Deliver receives the other nodes' frames. Required.
	Deliver Deliver
	// Logger gets disconnects, reconnects, losses and gaps (per group,
	// at most one line per group and reason every LogEvery).
	Logger zerolog.Logger
	// LogEvery bounds how often losses and gaps of one group are logged;
	// the counts in between are summed into the next line.
	LogEvery time.Duration
	// MaxBatch bounds one NATS message (a batch of frames) in bytes. It is
	// clamped to the server's max_payload.
	MaxBatch int
	// MaxQueued bounds the bytes this node holds for NATS: batches being
	// filled plus those waiting for the sending goroutine. Past it Publish
	// drops frames (ErrQueueFull).
	MaxQueued int
	// ReconnectBuf bounds, in bytes, what nats.go buffers while it
	// reconnects (nats.ReconnectBufSize); past it batches are lost
	// (ErrReconnectBuf).
	ReconnectBuf int
	// ReconnectWait is the pause between reconnect attempts. The backplane
	// reconnects forever.
	ReconnectWait time.Duration
	// PendingBytes bounds, per subscribed group, the received bytes that
	// wait for Deliver (nats.go's pending limit). Past it nats.go drops
	// messages (logged as a slow consumer), which this node counts as Gaps
	// when the next batch arrives.
	PendingBytes int
	// CloseTimeout bounds how long Close waits for queued batches to reach
	// the server (the sender's last writes, then a NATS flush round trip).
	CloseTimeout time.Duration
	// Options are extra nats.go options, applied after the backplane's.
	Options []nats.Option
}

// DefaultConfig returns a Config for a local NATS server with batches of
// 64 KiB, 8 MiB queued, 8 MiB of reconnect buffer and 16 MiB of pending
// received bytes per group. Set Deliver.
func DefaultConfig() Config {
	return Config{
		URL:           nats.DefaultURL,
		Name:          "herald",
		Logger:        zerolog.Nop(),
		LogEvery:      time.Second,
		MaxBatch:      64 << 10,
		MaxQueued:     8 << 20,
		ReconnectBuf:  8 << 20,
		ReconnectWait: 250 * time.Millisecond,
		PendingBytes:  16 << 20,
		CloseTimeout:  2 * time.Second,
	}
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is empty", ErrBadConfig)
	case c.Deliver == nil:
		return fmt.Errorf("%w: Deliver is nil", ErrBadConfig)
	case c.MaxBatch < batchHeaderLen+frameHeaderLen+1:
		return fmt.Errorf("%w: MaxBatch %d is too small", ErrBadConfig, c.MaxBatch)
	case c.MaxQueued < c.MaxBatch:
		return fmt.Errorf("%w: MaxQueued %d is smaller than MaxBatch %d", ErrBadConfig, c.MaxQueued, c.MaxBatch)
	case c.ReconnectBuf <= 0 || c.PendingBytes <= 0:
		return fmt.Errorf("%w: ReconnectBuf and PendingBytes must be positive", ErrBadConfig)
	case c.ReconnectWait <= 0 || c.LogEvery <= 0 || c.CloseTimeout < 0:
		return fmt.Errorf("%w: ReconnectWait and LogEvery must be positive, CloseTimeout not negative", ErrBadConfig)
	}
	return nil
}

// NATS is the backplane over a NATS connection: one subject per group
// (subjectPrefix and the escaped name), subscribed while the node has
// members of the group; batches of length-prefixed frames with a sequence
// per publishing node and subject; NoEcho, so the server never returns a
// node's own batches.
//
// Publish and Flush only copy and queue under a mutex; one sending goroutine
// makes every nats.go call that may touch the socket (publish, subscribe,
// unsubscribe), so a slow or absent server never blocks the caller: it fills
// the queue, and what does not fit is counted as Lost.
//
// Costs: each subscribed group is a nats.go subscription with its own
// delivery goroutine, up to PendingBytes of received batches and one
// expected-sequence entry per node that published to it; each group
// published to in the last minute or two keeps its subject and sequence.
type NATS struct {
	cfg      Config     // fixed
	node     uint64     // fixed: this node's id on the wire, random
	nc       *nats.Conn // fixed after NewNATS
	maxBatch int        // fixed: cfg.MaxBatch clamped to max_payload
	kick     chan struct{}
	done     chan struct{} // closed by Close
	exited   chan struct{} // closed when the sending goroutine returns
	counts   counters
	report   reporter

	mu     lockorder.Mutex // guards the fields below
	closed bool
	open   map[string]*batch // the batch Publish fills, per group
	ready  []*batch          // sealed batches for the sender, in order
	queued int               // bytes in open and ready
	refs   map[string]int    // Joins minus Leaves, per group with refs > 0
	dirty  map[string]bool   // groups whose refs crossed zero since the sender looked

	// Owned by the sending goroutine.
	pubs map[string]*pubState
	subs map[string]*subscription

	gate    sync.RWMutex // deliveries and connection callbacks hold it to read; Close to set stopped
	stopped bool         // guarded by gate
}

// counters are NATS's running totals; atomics, written from any goroutine.
type counters struct {
	published, batches, lost, received, gaps, malformed atomic.Uint64
	disconnects, reconnects                             atomic.Uint64
	groups                                              atomic.Int64
}

// pubState is what the sender keeps per group it publishes to. A group
// not published to for between one and two pubIdle periods is forgotten;
// its next batch starts a new stream at sequence 1, which receivers take as
// a restart, not a gap. So the sender's memory follows the groups in use,
// not every group ever published to.
type pubState struct {
	subject string
	next    uint64 // sequence number of the next frame; the first is 1
	used    bool   // published to since the last sweep
}

// pubIdle is how often the sender forgets idle groups.
const pubIdle = time.Minute

var batchPool = sync.Pool{New: func() any { return new(batch) }}

// NewNATS connects to cfg.URL and returns a running backplane. The first
// connection must succeed; after that it reconnects forever.
func NewNATS(cfg Config) (*NATS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &NATS{
		cfg:    cfg,
		node:   rand.Uint64() | 1,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		report: reporter{log: cfg.Logger, every: cfg.LogEvery},
		open:   map[string]*batch{},
		refs:   map[string]int{},
		dirty:  map[string]bool{},
		pubs:   map[string]*pubState{},
		subs:   map[string]*subscription{},
	}
	log := cfg.Logger.With().Str("node", cfg.Name).Logger()
	n.cfg.Logger = log
	n.report.log = log
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectBufSize(cfg.ReconnectBuf),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.counts.disconnects.Add(1)
			n.callback(func() { log.Warn().Err(err).Msg("backplane: NATS disconnected; reconnecting") })
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.counts.reconnects.Add(1)
			n.callback(func() { log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("backplane: NATS reconnected") })
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			n.callback(func() {
				ev := log.Warn().Err(err)
				if sub != nil {
					ev = ev.Str("subject", sub.Subject)
				}
				ev.Msg("backplane: NATS error")
			})
		}),
	}
	nc, err := nats.Connect(cfg.URL, append(opts, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("herald/backplane: connect %s: %w", cfg.URL, err)
	}
	n.nc = nc
	n.maxBatch = cfg.MaxBatch
	if mp := int(nc.MaxPayload()); mp > 0 && mp < n.maxBatch {
		n.maxBatch = mp
	}
	go n.run()
	return n, nil
}

// callback runs f unless Close has stopped callbacks.
func (n *NATS) callback(f func()) {
	n.gate.RLock()
	defer n.gate.RUnlock()
	if !n.stopped {
		f()
	}
}

// Node returns this node's id as it appears on the wire.
func (n *NATS) Node() uint64 { return n.node }

// MaxFrame returns the largest frame Publish accepts.
func (n *NATS) MaxFrame() int { return n.maxBatch - batchHeaderLen - frameHeaderLen }

// Publish copies frame into group's open batch. See Backplane.Publish.
func (n *NATS) Publish(group string, frame []byte) error {
	size := frameHeaderLen + len(frame)
	var err error
	switch {
	case len(group) > MaxGroupName:
		err = ErrGroupName
	case batchHeaderLen+size > n.maxBatch:
		err = ErrFrameTooLarge
	}
	full := false
	if err == nil {
		n.mu.Lock()
		b := n.open[group]
		if b != nil && len(b.buf)+size > n.maxBatch {
			n.ready = append(n.ready, b)
			delete(n.open, group)
			b, full = nil, true
		}
		cost := size
		if b == nil {
			cost += batchHeaderLen
		}
		switch {
		case n.closed:
			err = ErrClosed
		case n.queued+cost > n.cfg.MaxQueued:
			err = ErrQueueFull
		default:
			if b == nil {
				b = batchPool.Get().(*batch)
				b.reset(group)
				n.open[group] = b
			}
			b.add(frame)
			n.queued += cost
		}
		n.mu.Unlock()
	}
	if full {
		n.signal()
	}
	if err != nil {
		n.lose(group, 1, err)
	}
	return err
}

// Flush hands every open batch to the sender. See Backplane.Flush.
func (n *NATS) Flush() {
	n.mu.Lock()
	if len(n.open) == 0 {
		n.mu.Unlock()
		return
	}
	for _, b := range n.open {
		n.ready = append(n.ready, b)
	}
	clear(n.open)
	n.mu.Unlock()
	n.signal()
}

// Join counts one more local reason to receive group. See Backplane.Join.
func (n *NATS) Join(group string) error {
	if len(group) > MaxGroupName {
		return ErrGroupName
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.refs[group]++
	first := n.refs[group] == 1
	if first {
		n.dirty[group] = true
	}
	n.mu.Unlock()
	if first {
		n.signal()
	}
	return nil
}

// Leave undoes one Join. See Backplane.Leave.
func (n *NATS) Leave(group string) {
	n.mu.Lock()
	refs, ok := n.refs[group]
	last := ok && refs == 1
	switch {
	case last:
		delete(n.refs, group)
		n.dirty[group] = true
	case ok:
		n.refs[group] = refs - 1
	}
	n.mu.Unlock()
	if last {
		n.signal()
	}
}

// Counters returns the running totals.
func (n *NATS) Counters() Counters {
	c := &n.counts
	return Counters{
		Published:   c.published.Load(),
		Batches:     c.batches.Load(),
		Lost:        c.lost.Load(),
		Received:    c.received.Load(),
		Gaps:        c.gaps.Load(),
		Malformed:   c.malformed.Load(),
		Disconnects: c.disconnects.Load(),
		Reconnects:  c.reconnects.Load(),
		Groups:      c.groups.Load(),
	}
}

// Close sends what is queued (waiting at most CloseTimeout for the server
// to have it), stops deliveries and disconnects. Later calls return
// ErrClosed.
func (n *NATS) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.closed = true
	for _, b := range n.open {
		n.ready = append(n.ready, b)
	}
	clear(n.open)
	n.mu.Unlock()
	close(n.done)
	deadline := time.Now().Add(n.cfg.CloseTimeout)
	timer := time.NewTimer(n.cfg.CloseTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-n.exited:
		if wait := time.Until(deadline); wait > 0 && n.nc.IsConnected() {
			err = n.nc.FlushTimeout(wait)
		}
	case <-timer.C:
		err = nats.ErrTimeout // the sender is stuck in a write; closing the connection frees it
	}
	if err != nil {
		err = fmt.Errorf("herald/backplane: close: queued batches may not have reached the server: %w", err)
	}
	n.gate.Lock()
	n.stopped = true
	n.gate.Unlock()
	n.nc.Close()
	<-n.exited
	n.counts.groups.Store(0)
	n.report.stop()
	return err
}

// signal wakes the sender without blocking.
func (n *NATS) signal() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// lose counts and reports frames of group that will not be published.
func (n *NATS) lose(group string, frames int, reason error) {
	n.counts.lost.Add(uint64(frames))
	n.report.add(msgLost, group, reason, uint64(frames))
}

// run is the sending goroutine: it applies subscription changes, then
// publishes ready batches in order, until Close.
func (n *NATS) run() {
	defer close(n.exited)
	var ready []*batch
	var changes []string
	swept := time.Now()
	for {
		closing := false
		select {
		case <-n.kick:
		case <-n.done:
			closing = true
		}
		n.mu.Lock()
		ready, n.ready = n.ready, ready[:0]
		for g := range n.dirty {
			changes = append(changes, g)
		}
		clear(n.dirty)
		n.mu.Unlock()

		for _, g := range changes {
			n.mu.Lock()
			want := n.refs[g] > 0 && !n.closed
			n.mu.Unlock()
			n.resubscribe(g, want)
		}
		clear(changes)
		changes = changes[:0]

		sent := 0
		for _, b := range ready {
			sent += len(b.buf)
			n.send(b)
			b.group = ""
			batchPool.Put(b)
		}
		clear(ready)
		if sent > 0 {
			n.mu.Lock()
			n.queued -= sent
			n.mu.Unlock()
		}
		if closing {
			return
		}
		if time.Since(swept) >= pubIdle {
			n.forgetIdle()
			swept = time.Now()
		}
	}
}

// forgetIdle drops the publishing state of groups not published to since
// the last call.
func (n *NATS) forgetIdle() {
	for g, ps := range n.pubs {
		if !ps.used {
			delete(n.pubs, g)
		}
		ps.used = false
	}
}

// send publishes b on its group's subject; on success its frames take the
// next sequence numbers, on failure they are lost and the sequence does not
// move, so receivers see no gap for frames counted as lost here.
func (n *NATS) send(b *batch) {
	ps := n.pubs[b.group]
	if ps == nil {
		ps = &pubState{subject: subject(b.group), next: 1}
		n.pubs[b.group] = ps
	}
	ps.used = true
	b.seal(n.node, ps.next)
	if err := n.nc.Publish(ps.subject, b.buf); err != nil {
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			err = ErrReconnectBuf
		} else {
			err = fmt.Errorf("%w: %w", ErrPublish, err)
		}
		n.lose(b.group, b.frames, err)
		return
	}
	ps.next += uint64(b.frames)
	n.counts.published.Add(uint64(b.frames))
	n.counts.batches.Add(1)
}

// resubscribe makes group's subscription match want. Errors are logged: the
// only ones nats.go returns here are for a closed connection.
func (n *NATS) resubscribe(group string, want bool) {
	s := n.subs[group]
	switch {
	case want && s == nil:
		s = &subscription{n: n, group: group, next: map[uint64]uint64{}}
		sub, err := n.nc.Subscribe(subject(group), s.onMsg)
		if err != nil {
			n.cfg.Logger.Error().Err(err).Str("group", group).Msg("backplane: subscribe failed")
			return
		}
		if err := sub.SetPendingLimits(-1, n.cfg.PendingBytes); err != nil {
			n.cfg.Logger.Error().Err(err).Str("group", group).Msg("backplane: pending limits")
		}
		s.sub = sub
		n.subs[group] = s
		n.counts.groups.Add(1)
	case !want && s != nil:
		delete(n.subs, group)
		n.counts.groups.Add(-1)
		if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			n.cfg.Logger.Error().Err(err).Str("group", group).Msg("backplane: unsubscribe failed")
		}
	}
}
