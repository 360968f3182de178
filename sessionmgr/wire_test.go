package sessionmgr

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
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

// newDeflateSession is newWSSession for a peer that negotiated
// permessage-deflate: SetDeflate(min) before Add, as the server does.
func newDeflateSession(t testing.TB, m *Manager, fl *fakeLoop, op ws.Opcode, trim []byte, min int) (*Session, *fakeConn) {
	c := newConn(t, fl)
	s := m.NewSession(c, fl.l)
	s.SetWebSocket(op, trim)
	s.SetDeflate(min)
	c.onClose = func() { m.Closed(s) }
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

// wsMsg is one message as a permessage-deflate client reads it: whether it
// came compressed (RSV1) and its payload, inflated.
type wsMsg struct {
	compressed bool
	payload    []byte
}

// wsDeflateMessages decodes out as a client that negotiated
// permessage-deflate.
func wsDeflateMessages(t *testing.T, out []byte) []wsMsg {
	t.Helper()
	d := ws.NewClientDecoder(1 << 20)
	d.AcceptDeflate()
	var msgs []wsMsg
	for len(out) > 0 {
		m, n, err := d.Next(out)
		if err != nil || n == 0 || m.Op == 0 {
			t.Fatalf("undecodable server output after %d messages: %v (n=%d op=%v)", len(msgs), err, n, m.Op)
		}
		msgs = append(msgs, wsMsg{compressed: out[0]&0x40 != 0, payload: bytes.Clone(m.Payload)})
		out = out[n:]
	}
	return msgs
}

// compressible is n bytes of text-like frame: a test frame header and
// then words, which deflate shrinks.
func compressible(seq, n int) []byte {
	p := frameBytes(0, seq, frameHeader)
	for i := 0; len(p) < n; i++ {
		p = fmt.Appendf(p, "word%d ", (seq*7+i)%50)
	}
	return p[:n]
}

// TestWebSocketDeflateBroadcastOnce: a broadcast reaches deflate sessions
// on two loops compressed once per frame, whatever their number, and
// intact; a frame under the threshold, or one that compression would not
// shrink, goes plain (RSV1 clear) to them; plain WebSocket and TCP members
// of the same broadcast get what they always get. Stats count the bytes
// written.
func TestWebSocketDeflateBroadcastOnce(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 1 << 20, HighWatermark: 2 << 20, MaxPending: 4 << 20}})
	const min = 200
	frames := []struct {
		p          []byte
		compressed bool
	}{
		{compressible(0, 4000), true},
		{compressible(1, 100), false},   // under the threshold
		{payload(3000), false},          // random: deflate does not shrink it
		{compressible(3, 70000), true},  // a 64-bit length plain, 16-bit compressed
		{compressible(4, min), true},    // exactly the threshold
		{compressible(5, min-1), false}, // one under
		{bytes.Repeat([]byte{7}, 300), true},
	}
	type member struct {
		s    *Session
		c    *fakeConn
		fl   *fakeLoop
		kind string
	}
	var members []member
	loops := []*fakeLoop{newLoop(t), newLoop(t)}
	for _, fl := range loops {
		for i := range 3 {
			s, c := newDeflateSession(t, m, fl, ws.OpBinary, nil, min)
			members = append(members, member{s, c, fl, fmt.Sprintf("deflate %d", i)})
		}
		w, wc := newWSSession(t, m, fl, ws.OpBinary, nil)
		tcp, tc := newSession(t, m, fl)
		members = append(members, member{w, wc, fl, "plain ws"}, member{tcp, tc, fl, "tcp"})
	}
	for _, f := range frames {
		m.Broadcast(sendbuffer.Copy(f.p))
	}
	for _, fl := range loops {
		fl.drain()
	}
	wantCompressions := 0
	for _, f := range frames {
		if len(f.p) >= min {
			wantCompressions++
		}
	}
	if got := m.Counters().Deflated; got != uint64(wantCompressions) {
		t.Errorf("Counters.Deflated = %d; want %d: one compression per frame of at least %d bytes, not one per recipient", got, wantCompressions, min)
	}
	for _, mb := range members {
		out := mb.c.output()
		switch mb.kind {
		case "tcp":
			var want []byte
			for _, f := range frames {
				want = append(want, f.p...)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("TCP peer got %d bytes; want the %d frames unchanged", len(out), len(frames))
			}
		default:
			got := wsDeflateMessages(t, out)
			if len(got) != len(frames) {
				t.Fatalf("%s: %d messages; want %d", mb.kind, len(got), len(frames))
			}
			for i, f := range frames {
				wantZ := f.compressed && mb.kind != "plain ws"
				if !bytes.Equal(got[i].payload, f.p) || got[i].compressed != wantZ {
					t.Errorf("%s: message %d: %d bytes, compressed %v; want frame %d (%d bytes), compressed %v",
						mb.kind, i, len(got[i].payload), got[i].compressed, i, len(f.p), wantZ)
				}
			}
		}
		if _, b := mb.s.Stats(); int(b) != len(out) {
			t.Errorf("%s: Stats bytes = %d; wrote %d", mb.kind, b, len(out))
		}
	}
	for _, mb := range members {
		remove(mb.fl, m, mb.s)
	}
}

