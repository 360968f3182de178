package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/internal/leakcheck"
)

// streamCase is a codec, the frames sent, and the exact bytes they make.
type streamCase struct {
	name   string
	codec  codec.Codec
	frames []codec.Frame // Body and ID
	wire   string
}

func streamCases() []streamCase {
	crlf := must(codec.Delimiter("\r\n", 8))
	fixed3 := must(codec.Fixed(3))
	len16 := must(codec.ByName("len16", 0))
	len32le := must(codec.ByName("len32le", 0))
	return []streamCase{
		{
			name:  "packet",
			codec: codec.Packet(0),
			frames: []codec.Frame{
				{ID: 1, Body: []byte("hello")},
				{ID: 0xBEEF},
				{ID: 2, Body: []byte("x")},
			},
			wire: "\x09\x00\x01\x00hello" + "\x04\x00\xef\xbe" + "\x05\x00\x02\x00x",
		},
		{
			name:   "line",
			codec:  codec.Line(16),
			frames: []codec.Frame{{Body: []byte("hello")}, {}, {Body: []byte("a b")}},
			wire:   "hello\n\na b\n",
		},
		{
			name:   "delimiter CR LF",
			codec:  crlf,
			frames: []codec.Frame{{Body: []byte("ab")}, {}, {Body: []byte("c\r")}, {Body: []byte("\nd")}},
			wire:   "ab\r\n\r\nc\r\r\n\nd\r\n",
		},
		{
			name:   "fixed 3",
			codec:  fixed3,
			frames: []codec.Frame{{Body: []byte("abc")}, {Body: []byte("def")}},
			wire:   "abcdef",
		},
		{
			name:   "len16",
			codec:  len16,
			frames: []codec.Frame{{Body: []byte("hi")}, {}},
			wire:   "\x00\x02hi\x00\x00",
		},
		{
			name:   "len32le",
			codec:  len32le,
			frames: []codec.Frame{{Body: []byte("hey")}},
			wire:   "\x03\x00\x00\x00hey",
		},
		{
			name:   "varint (example codec)",
			codec:  varint{max: 300},
			frames: []codec.Frame{{Body: []byte("hi")}, {Body: bytes.Repeat([]byte("z"), 200)}},
			wire:   "\x02hi" + "\xc8\x01" + strings.Repeat("z", 200),
		},
	}
}

// TestEncode checks that Encode appends exactly the documented bytes.
func TestEncode(t *testing.T) {
	for _, tc := range streamCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := []byte("dst")
			for _, f := range tc.frames {
				var err error
				if got, err = tc.codec.Encode(got, f); err != nil {
					t.Fatalf("Encode(%+v): %v", f, err)
				}
			}
			if want := "dst" + tc.wire; string(got) != want {
				t.Errorf("Encode = %q, want %q", got, want)
			}
		})
	}
}

// TestDecodeSplits feeds each stream in one read, one byte per read, and
// split in two reads at every byte boundary: the frames are the same.
func TestDecodeSplits(t *testing.T) {
	for _, tc := range streamCases() {
		t.Run(tc.name, func(t *testing.T) {
			wire := []byte(tc.wire)
			check := func(how string, chunks ...[]byte) {
				t.Helper()
				frames, rest := reads(t, tc.codec, chunks...)
				if len(rest) != 0 {
					t.Fatalf("%s: % x left buffered", how, rest)
				}
				if len(frames) != len(tc.frames) {
					t.Fatalf("%s: %d frames, want %d", how, len(frames), len(tc.frames))
				}
				var wires []byte
				for i, f := range frames {
					if !bytes.Equal(f.Body, tc.frames[i].Body) || f.ID != tc.frames[i].ID {
						t.Fatalf("%s: frame %d = body %q id %d, want %q id %d", how, i, f.Body, f.ID, tc.frames[i].Body, tc.frames[i].ID)
					}
					wires = append(wires, f.Wire...)
				}
				if !bytes.Equal(wires, wire) {
					t.Fatalf("%s: Wires = %q, want %q", how, wires, wire)
				}
			}
			check("one read", wire)
			var bytewise [][]byte
			for i := range wire {
				bytewise = append(bytewise, wire[i:i+1])
			}
			check("byte per read", bytewise...)
			for k := range wire {
				check(fmt.Sprintf("split at %d", k), wire[:k], wire[k:])
			}
		})
	}
}

