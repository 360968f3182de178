package sessionmgr

import "testing"

// TestBatchBucket: a batch of n frames lands in the first bucket whose
// bound is at least n.
func TestBatchBucket(t *testing.T) {
	for _, tt := range []struct{ n, bound int }{
		{0, 1}, {1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {16, 16}, {17, 32},
		{256, 256}, {257, 512}, {1023, 1024}, {MaxBatchSlices, 1024}, {5000, 1024},
	} {
		if got := BatchBuckets[batchBucket(tt.n)]; got != tt.bound {
			t.Errorf("batch of %d: bucket %d; want %d", tt.n, got, tt.bound)
		}
	}
}
