package backplane

// Backplane carries a node's group broadcasts to the other nodes that have
// members of the group, and theirs to it. Every method is safe from any
// goroutine, returns without waiting for the network and holds no lock
// across I/O, so an event loop may call it.
//
// The node itself delivers to its own members, as it did without a
// backplane; the backplane never hands a node its own frames.
type Backplane interface {
	// Publish queues a copy of frame for the other nodes' members of
	// group: frame is copied before Publish returns and may be reused at
	// once. Queued frames travel at the next Flush (or earlier, when a
	// group's batch is full). A non-nil error says why this frame will
	// not travel; it is also counted in Counters.Lost and logged.
	Publish(group string, frame []byte) error
	// Flush hands every frame queued so far to the sending goroutine, one
	// batch (one NATS message) per group. Call it once at the end of each
	// burst, such as an event-loop turn: frames wait for it.
	Flush()
	// Join records one more reason for this node to receive group's
	// traffic (one call when the group's local members go from 0 to 1);
	// the node is subscribed while Joins outnumber Leaves. The
	// subscription starts shortly after Join returns.
	Join(group string) error
	// Leave undoes one Join. A Leave without a Join is ignored. Deliver
	// may still be called for group briefly after the last Leave.
	Leave(group string)
	// Counters returns running totals for metrics.
	Counters() Counters
	// Close sends what is queued, as far as the connection allows, stops
	// deliveries (Deliver is not called once Close has returned) and
	// disconnects. Do not call it from Deliver.
	Close() error
}

// Deliver receives frames that other nodes broadcast to group. The frames,
// in the order their sender published them, share one received message:
// they are valid only until Deliver returns, so copy what must outlive the
// call (one copy per frame, into the SendBuffer the node broadcasts to its
// members). Deliver is called serially for one group and possibly
// concurrently for different groups. It must not block.
type Deliver func(group string, frames [][]byte)

// Counters are a backplane's running totals, in frames unless named
// otherwise. For one publisher P and one receiver R that stayed a member:
// what P published (Published + Lost at P) equals what R received plus the
// Gaps R counted for P plus P's Lost, once a later batch from P has reached R.
type Counters struct {
	// Published counts frames handed to NATS (accepted by the client).
	Published uint64
	// Batches counts NATS messages published; Published/Batches is the
	// batching factor.
	Batches uint64
	// Lost counts frames this node could not publish: queue full, NATS
	// reconnect buffer full, frame too large, closed. Each loss is logged
	// with its group and reason.
	Lost uint64
	// Received counts frames handed to Deliver.
	Received uint64
	// Gaps counts frames missing from what this node received, detected by
	// sequence per publishing node and group; logged per group.
	Gaps uint64
	// Malformed counts received messages dropped as not well-formed.
	Malformed uint64
	// Disconnects and Reconnects count NATS connection losses and
	// recoveries.
	Disconnects, Reconnects uint64
	// Groups is the number of groups this node subscribes to now.
	Groups int64
}

// AllSessions is the group name a Manager publishes and joins for
// Manager.Broadcast (every session on every node); a Manager reserves it, so
// no room may be called "".
const AllSessions = ""

// Local is the backplane of a single node: nothing crosses nodes, every
// method does nothing and costs nothing.
type Local struct{}

var (
	_ Backplane = Local{}
	_ Backplane = (*NATS)(nil)
)

// Publish does nothing.
func (Local) Publish(string, []byte) error { return nil }

// Flush does nothing.
func (Local) Flush() {}

// Join does nothing.
func (Local) Join(string) error { return nil }

// Leave does nothing.
func (Local) Leave(string) {}

// Counters returns zeros.
func (Local) Counters() Counters { return Counters{} }

// Close does nothing.
func (Local) Close() error { return nil }
