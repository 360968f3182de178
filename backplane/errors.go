package backplane

import "errors"

// Sentinel errors; test with errors.Is. A frame that Publish refuses, or that
// the sending goroutine cannot hand to NATS, is counted in Counters.Lost and
// logged with its group and one of these as the reason.
var (
	// ErrClosed is returned by Publish and Join after Close.
	ErrClosed = errors.New("herald/backplane: closed")
	// ErrFrameTooLarge is returned by Publish for a frame that cannot fit
	// in one batch (Config.MaxBatch, clamped to the server's max_payload).
	ErrFrameTooLarge = errors.New("herald/backplane: frame larger than a batch")
	// ErrQueueFull is returned by Publish when the bytes waiting to be
	// handed to NATS would pass Config.MaxQueued: NATS is slower than this
	// node's broadcasts, or unreachable.
	ErrQueueFull = errors.New("herald/backplane: publish queue full")
	// ErrReconnectBuf is the reason logged for a batch that nats.go refused
	// while reconnecting because its reconnect buffer (Config.ReconnectBuf)
	// was full.
	ErrReconnectBuf = errors.New("herald/backplane: NATS reconnect buffer full")
	// ErrPublish is the reason logged for a batch that nats.go refused for
	// any other reason; the wrapped error says which.
	ErrPublish = errors.New("herald/backplane: NATS publish failed")
	// ErrGroupName is returned by Publish and Join for a group name longer
	// than MaxGroupName bytes.
	ErrGroupName = errors.New("herald/backplane: group name too long")
	// ErrMalformed is the reason logged for a received NATS message that is
	// not a well-formed batch; the message is dropped whole.
	ErrMalformed = errors.New("herald/backplane: malformed batch")
	// ErrBadConfig is returned by NewNATS for an invalid Config.
	ErrBadConfig = errors.New("herald/backplane: invalid config")
)
