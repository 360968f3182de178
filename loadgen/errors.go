package loadgen

import "errors"

var (
	// ErrConfig is returned, wrapped, when a configuration is invalid.
	ErrConfig = errors.New("loadgen: invalid config")
	// ErrVerify is returned, wrapped with a summary, when a run completed
	// but what came back was not what was sent: frames lost, duplicated,
	// reordered or corrupt, or connections closed by the server. The Result
	// returned alongside has the counts.
	ErrVerify = errors.New("loadgen: verification failed")
	// ErrBarrier is returned, wrapped, when not every client registered with
	// the server within ConnectTimeout.
	ErrBarrier = errors.New("loadgen: barrier not reached")
	// ErrCorrupt is returned by ParsePayload for a payload that is too short
	// or whose checksum does not match.
	ErrCorrupt = errors.New("loadgen: corrupt payload")
)
