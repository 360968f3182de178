package codec

import (
	"bytes"
	"fmt"
	"strconv"
)

// maxDelimiter bounds a delimiter's length.
const maxDelimiter = 1 << 16

// Delimiter returns a codec whose frames end with delim, as Netty's
// DelimiterBasedFrameDecoder with stripDelimiter: Frame.Body is the bytes
// before the first occurrence of delim, Frame.Wire includes delim. A body
// may be at most maxFrame bytes (0 means DefaultMaxFrame); once maxFrame +
// len(delim) bytes are buffered without a delimiter, Decode fails with
// ErrFrameTooLarge.
//
// Encode appends f.Body and delim; it fails with ErrBadFrame if the body
// would not decode back (it contains delim, or ends with a prefix that
// completes an earlier delim). Delimiter fails with ErrBadConfig if delim is
// empty or longer than 64 KiB.
//
// Decode rescans the buffered bytes from the start on every call, so a frame
// arriving in k reads costs k scans; maxFrame bounds the cost.
func Delimiter(delim string, maxFrame int) (Codec, error) {
	if len(delim) == 0 || len(delim) > maxDelimiter {
		return nil, fmt.Errorf("%w: delimiter of %d bytes (want 1 to %d)", ErrBadConfig, len(delim), maxDelimiter)
	}
	return delimiter{
		name:  "delimiter:" + quote(delim),
		delim: []byte(delim),
		max:   frameLimit(maxFrame),
	}, nil
}

// Line returns the codec of text lines, as Netty's LineBasedFrameDecoder: a
// frame ends with "\n", and Frame.Body is the line without it and without a
// "\r" before it. A line may be at most maxFrame bytes before its "\n", an
// "\r" included (0 means DefaultMaxFrame); once more than maxFrame bytes are
// buffered without a "\n", Decode fails with ErrFrameTooLarge.
//
// Encode appends f.Body and "\n"; it fails with ErrBadFrame if the body
// contains "\n" or ends with "\r".
func Line(maxFrame int) Codec {
	return delimiter{name: "line", delim: []byte{'\n'}, max: frameLimit(maxFrame), trimCR: true}
}

// delimiter is immutable after construction.
type delimiter struct {
	name   string
	delim  []byte
	max    int  // longest body, delimiter excluded
	trimCR bool // Line: drop one "\r" before the delimiter
}

var (
	_ Codec     = delimiter{}
	_ Delimited = delimiter{}
)

func (d delimiter) Name() string { return d.name }

func (d delimiter) Delimiter() []byte { return d.delim }

func (d delimiter) Decode(in []byte) (Frame, int, error) {
	window := in[:min(len(in), d.max+len(d.delim))]
	i := bytes.Index(window, d.delim)
	if i < 0 {
		if len(window) == d.max+len(d.delim) {
			return Frame{}, 0, fmt.Errorf("%w: %s: no delimiter in the first %d bytes (max %d + delimiter)",
				ErrFrameTooLarge, d.name, len(window), d.max)
		}
		return Frame{}, 0, nil
	}
	n := i + len(d.delim)
	body := in[:i]
	if d.trimCR {
		body = bytes.TrimSuffix(body, []byte{'\r'})
	}
	return Frame{Wire: in[:n], Body: body}, n, nil
}

func (d delimiter) Encode(dst []byte, f Frame) ([]byte, error) {
	if len(f.Body) > d.max {
		return dst, fmt.Errorf("%w: %s: body of %d bytes > max %d", ErrFrameTooLarge, d.name, len(f.Body), d.max)
	}
	if d.trimCR && bytes.HasSuffix(f.Body, []byte{'\r'}) {
		return dst, fmt.Errorf("%w: %s: body ends with \\r", ErrBadFrame, d.name)
	}
	start := len(dst)
	out := append(append(dst, f.Body...), d.delim...)
	if bytes.Index(out[start:], d.delim) != len(f.Body) {
		return dst, fmt.Errorf("%w: %s: body contains the delimiter", ErrBadFrame, d.name)
	}
	return out, nil
}

// quote writes delim as ByName's "delimiter:" form reads it back.
func quote(delim string) string {
	q := strconv.Quote(delim)
	return q[1 : len(q)-1]
}
