package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/herald-mmo/herald/codec"
)

const hw = "HELLO, WORLD"

// nettyVectors are the worked examples of the Javadoc of Netty's
// LengthFieldBasedFrameDecoder, in its order: the configuration and the
// bytes BEFORE and AFTER decoding. Netty's default byte order is big-endian.
var nettyVectors = []struct {
	name   string
	cfg    codec.LengthFieldConfig
	before string // the frame as received: Frame.Wire
	after  string // Netty's decoded ByteBuf: Frame.Body
}{
	{
		name:   "2 bytes length field at offset 0, do not strip header",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 0, LengthFieldLength: 2, LengthAdjustment: 0, InitialBytesToStrip: 0},
		before: "\x00\x0c" + hw,
		after:  "\x00\x0c" + hw,
	},
	{
		name:   "2 bytes length field at offset 0, strip header",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 0, LengthFieldLength: 2, LengthAdjustment: 0, InitialBytesToStrip: 2},
		before: "\x00\x0c" + hw,
		after:  hw,
	},
	{
		name:   "2 bytes length field at offset 0, do not strip header, the length field represents the length of the whole message",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 0, LengthFieldLength: 2, LengthAdjustment: -2, InitialBytesToStrip: 0},
		before: "\x00\x0e" + hw,
		after:  "\x00\x0e" + hw,
	},
	{
		name:   "3 bytes length field at the end of 5 bytes header, do not strip header",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 2, LengthFieldLength: 3, LengthAdjustment: 0, InitialBytesToStrip: 0},
		before: "\xca\xfe" + "\x00\x00\x0c" + hw,
		after:  "\xca\xfe" + "\x00\x00\x0c" + hw,
	},
	{
		name:   "3 bytes length field at the beginning of 5 bytes header, do not strip header",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 0, LengthFieldLength: 3, LengthAdjustment: 2, InitialBytesToStrip: 0},
		before: "\x00\x00\x0c" + "\xca\xfe" + hw,
		after:  "\x00\x00\x0c" + "\xca\xfe" + hw,
	},
	{
		name:   "2 bytes length field at offset 1 in the middle of 4 bytes header, strip the first header field and the length field",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 1, LengthFieldLength: 2, LengthAdjustment: 1, InitialBytesToStrip: 3},
		before: "\xca" + "\x00\x0c" + "\xfe" + hw,
		after:  "\xfe" + hw,
	},
	{
		name:   "2 bytes length field at offset 1 in the middle of 4 bytes header, strip the first header field and the length field, the length field represents the length of the whole message",
		cfg:    codec.LengthFieldConfig{LengthFieldOffset: 1, LengthFieldLength: 2, LengthAdjustment: -3, InitialBytesToStrip: 3},
		before: "\xca" + "\x00\x10" + "\xfe" + hw,
		after:  "\xfe" + hw,
	},
}

