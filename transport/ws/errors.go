package ws

import "errors"

// Sentinel errors. ParseUpgrade and ParseAccept return a *HandshakeError
// wrapping the first group; Decoder.Next returns a *CloseError wrapping the
// second. Test with errors.Is.
var (
	// ErrHeaderTooLarge: the request's header block did not end within
	// Config.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("herald/ws: handshake header too large")
	// ErrBadRequest: the request is not well-formed HTTP/1.1 or is not a
	// valid WebSocket upgrade (missing or malformed Host, Connection,
	// Sec-WebSocket-Key, bytes that are no request method, ...).
	ErrBadRequest = errors.New("herald/ws: bad handshake request")
	// ErrBadMethod: a request method other than GET and HEAD (405).
	ErrBadMethod = errors.New("herald/ws: method not allowed")
	// ErrNotWebSocket: a well-formed GET without "Upgrade: websocket", or
	// a well-formed HEAD. The returned Upgrade holds its Path (and Head),
	// so the caller may serve a plain HTTP response (a page) instead of the
	// 400 AppendReject writes.
	ErrNotWebSocket = errors.New("herald/ws: not a websocket upgrade")
	// ErrBadVersion: Sec-WebSocket-Version is not 13 (answered with 426).
	ErrBadVersion = errors.New("herald/ws: unsupported websocket version")
	// ErrOriginDenied: the Origin header is not in Config.Origins (403).
	ErrOriginDenied = errors.New("herald/ws: origin not allowed")
	// ErrBadPath: the request path is not Config.Path (404).
	ErrBadPath = errors.New("herald/ws: path not found")
	// ErrBadResponse: a client's handshake response is not a valid 101
	// with the expected Sec-WebSocket-Accept.
	ErrBadResponse = errors.New("herald/ws: bad handshake response")

	// ErrProtocol: a frame broke RFC 6455 (close code 1002).
	ErrProtocol = errors.New("herald/ws: protocol error")
	// ErrInvalidUTF8: a text message or close reason is not UTF-8 (1007).
	ErrInvalidUTF8 = errors.New("herald/ws: invalid utf-8")
	// ErrTooLarge: a message exceeds the decoder's maximum size (1009).
	ErrTooLarge = errors.New("herald/ws: message too large")
	// ErrInvalidDeflate: a compressed message does not inflate (1007).
	ErrInvalidDeflate = errors.New("herald/ws: corrupt compressed message")
)
