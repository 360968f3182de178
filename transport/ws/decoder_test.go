package ws_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/herald-mmo/herald/transport/ws"
)

// frames concatenates client frames.
func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func text(fin bool, op ws.Opcode, p string) []byte {
	return ws.AppendClientFrame(nil, op, fin, []byte(p), mask(byte(len(p))))
}

func TestDecoder(t *testing.T) {
	big := strings.Repeat("x", 70000)
	tests := []struct {
		name string
		max  int
		in   []byte
		want []msg
		code uint16 // close code of the error, 0 for none
		sent error  // its sentinel
	}{
		{name: "rfc masked hello", in: rfcMaskedHello, want: []msg{{op: ws.OpText, payload: "Hello"}}},
		{name: "rfc masked pong", in: rfcMaskedPong, want: []msg{{op: ws.OpPong, payload: "Hello"}}},
		{name: "empty binary", in: ws.AppendClientFrame(nil, ws.OpBinary, true, nil, mask(1)), want: []msg{{op: ws.OpBinary}}},
		{name: "126 bytes uses 16-bit length", in: text(true, ws.OpBinary, big[:126]), want: []msg{{op: ws.OpBinary, payload: big[:126]}}},
		{name: "70000 bytes uses 64-bit length", max: 1 << 20, in: text(true, ws.OpBinary, big), want: []msg{{op: ws.OpBinary, payload: big}}},
		{
			name: "fragments with ping and pong between",
			in: frames(text(false, ws.OpText, "Hel"), text(true, ws.OpPing, "p1"), text(false, ws.OpContinuation, "l"),
				text(true, ws.OpPong, ""), text(true, ws.OpContinuation, "o"), text(true, ws.OpBinary, "b")),
			want: []msg{{op: ws.OpPing, payload: "p1"}, {op: ws.OpPong}, {op: ws.OpText, payload: "Hello"}, {op: ws.OpBinary, payload: "b"}},
		},
		{name: "utf-8 rune split across fragments", in: frames(text(false, ws.OpText, "h\xc3"), text(false, ws.OpContinuation, ""), text(true, ws.OpContinuation, "\xa9!")),
			want: []msg{{op: ws.OpText, payload: "hé!"}}},
		{name: "close with code and reason", in: frames(ws.AppendClientFrame(nil, ws.OpClose, true, []byte("\x03\xe8bye"), mask(3)), text(true, ws.OpText, "ignored")),
			want: []msg{{op: ws.OpClose, code: 1000, payload: "bye"}}},
		{name: "close without body", in: ws.AppendClientFrame(nil, ws.OpClose, true, nil, mask(3)), want: []msg{{op: ws.OpClose, code: ws.CloseNoStatus}}},
		{name: "max message exactly", max: 5, in: frames(text(false, ws.OpBinary, "ab"), text(true, ws.OpContinuation, "cde")), want: []msg{{op: ws.OpBinary, payload: "abcde"}}},

		{name: "unmasked client frame", in: rfcHello, code: 1002, sent: ws.ErrProtocol},
		{name: "reserved bit", in: []byte{0xc1, 0x80, 0, 0, 0, 0}, code: 1002, sent: ws.ErrProtocol},
		{name: "reserved opcode", in: []byte{0x83, 0x80, 0, 0, 0, 0}, code: 1002, sent: ws.ErrProtocol},
		{name: "control opcode 0xb", in: []byte{0x8b, 0x80, 0, 0, 0, 0}, code: 1002, sent: ws.ErrProtocol},
		{name: "ping of 126 bytes", in: text(true, ws.OpPing, big[:126]), code: 1002, sent: ws.ErrProtocol},
		{name: "fragmented ping", in: text(false, ws.OpPing, "x"), code: 1002, sent: ws.ErrProtocol},
		{name: "continuation without start", in: text(true, ws.OpContinuation, "x"), code: 1002, sent: ws.ErrProtocol},
		{name: "text inside fragmented binary", in: frames(text(false, ws.OpBinary, "a"), text(true, ws.OpText, "b")), code: 1002, sent: ws.ErrProtocol},
		{name: "64-bit length top bit", in: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, max: 1 << 30, code: 1002, sent: ws.ErrProtocol},
		{name: "close with 1-byte body", in: ws.AppendClientFrame(nil, ws.OpClose, true, []byte{3}, mask(1)), code: 1002, sent: ws.ErrProtocol},
		{name: "close code 1005 on the wire", in: ws.AppendClientFrame(nil, ws.OpClose, true, []byte{3, 0xed}, mask(1)), code: 1002, sent: ws.ErrProtocol},
		{name: "close code 999", in: ws.AppendClientFrame(nil, ws.OpClose, true, []byte{3, 0xe7}, mask(1)), code: 1002, sent: ws.ErrProtocol},
		{name: "invalid utf-8 text", in: text(true, ws.OpText, "a\xffb"), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "surrogate in text", in: text(true, ws.OpText, "\xed\xa0\x80"), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "invalid utf-8 fails on its fragment", in: frames(text(false, ws.OpText, "ok"), text(false, ws.OpContinuation, "\xc3\x28")), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "text ends inside a rune", in: frames(text(false, ws.OpText, "ok"), text(true, ws.OpContinuation, "\xe2\x82")), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "invalid utf-8 close reason", in: ws.AppendClientFrame(nil, ws.OpClose, true, []byte("\x03\xe8\xff"), mask(1)), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "frame over max", max: 4, in: text(true, ws.OpBinary, "abcde"), code: 1009, sent: ws.ErrTooLarge},
		{name: "fragments over max", max: 5, in: frames(text(false, ws.OpBinary, "abc"), text(true, ws.OpContinuation, "def")), code: 1009, sent: ws.ErrTooLarge},
		{name: "too large fails from the header alone", max: 100, in: []byte{0x82, 0xfe, 0xff, 0xff}, code: 1009, sent: ws.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, chunks := range splits(tt.in) {
				got, _, err := decodeAll(t, ws.NewDecoder(tt.max), chunks...)
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("split %d: messages %+v, want %+v", i, got, tt.want)
				}
				var ce *ws.CloseError
				switch {
				case tt.code == 0 && err != nil:
					t.Fatalf("split %d: %v", i, err)
				case tt.code != 0 && (!errors.As(err, &ce) || ce.Code != tt.code || !errors.Is(err, tt.sent)):
					t.Fatalf("split %d: error %v, want close code %d (%v)", i, err, tt.code, tt.sent)
				}
			}
		})
	}
}

