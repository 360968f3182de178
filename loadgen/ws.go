package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/herald-mmo/herald/transport/ws"
)

// Transports.
const (
	// TransportTCP sends codec frames on the TCP stream (the default).
	TransportTCP = "tcp"
	// TransportWS opens a WebSocket on each connection (GET Config.WSPath)
	// and sends each codec frame as one masked binary message; what the
	// server sends back is read as the stream of its messages' payloads.
	// Fan-out and echo with the goroutine engine only.
	TransportWS = "ws"
)

// DefaultWSPath is the WebSocket request path when Config.WSPath is empty.
const DefaultWSPath = "/ws"

// wsMaxMessage bounds a message the server sends: a whole 1 MiB stream
// chunk, well above a packet frame.
const wsMaxMessage = 1<<20 + 64

func checkTransport(t string) error {
	if t != TransportTCP && t != TransportWS {
		return configErr("Transport %q is neither %q nor %q", t, TransportTCP, TransportWS)
	}
	return nil
}

// dialConns opens cfg.Clients connections to cfg.Addr over cfg.Transport
// within cfg.ConnectTimeout. For TransportWS, packetFrames says each Write
// holds whole packet frames, one message each; otherwise a Write is one
// message.
func dialConns(ctx context.Context, cfg *Config, packetFrames bool) ([]net.Conn, error) {
	conns, err := dialAll(ctx, cfg.Addr, cfg.Clients, cfg.ConnectTimeout)
	if err != nil || cfg.Transport != TransportWS {
		return conns, err
	}
	deadline := time.Now().Add(cfg.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for i, c := range conns {
		wc, err := newWSConn(c, addrFor(cfg.Addr, i), cfg.WSPath, packetFrames, deadline)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("loadgen: websocket handshake %s (connection %d of %d): %w", addrFor(cfg.Addr, i), i+1, len(conns), err)
		}
		conns[i] = wc
	}
	return conns, nil
}

// wsConn is a client WebSocket over a net.Conn, seen as a byte stream:
// Write sends its frames as messages, Read returns the payloads of the
// messages received, in order. One goroutine may Read while another
// Writes.
type wsConn struct {
	net.Conn
	packetFrames bool // fixed after construction

	wmu  sync.Mutex // guards wbuf and writes to Conn
	wbuf []byte

	// Owned by the reader.
	dec        *ws.Decoder
	in         []byte // bytes read from Conn; in[start:end] not decoded yet
	start, end int
	pending    []byte // payload not yet returned by Read; aliases in or dec's buffer
	err        error  // sticky read error, returned once pending is drained
}

func newWSConn(c net.Conn, host, path string, packetFrames bool, deadline time.Time) (*wsConn, error) {
	w := &wsConn{Conn: c, packetFrames: packetFrames, dec: ws.NewClientDecoder(wsMaxMessage), in: make([]byte, 128<<10)}
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	key := ws.NewKey()
	if _, err := c.Write(ws.AppendRequest(nil, host, path, key)); err != nil {
		return nil, err
	}
	for {
		k, err := c.Read(w.in[w.end:])
		w.end += k
		n, perr := ws.ParseAccept(w.in[:w.end], key)
		switch {
		case perr != nil:
			return nil, perr
		case n > 0:
			w.start = n
			return w, nil
		case err != nil:
			return nil, err
		case w.end == len(w.in):
			return nil, errors.New("handshake response too large")
		}
	}
}

// Write sends b as WebSocket messages: each whole packet frame in b as one
// binary message (b must hold whole frames), or all of b as one when the
// connection does not carry packet frames. All of b goes in one write; an
// empty b sends nothing.
func (w *wsConn) Write(b []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.wbuf = w.wbuf[:0]
	for rest := b; len(rest) > 0; {
		n := len(rest)
		if w.packetFrames {
			if len(rest) < 2 {
				return 0, fmt.Errorf("loadgen: websocket write of %d bytes does not hold whole packet frames", len(b))
			}
			if n = int(binary.LittleEndian.Uint16(rest)); n < 4 || n > len(rest) {
				return 0, fmt.Errorf("loadgen: websocket write of %d bytes does not hold whole packet frames", len(b))
			}
		}
		w.wbuf = ws.AppendClientFrame(w.wbuf, ws.OpBinary, true, rest[:n], maskKey())
		rest = rest[n:]
	}
	if _, err := w.Conn.Write(w.wbuf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// maskKey is a fresh masking key (math/rand/v2's global source is ChaCha8,
// unpredictable enough for masking, and cheap).
func maskKey() (key [4]byte) {
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	return key
}

// Read returns payload bytes of the messages received, reading the socket
// only when no whole message is buffered.
func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if n := w.drain(p); n > 0 || len(p) == 0 {
			return n, nil
		}
		if w.err != nil {
			return 0, w.err
		}
		if w.start > 0 { // nothing in in[:start] is referenced: pending is empty
			w.end = copy(w.in, w.in[w.start:w.end])
			w.start = 0
		}
		if w.end == len(w.in) {
			w.in = append(w.in, make([]byte, len(w.in))...) // a message longer than in, at most wsMaxMessage
		}
		k, err := w.Conn.Read(w.in[w.end:])
		w.end += k
		if err != nil {
			w.err = err
		}
	}
}

// drain copies pending payload, then payloads of further whole messages,
// into p. A payload that does not fit stays pending: it aliases in (or the
// decoder's buffer), which Read leaves alone until pending is empty.
func (w *wsConn) drain(p []byte) int {
	n := copy(p, w.pending)
	w.pending = w.pending[n:]
	start := w.start
	for n < len(p) && len(w.pending) == 0 && w.err == nil {
		m, used, err := w.dec.Next(w.in[start:w.end])
		start += used
		switch {
		case err != nil:
			w.err = fmt.Errorf("loadgen: websocket: %w", err)
		case m.Op == 0:
			w.start = start
			return n
		case m.Op == ws.OpBinary || m.Op == ws.OpText:
			k := copy(p[n:], m.Payload)
			n += k
			if k < len(m.Payload) {
				w.pending = m.Payload[k:]
			}
		case m.Op == ws.OpPing:
			w.wmu.Lock()
			_, err := w.Conn.Write(ws.AppendClientFrame(nil, ws.OpPong, true, m.Payload, maskKey()))
			w.wmu.Unlock()
			if err != nil {
				w.err = err
			}
		case m.Op == ws.OpClose:
			w.err = io.EOF
			if m.Code != ws.CloseNormal && m.Code != ws.CloseNoStatus {
				w.err = fmt.Errorf("loadgen: websocket closed by the server: %d %s", m.Code, m.Payload)
			}
		}
	}
	w.start = start
	return n
}

// Close sends a close frame (best effort, not waiting for the server's)
// and closes the connection.
func (w *wsConn) Close() error {
	if w.wmu.TryLock() { // a writer blocked on a full socket must not hold Close up
		w.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		w.Conn.Write(ws.AppendClientFrame(nil, ws.OpClose, true, []byte{0x03, 0xe8}, maskKey()))
		w.wmu.Unlock()
	}
	return w.Conn.Close()
}
