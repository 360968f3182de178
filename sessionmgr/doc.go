// Package sessionmgr holds herald's sessions and the send path.
//
// A Session is one connection's sending side. Send may be called from any
// goroutine: it queues a shared sendbuffer.Buffer (taking over one reference)
// and, only if no write is in flight (a compare-and-swap on the "sending"
// flag), arms one gnet AsyncWritev with everything queued, up to 1024 slices
// and MaxBatchBytes. The AsyncWritev callback runs on the connection's event
// loop once gnet has written the bytes or copied the rest into its outbound
// buffer; it releases the batch and drains what queued meanwhile with
// synchronous writev calls on the loop, then clears the flag and re-checks
// the queue so that no wake-up is lost. Frames to one session leave in FIFO
// order.
//
// A Manager tracks sessions by id and broadcasts to all of them or to Groups
// (rooms) without locks on the hot path and without copying payloads.
package sessionmgr
