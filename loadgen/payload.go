package loadgen

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// Packet ids loadgen uses on herald's packet codec.
const (
	// FrameID marks a data frame.
	FrameID uint16 = 1
	// HelloID marks a barrier frame: a client is registered with the server
	// once its own hello comes back.
	HelloID uint16 = 2
)

// Payload layout, all little endian:
//
//	[0:4)        sender  uint32
//	[4:8)        seq     uint32
//	[8:16)       stamp   int64 (send time, ns since the run started)
//	[16:size-4)  padding, a pattern derived from seq
//	[size-4:)    CRC-32C (Castagnoli) of bytes [0:size-4)
const (
	// MinPayloadSize is the smallest payload AppendPayload builds.
	MinPayloadSize = 20
	// MaxPayloadSize is the largest payload that fits one packet frame
	// (65535 bytes including the 4-byte header).
	MaxPayloadSize = 0xFFFF - PacketHeaderLen
	// PacketHeaderLen is the length of the packet codec's header:
	// size uint16 LE, id uint16 LE.
	PacketHeaderLen = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Payload is what ParsePayload reads from a payload.
type Payload struct {
	Sender uint32
	Seq    uint32
	// Stamp is the send time the sender put in the payload: nanoseconds
	// since its run started.
	Stamp int64
}

// AppendPayload appends a payload of size bytes for (sender, seq, stamp) to
// dst and returns the extended slice. It allocates only if dst lacks
// capacity. size must be at least MinPayloadSize; smaller sizes panic.
func AppendPayload(dst []byte, sender, seq uint32, stamp int64, size int) []byte {
	if size < MinPayloadSize {
		panic(fmt.Sprintf("loadgen: payload size %d < %d", size, MinPayloadSize))
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	p := dst[start:]
	binary.LittleEndian.PutUint32(p, sender)
	binary.LittleEndian.PutUint32(p[4:], seq)
	binary.LittleEndian.PutUint64(p[8:], uint64(stamp))
	pad := byte(seq*131 + sender)
	for i := 16; i < size-4; i++ {
		p[i] = pad + byte(i)
	}
	binary.LittleEndian.PutUint32(p[size-4:], crc32.Checksum(p[:size-4], castagnoli))
	return dst
}

// ParsePayload checks p's checksum and returns its header fields. It returns
// an error wrapping ErrCorrupt if p is shorter than MinPayloadSize or its
// checksum does not match. It does not allocate on success.
func ParsePayload(p []byte) (Payload, error) {
	if len(p) < MinPayloadSize {
		return Payload{}, fmt.Errorf("%w: %d bytes < %d", ErrCorrupt, len(p), MinPayloadSize)
	}
	n := len(p) - 4
	if crc32.Checksum(p[:n], castagnoli) != binary.LittleEndian.Uint32(p[n:]) {
		return Payload{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return Payload{
		Sender: binary.LittleEndian.Uint32(p),
		Seq:    binary.LittleEndian.Uint32(p[4:]),
		Stamp:  int64(binary.LittleEndian.Uint64(p[8:])),
	}, nil
}

// AppendPacket appends one packet-codec frame, [size uint16 LE][id uint16 LE]
// followed by payload, to dst. It panics if the frame would exceed 65535
// bytes.
func AppendPacket(dst []byte, id uint16, payload []byte) []byte {
	size := PacketHeaderLen + len(payload)
	if size > 0xFFFF {
		panic(fmt.Sprintf("loadgen: packet size %d > 65535", size))
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(size))
	dst = binary.LittleEndian.AppendUint16(dst, id)
	return append(dst, payload...)
}

// AppendPayloadPacket appends a packet-codec frame with the given id whose
// payload is AppendPayload(sender, seq, stamp, size), building the payload
// in place (no intermediate copy).
func AppendPayloadPacket(dst []byte, id uint16, sender, seq uint32, stamp int64, size int) []byte {
	if size > MaxPayloadSize {
		panic(fmt.Sprintf("loadgen: payload size %d > %d", size, MaxPayloadSize))
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(PacketHeaderLen+size))
	dst = binary.LittleEndian.AppendUint16(dst, id)
	return AppendPayload(dst, sender, seq, stamp, size)
}

// DecodePacket looks for one packet-codec frame at the start of in. It
// returns the frame's id and payload (aliasing in) and the number of bytes
// the frame takes; n == 0 with a nil error means in holds no complete frame
// yet. A size field below the header length is an error (the stream cannot
// be resynchronized).
func DecodePacket(in []byte) (id uint16, payload []byte, n int, err error) {
	if len(in) < PacketHeaderLen {
		return 0, nil, 0, nil
	}
	size := int(binary.LittleEndian.Uint16(in))
	if size < PacketHeaderLen {
		return 0, nil, 0, fmt.Errorf("%w: packet size %d < %d", ErrCorrupt, size, PacketHeaderLen)
	}
	if len(in) < size {
		return 0, nil, 0, nil
	}
	return binary.LittleEndian.Uint16(in[2:]), in[PacketHeaderLen:size], size, nil
}
