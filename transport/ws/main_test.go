package ws_test

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/transport/ws"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// Real opening handshakes, header for header as the browsers send them
// (order and casing included), and RFC 6455 section 1.3's example key.
const (
	chromeUpgrade = "GET /ws HTTP/1.1\r\n" +
		"Host: 127.0.0.1:7080\r\n" +
		"Connection: Upgrade\r\n" +
		"Pragma: no-cache\r\n" +
		"Cache-Control: no-cache\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
		"Upgrade: websocket\r\n" +
		"Origin: http://127.0.0.1:7080\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
	firefoxUpgrade = "GET /ws?room=lobby HTTP/1.1\r\n" +
		"Host: 127.0.0.1:7080\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n" +
		"Accept: */*\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Origin: http://127.0.0.1:7080\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate\r\n" +
		"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"Sec-Fetch-Dest: empty\r\n" +
		"Sec-Fetch-Mode: websocket\r\n" +
		"Sec-Fetch-Site: same-origin\r\n" +
		"Pragma: no-cache\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Upgrade: websocket\r\n\r\n"
	rfcUpgrade = "GET /chat HTTP/1.1\r\n" +
		"Host: server.example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Origin: http://example.com\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
)

// RFC 6455 section 5.7's example frames. The masked ones are client
// frames (a server decoder's input), the unmasked ones server frames.
var (
	rfcMaskedHello   = []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	rfcMaskedPong    = []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	rfcHello         = []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}
	rfcFragmented    = []byte{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f}
	rfcPing          = []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}
	rfcBinary256     = append([]byte{0x82, 0x7e, 0x01, 0x00}, make([]byte, 256)...)
	rfcBinary64K     = append([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, make([]byte, 65536)...)
	rfcClientExample = [][]byte{rfcMaskedHello, rfcMaskedPong}
	rfcServerExample = [][]byte{rfcHello, rfcFragmented, rfcPing, rfcBinary256, rfcBinary64K}
)

// msg is a decoded message copied out of the decoder's or input's memory.
type msg struct {
	op      ws.Opcode
	code    uint16
	payload string
}

// decodeAll feeds chunks to d one read at a time, as an event loop does:
// each chunk is appended to what is buffered, then Next is called until it
// asks for more. It checks Next's contract on every call and returns the
// messages, the first error and the bytes left buffered.
func decodeAll(t testing.TB, d *ws.Decoder, chunks ...[]byte) (msgs []msg, rest []byte, err error) {
	t.Helper()
	for _, chunk := range chunks {
		rest = append(rest, chunk...)
		for {
			m, n, err := d.Next(rest)
			if err != nil {
				var ce *ws.CloseError
				if n != 0 || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "herald/ws: ") {
					t.Fatalf("Next(% x) = n %d, error %v: want n 0 and a *CloseError", rest, n, err)
				}
				return msgs, rest, err
			}
			if n < 0 || n > len(rest) {
				t.Fatalf("Next(% x) = n %d outside [0, %d]", rest, n, len(rest))
			}
			rest = rest[n:]
			if m.Op == 0 {
				if len(m.Payload) != 0 {
					t.Fatalf("Next returned a payload without an opcode")
				}
				if n == 0 {
					break
				}
				continue
			}
			msgs = append(msgs, msg{op: m.Op, code: m.Code, payload: string(m.Payload)})
		}
	}
	return msgs, rest, nil
}

// sameErr reports whether two decode errors are the same violation.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	var ca, cb *ws.CloseError
	return errors.As(a, &ca) && errors.As(b, &cb) && ca.Code == cb.Code && ca.Reason == cb.Reason
}

// splits returns in cut at every position into two reads (for a long
// input, every position within 300 bytes of either end and a sample
// between), and one byte per read, each a fresh copy (Next unmasks in place).
func splits(in []byte) [][][]byte {
	var out [][][]byte
	for k := 0; k <= len(in); k++ {
		if k > 300 && len(in)-k > 300 && k%997 != 0 { // a long input: its ends and a sample
			continue
		}
		out = append(out, [][]byte{bytes.Clone(in[:k]), bytes.Clone(in[k:])})
	}
	var single [][]byte
	for i := range in {
		single = append(single, []byte{in[i]})
	}
	return append(out, single)
}

func mask(b byte) [4]byte { return [4]byte{b, b ^ 0x5a, b + 1, ^b} }

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
