// Package sendbuffer provides the reference-counted, pooled byte buffers that
// herald sends: a frame is encoded once into a Buffer and the same Buffer is
// queued, without copying, on every session it goes to.
//
// # Ownership
//
// A Buffer is born from Get with one reference, owned by the caller. Every
// holder holds its own reference and drops it exactly once. When the last
// reference is dropped the Buffer returns to its pool; after that nobody may
// touch it or any slice obtained from Bytes.
//
// Content code holds references with Get, Retain and Release. Sending a
// buffer hands one of them to herald's queues (Session.Send, the
// broadcasts): the queues hold their references through Handoff, Share and
// Drop, which content code does not call. The two kinds are counted apart,
// so the classic misuse — s.Send(b) followed by b.Release() — panics inside
// the Release, in the handler that made it (herald recovers it and closes
// only that session), instead of recycling a buffer a queue still holds.
//
// # Twins
//
// A frame some recipients need in another form (herald compresses it for
// WebSocket sessions that negotiated permessage-deflate) gets that form
// from Twin: built once per Buffer by whichever goroutine asks first,
// shared by every later caller, and released with the Buffer's last
// reference, never before. A Buffer that never has a twin pays nothing for
// it but a nil check when it is recycled.
//
// # Debug mode
//
// SetDebug(true) (every herald test turns it on) trades speed for
// diagnostics, in the spirit of Netty's ResourceLeakDetector and grpc-go's
// leak-checking pool: released buffers are poisoned and never recycled, so a
// use after release panics with a clear message instead of reading someone
// else's frame; a double release panics; and every live buffer remembers the
// stack that allocated it so Leaks can report who forgot to Release.
//
// The live count (Live) is kept in both modes; tests assert it returns to
// zero once every session is gone.
package sendbuffer