// TestDecodePrefixes checks that every proper prefix of a frame asks for
// more bytes, and the whole frame decodes with n == its length.
func TestDecodePrefixes(t *testing.T) {
	for _, tc := range streamCases() {
		t.Run(tc.name, func(t *testing.T) {
			rest := []byte(tc.wire)
			for _, want := range tc.frames {
				enc, err := tc.codec.Encode(nil, want)
				if err != nil {
					t.Fatal(err)
				}
				for k := range enc {
					if _, n, err := tc.codec.Decode(rest[:k]); n != 0 || err != nil {
						t.Fatalf("Decode(% x) = n %d, %v; want 0, nil", rest[:k], n, err)
					}
				}
				f, n, err := tc.codec.Decode(rest[:len(enc)])
				if err != nil || n != len(enc) || !bytes.Equal(f.Wire, enc) {
					t.Fatalf("Decode(% x) = n %d, Wire % x, %v", enc, n, f.Wire, err)
				}
				rest = rest[n:]
			}
		})
	}
}

func TestRaw(t *testing.T) {
	c := codec.Raw()
	if _, n, err := c.Decode(nil); n != 0 || err != nil {
		t.Errorf("Decode(nil) = %d, %v; want 0, nil", n, err)
	}
	f, n, err := c.Decode([]byte("any\x00bytes"))
	if err != nil || n != 9 || string(f.Wire) != "any\x00bytes" || string(f.Body) != "any\x00bytes" {
		t.Errorf("Decode = %q %q %d %v", f.Wire, f.Body, n, err)
	}
	if out, err := c.Encode([]byte("a"), codec.Frame{Body: []byte("b")}); err != nil || string(out) != "ab" {
		t.Errorf("Encode = %q, %v", out, err)
	}
}

