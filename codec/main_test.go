package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// must returns c for test setup with a configuration known to be valid; it
// panics if err is not nil.
func must(c codec.Codec, err error) codec.Codec {
	if err != nil {
		panic(err)
	}
	return c
}

// reads feeds chunks to c one read at a time, as the server does: each chunk
// is appended to what is buffered, then frames are decoded until Decode asks
// for more bytes. It returns copies of the frames and what stays buffered.
func reads(t testing.TB, c codec.Codec, chunks ...[]byte) (frames []codec.Frame, rest []byte) {
	t.Helper()
	for _, chunk := range chunks {
		rest = append(rest, chunk...)
		for {
			f, n, err := c.Decode(rest)
			if err != nil {
				t.Fatalf("Decode(% x): %v", rest, err)
			}
			if n == 0 {
				break
			}
			frames = append(frames, codec.Frame{Wire: bytes.Clone(f.Wire), Body: bytes.Clone(f.Body), ID: f.ID})
			rest = rest[n:]
		}
	}
	return frames, rest
}

// within reports whether inner lies inside outer's memory.
func within(inner, outer []byte) bool {
	if len(inner) == 0 {
		return true
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(inner)))
	return p >= lo && p+uintptr(len(inner)) <= lo+uintptr(len(outer))
}

// checkDecoder decodes in as the server does and checks every property a
// decoder owes the server: no panic, 0 <= n <= len(in), Wire is the n bytes
// consumed and at most maxWire long, Body lies inside Wire, errors wrap a
// decode sentinel, n == 0 only while less than maxWire bytes are buffered
// (no unbounded buffering), and every frame re-encodes to itself.
func checkDecoder(t *testing.T, c codec.Codec, in []byte, maxWire int) {
	t.Helper()
	rest := in
	for {
		f, n, err := c.Decode(rest)
		if err != nil {
			if n != 0 {
				t.Fatalf("Decode(% x) = n %d with error %v", rest, n, err)
			}
			if !errors.Is(err, codec.ErrFrameTooLarge) && !errors.Is(err, codec.ErrBadLength) {
				t.Fatalf("Decode(% x): error %v wraps no decode sentinel", rest, err)
			}
			if !strings.HasPrefix(err.Error(), "herald/codec: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		switch {
		case n < 0 || n > len(rest):
			t.Fatalf("Decode(% x) = n %d outside [0, %d]", rest, n, len(rest))
		case n == 0 && len(rest) >= maxWire:
			t.Fatalf("Decode wants more bytes with %d buffered; a max frame is %d", len(rest), maxWire)
		case n == 0:
			return
		case len(f.Wire) != n || unsafe.SliceData(f.Wire) != unsafe.SliceData(rest):
			t.Fatalf("Wire (% x) is not the %d bytes consumed", f.Wire, n)
		case len(f.Wire) > maxWire:
			t.Fatalf("frame of %d bytes > max %d", len(f.Wire), maxWire)
		case !within(f.Body, f.Wire):
			t.Fatalf("Body % x is not inside Wire % x", f.Body, f.Wire)
		}
		checkEncode(t, c, codec.Frame{Body: f.Body, ID: f.ID})
		rest = rest[n:]
	}
}

// checkEncode checks that f, if c can encode it, is appended after what dst
// holds and decodes back to the same body and id.
func checkEncode(t *testing.T, c codec.Codec, f codec.Frame) {
	t.Helper()
	dst := []byte("dst")
	enc, err := c.Encode(dst, f)
	if err != nil {
		if !errors.Is(err, codec.ErrBadFrame) && !errors.Is(err, codec.ErrFrameTooLarge) {
			t.Fatalf("Encode(% x): error %v wraps no encode sentinel", f.Body, err)
		}
		return
	}
	if !bytes.HasPrefix(enc, dst) {
		t.Fatalf("Encode clobbered dst: % x", enc)
	}
	enc = enc[len(dst):]
	g, n, err := c.Decode(enc)
	if err != nil || n != len(enc) || !bytes.Equal(g.Body, f.Body) || g.ID != f.ID {
		t.Fatalf("Decode(Encode(body % x, id %d) = % x) = body % x, id %d, n %d, %v",
			f.Body, f.ID, enc, g.Body, g.ID, n, err)
	}
}
