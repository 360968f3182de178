package sessionmgr

import (
	"bytes"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/transport/ws"
)

// wsWire is how a WebSocket session's frames go on the wire: each codec
// frame is one unmasked, unfragmented WebSocket message. Server frames are
// not masked, so the loop writes the 2-10-byte message header before the
// frame's shared bytes, which stay the same for every recipient: nothing
// is encoded or copied per recipient beyond the coalescing every session
// gets.
type wsWire struct {
	op   ws.Opcode // OpBinary or OpText
	trim []byte    // a suffix left off each frame (the line codec's delimiter), or nil
}

// SetWebSocket makes every frame written to s one WebSocket message of
// opcode op (ws.OpBinary or ws.OpText): the loop writes the message header
// before the frame, and leaves off trim if the frame ends with it (the line
// codec's "\n": a text message holds the line without it). Limits, Pending
// and Stats count the bytes written, headers included. The server calls it
// once, right after NewSession and before Add; it is fixed from then on.
func (s *Session) SetWebSocket(op ws.Opcode, trim []byte) {
	s.ws = &wsWire{op: op, trim: bytes.Clone(trim)}
}

// WebSocket reports whether s's frames go out as WebSocket messages (see
// SetWebSocket). Any goroutine.
func (s *Session) WebSocket() bool { return s.ws != nil }

// payload is the part of frame p a message carries.
func (w *wsWire) payload(p []byte) []byte {
	if len(w.trim) > 0 && bytes.HasSuffix(p, w.trim) {
		return p[:len(p)-len(w.trim)]
	}
	return p
}

// size is the number of bytes writing b to s puts on the wire. On the loop.
func (s *Session) size(b *sendbuffer.Buffer) int {
	if s.ws != nil {
		return s.ws.size(b)
	}
	return b.Len()
}

// size is kept out of line so that Session.size, on every TCP frame's
// path, inlines to a nil check and b.Len().
//
//go:noinline
func (w *wsWire) size(b *sendbuffer.Buffer) int {
	p := w.payload(b.Bytes())
	return ws.FrameHeaderLen(len(p)) + len(p)
}

// coalesceWS is coalesce for a WebSocket session: each frame's message
// header goes into the scratch, followed by the frame itself if it is small
// (both then join the run of small frames), or followed by an iovec of the
// frame in place if it is large. A batch holds at most MaxBatchSlices/2
// frames, so it never needs more than MaxBatchSlices iovecs, and the scratch
// keeps room for the headers still to come.
func (l *Loop) coalesceWS(w *wsWire, list []entry) {
	used, runStart := 0, 0
	run := false // the last iovec is a scratch run from runStart to used
	for i, e := range list {
		p := w.payload(e.b.Bytes())
		start := used
		used += len(ws.AppendFrameHeader(l.scratch[used:used], w.op, len(p)))
		copied := len(p) <= coalesceMax && used+len(p) <= len(l.scratch)-ws.MaxHeaderLen*(len(list)-i-1)
		if copied {
			used += copy(l.scratch[used:], p)
		}
		if run {
			l.iov[len(l.iov)-1] = l.scratch[runStart:used]
		} else {
			l.iov = append(l.iov, l.scratch[start:used])
			runStart, run = start, true
		}
		if !copied {
			l.iov = append(l.iov, p)
			run = false
		}
	}
}

// writeWS is Reply's write of p to WebSocket session s: one message, its
// header and p in one write(2) if p is small, else in a writev of two
// iovecs. It returns the bytes handed to gnet. On the loop.
func (l *Loop) writeWS(s *Session, p []byte) (int, error) {
	p = s.ws.payload(p)
	h := len(ws.AppendFrameHeader(l.scratch[:0], s.ws.op, len(p)))
	if len(p) <= coalesceMax {
		n := h + copy(l.scratch[h:], p)
		return s.conn.Write(l.scratch[:n])
	}
	l.iov = append(l.iov, l.scratch[:h], p)
	_, err := s.conn.Writev(l.iov)
	clear(l.iov)
	l.iov = l.iov[:0]
	return h + len(p), err
}
