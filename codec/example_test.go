package codec_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/herald-mmo/herald/codec"
)

// varint is a user-written codec for the framing of protobuf streams
// (Java's writeDelimitedTo, Go's protodelim): [length uvarint][bytes].
// It holds only its limit, so it is immutable and safe for every session.
type varint struct{ max int }

// Name implements codec.Codec.
func (varint) Name() string { return "varint" }

// Decode implements codec.Codec. It fails fast: a length over the max is an
// error as soon as the varint is complete, and a varint still unfinished
// after 10 bytes is malformed, so at most max+10 bytes are ever buffered.
func (c varint) Decode(in []byte) (codec.Frame, int, error) {
	size, k := binary.Uvarint(in)
	switch {
	case k < 0 || (k == 0 && len(in) >= binary.MaxVarintLen64):
		return codec.Frame{}, 0, fmt.Errorf("%w: malformed varint % x", codec.ErrBadLength, in[:min(len(in), binary.MaxVarintLen64)])
	case k == 0:
		return codec.Frame{}, 0, nil // the varint is not complete yet
	case size > uint64(c.max):
		return codec.Frame{}, 0, fmt.Errorf("%w: varint length %d > max %d", codec.ErrFrameTooLarge, size, c.max)
	}
	n := k + int(size)
	if len(in) < n {
		return codec.Frame{}, 0, nil // the body is not complete yet
	}
	return codec.Frame{Wire: in[:n], Body: in[k:n]}, n, nil
}

// Encode implements codec.Codec.
func (c varint) Encode(dst []byte, f codec.Frame) ([]byte, error) {
	if len(f.Body) > c.max {
		return dst, fmt.Errorf("%w: body of %d bytes > max %d", codec.ErrFrameTooLarge, len(f.Body), c.max)
	}
	dst = binary.AppendUvarint(dst, uint64(len(f.Body)))
	return append(dst, f.Body...), nil
}

// A codec of your own: implement the four-method interface and pass the
// value where herald takes a codec.
func ExampleCodec() {
	var c codec.Codec = varint{max: 1024}

	wire, _ := c.Encode(nil, codec.Frame{Body: []byte("hello")})
	wire, _ = c.Encode(wire, codec.Frame{Body: bytes.Repeat([]byte("!"), 200)})
	fmt.Printf("% x | % x ...\n", wire[:6], wire[6:9])

	// What the server does with the bytes buffered for a session.
	for len(wire) > 0 {
		f, n, err := c.Decode(wire)
		if err != nil || n == 0 {
			break
		}
		fmt.Printf("frame of %d bytes, body %.8q\n", n, f.Body)
		wire = wire[n:]
	}

	// A hostile length is refused from its three header bytes.
	_, _, err := c.Decode([]byte{0xff, 0xff, 0x03})
	fmt.Println(err)
	_, _, err = c.Decode(bytes.Repeat([]byte{0x80}, 10))
	fmt.Println(err)
	// Output:
	// 05 68 65 6c 6c 6f | c8 01 21 ...
	// frame of 6 bytes, body "hello"
	// frame of 202 bytes, body "!!!!!!!!"
	// herald/codec: frame too large: varint length 65535 > max 1024
	// herald/codec: invalid length: malformed varint 80 80 80 80 80 80 80 80 80 80
}
