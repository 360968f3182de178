package ws_test

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/herald-mmo/herald/transport/ws"
)

// FuzzParseUpgrade checks ParseUpgrade on any bytes: no panic, n within
// the input, a request's bytes after n never matter, every shorter prefix of
// an accepted request asks for more bytes, n == 0 only below the header cap,
// every error is a *HandshakeError whose reject is valid HTTP, and an
// accepted request's 101 is accepted by ParseAccept with its key.
func FuzzParseUpgrade(f *testing.F) {
	for _, s := range []string{chromeUpgrade, firefoxUpgrade, rfcUpgrade, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", "GET /ws HTTP/1.1\r\n\r\n"} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, cfgIndex uint8) {
		cfgs := []*ws.Config{nil, {Path: "/ws", Origins: []string{"http://127.0.0.1:7080"}, MaxHeaderBytes: 512}}
		cfg := cfgs[int(cfgIndex)%len(cfgs)]
		limit := ws.DefaultMaxHeaderBytes
		if cfg != nil {
			limit = cfg.MaxHeaderBytes
		}
		u, n, err := ws.ParseUpgrade(in, cfg)
		if n < 0 || n > len(in) {
			t.Fatalf("n %d outside [0, %d]", n, len(in))
		}
		if err != nil {
			var he *ws.HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HandshakeError", err)
			}
			if _, rerr := http.ReadResponse(bufioReader(ws.AppendReject(nil, err)), nil); rerr != nil {
				t.Fatalf("reject for %v is not HTTP: %v", err, rerr)
			}
			return
		}
		if n == 0 {
			if len(in) >= limit {
				t.Fatalf("wants more bytes with %d buffered, cap %d", len(in), limit)
			}
			return
		}
		if u2, n2, err2 := ws.ParseUpgrade(in[:n], cfg); u2 != u || n2 != n || err2 != nil {
			t.Fatalf("bytes after the request changed the result")
		}
		for k := range n {
			if _, pn, perr := ws.ParseUpgrade(in[:k], cfg); pn != 0 || perr != nil {
				t.Fatalf("prefix of %d bytes of an accepted request: n %d, %v", k, pn, perr)
			}
		}
		resp := ws.AppendAccept(nil, u)
		if rn, rerr := ws.ParseAccept(resp, u.Key); rn != len(resp) || rerr != nil {
			t.Fatalf("ParseAccept(AppendAccept) = %d, %v", rn, rerr)
		}
	})
}

// FuzzDecoder checks Decoder.Next on any bytes, as a server (masked frames)
// and as a client, with and without permessage-deflate: the contract decodeAll checks on every call, the same
// messages and error whole and one byte per read, nothing left buffered
// that could be a whole frame, and every message re-encoded as a single
// frame decodes to itself.
func FuzzDecoder(f *testing.F) {
	for _, in := range rfcClientExample {
		f.Add(in, uint16(0), false, false)
	}
	for _, in := range rfcServerExample {
		f.Add(in, uint16(0), true, false)
	}
	f.Add(frames(text(false, ws.OpText, "Hel"), text(true, ws.OpPing, "p"), text(true, ws.OpContinuation, "lo")), uint16(0), false, false)
	f.Add(frames(text(false, ws.OpText, "h\xc3"), text(true, ws.OpContinuation, "\xa9")), uint16(0), false, false)
	f.Add(ws.AppendClientFrame(nil, ws.OpClose, true, []byte("\x03\xe8bye"), mask(1)), uint16(0), false, false)
	f.Add(text(true, ws.OpBinary, "abcdef"), uint16(4), false, false)
	f.Add(deflated(ws.OpText, []byte("hello hello hello"), 3), uint16(0), false, true)
	f.Add(deflated(ws.OpBinary, make([]byte, 2000)), uint16(1000), false, true)
	f.Add(ws.AppendDeflatedFrame(nil, ws.OpText, []byte("compressed by the server")), uint16(0), true, true)
	f.Fuzz(func(t *testing.T, in []byte, maxMessage uint16, client, deflate bool) {
		newDecoder := func(limit int) *ws.Decoder {
			d := ws.NewDecoder(limit)
			if client {
				d = ws.NewClientDecoder(limit)
			}
			if deflate {
				d.AcceptDeflate()
			}
			return d
		}
		limit := int(maxMessage)
		if limit == 0 {
			limit = ws.DefaultMaxMessage
		}
		whole, rest, err := decodeAll(t, newDecoder(limit), bytes.Clone(in))
		var single [][]byte
		for i := range in {
			single = append(single, in[i:i+1])
		}
		bytewise, _, err1 := decodeAll(t, newDecoder(limit), single...) // decodeAll copies each chunk
		if !reflect.DeepEqual(whole, bytewise) || !sameErr(err, err1) {
			t.Fatalf("whole: %v, %v; one byte per read: %v, %v", whole, err, bytewise, err1)
		}
		if err == nil && len(rest) >= ws.MaxHeaderLen+max(limit+limit>>10+64, ws.MaxControlPayload) {
			t.Fatalf("%d bytes buffered without a message, max %d", len(rest), limit)
		}
		for _, m := range whole {
			if m.op == ws.OpClose {
				continue
			}
			var enc []byte
			if client {
				enc = ws.AppendFrame(nil, m.op, []byte(m.payload))
			} else {
				enc = ws.AppendClientFrame(nil, m.op, true, []byte(m.payload), mask(byte(len(m.payload))))
			}
			got, _, err := decodeAll(t, newDecoder(limit), enc)
			if err != nil || len(got) != 1 || got[0] != m {
				t.Fatalf("re-encoded %v decodes to %v, %v", m, got, err)
			}
		}
	})
}

