//go:build deadlock

package lockorder

import (
	"os"
	"time"

	"github.com/sasha-s/go-deadlock"
)

// Mutex is the lock-order checking mutex.
type Mutex = deadlock.Mutex

// Checking reports whether lock-order checking is built in.
const Checking = true

func init() {
	deadlock.Opts.DeadlockTimeout = 30 * time.Second
	deadlock.Opts.OnPotentialDeadlock = func() { os.Exit(2) } // after the report on stderr
}
