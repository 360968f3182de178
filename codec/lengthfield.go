package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// LengthFieldConfig describes a length-prefixed protocol with the parameters
// of Netty's LengthFieldBasedFrameDecoder, and with the same meaning, so a
// protocol documented for Netty can be spoken by copying its numbers.
//
// A frame is read in three steps. The length field is the LengthFieldLength
// bytes at LengthFieldOffset, an unsigned integer in ByteOrder. The whole
// frame (Frame.Wire) is then
//
//	LengthFieldOffset + LengthFieldLength + length field value + LengthAdjustment
//
// bytes long. Frame.Body is the frame without its first InitialBytesToStrip
// bytes: exactly the ByteBuf Netty passes on.
//
// A zero LengthAdjustment means the length field counts the bytes after it;
// -(LengthFieldOffset+LengthFieldLength) means it counts the whole frame.
//
// Encode is the inverse of Decode, in the spirit of Netty's
// LengthFieldPrepender: it writes InitialBytesToStrip zero bytes, then
// f.Body, then stores in the length field (wherever it falls, in the header
// Encode wrote or in the part of f.Body Decode did not strip) the value that
// makes Decode return f.Body again. Header bytes other than the length field
// that Decode strips are written as zeros; a protocol with meaningful header
// fields either keeps them (InitialBytesToStrip up to LengthFieldOffset) so
// that they travel in f.Body, or wraps this codec as Packet does for its id.
// LengthFieldPrepender(n, adj, includesLength) is the encoder of
// {LengthFieldLength: n, InitialBytesToStrip: n, LengthAdjustment: -adj,
// or -adj-n when includesLength}.
//
// Netty's failFast=false (discard mode) has no counterpart: Decode always
// fails as soon as the length field shows a frame longer than
// MaxFrameLength, and herald then closes the session.
type LengthFieldConfig struct {
	// Name identifies the codec in logs; "" means "lengthfield".
	Name string
	// ByteOrder of the length field; nil means big-endian, Netty's default.
	// Only its endianness is used.
	ByteOrder binary.ByteOrder
	// LengthFieldOffset is where the length field starts in the frame.
	LengthFieldOffset int
	// LengthFieldLength is the width of the length field: 1, 2, 3, 4 or 8
	// bytes. An 8-byte value with its top bit set is invalid (Netty reads a
	// signed long).
	LengthFieldLength int
	// LengthAdjustment is added to the length field's value to get the
	// number of bytes that follow the length field.
	LengthAdjustment int
	// InitialBytesToStrip is how many bytes at the start of the frame are
	// left out of Frame.Body.
	InitialBytesToStrip int
	// MaxFrameLength bounds the whole frame, header included, as Netty's
	// maxFrameLength does. 0 means DefaultMaxFrame; at most MaxFrameLimit.
	MaxFrameLength int
}

// DefaultLengthFieldConfig returns the most common length-prefixed protocol:
// a 4-byte big-endian length of the body, then the body; Body is the body
// alone. It is the pairing of Netty's LengthFieldBasedFrameDecoder(max, 0, 4,
// 0, 4) with LengthFieldPrepender(4).
func DefaultLengthFieldConfig() LengthFieldConfig {
	return LengthFieldConfig{
		ByteOrder:           binary.BigEndian,
		LengthFieldLength:   4,
		InitialBytesToStrip: 4,
		MaxFrameLength:      DefaultMaxFrame,
	}
}

// Validate reports whether c describes a usable codec, with the checks of
// Netty's constructor plus a bound on every number. The error wraps
// ErrBadConfig.
func (c LengthFieldConfig) Validate() error {
	_, err := newLengthField(c)
	return err
}

// LengthField returns the codec c describes, or an error wrapping
// ErrBadConfig if c is invalid.
func LengthField(c LengthFieldConfig) (Codec, error) {
	lf, err := newLengthField(c)
	if err != nil {
		return nil, err
	}
	return lf, nil
}

// lengthField is immutable after newLengthField.
type lengthField struct {
	name   string
	little bool
	off    int // length field offset
	width  int // length field length
	end    int // off + width: the shortest valid frame
	adj    int
	strip  int
	max    int
}

var _ Codec = lengthField{}

