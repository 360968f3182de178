//go:build deadlock

package lockorder

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/sasha-s/go-deadlock"
)

// TestInversionIsReported takes two locks in one order, then in the other,
// on different goroutines and never at the same time: no real deadlock
// happens, but the checker must still report the inversion, with stacks.
func TestInversionIsReported(t *testing.T) {
	var (
		out      bytes.Buffer
		reported bool
		mu       sync.Mutex
	)
	prevOut, prevOn := deadlock.Opts.LogBuf, deadlock.Opts.OnPotentialDeadlock
	deadlock.Opts.LogBuf = &out
	deadlock.Opts.OnPotentialDeadlock = func() { mu.Lock(); reported = true; mu.Unlock() }
	defer func() { deadlock.Opts.LogBuf, deadlock.Opts.OnPotentialDeadlock = prevOut, prevOn }()

	var a, b Mutex
	lockBoth := func(first, second *Mutex) {
		first.Lock()
		second.Lock()
		second.Unlock()
		first.Unlock()
	}
	done := make(chan struct{})
	go func() { lockBoth(&a, &b); close(done) }()
	<-done
	lockBoth(&b, &a)

	mu.Lock()
	defer mu.Unlock()
	if !reported {
		t.Fatal("lock-order inversion not reported")
	}
	if !strings.Contains(out.String(), "Inconsistent locking") {
		t.Fatalf("report does not describe the inversion:\n%s", out.String())
	}
}
