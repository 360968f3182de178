package backplane

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// A batch on the wire is one NATS message:
//
//	[version u8 = 1][node u64][seq u64][count u32] then count × [len u32][frame]
//
// all little-endian. node is the publishing node's random id, seq the
// sequence number of the batch's first frame on this subject from that node
// (the next batch starts at seq+count), so a receiver knows exactly how many
// frames it missed.
const (
	wireVersion    = 1
	batchHeaderLen = 1 + 8 + 8 + 4
	frameHeaderLen = 4
)

// MaxGroupName is the longest group name, in bytes, that the NATS backplane
// carries. Escaped, it stays well under nats-server's max_control_line.
const MaxGroupName = 256

// subjectPrefix starts every group subject.
const subjectPrefix = "herald.group."

// batch is one NATS message being built: header space, then frames.
type batch struct {
	group  string
	buf    []byte
	frames int
}

// reset empties b for group and reserves its header.
func (b *batch) reset(group string) {
	b.group = group
	b.buf = append(b.buf[:0], make([]byte, batchHeaderLen)...)
	b.frames = 0
}

// add appends one length-prefixed frame.
func (b *batch) add(frame []byte) {
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(frame)))
	b.buf = append(b.buf, frame...)
	b.frames++
}

// seal writes the header; b.buf is then the message to publish.
func (b *batch) seal(node, seq uint64) {
	b.buf[0] = wireVersion
	binary.LittleEndian.PutUint64(b.buf[1:], node)
	binary.LittleEndian.PutUint64(b.buf[9:], seq)
	binary.LittleEndian.PutUint32(b.buf[17:], uint32(b.frames))
}

// header is a decoded batch header.
type header struct {
	node, seq uint64
	count     int
}

// decodeBatch checks all of data and appends its frames, which alias data,
// to dst. On error it returns dst unchanged in length: nothing of a
// malformed message is delivered.
func decodeBatch(data []byte, dst [][]byte) (header, [][]byte, error) {
	if len(data) < batchHeaderLen {
		return header{}, dst, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(data), batchHeaderLen)
	}
	if data[0] != wireVersion {
		return header{}, dst, fmt.Errorf("%w: version %d", ErrMalformed, data[0])
	}
	h := header{
		node: binary.LittleEndian.Uint64(data[1:]),
		seq:  binary.LittleEndian.Uint64(data[9:]),
	}
	count := binary.LittleEndian.Uint32(data[17:])
	rest := data[batchHeaderLen:]
	if count == 0 || uint64(count)*frameHeaderLen > uint64(len(rest)) {
		return header{}, dst, fmt.Errorf("%w: %d frames in %d bytes", ErrMalformed, count, len(rest))
	}
	start := len(dst)
	for i := uint32(0); i < count; i++ {
		if len(rest) < frameHeaderLen {
			return header{}, dst[:start], fmt.Errorf("%w: frame %d: truncated length", ErrMalformed, i)
		}
		n := binary.LittleEndian.Uint32(rest)
		rest = rest[frameHeaderLen:]
		if uint64(n) > uint64(len(rest)) {
			return header{}, dst[:start], fmt.Errorf("%w: frame %d: %d bytes, %d left", ErrMalformed, i, n, len(rest))
		}
		dst = append(dst, rest[:n:n])
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return header{}, dst[:start], fmt.Errorf("%w: %d bytes after the last frame", ErrMalformed, len(rest))
	}
	h.count = int(count)
	return h, dst, nil
}

// subject returns the NATS subject of group: subjectPrefix and one token in
// which ASCII letters, digits and '-' stand for themselves and every other
// byte (including '_', '.', '*', '>' and white space) is '_' and two
// upper-case hex digits. The empty name is "_". The mapping is one-to-one,
// so two groups never share a subject.
func subject(group string) string {
	if group == "" {
		return subjectPrefix + "_"
	}
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(subjectPrefix) + 3*len(group))
	sb.WriteString(subjectPrefix)
	for i := 0; i < len(group); i++ {
		c := group[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('_')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}
