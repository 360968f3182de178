package ws_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/herald-mmo/herald/transport/ws"
)

// deflateRaw compresses p as one permessage-deflate message: a sync flush
// with its trailing 00 00 ff ff removed.
func deflateRaw(p []byte) []byte {
	var b bytes.Buffer
	w := testDeflaters.Get().(*flate.Writer) // a new one allocates a lot: fuzzing calls this often
	defer testDeflaters.Put(w)
	w.Reset(&b)
	w.Write(p)
	w.Flush()
	return b.Bytes()[:b.Len()-4]
}

var testDeflaters = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, flate.BestSpeed); return w }}

// clientDeflated is p compressed and sent as masked client frames, the
// compressed bytes cut into fragments after each of cuts bytes, RSV1 on
// the first; one frame per fragment.
func clientDeflated(op ws.Opcode, p []byte, cuts ...int) [][]byte {
	c := deflateRaw(p)
	var out [][]byte
	for i, k := range append(cuts, len(c)) {
		k = min(k, len(c))
		fop := ws.OpContinuation
		if i == 0 {
			fop = op
		}
		f := ws.AppendClientFrame(nil, fop, k == len(c), c[:k], mask(byte(k)))
		if i == 0 {
			f[0] |= 0x40
		}
		out = append(out, f)
		if c = c[k:]; len(c) == 0 {
			break
		}
	}
	return out
}

// deflated is clientDeflated's frames back to back.
func deflated(op ws.Opcode, p []byte, cuts ...int) []byte {
	return frames(clientDeflated(op, p, cuts...)...)
}

