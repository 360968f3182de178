package ws

import (
	"bytes"
	"compress/flate"
	"io"
	"slices"
	"strings"
	"sync"
)

// Permessage-deflate (RFC 7692), negotiated as herald can share it: the
// server compresses every message on its own (server_no_context_takeover),
// so one compressed frame serves every recipient that negotiated the
// extension, and asks the same of clients (client_no_context_takeover), so
// a connection keeps no compression state between messages: inflaters are
// pooled and taken only while a whole message is inflated.

const rsv1Bit = 0x40

// deflateResponse is the extension AppendAccept sends when negotiated.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateTail ends a message's compressed bytes for the inflater: the
// 00 00 ff ff the sender stripped (RFC 7692 section 7.2.2) and an empty
// final stored block, so that the stream ends with io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// acceptDeflate reports whether the Sec-WebSocket-Extensions offers hold
// a permessage-deflate offer herald can take: parameters among
// server_no_context_takeover, client_no_context_takeover and
// client_max_window_bits, each at most once. An offer limiting the
// server's window (server_max_window_bits) is declined: Go's compressor
// always uses a 32 KiB window.
func acceptDeflate(offers string) bool {
	for offer := range strings.SplitSeq(offers, ",") {
		params := strings.Split(offer, ";")
		if !strings.EqualFold(strings.Trim(params[0], " \t"), "permessage-deflate") {
			continue
		}
		seen, ok := map[string]bool{}, true
		for _, p := range params[1:] {
			name, value, hasValue := strings.Cut(strings.Trim(p, " \t"), "=")
			name = strings.ToLower(strings.Trim(name, " \t"))
			value = strings.Trim(strings.Trim(value, " \t"), `"`)
			switch {
			case seen[name]:
				ok = false
			case name == "server_no_context_takeover" || name == "client_no_context_takeover":
				ok = ok && !hasValue
			case name == "client_max_window_bits":
				ok = ok && (!hasValue || windowBits(value))
			default:
				ok = false
			}
			seen[name] = true
		}
		if ok {
			return true
		}
	}
	return false
}

// windowBits reports whether v is a window size RFC 7692 allows: 8 to 15.
func windowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}

// inflater reads one message's compressed bytes followed by deflateTail.
type inflater struct {
	r   io.ReadCloser // a flate reader over the inflater itself
	src [2][]byte
}

// Read hands the flate reader the message, then the tail.
func (f *inflater) Read(p []byte) (int, error) {
	for len(f.src[0]) == 0 {
		if len(f.src[1]) == 0 {
			return 0, io.EOF
		}
		f.src[0], f.src[1] = f.src[1], nil
	}
	n := copy(p, f.src[0])
	f.src[0] = f.src[0][n:]
	return n, nil
}

// ReadByte makes the flate reader read without a bufio.Reader of its own.
func (f *inflater) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.r = flate.NewReader(f)
	return f
}}

// inflate decompresses a whole message's payload into d.out, at most d.max
// bytes.
func (d *Decoder) inflate(p []byte) ([]byte, error) {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.src = [2][]byte{p, deflateTail}
	if err := f.r.(flate.Resetter).Reset(f, nil); err != nil {
		return nil, corruptDeflate()
	}
	out := d.out[:0]
	for {
		if len(out) == cap(out) {
			out = slices.Grow(out, min(max(512, len(out)), d.max+1-len(out)))
		}
		n, err := f.r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		switch {
		case len(out) > d.max:
			d.out = out[:0]
			return nil, tooLarge(d.max)
		case err == io.EOF:
			d.out = out
			return out, nil
		case err != nil:
			d.out = out[:0]
			return nil, corruptDeflate()
		}
	}
}

func corruptDeflate() *CloseError {
	return &CloseError{Code: CloseInvalidPayload, Reason: "corrupt compressed message", Err: ErrInvalidDeflate}
}

// deflater compresses one message at a time.
type deflater struct {
	w   *flate.Writer
	buf bytes.Buffer
}

var deflaters = sync.Pool{New: func() any {
	z := &deflater{}
	z.w, _ = flate.NewWriter(&z.buf, flate.BestSpeed) // the level is valid: no error
	return z
}}

// AppendDeflatedFrame appends a final, unmasked server frame whose payload
// is payload compressed on its own (RSV1 set), for connections whose
// Upgrade.Deflate is true. Like AppendFrame's, the result is the same for
// every such recipient: compress a broadcast once. The measurements in
// BenchmarkDeflate say when this pays: not for small binary messages
// (they grow) or short chat lines (about a tenth smaller, for a
// compression costing far more than delivering the bytes saved), but for
// text of a kilobyte or more, which shrinks to a third.
func AppendDeflatedFrame(dst []byte, op Opcode, payload []byte) []byte {
	z := deflaters.Get().(*deflater)
	c := z.deflate(payload)
	dst = append(AppendCompressedFrameHeader(dst, op, len(c)), c...)
	z.put()
	return dst
}

// AppendDeflated appends payload compressed on its own, as a compressed
// message carries it: the payload of the frame whose header
// AppendCompressedFrameHeader(op, len(result)) writes. Together they are
// AppendDeflatedFrame, for a caller that keeps the compressed bytes apart
// from the header (herald's sessions write every header into a scratch
// before a shared payload).
func AppendDeflated(dst, payload []byte) []byte {
	z := deflaters.Get().(*deflater)
	dst = append(dst, z.deflate(payload)...)
	z.put()
	return dst
}

// AppendCompressedFrameHeader is AppendFrameHeader for a compressed
// message (RSV1 set): length is the compressed payload's length.
func AppendCompressedFrameHeader(dst []byte, op Opcode, length int) []byte {
	return appendHeader(dst, finBit|rsv1Bit|byte(op), length, false)
}

// deflate compresses payload on its own and returns the compressed bytes,
// valid until z is reused.
func (z *deflater) deflate(payload []byte) []byte {
	z.buf.Reset()
	z.w.Reset(&z.buf)
	z.w.Write(payload) // a bytes.Buffer does not fail
	z.w.Flush()
	c := z.buf.Bytes()
	return c[:len(c)-4] // the flush's 00 00 ff ff, which RFC 7692 leaves out
}

// put returns z to the pool unless a large message grew its buffer.
func (z *deflater) put() {
	if z.buf.Cap() <= keepAssembly {
		deflaters.Put(z)
	}
}
