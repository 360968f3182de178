package loadgen

import (
	"errors"
	"testing"

	"github.com/herald-mmo/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		sender uint32
		seq    uint32
		stamp  int64
		size   int
	}{
		{name: "minimum", sender: 0, seq: 0, stamp: 0, size: MinPayloadSize},
		{name: "typical", sender: 7, seq: 12345, stamp: 987654321, size: 64},
		{name: "large ids", sender: 1<<32 - 1, seq: 1<<32 - 1, stamp: -1, size: 1000},
		{name: "max", sender: 3, seq: 9, stamp: 42, size: MaxPayloadSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("xyz")
			p := AppendPayload(prefix, tt.sender, tt.seq, tt.stamp, tt.size)
			if string(p[:3]) != "xyz" || len(p) != 3+tt.size {
				t.Fatalf("AppendPayload: len %d, prefix %q; want %d bytes after the prefix", len(p), p[:3], tt.size)
			}
			got, err := ParsePayload(p[3:])
			if err != nil {
				t.Fatalf("ParsePayload: %v", err)
			}
			want := Payload{Sender: tt.sender, Seq: tt.seq, Stamp: tt.stamp}
			if got != want {
				t.Fatalf("ParsePayload = %+v, want %+v", got, want)
			}

			frame := AppendPayloadPacket(nil, FrameID, tt.sender, tt.seq, tt.stamp, tt.size)
			id, body, n, err := DecodePacket(append(frame, 0xEE))
			if err != nil || n != len(frame) || id != FrameID || string(body) != string(p[3:]) {
				t.Fatalf("DecodePacket = id %d, %d bytes, n %d, err %v; want id %d, the payload, n %d",
					id, len(body), n, err, FrameID, len(frame))
			}
			if string(AppendPacket(nil, FrameID, p[3:])) != string(frame) {
				t.Fatal("AppendPacket and AppendPayloadPacket differ")
			}
		})
	}
}

