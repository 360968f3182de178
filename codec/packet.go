package codec

import (
	"encoding/binary"
)

// PacketHeaderLen is the size of the packet codec's header: size and id.
const PacketHeaderLen = 4

// Packet returns herald's default codec: [size uint16 LE][id uint16 LE][payload],
// where size counts the whole frame, header included, so
// 4 <= size <= maxFrame. maxFrame is capped at 65535; 0 means 65535, and
// values below 4 are raised to 4.
//
// Decode fills Frame.ID from the id field and Frame.Body with the payload;
// Encode writes size, f.ID and f.Body. It is the LengthField preset
// {ByteOrder: LittleEndian, LengthFieldLength: 2, LengthAdjustment: -2,
// InitialBytesToStrip: 4} with the id added.
func Packet(maxFrame int) Codec {
	if maxFrame <= 0 || maxFrame > 0xFFFF {
		maxFrame = 0xFFFF
	}
	lf, err := newLengthField(LengthFieldConfig{
		Name:                "packet",
		ByteOrder:           binary.LittleEndian,
		LengthFieldLength:   2,
		LengthAdjustment:    -2,
		InitialBytesToStrip: PacketHeaderLen,
		MaxFrameLength:      max(maxFrame, PacketHeaderLen),
	})
	if err != nil {
		panic(err) // unreachable: the preset is valid for every clamped maxFrame
	}
	return packet{lf}
}

// packet is the length field codec plus the id at bytes 2..4.
type packet struct{ lengthField }

func (p packet) Decode(in []byte) (Frame, int, error) {
	f, n, err := p.lengthField.Decode(in)
	if n > 0 {
		f.ID = binary.LittleEndian.Uint16(f.Wire[2:])
	}
	return f, n, err
}

func (p packet) Encode(dst []byte, f Frame) ([]byte, error) {
	start := len(dst)
	dst, err := p.lengthField.Encode(dst, f)
	if err != nil {
		return dst, err
	}
	binary.LittleEndian.PutUint16(dst[start+2:], f.ID)
	return dst, nil
}
