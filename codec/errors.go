package codec

import "errors"

// Sentinel errors. Decode, Encode and the constructors wrap them with
// details (%w); test with errors.Is.
var (
	// ErrFrameTooLarge: a frame's declared or actual length exceeds the
	// codec's maximum, or a length does not fit its length field.
	ErrFrameTooLarge = errors.New("herald/codec: frame too large")
	// ErrBadLength: a length field holds a value no valid frame can have,
	// such as a size smaller than the header, or a varint is malformed.
	ErrBadLength = errors.New("herald/codec: invalid length")
	// ErrBadFrame: Encode was given a frame the codec cannot represent, such
	// as a body containing the delimiter or a fixed-length body of the wrong
	// size.
	ErrBadFrame = errors.New("herald/codec: frame cannot be encoded")
	// ErrBadConfig: a constructor was given an invalid configuration.
	ErrBadConfig = errors.New("herald/codec: invalid configuration")
	// ErrUnknownCodec: ByName was given a name it does not know.
	ErrUnknownCodec = errors.New("herald/codec: unknown codec")
)