func TestParsePayloadDetectsCorruption(t *testing.T) {
	p := AppendPayload(nil, 5, 77, 1234, 64)
	for i := range p {
		for _, bit := range []byte{0x01, 0x80} {
			q := append([]byte(nil), p...)
			q[i] ^= bit
			if _, err := ParsePayload(q); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrCorrupt", i, bit, err)
			}
		}
	}
	if _, err := ParsePayload(p[:MinPayloadSize-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short payload: err = %v, want ErrCorrupt", err)
	}
	if _, err := ParsePayload(p[:len(p)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated payload: err = %v, want ErrCorrupt", err)
	}
}

func TestDecodePacket(t *testing.T) {
	frame := AppendPayloadPacket(nil, HelloID, 1, 2, 3, 32)
	for cut := range len(frame) {
		if _, _, n, err := DecodePacket(frame[:cut]); n != 0 || err != nil {
			t.Fatalf("%d of %d bytes: n %d, err %v; want 0, nil", cut, len(frame), n, err)
		}
	}
	if _, _, _, err := DecodePacket([]byte{3, 0, 1, 0}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("size 3: err = %v, want ErrCorrupt", err)
	}
}

func TestAppendPayloadAllocs(t *testing.T) {
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendPayloadPacket(buf[:0], FrameID, 1, 2, 3, 64)
		if _, err := ParsePayload(buf[PacketHeaderLen:]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per build+parse, want 0", allocs)
	}
}

func TestTracker(t *testing.T) {
	type obs struct{ sender, seq uint32 }
	tests := []struct {
		name     string
		senders  int
		frames   []obs
		sent     []uint32
		want     Verdict
		outcomes []Outcome
	}{
		{
			name:     "in order",
			senders:  2,
			frames:   []obs{{0, 0}, {1, 0}, {0, 1}, {1, 1}},
			sent:     []uint32{2, 2},
			want:     Verdict{Received: 4},
			outcomes: []Outcome{InOrder, InOrder, InOrder, InOrder},
		},
		{
			name:     "tail lost",
			senders:  1,
			frames:   []obs{{0, 0}},
			sent:     []uint32{3},
			want:     Verdict{Received: 1, Lost: 2},
			outcomes: []Outcome{InOrder},
		},
		{
			name:     "gap lost",
			senders:  1,
			frames:   []obs{{0, 0}, {0, 3}, {0, 4}},
			sent:     []uint32{5},
			want:     Verdict{Received: 3, Lost: 2},
			outcomes: []Outcome{InOrder, Ahead, InOrder},
		},
		{
			name:     "reordered fills the gap",
			senders:  1,
			frames:   []obs{{0, 0}, {0, 4}, {0, 2}, {0, 1}, {0, 3}},
			sent:     []uint32{5},
			want:     Verdict{Received: 5, Reordered: 3},
			outcomes: []Outcome{InOrder, Ahead, Late, Late, Late},
		},
		{
			name:     "duplicates",
			senders:  1,
			frames:   []obs{{0, 0}, {0, 1}, {0, 1}, {0, 0}, {0, 2}},
			sent:     []uint32{3},
			want:     Verdict{Received: 5, Duplicated: 2},
			outcomes: []Outcome{InOrder, InOrder, Duplicate, Duplicate, InOrder},
		},
		{
			name:     "late then duplicate of the late one",
			senders:  1,
			frames:   []obs{{0, 1}, {0, 0}, {0, 0}},
			sent:     []uint32{2},
			want:     Verdict{Received: 3, Duplicated: 1, Reordered: 1},
			outcomes: []Outcome{Ahead, Late, Duplicate},
		},
		{
			name:     "unknown sender",
			senders:  1,
			frames:   []obs{{1, 0}},
			sent:     []uint32{0},
			want:     Verdict{},
			outcomes: []Outcome{UnknownSender},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.senders)
			for i, f := range tt.frames {
				if got := tr.Observe(f.sender, f.seq); got != tt.outcomes[i] {
					t.Fatalf("frame %d (%d/%d): outcome %d, want %d", i, f.sender, f.seq, got, tt.outcomes[i])
				}
			}
			got := tr.Verdict(func(s int) uint32 { return tt.sent[s] })
			if got != tt.want {
				t.Fatalf("Verdict = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTrackerInOrderAllocs(t *testing.T) {
	tr := NewTracker(4)
	var seq uint32
	allocs := testing.AllocsPerRun(1000, func() {
		for s := range uint32(4) {
			tr.Observe(s, seq)
		}
		seq++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per in-order round, want 0", allocs)
	}
}

func TestRESPDecode(t *testing.T) {
	payload := AppendPayload(nil, 1, 2, 3, 32)
	msg := append([]byte("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$32\r\n"), payload...)
	msg = append(msg, "\r\n"...)
	sub := []byte("*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
	p := newRESPProto("ch", 32)

	kind, _, n, err := p.decode(append(append([]byte(nil), sub...), msg...))
	if err != nil || kind != kindSubscribed || n != len(sub) {
		t.Fatalf("subscribe: kind %d, n %d, err %v; want %d, %d", kind, n, err, kindSubscribed, len(sub))
	}
	kind, got, n, err := p.decode(msg)
	if err != nil || kind != kindData || n != len(msg) || string(got) != string(payload) {
		t.Fatalf("message: kind %d, n %d, err %v; want %d, %d and the payload", kind, n, err, kindData, len(msg))
	}
	for cut := range len(msg) {
		if _, _, n, err := p.decode(msg[:cut]); n != 0 || err != nil {
			t.Fatalf("%d of %d bytes: n %d, err %v; want 0, nil", cut, len(msg), n, err)
		}
	}
	if _, _, _, err := p.decode([]byte("-ERR nope\r\n")); err == nil {
		t.Fatal("error reply: want an error")
	}
	// What RunPubSub publishes is what a subscriber decodes.
	cmd := p.appendData(nil, 1, 2, 3, 32)
	if want := "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$32\r\n" + string(payload) + "\r\n"; string(cmd) != want {
		t.Fatalf("PUBLISH = %q, want %q", cmd, want)
	}
}
