package ws

import (
	"encoding/binary"
	"unicode/utf8"
)

// Opcode is a frame's opcode (RFC 6455 section 5.2).
type Opcode byte

// The opcodes RFC 6455 defines; the others are reserved and a protocol
// error.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (close, ping, pong).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

// Close status codes (RFC 6455 section 7.4.1) herald sends or checks.
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupported     uint16 = 1003
	CloseNoStatus        uint16 = 1005 // never on the wire: a close frame without a code
	CloseInvalidPayload  uint16 = 1007
	ClosePolicyViolation uint16 = 1008
	CloseTooLarge        uint16 = 1009
	CloseInternalError   uint16 = 1011
)

// Frame size limits.
const (
	// MaxHeaderLen is the longest frame header: 2 bytes, a 64-bit length
	// and a masking key.
	MaxHeaderLen = 14
	// MaxControlPayload is the largest payload of a control frame.
	MaxControlPayload = 125
	// maxCloseReason is what a close frame leaves for the reason after
	// its 2-byte code.
	maxCloseReason = MaxControlPayload - 2
)

const (
	finBit  = 0x80
	rsvBits = 0x70
	maskBit = 0x80
)

// FrameHeaderLen is the length of the unmasked header AppendFrameHeader
// writes for a payload of length bytes: 2, 4 or 10. A caller that builds a
// frame in a buffer of its own can reserve it up front.
func FrameHeaderLen(length int) int {
	switch {
	case length <= 125:
		return 2
	case length <= 0xFFFF:
		return 4
	}
	return 10
}

// AppendFrameHeader appends the header of a final, unmasked frame, as a
// server sends it, for a payload of length bytes. Server frames are not
// masked, so the header and payload are the same bytes for every
// recipient: one encoded frame may be written to all of them.
func AppendFrameHeader(dst []byte, op Opcode, length int) []byte {
	return appendHeader(dst, finBit|byte(op), length, false)
}

// AppendFrame appends a whole final, unmasked server frame.
func AppendFrame(dst []byte, op Opcode, payload []byte) []byte {
	return append(AppendFrameHeader(dst, op, len(payload)), payload...)
}

// AppendClose appends a close frame with code and reason; the reason is
// cut to the 123 bytes a control frame has room for (at a rune boundary).
// A code of CloseNoStatus appends a close frame without a body.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == CloseNoStatus {
		return AppendFrameHeader(dst, OpClose, 0)
	}
	if len(reason) > maxCloseReason {
		cut := maxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = AppendFrameHeader(dst, OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// AppendClientFrame appends a masked frame as a client sends it: fin false
// makes it a fragment (the first with a data opcode, the rest with
// OpContinuation). The payload is masked into dst; payload is not changed.
// Use a fresh random key per frame (crypto/rand), as RFC 6455 requires.
func AppendClientFrame(dst []byte, op Opcode, fin bool, payload []byte, key [4]byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= finBit
	}
	dst = appendHeader(dst, b0, len(payload), true)
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(key, dst[start:])
	return dst
}

func appendHeader(dst []byte, b0 byte, length int, masked bool) []byte {
	var b1 byte
	if masked {
		b1 = maskBit
	}
	switch {
	case length <= 125:
		return append(dst, b0, b1|byte(length))
	case length <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, b0, b1|126), uint16(length))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, b1|127), uint64(length))
}

// maskBytes XORs b with key in place, starting at key position 0 (the
// first byte of a frame's payload).
func maskBytes(key [4]byte, b []byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// validCloseCode reports whether a peer may send code in a close frame.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// utf8Prefix returns how many leading bytes of b are whole valid UTF-8, and
// false if b holds an invalid sequence (as opposed to one cut short at its
// end, which a later fragment may complete).
func utf8Prefix(b []byte) (complete int, ok bool) {
	if utf8.Valid(b) {
		return len(b), true
	}
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			// !FullRune holds only for a valid sequence cut short.
			return i, !utf8.FullRune(b[i:])
		}
		i += size
	}
	return i, true
}
