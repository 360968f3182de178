package sessionmgr

import (
	"errors"
	"testing"
)

// TestReplyWritesAtOnceInOrder: inside the session's callback, Reply writes
// before it returns, after the frames Sent to the session before it, and
// keeps nothing of p: the caller may overwrite p at once. A frame Sent after
// the Reply goes after it.
func TestReplyWritesAtOnceInOrder(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	var afterReply []frameID
	fl.callback(s, func() {
		for seq := range 2 {
			if err := s.Send(newFrame(0, seq, 100)); err != nil {
				t.Fatal(err)
			}
		}
		p := frameBytes(0, 2, 100)
		if err := s.Reply(p); err != nil {
			t.Fatalf("Reply: %v", err)
		}
		clear(p) // not kept
		afterReply = parseFrames(t, c.output())
		if err := s.Send(newFrame(0, 3, 100)); err != nil {
			t.Fatal(err)
		}
	})
	if len(afterReply) != 3 {
		t.Errorf("peer had %v when Reply returned; want frames 0, 1 and 2", afterReply)
	}
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, 4)
	if f, b := s.Stats(); f != 4 || b != 400 {
		t.Errorf("Stats() = %d frames, %d bytes; want 4, 400", f, b)
	}
	if ok, why := settled(fl, s); !ok {
		t.Errorf("not settled after the callback: %s", why)
	}
	remove(fl, m, s)
}

// TestReplyOutsideItsCallback: Reply refuses to write from anywhere but the
// session's own callback: from the loop outside any callback, from another
// session's callback, and from another goroutine while the loop is idle.
func TestReplyOutsideItsCallback(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	other, _ := newSession(t, m, fl)
	p := frameBytes(0, 0, 100)
	var onLoop, inOther, offLoop error
	fl.do(func() { onLoop = s.Reply(p) })
	fl.callback(other, func() { inOther = s.Reply(p) })
	offLoop = s.Reply(p)
	for name, err := range map[string]error{"on the loop": onLoop, "in another session's callback": inOther, "off the loop": offLoop} {
		if !errors.Is(err, ErrNotInCallback) {
			t.Errorf("Reply %s = %v; want ErrNotInCallback", name, err)
		}
	}
	if n := c.outLen(); n != 0 {
		t.Errorf("peer got %d bytes from refused Replies", n)
	}
	remove(fl, m, s)
	remove(fl, m, other)
}

// TestReplyToUnwritableSessionIsHeld: while the session is unwritable,
// Reply copies p and holds it behind the frames already held; once the
// peer reads, everything goes out in order, the reply intact although the
// caller overwrote p.
func TestReplyToUnwritableSessionIsHeld(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{Limits: smallLimits})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	seq := makeUnwritable(t, fl, s, c)
	if err := s.Send(newFrame(0, seq, 10)); err != nil { // held
		t.Fatal(err)
	}
	seq++
	writes := c.writevCalls.Load()
	fl.callback(s, func() {
		p := frameBytes(0, seq, 50)
		if err := s.Reply(p); err != nil {
			t.Fatalf("Reply: %v", err)
		}
		clear(p)
	})
	seq++
	if w := c.writevCalls.Load(); w != writes {
		t.Errorf("%d writes to an unwritable session during Reply; want none", w-writes)
	}
	if got, want := s.Pending(), 10000+10+50; got != want {
		t.Errorf("Pending() = %d; want %d (outbound plus held, the reply among them)", got, want)
	}
	c.stall(false)
	c.peerRead(1 << 30)
	fl.l.Poll()
	fl.drain()
	checkPerSenderOrder(t, parseFrames(t, c.output()), 1, seq)
	if ok, why := settled(fl, s); !ok {
		t.Errorf("not settled after the peer read: %s", why)
	}
	remove(fl, m, s)
}

// TestReplyAfterClose: a Reply from the callback of a session whose
// connection has closed returns ErrSessionClosed and writes nothing.
func TestReplyAfterClose(t *testing.T) {
	checkBuffers(t)
	m := newManager(t, Config{})
	fl := newLoop(t)
	s, c := newSession(t, m, fl)
	var err error
	fl.callback(s, func() {
		c.closeNow() // as gnet does when the peer resets during the callback
		err = s.Reply(frameBytes(0, 0, 100))
	})
	if !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Reply after close = %v; want ErrSessionClosed", err)
	}
	if n := c.outLen(); n != 0 {
		t.Errorf("peer got %d bytes after the close", n)
	}
}
