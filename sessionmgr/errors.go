package sessionmgr

import "errors"

// ErrSessionClosed is returned by Send on a session whose connection has
// closed; the buffer reference passed to Send has been released.
var ErrSessionClosed = errors.New("herald/sessionmgr: session closed")
