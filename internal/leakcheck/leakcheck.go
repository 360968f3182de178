// Package leakcheck is the test harness every herald test package uses: it
// turns on sendbuffer's debug mode and, after the tests, fails the run if any
// SendBuffer is still live or any goroutine leaked.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/herald-mmo/herald/sendbuffer"
	"go.uber.org/goleak"
)

// Main runs the package's tests with sendbuffer debug mode on, then checks
// for live buffers and leaked goroutines. Call it from TestMain.
func Main(m *testing.M) {
	sendbuffer.SetDebug(true)
	code := m.Run()
	if code == 0 {
		if err := Buffers(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck:", err)
			code = 1
		} else if err := goleak.Find(ignore...); err != nil {
			fmt.Fprintln(os.Stderr, "leakcheck: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ignore lists process-wide goroutines that are not leaks: gnet's default
// worker pool (ants) starts its housekeeping at package init.
var ignore = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
}

// Buffers waits up to timeout for the live SendBuffer count to reach zero
// and returns an error naming the allocation sites of those still live.
func Buffers(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for sendbuffer.Live() != 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d SendBuffers still live:\n%s", sendbuffer.Live(), sendbuffer.Leaks())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Check registers a cleanup on t that fails the test if SendBuffers are
// still live a few seconds after it ends.
func Check(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if err := Buffers(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
}
