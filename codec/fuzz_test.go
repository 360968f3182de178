package codec_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/codec"
)

// Every fuzz target decodes arbitrary bytes with checkDecoder (no panic, n
// in range, frames within the max, Body inside Wire, no buffering beyond a
// max frame, decoded frames re-encode to themselves) and, where any body is
// encodable, checks that Encode of the input decodes back.

func FuzzPacket(f *testing.F) {
	f.Add(uint16(0), []byte("\x09\x00\x01\x00hello\x04\x00\xef\xbe"))
	f.Add(uint16(16), []byte("\x10\x00\x01\x00"))
	f.Add(uint16(16), []byte("\x11\x00"))
	f.Add(uint16(4), []byte("\x03\x00\x00\x00"))
	f.Add(uint16(1), []byte("\x04\x00\x07\x00\x04\x00"))
	f.Fuzz(func(t *testing.T, maxFrame uint16, data []byte) {
		limit := int(maxFrame)
		if limit == 0 {
			limit = 0xFFFF
		}
		limit = max(limit, codec.PacketHeaderLen)
		c := codec.Packet(int(maxFrame))
		checkDecoder(t, c, data, limit)
		checkEncode(t, c, codec.Frame{Body: data, ID: uint16(len(data))})
	})
}

// fuzzLengthFields are the Netty Javadoc configurations and a few more, all
// with a small max so that the fuzzer reaches it.
var fuzzLengthFields = func() []codec.LengthFieldConfig {
	var cfgs []codec.LengthFieldConfig
	for _, v := range nettyVectors {
		cfg := v.cfg
		cfg.MaxFrameLength = 64
		cfgs = append(cfgs, cfg)
	}
	return append(cfgs,
		codec.LengthFieldConfig{LengthFieldLength: 1, InitialBytesToStrip: 1, MaxFrameLength: 64},
		codec.LengthFieldConfig{ByteOrder: binary.LittleEndian, LengthFieldOffset: 1, LengthFieldLength: 3, InitialBytesToStrip: 1, MaxFrameLength: 64},
		codec.LengthFieldConfig{LengthFieldLength: 8, LengthAdjustment: -8, InitialBytesToStrip: 8, MaxFrameLength: 64},
		codec.LengthFieldConfig{ByteOrder: binary.LittleEndian, LengthFieldOffset: 2, LengthFieldLength: 4, LengthAdjustment: 3, MaxFrameLength: 64},
		codec.LengthFieldConfig{LengthFieldLength: 2, LengthAdjustment: -5, InitialBytesToStrip: 5, MaxFrameLength: 64},
	)
}()

func FuzzLengthField(f *testing.F) {
	for i, v := range nettyVectors {
		f.Add(uint8(i), []byte(v.before+v.before))
	}
	f.Add(uint8(7), []byte("\x03abc\x00\x41"))
	f.Add(uint8(8), []byte("\xca\x02\x00\x00xy"))
	f.Add(uint8(9), []byte("\x00\x00\x00\x00\x00\x00\x00\x0bxyz\x80\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(uint8(10), []byte("\xca\xfe\x00\x00\x00\x00\x01\x02\x03"))
	f.Add(uint8(11), []byte("\x00\x05\x00\x00\x00\x00\x04"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		cfg := fuzzLengthFields[int(which)%len(fuzzLengthFields)]
		c, err := codec.LengthField(cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkDecoder(t, c, data, cfg.MaxFrameLength)
		if cfg.InitialBytesToStrip >= cfg.LengthFieldOffset+cfg.LengthFieldLength {
			// Otherwise Body holds the length field, which Encode rewrites.
			checkEncode(t, c, codec.Frame{Body: data})
		}
	})
}

func FuzzLine(f *testing.F) {
	f.Add([]byte("hello\nworld\r\n\n"))
	f.Add([]byte("a\r\r\n"))
	f.Add([]byte(strings.Repeat("x", 32) + "\n"))
	f.Add([]byte(strings.Repeat("x", 33)))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 32
		c := codec.Line(limit)
		checkDecoder(t, c, data, limit+1)
		checkEncode(t, c, codec.Frame{Body: data})
	})
}

func FuzzDelimiter(f *testing.F) {
	f.Add("\x00", []byte("a\x00b\x00\x00"))
	f.Add("\r\n", []byte("ab\r\n\r\nc\r\r\n"))
	f.Add("aba", []byte("ab"))
	f.Add("--", []byte(strings.Repeat("-", 40)))
	f.Add("|", []byte(strings.Repeat("x", 33)))
	f.Fuzz(func(t *testing.T, delim string, data []byte) {
		const limit = 32
		if len(delim) == 0 || len(delim) > 4 {
			t.Skip()
		}
		c, err := codec.Delimiter(delim, limit)
		if err != nil {
			t.Fatal(err)
		}
		checkDecoder(t, c, data, limit+len(delim))
		checkEncode(t, c, codec.Frame{Body: data})
	})
}

func FuzzFixed(f *testing.F) {
	f.Add(uint8(1), []byte("abc"))
	f.Add(uint8(4), []byte("abcdefghij"))
	f.Add(uint8(16), []byte("short"))
	f.Fuzz(func(t *testing.T, size uint8, data []byte) {
		if size == 0 {
			t.Skip()
		}
		c, err := codec.Fixed(int(size))
		if err != nil {
			t.Fatal(err)
		}
		checkDecoder(t, c, data, int(size))
		checkEncode(t, c, codec.Frame{Body: data})
	})
}

// FuzzVarint checks the example codec of ExampleCodec.
func FuzzVarint(f *testing.F) {
	f.Add([]byte("\x02hi\x00"))
	f.Add([]byte("\xac\x02"))
	f.Add([]byte("\xff\xff\x03"))
	f.Add([]byte(strings.Repeat("\x80", 11)))
	f.Add([]byte("\x80\x80\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 300
		c := varint{max: limit}
		checkDecoder(t, c, data, limit+binary.MaxVarintLen64)
		checkEncode(t, c, codec.Frame{Body: data})
	})
}
