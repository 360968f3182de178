// Package sessionmgr holds herald's sessions and the send path.
//
// A Session is one connection's sending side; a Loop is herald's side of one
// gnet event loop. Send (from any goroutine) pushes the frame, a shared
// sendbuffer.Buffer whose reference Send takes over, onto the queue of the
// session's Loop; a broadcast pushes one item per Loop that has recipients,
// with one reference per Loop, never a copy. The first push of a turn arms
// one gnet Execute task for the Loop (none while the loop is inside a handler
// callback: it drains when the callback returns). On the loop, the task
// distributes the queue into each recipient's pending list, writes each
// session with one writev (small frames coalesced into one iovec, at most
// 1024 iovecs and MaxBatchBytes a call) and then releases the Loop's
// references: gnet has written the bytes or copied the rest into its
// outbound buffer by the time Writev returns.
//
// Reply is the exception that does not queue: called from the session's own
// handler callback, on the loop, it writes the caller's bytes at once, after
// whatever was sent to the session before, so an echo needs no SendBuffer.
//
// Only the loop writes its sessions, so there is at most one write in flight
// per session, and frames reach each session in the order they were pushed.
// Flags are cleared before the queue is read, so a push racing with a drain
// is never stranded.
//
// Pending bytes (what herald holds for a session plus gnet's outbound buffer)
// are bounded by Limits: at the high watermark the loop stops handing the
// session to gnet and holds its frames as references (conflating frames with
// the same key), and past MaxPending the session is disconnected or its new
// frames dropped.
//
// A Manager tracks sessions by id and broadcasts to all of them or to Groups
// (rooms) without a lock. Each group keeps, per Loop, a member list only
// that loop touches; Join, Leave, Add and Remove cost O(1) whatever the
// group's size and reach the list as items on the Loop's FIFO queue, so a
// session gets every broadcast pushed after its Join returned and none
// pushed after its Leave or Remove returned (members.go). A group is freed
// when its last member leaves.
package sessionmgr
