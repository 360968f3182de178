package ws

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// DefaultMaxMessage is a Decoder's message size limit when NewDecoder is
// given 0: the packet codec's largest frame.
const DefaultMaxMessage = 0xFFFF

// keepAssembly is the capacity of an assembly buffer kept for the next
// fragmented message; a larger one is dropped once its message is done,
// so an idle connection holds at most this much.
const keepAssembly = 64 << 10

// Message is one complete message or control frame.
type Message struct {
	// Op is OpText, OpBinary, OpPing, OpPong or OpClose; 0 means no
	// message (Next needs more bytes).
	Op Opcode
	// Payload is the unmasked payload; for OpClose, the reason (the code
	// is in Code). An unfragmented message aliases the input passed to
	// Next (unmasked in place) and is valid as long as those bytes are; a
	// fragmented or compressed one lies in the Decoder's own buffer and is
	// valid until the next call to Next.
	Payload []byte
	// Code is an OpClose frame's status code, CloseNoStatus if it had none.
	Code uint16
}

// CloseError is a protocol violation by the peer: the connection must be
// closed with Code after sending the close frame AppendFrame builds.
type CloseError struct {
	Code   uint16 // CloseProtocolError, CloseInvalidPayload or CloseTooLarge
	Reason string // what was wrong, for the log and the close frame
	Err    error  // ErrProtocol, ErrInvalidUTF8, ErrInvalidDeflate or ErrTooLarge
}

// Error says what the peer did wrong.
func (e *CloseError) Error() string { return e.Err.Error() + ": " + e.Reason }

// Unwrap returns the sentinel.
func (e *CloseError) Unwrap() error { return e.Err }

// AppendFrame appends the close frame that answers the violation.
func (e *CloseError) AppendFrame(dst []byte) []byte { return AppendClose(dst, e.Code, e.Reason) }

func protocolError(format string, args ...any) *CloseError {
	return &CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf(format, args...), Err: ErrProtocol}
}

// Decoder decodes the frames of one connection. It is not safe for
// concurrent use: it belongs to the connection's event loop, like the
// connection's inbound buffer. The zero value is a server-side decoder with
// DefaultMaxMessage.
type Decoder struct {
	max    int  // message size limit; fixed after construction
	client bool // decodes server frames (unmasked); fixed after construction

	deflate bool // permessage-deflate negotiated (AcceptDeflate); fixed after the handshake

	op         Opcode // data opcode of the fragmented message in progress; 0 if none
	compressed bool   // that message is compressed (RSV1 on its first frame)
	buf        []byte // its payload so far, at most max bytes
	valid      int    // bytes of buf known to be whole UTF-8 (uncompressed text only)
	out        []byte // the last compressed message, inflated; at most max bytes
	done       bool   // buf or out is the message Next returned last: clear it on the next call
	closed     bool   // a close frame was decoded; later bytes are ignored
}

// NewDecoder returns a server-side Decoder: client frames must be masked,
// and a message (all its fragments together) may hold at most maxMessage
// bytes (0: DefaultMaxMessage).
func NewDecoder(maxMessage int) *Decoder {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	return &Decoder{max: maxMessage}
}

// NewClientDecoder returns a Decoder for a client: it decodes the server's
// frames, which must not be masked.
func NewClientDecoder(maxMessage int) *Decoder {
	d := NewDecoder(maxMessage)
	d.client = true
	return d
}

// AcceptDeflate makes d take compressed messages (RSV1 set on a message's
// first frame), as negotiated when Upgrade.Deflate is true; call it once,
// before the first frame. They are inflated, whole, into a buffer of d's
// bounded by the message size limit.
func (d *Decoder) AcceptDeflate() { d.deflate = true }

// Next decodes from in, the bytes buffered so far, and returns the first
// complete message or control frame, and n, how many bytes of in it
// consumed; discard those and call again with the rest (and later with
// what arrives). It never blocks and keeps only a fragmented message's
// payload between calls, so in may be split anywhere.
//
// Message.Op == 0 means no message is complete: n is then the fragments
// consumed (copied into the assembly buffer), possibly 0. Fragments of a
// message may be interleaved with control frames, which Next returns as
// they come. Answer OpPing with AppendFrame(dst, OpPong, m.Payload), and
// OpClose with AppendClose(dst, CloseNormal, "") and close the connection;
// after a close frame Next consumes and ignores everything.
//
// Next unmasks a frame in place (it writes to in) once the whole frame is
// buffered, never before, so bytes it has not consumed are unchanged.
//
// An error is a *CloseError (with n == 0): send its AppendFrame and close.
// A frame that would take the message over the limit fails as soon as its
// header arrives, without waiting for its payload.
func (d *Decoder) Next(in []byte) (m Message, n int, err error) {
	if d.done {
		d.done, d.valid = false, 0
		d.buf, d.out = d.buf[:0], d.out[:0]
		if cap(d.buf) > keepAssembly {
			d.buf = nil
		}
		if cap(d.out) > keepAssembly {
			d.out = nil
		}
	}
	if d.closed {
		return Message{}, len(in), nil
	}
	for {
		fn, err := d.frame(in[n:], &m)
		if err != nil {
			return Message{}, 0, err
		}
		n += fn
		if fn == 0 || m.Op != 0 {
			return m, n, nil
		}
	}
}

