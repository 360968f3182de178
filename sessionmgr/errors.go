package sessionmgr

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrSessionClosed is returned by Send on a session whose connection
	// has closed; the buffer reference passed to Send has been released.
	ErrSessionClosed = errors.New("herald/sessionmgr: session closed")
	// ErrSlowConsumer is the close reason of a session whose pending bytes
	// passed Limits.MaxPending under the Disconnect policy.
	ErrSlowConsumer = errors.New("herald/sessionmgr: slow consumer: pending bytes over the limit")
	// ErrFramesDropped is reported (Config.OnSlow) when the Drop policy
	// first drops a frame for a session.
	ErrFramesDropped = errors.New("herald/sessionmgr: slow consumer: dropping frames over the limit")
	// ErrNotInCallback is returned by Reply outside the session's own
	// handler callback.
	ErrNotInCallback = errors.New("herald/sessionmgr: Reply outside the session's callback")
	// ErrInWrite is returned by Reply from a hook that runs while herald
	// writes (OnSend, OnWritable, OnSlow, and OnDisconnected when a write
	// failed): the write under way cannot be re-entered. Use Send there.
	ErrInWrite = errors.New("herald/sessionmgr: Reply from a hook that runs during a write; use Send")
	// ErrHeldLimit is the close reason of a session cut because the
	// frames held for all sessions passed Config.MaxHeld: the sessions
	// holding the most are cut first.
	ErrHeldLimit = errors.New("herald/sessionmgr: server-wide held bytes over the limit")
	// ErrBadConfig: invalid Limits.
	ErrBadConfig = errors.New("herald/sessionmgr: invalid config")
)