// TestDecodeErrors lists inputs each decoder rejects, and inputs it must
// wait on (wantErr nil: n == 0, more bytes needed).
func TestDecodeErrors(t *testing.T) {
	crlf := must(codec.Delimiter("\r\n", 4))
	tests := []struct {
		name    string
		codec   codec.Codec
		in      string
		wantErr error
	}{
		{"packet size 0", codec.Packet(0), "\x00\x00", codec.ErrBadLength},
		{"packet size 3 < header", codec.Packet(0), "\x03\x00", codec.ErrBadLength},
		{"packet size > max, header only", codec.Packet(100), "\x65\x00", codec.ErrFrameTooLarge},
		{"packet size = max waits", codec.Packet(100), "\x64\x00\x01\x00", nil},
		{"packet one byte waits", codec.Packet(0), "\xff", nil},
		{"line longer than max", codec.Line(4), "abcde", codec.ErrFrameTooLarge},
		{"line of max waits", codec.Line(4), "abcd", nil},
		{"line CR counts toward max", codec.Line(4), "abcd\r\n", codec.ErrFrameTooLarge},
		{"delimiter longer than max", crlf, "abcd\r\r", codec.ErrFrameTooLarge},
		{"delimiter half of delimiter waits", crlf, "abcd\r", nil},
		{"varint malformed, 10 bytes", varint{max: 10}, strings.Repeat("\x80", 10), codec.ErrBadLength},
		{"varint malformed, 11 bytes", varint{max: 10}, strings.Repeat("\x80", 11), codec.ErrBadLength},
		{"varint too large, length only", varint{max: 10}, "\x0b", codec.ErrFrameTooLarge},
		{"varint 9 continuation bytes wait", varint{max: 10}, strings.Repeat("\x80", 9), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := tc.codec.Decode([]byte(tc.in))
			if n != 0 || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Decode(%q) = n %d, %v; want 0, %v", tc.in, n, err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "herald/codec: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestEncodeErrors lists frames each encoder refuses; dst is returned as is.
func TestEncodeErrors(t *testing.T) {
	aba := must(codec.Delimiter("aba", 10))
	fixed3 := must(codec.Fixed(3))
	len16 := must(codec.ByName("len16", 1<<20))
	tests := []struct {
		name    string
		codec   codec.Codec
		body    string
		wantErr error
	}{
		{"packet larger than max", codec.Packet(10), "1234567", codec.ErrFrameTooLarge},
		{"line larger than max", codec.Line(3), "1234", codec.ErrFrameTooLarge},
		{"line containing newline", codec.Line(0), "a\nb", codec.ErrBadFrame},
		{"line ending with CR", codec.Line(0), "a\r", codec.ErrBadFrame},
		{"delimiter inside body", aba, "xabay", codec.ErrBadFrame},
		{"body completing an earlier delimiter", aba, "ab", codec.ErrBadFrame},
		{"fixed too long", fixed3, "abcd", codec.ErrFrameTooLarge},
		{"fixed too short", fixed3, "ab", codec.ErrBadFrame},
		{"len16 length overflows its field", len16, strings.Repeat("x", 1<<16), codec.ErrFrameTooLarge},
		{"varint larger than max", varint{max: 3}, "abcd", codec.ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("dst")
			out, err := tc.codec.Encode(dst, codec.Frame{Body: []byte(tc.body)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Encode(%q) error = %v, want %v", tc.body, err, tc.wantErr)
			}
			if string(out) != "dst" {
				t.Errorf("Encode returned %q, want dst unchanged", out)
			}
		})
	}
}

func TestNewBuffer(t *testing.T) {
	leakcheck.Check(t)
	b, err := codec.NewBuffer(codec.Packet(0), codec.Frame{ID: 9, Body: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b.Bytes()), "\x07\x00\x09\x00abc"; got != want {
		t.Errorf("Bytes = %q, want %q", got, want)
	}
	b.Release()
	if _, err := codec.NewBuffer(codec.Packet(8), codec.Frame{Body: []byte("too long")}); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("NewBuffer(too long) error = %v, want ErrFrameTooLarge", err)
	}
}

// TestHotPathAllocs checks that Decode and Encode into a large enough dst
// do not allocate.
func TestHotPathAllocs(t *testing.T) {
	for _, tc := range streamCases() {
		t.Run(tc.name, func(t *testing.T) {
			wire := []byte(tc.wire)
			dst := make([]byte, 0, len(wire))
			allocs := testing.AllocsPerRun(100, func() {
				for rest := wire; len(rest) > 0; {
					_, n, _ := tc.codec.Decode(rest)
					rest = rest[n:]
				}
				out := dst
				for _, f := range tc.frames {
					out, _ = tc.codec.Encode(out, f)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per stream, want 0", allocs)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 100)
	for _, name := range []string{"packet", "len32", "line", "delimiter"} {
		c := must(codec.ByName(name, 0))
		wire, err := c.Encode(nil, codec.Frame{Body: body})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if _, n, err := c.Decode(wire); n != len(wire) || err != nil {
					b.Fatal(n, err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	f := codec.Frame{Body: bytes.Repeat([]byte("x"), 100)}
	for _, name := range []string{"packet", "len32", "line", "delimiter"} {
		c := must(codec.ByName(name, 0))
		dst := make([]byte, 0, 256)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f.Body)))
			for b.Loop() {
				if _, err := c.Encode(dst, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSizerAgreesWithDecode: for every prefix of a frame that Decode finds
// incomplete, a Sizer's FrameSize is 0 (header incomplete) or the frame's
// whole length, which is what Decode then consumes.
func TestSizerAgreesWithDecode(t *testing.T) {
	lf32, err := codec.ByName("len32", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fx, _ := codec.Fixed(10)
	for _, c := range []codec.Codec{codec.Packet(0), lf32, fx} {
		sz, ok := c.(codec.Sizer)
		if !ok {
			t.Fatalf("%s: not a Sizer", c.Name())
		}
		body := make([]byte, 10)
		if c.Name() != "fixed:10" {
			body = make([]byte, 3000)
		}
		wire, err := c.Encode(nil, codec.Frame{ID: 1, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < len(wire); k++ {
			if _, n, err := c.Decode(wire[:k]); n != 0 || err != nil {
				t.Fatalf("%s: Decode of %d/%d bytes = %d, %v; want incomplete", c.Name(), k, len(wire), n, err)
			}
			if got := sz.FrameSize(wire[:k]); got != 0 && got != len(wire) {
				t.Fatalf("%s: FrameSize of %d/%d bytes = %d; want 0 or %d", c.Name(), k, len(wire), got, len(wire))
			}
		}
		if got := sz.FrameSize(wire); got != len(wire) {
			t.Fatalf("%s: FrameSize(whole) = %d; want %d", c.Name(), got, len(wire))
		}
	}
}