// frame decodes at most one frame from in into *m: (no message, 0) means
// it is not all buffered; (no message, n > 0) is a fragment added to d.buf.
// *m is written only when a message is complete.
func (d *Decoder) frame(in []byte, m *Message) (int, error) {
	if len(in) < 1 {
		return 0, nil
	}
	b0 := in[0]
	fin, op := b0&finBit != 0, Opcode(b0&0x0F)
	rsv := b0 & rsvBits
	compressed := rsv == rsv1Bit && d.deflate && (op == OpText || op == OpBinary)
	if rsv != 0 && !compressed {
		return 0, protocolError("reserved bits %#x set", rsv)
	}
	switch op {
	case OpContinuation:
		if d.op == 0 {
			return 0, protocolError("continuation frame without a message to continue")
		}
	case OpText, OpBinary:
		if d.op != 0 {
			return 0, protocolError("new data frame inside a fragmented message")
		}
	case OpClose, OpPing, OpPong:
		if !fin {
			return 0, protocolError("fragmented control frame")
		}
	default:
		return 0, protocolError("reserved opcode %#x", byte(op))
	}
	if len(in) < 2 {
		return 0, nil
	}
	b1 := in[1]
	if masked := b1&maskBit != 0; masked == d.client {
		if d.client {
			return 0, protocolError("masked server frame")
		}
		return 0, protocolError("unmasked client frame")
	}
	length, hn := uint64(b1&0x7F), 2
	switch length {
	case 126:
		if len(in) < 4 {
			return 0, nil
		}
		length, hn = uint64(binary.BigEndian.Uint16(in[2:])), 4
	case 127:
		if len(in) < 10 {
			return 0, nil
		}
		length, hn = binary.BigEndian.Uint64(in[2:]), 10
		if length>>63 != 0 {
			return 0, protocolError("64-bit length with its top bit set")
		}
	}
	if op.IsControl() {
		if length > MaxControlPayload {
			return 0, protocolError("control frame of %d bytes", length)
		}
	} else if length > uint64(d.wireLimit(compressed || op == OpContinuation && d.compressed)-len(d.buf)) {
		return 0, tooLarge(d.max)
	}
	var key [4]byte
	if !d.client {
		if len(in) < hn+4 {
			return 0, nil
		}
		copy(key[:], in[hn:])
		hn += 4
	}
	total := hn + int(length) // length <= max(125, d.wireLimit(true)): no overflow
	if len(in) < total {
		return 0, nil
	}
	payload := in[hn:total]
	if !d.client {
		maskBytes(key, payload)
	}
	switch {
	case op.IsControl():
		c, err := d.control(op, payload)
		*m = c
		return total, err
	case fin && op != OpContinuation:
		if compressed {
			var err error
			if payload, err = d.inflate(payload); err != nil {
				return 0, err
			}
			d.done = true
		}
		if op == OpText && !utf8.Valid(payload) {
			return 0, invalidUTF8("text message")
		}
		*m = Message{Op: op, Payload: payload}
		return total, nil
	}
	if op != OpContinuation {
		d.op, d.compressed = op, compressed
	}
	d.buf = append(d.buf, payload...)
	if d.compressed {
		if !fin {
			return total, nil
		}
		p, err := d.inflate(d.buf)
		if err != nil {
			return 0, err
		}
		if d.op == OpText && !utf8.Valid(p) {
			return 0, invalidUTF8("text message")
		}
		*m = Message{Op: d.op, Payload: p}
		d.op, d.compressed, d.done = 0, false, true
		return total, nil
	}
	if d.op == OpText {
		valid, ok := utf8Prefix(d.buf[d.valid:])
		d.valid += valid
		if !ok || (fin && d.valid != len(d.buf)) {
			return 0, invalidUTF8("fragmented text message")
		}
	}
	if !fin {
		return total, nil
	}
	*m = Message{Op: d.op, Payload: d.buf}
	d.op, d.done = 0, true
	return total, nil
}

// wireLimit is how many payload bytes a message may take on the wire: the
// limit itself, or for a compressed message (whose inflated size inflate
// bounds) the limit plus what deflate adds to incompressible data (5 bytes
// per stored block of up to 64 KiB) with room to spare.
func (d *Decoder) wireLimit(compressed bool) int {
	if compressed {
		return d.max + d.max>>10 + 64
	}
	return d.max
}

func (d *Decoder) control(op Opcode, payload []byte) (Message, error) {
	if op != OpClose {
		return Message{Op: op, Payload: payload}, nil
	}
	m := Message{Op: OpClose, Code: CloseNoStatus}
	switch {
	case len(payload) == 1:
		return Message{}, protocolError("close frame with a 1-byte body")
	case len(payload) >= 2:
		m.Code, m.Payload = binary.BigEndian.Uint16(payload), payload[2:]
		if !validCloseCode(m.Code) {
			return Message{}, protocolError("close code %d", m.Code)
		}
		if !utf8.Valid(m.Payload) {
			return Message{}, invalidUTF8("close reason")
		}
	}
	d.closed = true
	return m, nil
}

func tooLarge(limit int) *CloseError {
	return &CloseError{Code: CloseTooLarge, Err: ErrTooLarge, Reason: fmt.Sprintf("message of more than %d bytes", limit)}
}

func invalidUTF8(what string) *CloseError {
	return &CloseError{Code: CloseInvalidPayload, Reason: what + " is not valid UTF-8", Err: ErrInvalidUTF8}
}
