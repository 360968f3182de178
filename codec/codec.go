// Package codec turns the byte stream of a connection into frames and frames
// back into bytes. herald's server calls Decode from gnet's OnTraffic on the
// bytes already buffered for the connection, without copying them; content
// code calls Encode to fill a sendbuffer.Buffer once for any number of
// recipients.
//
// Built-in codecs:
//
//   - Packet: herald's default, [size u16 LE][id u16 LE][payload].
//   - LengthField: any length-prefixed protocol, configured like Netty's
//     LengthFieldBasedFrameDecoder and LengthFieldPrepender.
//   - Line and Delimiter: frames ended by "\n" or any byte sequence.
//   - Fixed: frames of one fixed size.
//   - Raw: no framing, every read is a frame.
//
// A codec is chosen by value (Packet(65535), Line(1024)) or by name (ByName,
// used by the demos' -codec flag). Implement Codec to speak your own
// protocol; see the Codec example.
//
// Every decoder fails fast: a frame that cannot fit the codec's limit is an
// error as soon as the bytes buffered show it, so a peer can never make the
// server buffer more than one maximal frame. There is no equivalent of
// Netty's discard mode (failFast=false, skip the oversized frame and carry
// on): herald closes the session on any decode error.
package codec

import (
	"github.com/herald-mmo/herald/sendbuffer"
)

// DefaultMaxFrame is the frame limit a codec uses when given a max frame of 0.
const DefaultMaxFrame = 0xFFFF

// MaxFrameLimit is the largest max frame any built-in codec accepts (1 GiB);
// it keeps length arithmetic inside int even on 32-bit platforms.
const MaxFrameLimit = 1 << 30

// frameLimit maps a caller's maxFrame to the limit a codec uses: 0 or less
// picks DefaultMaxFrame, more than MaxFrameLimit is capped.
func frameLimit(maxFrame int) int {
	if maxFrame <= 0 {
		return DefaultMaxFrame
	}
	return min(maxFrame, MaxFrameLimit)
}

// Frame is one decoded unit of the protocol.
//
// The slices alias the connection's inbound buffer: they are valid only until
// the handler call that received the frame returns. Copy what you keep.
type Frame struct {
	// Wire is the whole frame as it arrived, header included. Forwarding Wire
	// unchanged re-sends exactly what the peer sent.
	Wire []byte
	// Body is the frame's content: Wire with the codec's header and trailer
	// removed (a line without its newline, a packet without size and id).
	Body []byte
	// ID is the packet id for codecs that carry one (Packet); zero otherwise.
	ID uint16
}

// Codec frames a byte stream. A Codec is shared by all sessions of a server,
// so it must be safe for concurrent use; built-in codecs are immutable.
type Codec interface {
	// Name identifies the codec in logs and flags.
	Name() string

	// Decode looks for one frame at the start of in. It returns the frame and
	// the number of bytes it consumed; n == 0 with a nil error means in holds
	// no complete frame yet. An error is a protocol violation: the session
	// is closed. Decode must reject a frame that cannot fit the codec's
	// limits as soon as its header shows it (fail fast), so a hostile peer
	// cannot make the server buffer more than the max frame.
	//
	// The returned slices alias in.
	Decode(in []byte) (f Frame, n int, err error)

	// Encode appends the wire form of f (f.Body, and f.ID where the codec has
	// ids) to dst and returns the extended slice, or an error if f cannot be
	// framed (for instance it is longer than the max frame).
	Encode(dst []byte, f Frame) ([]byte, error)
}

// Sizer is implemented by codecs whose header tells how long the frame is
// (the length-field codecs, packet, fixed). The server asks it when Decode
// finds a frame incomplete, and does not look at the buffered bytes again
// until that many have arrived: a large frame costs linear time, not one
// re-read of everything buffered per read.
type Sizer interface {
	// FrameSize reports how many bytes, header included, the frame at the
	// start of in takes, or 0 if in is too short to tell. It is called
	// only after Decode returned no frame and no error for in.
	FrameSize(in []byte) int
}

// Delimited is implemented by a codec whose frames end with a delimiter
// (Line, Delimiter): a text protocol. A WebSocket session carries such a
// frame as a text message without its delimiter (see handler.WithWebSocket).
type Delimited interface {
	// Delimiter returns the bytes that end every frame; the caller must not
	// change them.
	Delimiter() []byte
}

// NewBuffer encodes f once into a new sendbuffer.Buffer holding one reference
// owned by the caller; send it to one session or broadcast it to many.
func NewBuffer(c Codec, f Frame) (*sendbuffer.Buffer, error) {
	b := sendbuffer.Get(len(f.Body) + 16)
	out, err := c.Encode(b.AvailableBuffer(), f)
	if err == nil {
		_, err = b.Write(out)
	}
	if err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}