// TestWebSocketDeflateHeldOutlivesOthers: a frame a stalled deflate
// session holds keeps its compressed twin after every other recipient has
// written it and the loop has dropped its reference; the held session
// writes it intact later, and the buffer and its twin are recycled once it
// has (checkBuffers' leak check, and debug mode's poison would show in the
// bytes had the twin gone early).
func TestWebSocketDeflateHeldOutlivesOthers(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 10, HighWatermark: 20, MaxPending: 1 << 20}})
	fl1, fl2 := newLoop(t), newLoop(t)
	var ss []*Session
	var cs []*fakeConn
	for _, fl := range []*fakeLoop{fl1, fl2} {
		s, c := newDeflateSession(t, m, fl, ws.OpText, []byte("\n"), 100)
		ss, cs = append(ss, s), append(cs, c)
	}
	cs[1].stall(true)
	var want [][]byte
	for seq := range 20 {
		line := fmt.Appendf(nil, "line %d: %s", seq, bytes.Repeat([]byte("the quick brown fox "), 150))
		want = append(want, line)
		m.Broadcast(sendbuffer.Copy(append(bytes.Clone(line), '\n')))
		// The first frame fills the stalled peer past its high watermark
		// in one write; the others are held.
		fl1.drain()
		fl2.drain()
	}
	var held int
	fl2.do(func() { held = len(ss[1].backlog) })
	if held == 0 {
		t.Fatal("the stalled session holds nothing: the test does not test holding")
	}
	if got := wsDeflateMessages(t, cs[0].output()); len(got) != len(want) {
		t.Fatalf("the reading session got %d messages; want %d", len(got), len(want))
	}
	cs[1].stall(false)
	cs[1].peerRead(1 << 30)
	fl2.do(func() { fl2.l.Poll() })
	fl2.drain()
	waitIdle(t, fl2, ss[1])
	for i, c := range cs {
		got := wsDeflateMessages(t, c.output())
		if len(got) != len(want) {
			t.Fatalf("session %d got %d messages; want %d", i, len(got), len(want))
		}
		for j := range want {
			if !got[j].compressed || !bytes.Equal(got[j].payload, want[j]) {
				t.Fatalf("session %d message %d: compressed %v, %d bytes; want the compressed line (%d bytes)", i, j, got[j].compressed, len(got[j].payload), len(want[j]))
			}
		}
	}
	if got := m.Counters().Deflated; got != uint64(len(want)) {
		t.Errorf("Counters.Deflated = %d; want %d", got, len(want))
	}
	remove(fl1, m, ss[0])
	remove(fl2, m, ss[1])
}

