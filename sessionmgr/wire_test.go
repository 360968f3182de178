package sessionmgr

import (
	"bytes"
	"testing"

	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/transport/ws"
)

// newWSSession is newSession for a WebSocket session: SetWebSocket before
// Add, as the server does.
func newWSSession(t testing.TB, m *Manager, fl *fakeLoop, op ws.Opcode, trim []byte) (*Session, *fakeConn) {
	c := newConn(t, fl)
	s := m.NewSession(c, fl.l)
	s.SetWebSocket(op, trim)
	c.onClose = func() { m.Remove(s) }
	m.Add(s)
	return s, c
}

// wsMessages decodes what a WebSocket client would read from out.
func wsMessages(t *testing.T, out []byte) [][]byte {
	t.Helper()
	d := ws.NewClientDecoder(1 << 20)
	var msgs [][]byte
	for len(out) > 0 {
		m, n, err := d.Next(out)
		if err != nil || n == 0 || m.Op == 0 {
			t.Fatalf("undecodable server output after %d messages: %v (n=%d op=%v)", len(msgs), err, n, m.Op)
		}
		msgs = append(msgs, bytes.Clone(m.Payload))
		out = out[n:]
	}
	return msgs
}

// TestWebSocketBroadcastFraming: one broadcast reaches a TCP session as the
// frame and a WebSocket session as one binary message holding the frame, for
// sizes across the 7-, 16- and 64-bit length forms and the coalescing
// cut-off, and for more small frames than the scratch holds. A large frame
// reaches the WebSocket peer from the shared buffer (not copied), and the
// session's Stats count the bytes written, headers included.
func TestWebSocketBroadcastFraming(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 1 << 20, HighWatermark: 2 << 20, MaxPending: 4 << 20}})
	fl := newLoop(t)
	tcp, tc := newSession(t, m, fl)
	w, wc := newWSSession(t, m, fl, ws.OpBinary, nil)
	sizes := []int{10, 125, 126, 127, 2048, 2049, 65535, 65536, 70000}
	for range 40 {
		sizes = append(sizes, 2000) // 80 KB of small frames: more than the 64 KiB scratch
	}
	var want [][]byte
	for seq, size := range sizes {
		want = append(want, frameBytes(0, seq, size))
		m.Broadcast(newFrame(0, seq, size))
	}
	fl.drain()
	if got := tc.output(); !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Errorf("TCP peer got %d bytes; want the %d frames unchanged", len(got), len(want))
	}
	got := wsMessages(t, wc.output())
	if len(got) != len(want) {
		t.Fatalf("WebSocket peer got %d messages; want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d: %d bytes, not frame %d (%d bytes)", i, len(got[i]), i, len(want[i]))
		}
	}
	if _, b := w.Stats(); int(b) != len(wc.output()) {
		t.Errorf("WebSocket Stats bytes = %d; wrote %d", b, len(wc.output()))
	}
	inPlace := false
	for _, wr := range wc.writes {
		for _, iov := range wr.iovs {
			inPlace = inPlace || (!iov.scratch && iov.n == 70000)
		}
	}
	if !inPlace {
		t.Error("the 70000-byte frame was not written in place from its buffer")
	}
	remove(fl, m, tcp)
	remove(fl, m, w)
}

// TestWebSocketReplyTrims: a text session's frames go out without the
// codec's delimiter, from Reply (small and large) and from Send alike; a
// frame without the delimiter goes out whole.
func TestWebSocketReplyTrims(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	w, wc := newWSSession(t, m, fl, ws.OpText, []byte("\n"))
	long := bytes.Repeat([]byte("x"), 3000)
	fl.callback(w, func() {
		for _, p := range [][]byte{[]byte("hi\n"), append(bytes.Clone(long), '\n'), []byte("\n"), []byte("no newline")} {
			if err := w.Reply(p); err != nil {
				t.Fatalf("Reply: %v", err)
			}
		}
		if err := w.Send(sendbuffer.Copy([]byte("sent\n"))); err != nil {
			t.Fatal(err)
		}
	})
	fl.drain()
	got := wsMessages(t, wc.output())
	want := [][]byte{[]byte("hi"), long, {}, []byte("no newline"), []byte("sent")}
	if len(got) != len(want) {
		t.Fatalf("got %d messages; want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d = %q; want %q", i, trunc(got[i]), trunc(want[i]))
		}
	}
	if _, b := w.Stats(); int(b) != len(wc.output()) {
		t.Errorf("Stats bytes = %d; wrote %d", b, len(wc.output()))
	}
	remove(fl, m, w)
}

func trunc(p []byte) []byte { return p[:min(len(p), 20)] }
