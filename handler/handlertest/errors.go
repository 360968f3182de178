package handlertest

import "errors"

// ErrNoSockets is returned by the parts of gnet's API that need a real
// socket (Dup, and an event loop's Register and Enroll): the kit has none.
var ErrNoSockets = errors.New("herald/handlertest: no sockets in the kit")