// lengthField returns the codec cfg describes, failing the test if cfg is
// invalid.
func lengthField(t testing.TB, cfg codec.LengthFieldConfig) codec.Codec {
	t.Helper()
	c, err := codec.LengthField(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLengthFieldNettyVectors(t *testing.T) {
	for _, v := range nettyVectors {
		t.Run(v.name, func(t *testing.T) {
			c := lengthField(t, v.cfg)
			before := []byte(v.before + "next")
			for k := range len(v.before) {
				if _, n, err := c.Decode(before[:k]); n != 0 || err != nil {
					t.Fatalf("Decode(first %d bytes) = n %d, %v; want 0, nil", k, n, err)
				}
			}
			f, n, err := c.Decode(before)
			if err != nil || n != len(v.before) {
				t.Fatalf("Decode = n %d, %v; want %d, nil", n, err, len(v.before))
			}
			if string(f.Wire) != v.before || string(f.Body) != v.after || f.ID != 0 {
				t.Fatalf("Decode = Wire %q Body %q ID %d; want %q %q 0", f.Wire, f.Body, f.ID, v.before, v.after)
			}

			// Encode writes the frame back, but header bytes Decode strips
			// (other than the length field) as zeros.
			want := []byte(v.before)
			lenStart, lenEnd := v.cfg.LengthFieldOffset, v.cfg.LengthFieldOffset+v.cfg.LengthFieldLength
			for i := range v.cfg.InitialBytesToStrip {
				if i < lenStart || i >= lenEnd {
					want[i] = 0
				}
			}
			got, err := c.Encode(nil, codec.Frame{Body: []byte(v.after)})
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Encode(%q) = % x, %v; want % x", v.after, got, err, want)
			}
		})
	}
}

// TestLengthFieldWidths checks every field width in both byte orders.
func TestLengthFieldWidths(t *testing.T) {
	tests := []struct {
		name  string
		order binary.ByteOrder
		width int
		wire  string // the length field for a 3-byte body, then the body
	}{
		{"1 byte", nil, 1, "\x03abc"},
		{"2 bytes big-endian", binary.BigEndian, 2, "\x00\x03abc"},
		{"2 bytes little-endian", binary.LittleEndian, 2, "\x03\x00abc"},
		{"3 bytes big-endian (nil order)", nil, 3, "\x00\x00\x03abc"},
		{"3 bytes little-endian", binary.LittleEndian, 3, "\x03\x00\x00abc"},
		{"4 bytes big-endian", binary.BigEndian, 4, "\x00\x00\x00\x03abc"},
		{"4 bytes little-endian", binary.LittleEndian, 4, "\x03\x00\x00\x00abc"},
		{"8 bytes big-endian", binary.BigEndian, 8, "\x00\x00\x00\x00\x00\x00\x00\x03abc"},
		{"8 bytes little-endian", binary.LittleEndian, 8, "\x03\x00\x00\x00\x00\x00\x00\x00abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := lengthField(t, codec.LengthFieldConfig{
				ByteOrder: tc.order, LengthFieldLength: tc.width, InitialBytesToStrip: tc.width,
			})
			if got, err := c.Encode(nil, codec.Frame{Body: []byte("abc")}); err != nil || string(got) != tc.wire {
				t.Fatalf("Encode = %q, %v; want %q", got, err, tc.wire)
			}
			f, n, err := c.Decode([]byte(tc.wire))
			if err != nil || n != len(tc.wire) || string(f.Body) != "abc" {
				t.Fatalf("Decode = %q, %d, %v", f.Body, n, err)
			}
		})
	}
}

func TestLengthFieldDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     codec.LengthFieldConfig
		in      string
		wantErr error
	}{
		{
			name:    "8-byte length with the sign bit set",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 8},
			in:      "\x80\x00\x00\x00\x00\x00\x00\x00",
			wantErr: codec.ErrBadLength,
		},
		{
			name:    "huge 8-byte length",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 8},
			in:      "\x7f\xff\xff\xff\xff\xff\xff\xff",
			wantErr: codec.ErrFrameTooLarge,
		},
		{
			name:    "adjusted length shorter than the length field end",
			cfg:     codec.LengthFieldConfig{LengthFieldOffset: 1, LengthFieldLength: 2, LengthAdjustment: -3},
			in:      "\xca\x00\x02",
			wantErr: codec.ErrBadLength,
		},
		{
			name:    "frame shorter than the bytes to strip, known from the header",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 2, LengthAdjustment: -2, InitialBytesToStrip: 4},
			in:      "\x00\x03",
			wantErr: codec.ErrBadLength,
		},
		{
			name:    "too large as soon as the header shows it",
			cfg:     codec.LengthFieldConfig{LengthFieldOffset: 2, LengthFieldLength: 4, MaxFrameLength: 100},
			in:      "\xca\xfe\x00\x00\x00\x5f",
			wantErr: codec.ErrFrameTooLarge,
		},
		{
			name:    "max frame exactly waits for the body",
			cfg:     codec.LengthFieldConfig{LengthFieldOffset: 2, LengthFieldLength: 4, MaxFrameLength: 100},
			in:      "\xca\xfe\x00\x00\x00\x5e",
			wantErr: nil,
		},
		{
			name:    "incomplete length field waits",
			cfg:     codec.LengthFieldConfig{LengthFieldOffset: 2, LengthFieldLength: 4, MaxFrameLength: 100},
			in:      "\xca\xfe\xff\xff\xff",
			wantErr: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := lengthField(t, tc.cfg)
			_, n, err := c.Decode([]byte(tc.in))
			if n != 0 || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Decode(% x) = n %d, %v; want 0, %v", tc.in, n, err, tc.wantErr)
			}
		})
	}
}

func TestLengthFieldEncodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     codec.LengthFieldConfig
		body    string
		wantErr error
	}{
		{
			name:    "frame longer than max",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 2, InitialBytesToStrip: 2, MaxFrameLength: 5},
			body:    "abcd",
			wantErr: codec.ErrFrameTooLarge,
		},
		{
			name:    "length does not fit a 1-byte field",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 1, InitialBytesToStrip: 1, MaxFrameLength: 1000},
			body:    string(make([]byte, 256)),
			wantErr: codec.ErrFrameTooLarge,
		},
		{
			name:    "unstripped header missing from the body",
			cfg:     codec.LengthFieldConfig{LengthFieldOffset: 2, LengthFieldLength: 3},
			body:    "\xca\xfe\x00",
			wantErr: codec.ErrBadFrame,
		},
		{
			name:    "body shorter than the adjustment",
			cfg:     codec.LengthFieldConfig{LengthFieldLength: 3, LengthAdjustment: 2},
			body:    "\x00\x00\x00\xca",
			wantErr: codec.ErrBadFrame,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := lengthField(t, tc.cfg)
			if out, err := c.Encode(nil, codec.Frame{Body: []byte(tc.body)}); !errors.Is(err, tc.wantErr) || len(out) != 0 {
				t.Fatalf("Encode = % x, %v; want nothing, %v", out, err, tc.wantErr)
			}
		})
	}
}

func TestLengthFieldConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    codec.LengthFieldConfig
		wantOK bool
	}{
		{"default", codec.DefaultLengthFieldConfig(), true},
		{"zero max and nil order take defaults", codec.LengthFieldConfig{LengthFieldLength: 2}, true},
		{"width 0", codec.LengthFieldConfig{}, false},
		{"width 5", codec.LengthFieldConfig{LengthFieldLength: 5}, false},
		{"negative offset", codec.LengthFieldConfig{LengthFieldLength: 2, LengthFieldOffset: -1}, false},
		{"negative strip", codec.LengthFieldConfig{LengthFieldLength: 2, InitialBytesToStrip: -1}, false},
		{"negative max", codec.LengthFieldConfig{LengthFieldLength: 2, MaxFrameLength: -1}, false},
		{"max above the limit", codec.LengthFieldConfig{LengthFieldLength: 2, MaxFrameLength: codec.MaxFrameLimit + 1}, false},
		{"length field ends past max", codec.LengthFieldConfig{LengthFieldOffset: 7, LengthFieldLength: 4, MaxFrameLength: 10}, false},
		{"length field ends at max", codec.LengthFieldConfig{LengthFieldOffset: 6, LengthFieldLength: 4, MaxFrameLength: 10}, true},
		{"strip past max", codec.LengthFieldConfig{LengthFieldLength: 2, InitialBytesToStrip: 11, MaxFrameLength: 10}, false},
		{"adjustment past the limit", codec.LengthFieldConfig{LengthFieldLength: 2, LengthAdjustment: -codec.MaxFrameLimit - 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.wantOK || (err != nil && !errors.Is(err, codec.ErrBadConfig)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.wantOK)
			}
			if _, err2 := codec.LengthField(tc.cfg); (err2 == nil) != (err == nil) {
				t.Fatalf("LengthField error %v disagrees with Validate %v", err2, err)
			}
		})
	}
}
