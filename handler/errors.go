package handler

import (
	"errors"
	"fmt"
)

// Close reasons and server errors. OnDisconnected receives them wrapped; test
// with errors.Is.
var (
	// ErrHandlerPanic: a Handler method, or the codec decoding this
	// session's bytes, panicked on this session.
	ErrHandlerPanic = errors.New("herald/handler: handler panicked")
	// ErrProtocol wraps a codec error that closed the session.
	ErrProtocol = errors.New("herald/handler: protocol error")
	// ErrClosedByServer: the session was closed by server code
	// (Session.Close) or by the server stopping.
	ErrClosedByServer = errors.New("herald/handler: closed by server")
	// ErrServerStarted: Start was called twice.
	ErrServerStarted = errors.New("herald/handler: server already started")
	// ErrIdle: the session sent nothing for the idle timeout.
	ErrIdle = errors.New("herald/handler: idle timeout")
	// ErrFrameTimeout: the session started a frame and did not finish it
	// within the frame timeout.
	ErrFrameTimeout = errors.New("herald/handler: frame not completed in time")
	// ErrHandshakeTimeout: a connection did not finish opening (its PROXY
	// header or WebSocket handshake) within the handshake timeout
	// (WithHandshakeTimeout). It wraps ErrFrameTimeout, and is counted with
	// it.
	ErrHandshakeTimeout = fmt.Errorf("%w: handshake not completed in time", ErrFrameTimeout)
	// ErrPeerClose: a WebSocket peer closed the session with a close frame
	// (the close handshake); counted as a close by the peer.
	ErrPeerClose = errors.New("herald/handler: websocket closed by the peer")
	// ErrBadOption: an Option's value is invalid.
	ErrBadOption = errors.New("herald/handler: invalid option")
)
