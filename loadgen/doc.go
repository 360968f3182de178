// Package loadgen drives herald servers (and the baselines under bench/) with
// many concurrent clients over TCP, verifies everything that comes back, and
// measures throughput and latency. cmd/loadgen is its command-line front end;
// the end-to-end tests in tests/ call it directly.
//
// # Modes
//
// RunFanout speaks herald's packet codec to a broadcast server (cmd/broadcast
// or a baseline): Clients connections each send Messages frames and receive
// every frame of every client. RunPubSub does the same through a redis
// server's PUBLISH/SUBSCRIBE, with one subscriber and one publisher connection
// per client. RunEcho measures an echo server, one message at a time
// (EchoPingPong) or as a pipelined byte stream (EchoStream). RunSelftest
// measures loadgen's own receive path against an in-process blaster, which
// is the ceiling above which loadgen, not the server, is the bottleneck.
//
// Pingpong runs a goroutine per client by default; EchoConfig.Engine
// EngineEpoll runs them all on one goroutine over epoll (Linux), which costs
// the client less CPU per round trip where it shares the server's cores.
//
// # Fan-out verification
//
// Every data frame carries a payload built by AppendPayload: sender, sequence
// number, send time and a CRC-32C checksum of the rest. Every client checks
// every frame of every sender: intact (checksum, size), exactly once, and in
// per-sender order (see Tracker). Anything else is counted in Result as lost,
// duplicated, reordered or corrupt, and the run returns an error wrapping
// ErrVerify.
//
// A broadcast server delivers a frame only to the sessions connected when it
// handles it, so no client sends data until every client is known to be
// registered: each sends a hello frame (id HelloID) and is registered once
// its own hello comes back through the server (redis: once its SUBSCRIBE is
// confirmed). That is the barrier; the clock starts when it opens.
//
// A client has at most Window of its own frames outstanding: a frame is
// outstanding from the moment it is written until the client receives it
// back from the server. The latency of a frame is that time.
//
// # Cost
//
// Each connection reads into one buffer of ReadBuffer bytes (64 KiB by
// default) and decodes frames in place; the receive path allocates nothing
// in steady state. Latencies go into HDR histograms in batches.
package loadgen
