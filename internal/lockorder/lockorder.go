//go:build !deadlock

// Package lockorder provides the mutex type herald's packages use. In a
// normal build it is sync.Mutex. Built with -tags deadlock it is a
// lock-order checker (github.com/sasha-s/go-deadlock): every goroutine's held
// locks and a shared history of which lock was taken while holding which are
// recorded, and an inversion (A then B here, B then A there) or a lock held
// too long is reported with both stacks and fails the process. This is the
// seed's DeadLockProfiler; CI runs the whole test suite once this way.
package lockorder

import "sync"

// Mutex is sync.Mutex, or the checking mutex under -tags deadlock.
type Mutex = sync.Mutex

// Checking reports whether lock-order checking is built in.
const Checking = false
