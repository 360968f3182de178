package benchsrv

import (
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
)

// Queue is one client of a goroutine-per-connection baseline: a bounded
// channel of messages its writer goroutine drains, and a kill switch.
type Queue[M any] struct {
	Out  chan M        // fixed capacity
	Done chan struct{} // closed once by Kill
	Addr net.Addr      // for logs

	conn io.Closer
	once sync.Once
}

// NewQueue returns a client queue of capacity n for conn.
func NewQueue[M any](n int, addr net.Addr, conn io.Closer) *Queue[M] {
	return &Queue[M]{Out: make(chan M, n), Done: make(chan struct{}), Addr: addr, conn: conn}
}

// Kill closes the connection; the client's reader and writer then exit.
// Safe to call more than once, from any goroutine.
func (q *Queue[M]) Kill() {
	q.once.Do(func() {
		close(q.Done)
		q.conn.Close()
	})
}

// Hub is the set of connected clients a baseline broadcasts to. A sender
// never blocks: a client whose queue is full is disconnected as a slow
// consumer, logged (unless Quiet) and counted.
type Hub[M any] struct {
	Name  string // program name, for logs; fixed after construction
	Quiet bool   // no per-client logs; fixed after construction

	slow atomic.Int64 // slow consumers disconnected

	mu      sync.RWMutex
	clients map[*Queue[M]]struct{} // guarded by mu
	closed  bool                   // guarded by mu
}

// Add registers q; it returns false once the hub is closed.
func (h *Hub[M]) Add(q *Queue[M]) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if h.clients == nil {
		h.clients = make(map[*Queue[M]]struct{})
	}
	h.clients[q] = struct{}{}
	return true
}

// Remove unregisters q and reports whether it was registered.
func (h *Hub[M]) Remove(q *Queue[M]) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.clients[q]
	delete(h.clients, q)
	return ok
}

// Broadcast offers m to every client, sender included, without blocking,
// then disconnects those whose queue was full. scratch is reused for them
// and returned for the next call.
func (h *Hub[M]) Broadcast(m M, scratch []*Queue[M]) []*Queue[M] {
	slow := scratch[:0]
	h.mu.RLock()
	for q := range h.clients {
		select {
		case q.Out <- m:
		default:
			slow = append(slow, q)
		}
	}
	h.mu.RUnlock()
	for _, q := range slow {
		if h.Remove(q) { // another sender may have dropped it already
			n := h.slow.Add(1)
			if !h.Quiet {
				log.Printf("%s: disconnecting slow consumer %v (queue of %d full; %d so far)", h.Name, q.Addr, cap(q.Out), n)
			}
		}
		q.Kill()
	}
	return slow
}

// Close refuses new clients and kills every registered one.
func (h *Hub[M]) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for q := range h.clients {
		q.Kill()
	}
}