func newLengthField(c LengthFieldConfig) (lengthField, error) {
	lf := lengthField{
		name:  c.Name,
		off:   c.LengthFieldOffset,
		width: c.LengthFieldLength,
		adj:   c.LengthAdjustment,
		strip: c.InitialBytesToStrip,
		max:   c.MaxFrameLength,
	}
	if lf.name == "" {
		lf.name = "lengthfield"
	}
	if c.ByteOrder != nil {
		lf.little = c.ByteOrder.Uint16([]byte{1, 0}) == 1
	}
	if lf.max == 0 {
		lf.max = DefaultMaxFrame
	}
	bad := func(format string, args ...any) (lengthField, error) {
		return lengthField{}, fmt.Errorf("%w: length field: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	switch {
	case lf.width != 1 && lf.width != 2 && lf.width != 3 && lf.width != 4 && lf.width != 8:
		return bad("LengthFieldLength %d (expected 1, 2, 3, 4 or 8)", lf.width)
	case lf.max < 0 || lf.max > MaxFrameLimit:
		return bad("MaxFrameLength %d outside [0, %d]", lf.max, MaxFrameLimit)
	case lf.off < 0 || lf.off > lf.max-lf.width:
		return bad("LengthFieldOffset %d + LengthFieldLength %d > MaxFrameLength %d (or offset negative)", lf.off, lf.width, lf.max)
	case lf.strip < 0 || lf.strip > lf.max:
		return bad("InitialBytesToStrip %d outside [0, MaxFrameLength %d]", lf.strip, lf.max)
	case lf.adj < -MaxFrameLimit || lf.adj > MaxFrameLimit:
		return bad("LengthAdjustment %d outside ±%d", lf.adj, MaxFrameLimit)
	}
	lf.end = lf.off + lf.width
	return lf, nil
}

func (lf lengthField) Name() string { return lf.name }

func (lf lengthField) Decode(in []byte) (Frame, int, error) {
	n, err := lf.size(in)
	if n == 0 || len(in) < n {
		return Frame{}, 0, err
	}
	w := in[:n]
	return Frame{Wire: w, Body: w[lf.strip:]}, n, nil
}

// FrameSize implements Sizer: the header alone gives the frame's size.
func (lf lengthField) FrameSize(in []byte) int {
	n, _ := lf.size(in)
	return n
}

// size reads the frame size from the header at the start of in: 0 while the
// header is incomplete, an error if the header is bad.
func (lf lengthField) size(in []byte) (int, error) {
	if len(in) < lf.end {
		return 0, nil
	}
	v := lf.get(in[lf.off:lf.end])
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: negative length field %d", ErrBadLength, int64(v))
	}
	// Past 1<<40 the frame is too large whatever the adjustment, and below
	// it the sum cannot overflow.
	if v > 1<<40 {
		return 0, fmt.Errorf("%w: length field %d > max %d", ErrFrameTooLarge, v, lf.max)
	}
	size := int64(v) + int64(lf.adj) + int64(lf.end)
	switch {
	case size < int64(lf.end):
		return 0, fmt.Errorf("%w: frame length %d < length field end %d", ErrBadLength, size, lf.end)
	case size > int64(lf.max):
		return 0, fmt.Errorf("%w: frame length %d > max %d", ErrFrameTooLarge, size, lf.max)
	case size < int64(lf.strip):
		// Netty notices this only once the frame is buffered; the header
		// already tells.
		return 0, fmt.Errorf("%w: frame length %d < bytes to strip %d", ErrBadLength, size, lf.strip)
	}
	return int(size), nil
}

func (lf lengthField) Encode(dst []byte, f Frame) ([]byte, error) {
	size := lf.strip + len(f.Body)
	if size > lf.max {
		return dst, fmt.Errorf("%w: frame length %d > max %d", ErrFrameTooLarge, size, lf.max)
	}
	v := size - lf.end - lf.adj
	switch {
	case size < lf.end:
		return dst, fmt.Errorf("%w: frame length %d cannot hold the length field ending at %d", ErrBadFrame, size, lf.end)
	case v < 0:
		return dst, fmt.Errorf("%w: frame length %d gives negative length field %d", ErrBadFrame, size, v)
	case lf.width < 8 && uint64(v) >= 1<<(8*lf.width):
		return dst, fmt.Errorf("%w: length %d does not fit a %d-byte field", ErrFrameTooLarge, v, lf.width)
	}
	start := len(dst)
	dst = append(dst, make([]byte, lf.strip)...)
	dst = append(dst, f.Body...)
	lf.put(dst[start+lf.off:start+lf.end], uint64(v))
	return dst, nil
}

// get reads the length field b.
func (lf lengthField) get(b []byte) uint64 {
	var v uint64
	for i := range b {
		j := i // most significant byte first
		if lf.little {
			j = len(b) - 1 - i
		}
		v = v<<8 | uint64(b[j])
	}
	return v
}

// put writes v into the length field b.
func (lf lengthField) put(b []byte, v uint64) {
	for i := range b {
		j := i // least significant byte first
		if !lf.little {
			j = len(b) - 1 - i
		}
		b[j] = byte(v)
		v >>= 8
	}
}
