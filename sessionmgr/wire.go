package sessionmgr

import (
	"bytes"
	"sync/atomic"

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

	// Permessage-deflate (SetDeflate): messages of at least deflateMin
	// payload bytes go compressed; 0 means never. deflated counts the
	// compressions (the Manager's Counters.Deflated).
	deflateMin int
	deflated   *atomic.Uint64
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

// DefaultDeflateMin is the payload size from which a permessage-deflate
// session gets its messages compressed when SetDeflate is given 0.
// BenchmarkBroadcastDeflate (deflate sessions against plain ones in the
// same run) puts the line there: a 64-byte binary packet does not shrink
// at all and a 100-byte chat line only to 0.87x its bytes, for a
// compression of about 10 us per frame, which 10 recipients pay as 1.3x to
// 1.4x the server's CPU per delivered message; 4 KiB of chat text goes out
// at 0.38x the bytes, and its compression (60-70 us) costs about what the
// kernel's copies of the saved bytes would have at 100 recipients.
const DefaultDeflateMin = 1024

// SetDeflate makes s, a WebSocket session (SetWebSocket) whose peer
// negotiated permessage-deflate with no context takeover (ws.Upgrade's
// Deflate), get every message of at least min payload bytes (0:
// DefaultDeflateMin) compressed, when compressing makes it smaller; the
// others go plain, as RFC 7692 allows. A broadcast frame is compressed once
// for every such session on every loop, by the first loop that writes it,
// and shared (sendbuffer.Buffer.Twin), so every deflate session a buffer
// reaches must leave off the same trim (a server's sessions do: it comes
// from the codec). A Reply large enough is compressed for its one
// recipient. Limits, Pending and Stats count the compressed bytes written.
// The server calls it after SetWebSocket and before Add; it is fixed from
// then on.
func (s *Session) SetDeflate(min int) {
	if min <= 0 {
		min = DefaultDeflateMin
	}
	s.ws.deflateMin, s.ws.deflated = min, &s.mgr.counts.deflated
}

// message returns what a message carrying frame b holds after its header:
// the compressed payload and true, or the plain payload and false. On the
// loop.
func (w *wsWire) message(b *sendbuffer.Buffer) (p []byte, compressed bool) {
	p = w.payload(b.Bytes())
	if w.deflateMin > 0 && len(p) >= w.deflateMin {
		if c := b.Twin(w.compress).Bytes(); len(c) < len(p) {
			return c, true
		}
	}
	return p, false
}

// compress is the Twin of a frame for the deflate sessions: its message
// payload, compressed on its own. Whichever loop writes the frame first to
// a deflate session.
func (w *wsWire) compress(frame []byte) *sendbuffer.Buffer {
	p := w.payload(frame)
	// Incompressible bytes grow by a few bytes of block headers; beyond
	// that the append reallocates and Write copies, still correct.
	t := sendbuffer.Get(len(p) + 16)
	_, _ = t.Write(ws.AppendDeflated(t.AvailableBuffer(), p)) // in place when it fits
	w.deflated.Add(1)
	return t
}

// appendHeader appends the header of a message of n payload bytes.
func (w *wsWire) appendHeader(dst []byte, n int, compressed bool) []byte {
	if compressed {
		return ws.AppendCompressedFrameHeader(dst, w.op, n)
	}
	return ws.AppendFrameHeader(dst, w.op, n)
}

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
	p, _ := w.message(b)
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
		p, z := w.message(e.b)
		start := used
		used += len(w.appendHeader(l.scratch[used:used], len(p), z))
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
// iovecs. On a deflate session a message large enough is compressed for
// this one recipient, into a buffer released once gnet has the bytes. It
// returns the bytes handed to gnet. On the loop.
func (l *Loop) writeWS(s *Session, p []byte) (int, error) {
	w, frame := s.ws, p
	p = w.payload(p)
	z := false
	if w.deflateMin > 0 && len(p) >= w.deflateMin {
		t := w.compress(frame)
		defer t.Release() // after the write: gnet has written or copied the bytes
		if c := t.Bytes(); len(c) < len(p) {
			p, z = c, true
		}
	}
	h := len(w.appendHeader(l.scratch[:0], len(p), z))
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
