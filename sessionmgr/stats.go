package sessionmgr

import (
	"math/bits"
	"sync/atomic"
)

// BatchBuckets are the upper bounds of LoopStats.Batches: a batch of n
// frames is counted in the first bucket whose bound is at least n. The last
// bound is MaxBatchSlices, the most a batch can hold.
var BatchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// LoopStats are one Loop's running totals since it was made.
type LoopStats struct {
	FramesSent, BytesSent uint64 // handed to the socket (written, or copied into gnet's outbound buffer)
	FramesRecv, BytesRecv uint64 // decoded from the peers, as the server reports them (CountRecv)
	// Batches[i] counts the writes (one writev or write call) that carried
	// at most BatchBuckets[i] frames and more than BatchBuckets[i-1]; not
	// cumulative.
	Batches [len(BatchBuckets)]uint64
}

// loopStats are a Loop's counters. Only the loop's goroutine writes them,
// once per batch or per read, so the atomic adds are never contended; any
// goroutine reads them.
type loopStats struct {
	framesSent, bytesSent atomic.Uint64
	framesRecv, bytesRecv atomic.Uint64
	batches               [len(BatchBuckets)]atomic.Uint64
	now                   atomic.Int64 // the server's coarse clock, unix nanoseconds (SetClock)
}

// sent counts one write of frames frames and bytes bytes. On the loop.
func (st *loopStats) sent(frames, bytes int) {
	st.framesSent.Add(uint64(frames))
	st.bytesSent.Add(uint64(bytes))
	st.batches[batchBucket(frames)].Add(1)
}

// batchBucket returns the index in BatchBuckets of a batch of n frames.
func batchBucket(n int) int {
	if n <= 1 {
		return 0
	}
	return min(bits.Len(uint(n-1)), len(BatchBuckets)-1)
}

// Stats returns the Loop's running totals. Any goroutine; the fields are
// read one by one, so a total may be a batch ahead of another.
func (l *Loop) Stats() LoopStats {
	st := &l.stats
	out := LoopStats{
		FramesSent: st.framesSent.Load(),
		BytesSent:  st.bytesSent.Load(),
		FramesRecv: st.framesRecv.Load(),
		BytesRecv:  st.bytesRecv.Load(),
	}
	for i := range st.batches {
		out.Batches[i] = st.batches[i].Load()
	}
	return out
}

// CountRecv counts frames frames and bytes bytes decoded from a session on
// this loop: the server calls it once per read. On the loop.
func (l *Loop) CountRecv(frames, bytes int) {
	l.stats.framesRecv.Add(uint64(frames))
	l.stats.bytesRecv.Add(uint64(bytes))
}
