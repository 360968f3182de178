// Package ws is herald's server side of the WebSocket protocol (RFC 6455),
// written for an event loop: every function works on bytes already
// buffered, returns how many it consumed (0: wait for more), never blocks
// and never reads from a connection itself. A handshake or a frame may
// arrive one byte at a time; the result is the same as if it came whole.
//
// Libraries that read through an io.Reader (gobwas/ws's Upgrade and
// wsutil readers, gorilla's Conn) block until a whole header or frame has
// arrived, which inside gnet's OnTraffic either stalls the loop or fails
// on a short read (gnet #384, gobwas/ws #201). gnet-examples'
// websocket/v2 server shows the shape that works: Peek what is buffered,
// decode only what is complete, Discard that. This package is that shape
// without a library underneath.
//
// # What it covers
//
//   - ParseUpgrade checks the opening handshake (GET, Host, Upgrade,
//     Connection, Sec-WebSocket-Key and -Version 13, an optional path and
//     Origin allow-list, a cap on the header size); AppendAccept writes the
//     101, AppendReject the 400/403/404/405/426/431 for a refusal. A plain
//     GET or a HEAD is told apart (ErrNotWebSocket), for a caller that
//     serves a page there. A handshake that never ends is the caller's to
//     time out.
//   - Decoder.Next decodes text, binary, ping, pong and close frames,
//     fragmentation with control frames between fragments, UTF-8 of text
//     checked fragment by fragment, a message size limit checked from the
//     frame header, and every RFC violation as a *CloseError carrying the
//     close code (1002, 1007, 1009) and the close frame to send.
//   - AppendFrameHeader, AppendFrame and AppendClose build server frames:
//     unmasked, so the same bytes go to every recipient.
//   - A client side (AppendRequest, ParseAccept, AppendClientFrame,
//     NewClientDecoder) for load generators and tests; it offers no
//     extension.
//
// Memory per connection is the Decoder (a few words) plus, only while a
// fragmented message is arriving, its assembly buffer, bounded by the
// message limit and dropped when larger than 64 KiB. An unfragmented
// message is returned in place: Payload aliases the input, unmasked there.
//
// Permessage-deflate (RFC 7692) is opt-in (Config.Deflate) and negotiated
// without context takeover in either direction, so it keeps no state per
// connection between messages: a compressed message is inflated whole,
// with a pooled inflater, into a buffer bounded by the message limit (a
// decompression bomb fails with 1009), and a broadcast is compressed once
// (AppendDeflatedFrame) and shared by every recipient that negotiated it.
// Measured (BenchmarkDeflate), it does not pay for herald's usual traffic:
// a 64-byte binary packet grows by 9%, a chat line shrinks by 11% for a
// compression (3 us) that costs over a hundred times a 64-byte message's
// decode; a 1 KiB JSON snapshot shrinks to 37% (11 us). Offer it for
// large text messages only.
//
// # Integrating with handler.Server
//
// One gnet engine serves both kinds of session: gnet.Rotate(handler,
// []string{"tcp://" + tcpAddr, "tcp://" + wsAddr}, opts...) opens several
// listeners on the same event loops (gnet v2.9.7 gnet.go). In OnOpen,
// c.LocalAddr() is the accepting socket's local address: its port says
// which listener the connection came in on. A WebSocket connection's
// state, kept in the session (c.Context()), is
//
//   - a handshake phase: in OnTraffic, Peek(-1), ParseUpgrade; n == 0
//     waits (arm the handshake timeout in OnOpen); an error writes
//     AppendReject and closes; success writes AppendAccept and goes on with
//     the rest of the peeked bytes, which may already hold frames (n counts
//     towards the one Discard below);
//   - then a Decoder (NewDecoder(maxFrame), AcceptDeflate if negotiated):
//     loop Next over the peeked bytes, hand each OpBinary (packet codec) or
//     OpText (line codec) payload to the codec as one whole frame, answer
//     pings and closes, and Discard the sum of the n values after the loop:
//     gnet's Peek bytes are valid until Discard, and so is a payload that
//     aliases them. Never call Discard(0): gnet v2.9.7 discards everything
//     buffered for n <= 0, which loses a partial frame (TestGnetIntegration
//     caught exactly that). Peek may return a copy (when gnet's ring buffer wraps);
//     unmasking that copy is still right, because Next unmasks only frames
//     it consumes and those are discarded. A session paused by read
//     backpressure stops the loop after a message and Discards what was
//     consumed so far. An error writes the *CloseError's frame, logs its
//     Reason and closes only this session.
//
// With the PROXY protocol on (package proxyproto), its header comes first:
// OnOpen refuses a peer that proxyproto.Trusted rejects, and OnTraffic
// parses the header before the handshake (or the TCP codec) sees a byte.
//
// A broadcast encodes once per wire format, not once per recipient: the
// TCP form is the codec frame; the WebSocket form is
// AppendFrameHeader(OpBinary, len(frame)) followed by the same frame, built
// once into its own SendBuffer (or written as two iovecs: the shared
// 2-10-byte header and the TCP frame's bytes) and queued to every WebSocket
// member. Server frames are never masked, so those bytes are identical for
// all of them. With deflate on, members whose Upgrade.Deflate is true are a
// third wire format: AppendDeflatedFrame once, shared by all of them (or
// send them the plain form when the message is small: any message may go
// uncompressed). herald's sessions keep the compressed payload
// (AppendDeflated) beside the frame and write
// AppendCompressedFrameHeader before it, as they do for plain messages
// (sessionmgr.Session.SetDeflate). Read backpressure, slow-consumer limits, idle and frame
// timeouts apply unchanged: they count wire bytes and messages, not
// transports.
package ws