// FuzzRoundTrip fragments a payload (compressed or not) where the fuzzer
// says, puts pings between the fragments, masks it as a client does, and
// checks the server decoder returns every ping and then the payload, at
// any read split.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("Hello"), []byte{3}, false, false, uint8(2))
	f.Add([]byte("h\u00e9llo w\u00f6rld"), []byte{2, 1, 0, 5}, true, false, uint8(7))
	f.Add(make([]byte, 300), []byte{126, 1}, false, false, uint8(200))
	f.Add([]byte("h\u00e9llo h\u00e9llo h\u00e9llo"), []byte{2, 1, 0, 5}, true, true, uint8(9))
	f.Fuzz(func(t *testing.T, payload, cuts []byte, asText, compress bool, split uint8) {
		op := ws.OpBinary
		if asText {
			op = ws.OpText
		}
		var fragments [][]byte
		if compress {
			ks := make([]int, len(cuts))
			for i, c := range cuts {
				ks[i] = int(c)
			}
			fragments = clientDeflated(op, payload, ks...)
		} else {
			rest := payload
			for i, c := range cuts {
				k := min(int(c), len(rest))
				fop := ws.OpContinuation
				if i == 0 {
					fop = op
				}
				fragments = append(fragments, ws.AppendClientFrame(nil, fop, false, rest[:k], mask(c)))
				rest = rest[k:]
			}
			fop := ws.OpContinuation
			if len(cuts) == 0 {
				fop = op
			}
			fragments = append(fragments, ws.AppendClientFrame(nil, fop, true, rest, mask(7)))
		}
		var in []byte
		var want []msg
		for i, f := range fragments {
			in = append(in, f...)
			if i < len(fragments)-1 {
				in = ws.AppendClientFrame(in, ws.OpPing, true, []byte{byte(i)}, mask(byte(i)))
				want = append(want, msg{op: ws.OpPing, payload: string([]byte{byte(i)})})
			}
		}
		want = append(want, msg{op: op, payload: string(payload)})
		k := int(split) % (len(in) + 1)
		d := ws.NewDecoder(1 << 20)
		d.AcceptDeflate()
		got, left, err := decodeAll(t, d, in[:k], in[k:])
		if asText && !utf8.Valid(payload) {
			if !errors.Is(err, ws.ErrInvalidUTF8) {
				t.Fatalf("invalid text %q decoded with %v", payload, err)
			}
			return
		}
		if err != nil || len(left) != 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %v, %d bytes left, %v; want %v", got, len(left), err, want)
		}
	})
}
