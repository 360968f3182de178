// Package sessionmgr holds herald's sessions and the send path.
//
// A Session is one connection's sending side. Send may be called from any
// goroutine: it queues a shared sendbuffer.Buffer (taking over one reference,
// never copying it) and, unless the session is already registered (a
// compare-and-swap on its "registered" flag), registers it with its event
// loop's Loop, which arms one gnet Execute task for the whole loop. That task
// runs on the loop after the loop's pending I/O and writes every registered
// session with one writev each (up to 1024 iovecs and MaxBatchBytes a call),
// releasing the batch as soon as writev returns: gnet has then written the
// bytes or copied the rest into its outbound buffer. A session is only ever
// written on its own loop, so at most one write is in flight per session, and
// frames to one session leave in FIFO order. The flags are cleared before the
// queue is read, so a Send racing with a flush is never stranded.
//
// A Send made while the server runs a handler callback for the same session
// (a reply from OnRecv) is written when the callback returns, without a task.
//
// A Manager tracks sessions by id and broadcasts to all of them or to Groups
// (rooms) without locks on the hot path and without copying payloads.
package sessionmgr
