package demo_test

import (
	"bytes"
	"testing"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestEchoRaw: cmd/echo's default, byte for byte, whatever the reads.
func TestEchoRaw(t *testing.T) {
	k := handlertest.New(t, demo.Echo{}, handler.WithCodec(codec.Raw()))
	p := k.Connect()
	p.SplitReads(3)
	in := []byte("the quick brown fox")
	p.Feed(in)
	if got := p.Received(); !bytes.Equal(got, in) {
		t.Fatalf("echoed %q; want %q", got, in)
	}
}

// TestEchoPacket: with -codec packet, frame for frame, to the sender only.
func TestEchoPacket(t *testing.T) {
	k := handlertest.New(t, demo.Echo{}, handler.WithCodec(codec.Packet(0)))
	a, b := k.Connect(), k.Connect()
	a.FeedFrame(codec.Frame{ID: 7, Body: []byte("ping")})
	if got := a.Frames(); len(got) != 1 || got[0].ID != 7 || string(got[0].Body) != "ping" {
		t.Fatalf("a got %v; want one frame 7 \"ping\"", got)
	}
	if got := b.Frames(); len(got) != 0 {
		t.Fatalf("b got %d frames; want none", len(got))
	}
}

// TestBroadcastChat: cmd/broadcast with -codec line is a chat room: a line
// from one reaches everyone, the sender included, in the order sent.
func TestBroadcastChat(t *testing.T) {
	k := handlertest.New(t, demo.Broadcast{}, handler.WithCodec(codec.Line(1024)), handler.WithLoops(2))
	ps := []*handlertest.Peer{k.Connect(), k.Connect(), k.Connect()}
	ps[0].Feed([]byte("hello\nhow are "))
	ps[1].Feed([]byte("hi\n"))
	ps[0].Feed([]byte("you?\n"))
	for i, p := range ps {
		if got := string(p.Received()); got != "hello\nhi\nhow are you?\n" {
			t.Errorf("peer %d heard %q", i, got)
		}
	}
}
