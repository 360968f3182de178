package handler

import "errors"

// Close reasons and server errors. OnDisconnected receives them wrapped; test
// with errors.Is.
var (
	// ErrHandlerPanic: a Handler method panicked on this session.
	ErrHandlerPanic = errors.New("herald/handler: handler panicked")
	// ErrProtocol wraps a codec error that closed the session.
	ErrProtocol = errors.New("herald/handler: protocol error")
	// ErrClosedByServer: the session was closed by server code
	// (Session.Close) or by the server stopping.
	ErrClosedByServer = errors.New("herald/handler: closed by server")
	// ErrServerStarted: Start was called twice.
	ErrServerStarted = errors.New("herald/handler: server already started")
)
