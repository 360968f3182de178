// Package backplane lets rooms span herald nodes: a group broadcast on one
// node reaches the group's members on every other node, over NATS.
//
// A node delivers a broadcast to its own members as it always does (one
// shared SendBuffer) and publishes the frame once, through a Backplane, for
// the other nodes. Each node that has members of the group receives it and
// fans it out locally through one SendBuffer. The default, Local, is a
// single node: it does nothing and costs nothing. NATS is the real one.
//
// # How a Manager uses it
//
//   - Broadcast to group g: deliver locally, then Publish(g, frame).
//     Publish copies frame, so the caller keeps its buffer and reference.
//   - At the end of each burst (an event-loop turn, a handler callback that
//     broadcast, a tick), call Flush once: frames of one group published
//     since the last Flush travel as one NATS message.
//   - When g's local member count goes 0 -> 1, Join(g); when it goes
//     1 -> 0, Leave(g). Join and Leave are reference-counted, so Joins and
//     Leaves that pair up are all that matters.
//   - Deliver(g, frames), from a NATS goroutine: copy each frame once into
//     a SendBuffer and broadcast it to g's local members only (never back
//     into the backplane). It may run briefly after the last Leave(g);
//     then g has no members and the frames go nowhere.
//   - Counters for /metrics; Close on shutdown, after the last Flush.
//
// Every method is safe from any goroutine and never waits for the network:
// one goroutine per NATS backplane makes all the nats.go calls that may
// touch the socket, and Publish only copies into a batch under a mutex.
//
// # Order and loss
//
// Frames one node publishes to a group reach every other member node in
// publish order. Each batch carries the publishing node's random id and
// the sequence number of its first frame on that subject. A receiver that
// sees a sequence jump counts the missing frames in Counters.Gaps and logs
// them for the group; frames this node could not hand to NATS (queue full,
// reconnect buffer full during an outage, too large, closed) are counted in
// Counters.Lost and logged for the group, and take no sequence numbers, so
// nothing is counted twice: for a publisher P and a receiver R that stayed
// a member, sent(P) = received(R) + gaps(R) + lost(P) once a later batch
// from P has reached R. Frames that were in flight when the last batch
// left are not detectable until the next one.
//
// # Wire format
//
// Subject: "herald.group." and the group name with every byte other than
// ASCII letters, digits and '-' written as '_' and two hex digits (the
// empty name is "_"). Payload, little-endian:
//
//	[version u8 = 1][node u64][seq u64][count u32] then count × [len u32][frame]
package backplane