func TestDecoderRFCServerFrames(t *testing.T) {
	want := []msg{
		{op: ws.OpText, payload: "Hello"},
		{op: ws.OpText, payload: "Hello"},
		{op: ws.OpPing, payload: "Hello"},
		{op: ws.OpBinary, payload: string(make([]byte, 256))},
		{op: ws.OpBinary, payload: string(make([]byte, 65536))},
	}
	in := bytes.Join(rfcServerExample, nil)
	got, rest, err := decodeAll(t, ws.NewClientDecoder(1<<20), in)
	if err != nil || len(rest) != 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d messages, rest %d bytes, %v", len(got), len(rest), err)
	}
	// A server decoder refuses the same frames: they are not masked.
	if _, _, err := decodeAll(t, ws.NewDecoder(0), rfcHello); !errors.Is(err, ws.ErrProtocol) {
		t.Fatalf("server decoder took an unmasked frame: %v", err)
	}
}

func TestDecoderZeroCopy(t *testing.T) {
	in := ws.AppendClientFrame(nil, ws.OpBinary, true, []byte("payload"), mask(9))
	m, n, err := ws.NewDecoder(0).Next(in)
	if err != nil || n != len(in) || string(m.Payload) != "payload" {
		t.Fatalf("Next = %q, %d, %v", m.Payload, n, err)
	}
	if unsafe.SliceData(m.Payload) != &in[6] {
		t.Fatal("an unfragmented message was copied, want it in place in the input")
	}
}

func TestDecoderLeavesPartialFrameMasked(t *testing.T) {
	in := ws.AppendClientFrame(nil, ws.OpBinary, true, []byte("payload"), mask(9))
	partial := bytes.Clone(in[:len(in)-1])
	m, n, err := ws.NewDecoder(0).Next(partial)
	if err != nil || n != 0 || m.Op != 0 || !bytes.Equal(partial, in[:len(in)-1]) {
		t.Fatalf("Next on a partial frame = %v, %d, %v; input now % x, was % x", m, n, err, partial, in[:len(in)-1])
	}
}

// The assembled payload is reused by the next message, and a large
// assembly buffer is dropped once its message is done: Next on a decoder
// that has returned a 1 MiB fragmented message allocates the next small
// one afresh rather than keeping 1 MiB per connection.
func TestDecoderAssemblyReuse(t *testing.T) {
	d := ws.NewDecoder(2 << 20)
	small := frames(text(false, ws.OpBinary, "ab"), text(true, ws.OpContinuation, "cd"))
	allocs := testing.AllocsPerRun(100, func() {
		in := bytes.Clone(small) // AllocsPerRun counts this one
		for len(in) > 0 {
			_, n, err := d.Next(in)
			if err != nil {
				t.Fatal(err)
			}
			in = in[n:]
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per fragmented message, want the clone only", allocs)
	}
}

func TestCloseErrorFrame(t *testing.T) {
	_, _, err := decodeAll(t, ws.NewDecoder(0), rfcHello)
	var ce *ws.CloseError
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	got, _, derr := decodeAll(t, ws.NewClientDecoder(0), ce.AppendFrame(nil))
	if derr != nil || len(got) != 1 || got[0].op != ws.OpClose || got[0].code != 1002 || got[0].payload != ce.Reason {
		t.Fatalf("close frame decodes to %v, %v", got, derr)
	}
	long := strings.Repeat("é", 100)
	f := ws.AppendClose(nil, 1000, long)
	if len(f) > 2+ws.MaxControlPayload {
		t.Fatalf("close frame of %d bytes", len(f))
	}
	if got, _, err := decodeAll(t, ws.NewClientDecoder(0), f); err != nil || !strings.HasPrefix(long, got[0].payload) {
		t.Fatalf("long reason: %v, %v", got, err)
	}
}

func TestFrameHeaderLen(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 20} {
		if h := ws.AppendFrameHeader(nil, ws.OpBinary, n); len(h) != ws.FrameHeaderLen(n) {
			t.Errorf("length %d: header % x, FrameHeaderLen %d", n, h, ws.FrameHeaderLen(n))
		}
	}
}