// TestWebSocketDeflateReply: on a deflate text session a large Reply goes
// compressed (its own compression: one recipient) and a small one plain,
// both without the delimiter; a Reply while the session is unwritable is
// held, and compressed when it is written.
func TestWebSocketDeflateReply(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 10, HighWatermark: 20, MaxPending: 1 << 20}})
	fl := newLoop(t)
	w, c := newDeflateSession(t, m, fl, ws.OpText, []byte("\n"), 0) // DefaultDeflateMin
	c.stall(true)
	long := bytes.Repeat([]byte("all work and no play "), 300) // > DefaultDeflateMin and coalesceMax
	mid := long[:DefaultDeflateMin]
	fl.callback(w, func() {
		// hi leaves 4 bytes in the outbound buffer, long more than the high
		// watermark: mid is held.
		for _, p := range [][]byte{[]byte("hi\n"), append(bytes.Clone(long), '\n'), append(bytes.Clone(mid), '\n')} {
			if err := w.Reply(p); err != nil {
				t.Fatalf("Reply: %v", err)
			}
		}
	})
	fl.drain()
	var held int
	fl.do(func() { held = len(w.backlog) })
	if held != 1 {
		t.Fatalf("%d frames held after the replies; want 1 (the test needs mid held)", held)
	}
	c.stall(false)
	c.peerRead(1 << 30)
	fl.do(func() { fl.l.Poll() })
	fl.drain()
	waitIdle(t, fl, w)
	got := wsDeflateMessages(t, c.output())
	want := []wsMsg{{false, []byte("hi")}, {true, long}, {true, mid}}
	if len(got) != len(want) {
		t.Fatalf("got %d messages; want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].compressed != want[i].compressed || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Errorf("message %d: compressed %v %q; want compressed %v %q", i, got[i].compressed, trunc(got[i].payload), want[i].compressed, trunc(want[i].payload))
		}
	}
	if _, b := w.Stats(); int(b) != len(c.output()) {
		t.Errorf("Stats bytes = %d; wrote %d", b, len(c.output()))
	}
	if got := m.Counters().Deflated; got != 2 {
		t.Errorf("Counters.Deflated = %d; want 2", got)
	}
	remove(fl, m, w)
}

// TestWebSocketDeflateConcurrentLoops: broadcasters on several goroutines
// reach deflate sessions on two loops running on their own goroutines; the
// loops race for each frame's compression (run with -race), every frame is
// compressed exactly once and every session reads every frame intact, in
// each sender's order.
func TestWebSocketDeflateConcurrentLoops(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: Limits{LowWatermark: 4 << 20, HighWatermark: 8 << 20, MaxPending: 16 << 20}})
	loops := []*fakeLoop{newLoop(t).start(), newLoop(t).start()}
	type member struct {
		s  *Session
		c  *fakeConn
		fl *fakeLoop
	}
	var members []member
	for _, fl := range loops {
		for range 4 {
			s, c := newDeflateSession(t, m, fl, ws.OpBinary, nil, 64)
			members = append(members, member{s, c, fl})
		}
	}
	const senders, perSender = 4, 50
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Go(func() {
			for seq := range perSender {
				p := compressible(seq, 500+seq*10)
				binary.LittleEndian.PutUint16(p[4:], uint16(sender))
				m.Broadcast(sendbuffer.Copy(p))
			}
		})
	}
	wg.Wait()
	for _, mb := range members {
		waitIdle(t, mb.fl, mb.s)
	}
	if got := m.Counters().Deflated; got != senders*perSender {
		t.Errorf("Counters.Deflated = %d; want %d (one per frame)", got, senders*perSender)
	}
	for i, mb := range members {
		msgs := wsDeflateMessages(t, mb.c.output())
		if len(msgs) != senders*perSender {
			t.Fatalf("session %d: %d messages; want %d", i, len(msgs), senders*perSender)
		}
		next := make([]int, senders)
		for _, msg := range msgs {
			sender := int(binary.LittleEndian.Uint16(msg.payload[4:]))
			seq := int(binary.LittleEndian.Uint32(msg.payload[6:]))
			want := compressible(seq, 500+seq*10)
			binary.LittleEndian.PutUint16(want[4:], uint16(sender))
			if !msg.compressed || seq != next[sender] || !bytes.Equal(msg.payload, want) {
				t.Fatalf("session %d: sender %d seq %d (want seq %d), compressed %v, intact %v",
					i, sender, seq, next[sender], msg.compressed, bytes.Equal(msg.payload, want))
			}
			next[sender]++
		}
	}
	for _, mb := range members {
		remove(mb.fl, m, mb.s)
	}
	for _, fl := range loops {
		fl.stop()
	}
}
