package ws_test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/transport/ws"
)

// benchFrames is count client frames of a size-byte binary payload, and
// the same payloads as packet-codec TCP frames, for a per-frame comparison
// of the two wire formats' decode cost in one run.
func benchFrames(size, count int) (wsIn, tcpIn []byte) {
	pc := codec.Packet(0)
	body := bytes.Repeat([]byte{'x'}, size-codec.PacketHeaderLen)
	for i := range count {
		frame, err := pc.Encode(nil, codec.Frame{ID: 1, Body: body})
		if err != nil {
			panic(err)
		}
		tcpIn = append(tcpIn, frame...)
		wsIn = ws.AppendClientFrame(wsIn, ws.OpBinary, true, frame, mask(byte(i)))
	}
	return wsIn, tcpIn
}

// BenchmarkDecode decodes 64-byte messages from one buffer, as an event
// loop does after a read: the WebSocket decoder (which unmasks, hence the
// fresh copy per pass, counted in both) against the packet codec on the
// same frames over TCP; ws-deflate is the same messages compressed, as a
// client that negotiated permessage-deflate sends them (browsers compress
// every message), inflated by the decoder.
func BenchmarkDecode(b *testing.B) {
	for _, size := range []int{64, 1024} {
		wsIn, tcpIn := benchFrames(size, 256)
		var wsZ []byte
		for in := tcpIn; len(in) > 0; in = in[size:] {
			wsZ = append(wsZ, deflated(ws.OpBinary, in[:size])...)
		}
		for _, z := range []bool{false, true} {
			in, name := wsIn, "ws"
			if z {
				in, name = wsZ, "ws-deflate"
			}
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(256 * size))
				d := ws.NewDecoder(0)
				if z {
					d.AcceptDeflate()
				}
				benchDecode(b, d, in)
			})
		}
		b.Run(fmt.Sprintf("tcp-packet/%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(256 * size))
			pc := codec.Packet(0)
			buf := make([]byte, len(tcpIn))
			for b.Loop() {
				copy(buf, tcpIn)
				for in := buf; len(in) > 0; {
					_, n, err := pc.Decode(in)
					if err != nil || n == 0 {
						b.Fatal(err)
					}
					in = in[n:]
				}
			}
		})
	}
}

// benchDecode decodes every message in a fresh copy of wsIn per op.
func benchDecode(b *testing.B, d *ws.Decoder, wsIn []byte) {
	buf := make([]byte, len(wsIn))
	for b.Loop() {
		copy(buf, wsIn)
		for in := buf; len(in) > 0; {
			_, n, err := d.Next(in)
			if err != nil || n == 0 {
				b.Fatal(err)
			}
			in = in[n:]
		}
	}
}

func BenchmarkParseUpgrade(b *testing.B) {
	in := []byte(chromeUpgrade)
	cfg := &ws.Config{Path: "/ws", Origins: []string{"http://127.0.0.1:7080"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ws.ParseUpgrade(in, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeflate measures what permessage-deflate with
// server_no_context_takeover would cost and save per broadcast: each
// message compressed on its own (so the result could be shared by every
// recipient), for a 64-byte binary game packet, a chat line and a 1 KiB
// JSON state snapshot. It reports the compressed size as a fraction of the
// original (ratio) beside the time per message.
func BenchmarkDeflate(b *testing.B) {
	inputs := map[string][]byte{
		"packet64": payload(64, false), // binary game state: random bytes
		"chat":     []byte("alice: has anyone seen the blue key? I think it was near the north gate"),
		"json1k": func() []byte {
			r := rand.New(rand.NewPCG(1, 2))
			var b []byte
			for len(b) < 1000 {
				b = fmt.Appendf(b, `{"id":%d,"x":%.2f,"y":%.2f,"hp":%d,"state":%q},`,
					r.IntN(100000), r.Float64()*1000, r.Float64()*1000, r.IntN(100), []string{"idle", "walk", "run", "attack"}[r.IntN(4)])
			}
			return b
		}(),
	}
	for _, name := range []string{"packet64", "chat", "json1k"} {
		in := inputs[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			var out bytes.Buffer
			w, _ := flate.NewWriter(&out, flate.BestSpeed)
			for b.Loop() {
				out.Reset()
				w.Reset(&out)
				w.Write(in)
				w.Flush()
			}
			// RFC 7692: the trailing 00 00 ff ff of the flush is not sent.
			b.ReportMetric(float64(out.Len()-4)/float64(len(in)), "ratio")
		})
	}
}
