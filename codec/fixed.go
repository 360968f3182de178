package codec

import (
	"fmt"
	"strconv"
)

// Fixed returns the codec of frames of exactly size bytes, as Netty's
// FixedLengthFrameDecoder: Frame.Wire and Frame.Body are the same size
// bytes. Encode appends f.Body, which must be exactly size bytes long
// (longer fails with ErrFrameTooLarge, shorter with ErrBadFrame). Fixed fails
// with ErrBadConfig unless 1 <= size <= MaxFrameLimit.
func Fixed(size int) (Codec, error) {
	if size < 1 || size > MaxFrameLimit {
		return nil, fmt.Errorf("%w: fixed size %d outside [1, %d]", ErrBadConfig, size, MaxFrameLimit)
	}
	return fixed{size: size}, nil
}

// fixed is immutable after construction.
type fixed struct{ size int }

var _ Codec = fixed{}

func (c fixed) Name() string { return "fixed:" + strconv.Itoa(c.size) }

func (c fixed) Decode(in []byte) (Frame, int, error) {
	if len(in) < c.size {
		return Frame{}, 0, nil
	}
	w := in[:c.size]
	return Frame{Wire: w, Body: w}, c.size, nil
}

// FrameSize implements Sizer.
func (c fixed) FrameSize([]byte) int { return c.size }

func (c fixed) Encode(dst []byte, f Frame) ([]byte, error) {
	switch {
	case len(f.Body) > c.size:
		return dst, fmt.Errorf("%w: body of %d bytes > fixed size %d", ErrFrameTooLarge, len(f.Body), c.size)
	case len(f.Body) < c.size:
		return dst, fmt.Errorf("%w: body of %d bytes < fixed size %d", ErrBadFrame, len(f.Body), c.size)
	}
	return append(dst, f.Body...), nil
}