func TestDeflateNegotiation(t *testing.T) {
	on := &ws.Config{Deflate: true}
	tests := []struct {
		offer string
		cfg   *ws.Config
		want  bool
	}{
		{"permessage-deflate; client_max_window_bits", on, true},                                 // Chrome
		{"permessage-deflate", on, true},                                                         // Firefox
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", on, true}, // gorilla
		{"permessage-deflate; client_max_window_bits=12", on, true},
		{`permessage-deflate; client_max_window_bits="15"`, on, true},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", on, true}, // the second offer
		{"permessage-deflate; server_max_window_bits=10", on, false},
		{"permessage-deflate; client_max_window_bits=16", on, false},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", on, false},
		{"permessage-deflate; server_no_context_takeover=1", on, false},
		{"permessage-deflate; mystery", on, false},
		{"x-webkit-deflate-frame", on, false},
		{"permessage-deflate", nil, false},
		{"permessage-deflate", &ws.Config{}, false},
	}
	for _, tt := range tests {
		req := strings.Replace(rfcUpgrade, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: "+tt.offer+"\r\n\r\n", 1)
		u, _, err := ws.ParseUpgrade([]byte(req), tt.cfg)
		if err != nil || u.Deflate != tt.want {
			t.Errorf("offer %q (config %+v): Deflate %v, %v; want %v", tt.offer, tt.cfg, u.Deflate, err, tt.want)
		}
		resp, err := http.ReadResponse(bufioReader(ws.AppendAccept(nil, u)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); (ext != "") != tt.want ||
			tt.want && ext != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
			t.Errorf("offer %q: response extension %q", tt.offer, ext)
		}
	}
	// Our client offers nothing, so a response with an extension is wrong.
	u, _, _ := ws.ParseUpgrade([]byte(strings.Replace(rfcUpgrade, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1)), on)
	if _, err := ws.ParseAccept(ws.AppendAccept(nil, u), u.Key); !errors.Is(err, ws.ErrBadResponse) {
		t.Errorf("ParseAccept took an extension it did not offer: %v", err)
	}
}

func TestDeflateDecoder(t *testing.T) {
	json := bytes.Repeat([]byte(`{"x":1,"y":2,"state":"walk"},`), 3000) // 87 KB
	tests := []struct {
		name string
		max  int
		in   []byte
		want []msg
		code uint16
		sent error
	}{
		{name: "compressed text", in: deflated(ws.OpText, []byte("hello hello hello")), want: []msg{{op: ws.OpText, payload: "hello hello hello"}}},
		{name: "compressed empty binary", in: deflated(ws.OpBinary, nil), want: []msg{{op: ws.OpBinary}}},
		{name: "compressed, fragmented, ping between, then plain", max: 1 << 20,
			in: func() []byte {
				f := clientDeflated(ws.OpBinary, json, 7, 100)
				if len(f) != 3 {
					panic("want 3 fragments")
				}
				return frames(f[0], f[1], text(true, ws.OpPing, "p"), f[2], text(true, ws.OpBinary, "plain"))
			}(),
			want: []msg{{op: ws.OpPing, payload: "p"}, {op: ws.OpBinary, payload: string(json)}, {op: ws.OpBinary, payload: "plain"}}},
		{name: "bomb: inflates past the limit", max: 64 << 10, in: deflated(ws.OpBinary, make([]byte, 1<<20)), code: 1009, sent: ws.ErrTooLarge},
		{name: "corrupt compressed data", in: func() []byte {
			f := ws.AppendClientFrame(nil, ws.OpBinary, true, []byte{0xff, 0xff, 0xff}, mask(1))
			f[0] |= 0x40
			return f
		}(), code: 1007, sent: ws.ErrInvalidDeflate},
		{name: "compressed invalid utf-8", in: deflated(ws.OpText, []byte("a\xffb")), code: 1007, sent: ws.ErrInvalidUTF8},
		{name: "rsv1 on a continuation", in: func() []byte {
			f := frames(text(false, ws.OpBinary, "a"), text(true, ws.OpContinuation, "b"))
			f[7] |= 0x40 // the second frame's first byte
			return f
		}(), code: 1002, sent: ws.ErrProtocol},
		{name: "rsv1 on a ping", in: func() []byte { f := text(true, ws.OpPing, "p"); f[0] |= 0x40; return f }(), code: 1002, sent: ws.ErrProtocol},
		{name: "rsv2", in: func() []byte { f := text(true, ws.OpBinary, "p"); f[0] |= 0x20; return f }(), code: 1002, sent: ws.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, chunks := range splits(tt.in) {
				d := ws.NewDecoder(tt.max)
				d.AcceptDeflate()
				got, _, err := decodeAll(t, d, chunks...)
				var ce *ws.CloseError
				switch {
				case len(got) != len(tt.want) || (len(got) > 0 && !equalMsgs(got, tt.want)):
					t.Fatalf("split %d: %d messages, want %d", i, len(got), len(tt.want))
				case tt.code == 0 && err != nil:
					t.Fatalf("split %d: %v", i, err)
				case tt.code != 0 && (!errors.As(err, &ce) || ce.Code != tt.code || !errors.Is(err, tt.sent)):
					t.Fatalf("split %d: error %v, want close code %d (%v)", i, err, tt.code, tt.sent)
				}
			}
		})
	}
	// Without AcceptDeflate, RSV1 is a protocol error.
	if _, _, err := decodeAll(t, ws.NewDecoder(0), deflated(ws.OpText, []byte("hi"))); !errors.Is(err, ws.ErrProtocol) {
		t.Fatalf("RSV1 without deflate: %v", err)
	}
}

func equalMsgs(a, b []msg) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestAppendDeflatedFrame(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 65536, 300000} {
		for _, p := range [][]byte{payload(size, false), payload(size, true)} {
			f := ws.AppendDeflatedFrame([]byte("dst"), ws.OpBinary, p)
			if !bytes.HasPrefix(f, []byte("dst")) || f[3]&0x40 == 0 {
				t.Fatalf("%d bytes: frame % x...", size, f[:min(len(f), 8)])
			}
			d := ws.NewClientDecoder(1 << 20)
			d.AcceptDeflate()
			got, rest, err := decodeAll(t, d, f[3:])
			if err != nil || len(rest) != 0 || len(got) != 1 || got[0].payload != string(p) {
				t.Fatalf("%d bytes: decoded %d messages, %v", size, len(got), err)
			}
			// The same frame from its two halves, as a session writes it.
			c := ws.AppendDeflated([]byte("dst"), p)
			split := append(ws.AppendCompressedFrameHeader(nil, ws.OpBinary, len(c)-3), c[3:]...)
			if !bytes.HasPrefix(c, []byte("dst")) || !bytes.Equal(split, f[3:]) {
				t.Fatalf("%d bytes: AppendCompressedFrameHeader + AppendDeflated differ from AppendDeflatedFrame", size)
			}
		}
	}
}
