package tests

import (
	"bufio"
	"bytes"
	_ "crypto/rand"
	"encoding/binary"
	_ "errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// startWS starts cmd/broadcast's handler with codec c on a TCP and a
// WebSocket listener (path /ws), logging into logs if it is not nil.
func startWS(t *testing.T, c codec.Codec, maxMessage int, logs *syncBuffer, opts ...handler.Option) *handler.Server {
	t.Helper()
	o := []handler.Option{
		handler.WithCodec(c),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, MaxMessage: maxMessage}),
	}
	if logs != nil {
		o = append(o, handler.WithLogger(zerolog.New(logs)))
	}
	return startServer(t, demo.Broadcast{}, append(o, opts...)...)
}

// dialWS opens a gorilla/websocket client on srv's WebSocket listener.
func dialWS(t *testing.T, srv *handler.Server) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	conn, resp, err := d.Dial("ws://"+srv.WebSocketAddr().String()+"/ws", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	resp.Body.Close()
	conn.SetReadLimit(4 << 20)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// roomWire is how one codec's frames look to the room test: the TCP bytes
// of a frame and the WebSocket message that carries it.
type roomWire struct {
	name  string
	codec codec.Codec
	op    int                          // gorilla's message type
	frame func(sender, seq int) []byte // the TCP wire form
	msg   func(frame []byte) []byte    // the WebSocket message's payload
	unmsg func(msg []byte) []byte      // the frame a message carries
	body  func(frame []byte) []byte    // the frame's body
	read  func(r *bufio.Reader) ([]byte, error)
}

func roomWires() []roomWire {
	body := func(sender, seq int) []byte {
		// Sizes cycle through the 7- and 16-bit WebSocket length forms.
		n := []int{0, 40, 121, 122, 300, 2100}[seq%6]
		return fmt.Appendf(nil, "s%d n%04d %s", sender, seq, strings.Repeat(string(rune('a'+seq%26)), n))
	}
	return []roomWire{{
		name:  "packet",
		codec: codec.Packet(0),
		op:    websocket.BinaryMessage,
		frame: func(sender, seq int) []byte { return packetFrame(uint16(seq), body(sender, seq)) },
		msg:   func(f []byte) []byte { return f },
		unmsg: func(m []byte) []byte { return m },
		body:  func(f []byte) []byte { return f[4:] },
		read: func(r *bufio.Reader) ([]byte, error) {
			var hdr [2]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return nil, err
			}
			f := make([]byte, binary.LittleEndian.Uint16(hdr[:]))
			copy(f, hdr[:])
			_, err := io.ReadFull(r, f[2:])
			return f, err
		},
	}, {
		name:  "line",
		codec: codec.Line(0),
		op:    websocket.TextMessage,
		frame: func(sender, seq int) []byte { return append(body(sender, seq), '\n') },
		msg:   func(f []byte) []byte { return bytes.TrimSuffix(f, []byte("\n")) },
		unmsg: func(m []byte) []byte { return append(m, '\n') },
		body:  func(f []byte) []byte { return f },
		read:  func(r *bufio.Reader) ([]byte, error) { return r.ReadBytes('\n') },
	}}
}

// TestWebSocketRoom: WebSocket clients and TCP clients in one room of
// cmd/broadcast's handler each receive every frame from every sender, intact
// and in per-sender order, with the packet codec (binary messages) and the
// line codec (text messages without the newline).
func TestWebSocketRoom(t *testing.T) {
	const wsClients, tcpClients, perSender = 2, 2, 120
	for _, rw := range roomWires() {
		t.Run(rw.name, func(t *testing.T) {
			srv := startWS(t, rw.codec, 0, nil)
			var wsConns []*websocket.Conn
			var tcpConns []net.Conn
			var tcpReaders []*bufio.Reader
			for range wsClients {
				wsConns = append(wsConns, dialWS(t, srv))
			}
			for range tcpClients {
				c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				tcpConns = append(tcpConns, c)
				tcpReaders = append(tcpReaders, bufio.NewReader(c))
			}
			senders := wsClients + tcpClients
			waitFor(t, 5*time.Second, "every session open", func() bool { return srv.Manager().Len() == senders })

			// want[i] is everything sender i sends, as its frames.
			want := make([][][]byte, senders)
			for i := range senders {
				for seq := range perSender {
					want[i] = append(want[i], rw.frame(i, seq))
				}
			}
			got := make([][][]byte, senders) // got[receiver]: the frames in arrival order
			var wg sync.WaitGroup
			errs := make(chan error, 2*senders)
			total := senders * perSender
			for r := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for len(got[r]) < total {
						var f []byte
						var err error
						if r < wsClients {
							c := wsConns[r]
							_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
							var op int
							var m []byte
							if op, m, err = c.ReadMessage(); err == nil && op != rw.op {
								err = fmt.Errorf("message type %d, want %d", op, rw.op)
							}
							f = rw.unmsg(m)
						} else {
							c := tcpConns[r-wsClients]
							_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
							f, err = rw.read(tcpReaders[r-wsClients])
						}
						if err != nil {
							errs <- fmt.Errorf("receiver %d after %d frames: %w", r, len(got[r]), err)
							return
						}
						got[r] = append(got[r], f)
					}
				}()
			}
			for i := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, f := range want[i] {
						var err error
						if i < wsClients {
							err = wsConns[i].WriteMessage(rw.op, rw.msg(f))
						} else {
							_, err = tcpConns[i-wsClients].Write(f)
						}
						if err != nil {
							errs <- fmt.Errorf("sender %d: %w", i, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for r := range senders {
				next := make([]int, senders)
				for k, f := range got[r] {
					var sender, seq int
					if _, err := fmt.Sscanf(string(rw.body(f)), "s%d n%d", &sender, &seq); err != nil || sender >= senders || seq >= perSender {
						t.Fatalf("receiver %d frame %d: %q is no sender's", r, k, f[:min(len(f), 30)])
					}
					if seq != next[sender] || !bytes.Equal(f, want[sender][seq]) {
						t.Fatalf("receiver %d frame %d: sender %d's seq %d (intact %v); want seq %d",
							r, k, sender, seq, bytes.Equal(f, want[sender][seq]), next[sender])
					}
					next[sender]++
				}
			}
		})
	}
}
