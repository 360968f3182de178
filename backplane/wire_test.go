package backplane

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herald-mmo/herald/internal/testlog"
	"github.com/rs/zerolog"
)

func TestBatchRoundTrip(t *testing.T) {
	frames := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 300), []byte("last")}
	b := new(batch)
	b.reset("g")
	for _, f := range frames {
		b.add(f)
	}
	b.seal(0xfeedface, 42)
	h, got, err := decodeBatch(b.buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h != (header{node: 0xfeedface, seq: 42, count: len(frames)}) {
		t.Errorf("header %+v", h)
	}
	if len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Errorf("frame %d: %q, want %q", i, got[i], frames[i])
		}
		if cap(got[i]) != len(got[i]) {
			t.Errorf("frame %d: cap %d lets an append run into the next frame", i, cap(got[i]))
		}
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	good := new(batch)
	good.reset("g")
	good.add([]byte("xyz"))
	good.seal(1, 1)
	with := func(edit func([]byte) []byte) []byte { return edit(bytes.Clone(good.buf)) }
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good.buf[:batchHeaderLen-1]},
		{"wrong version", with(func(p []byte) []byte { p[0] = 2; return p })},
		{"zero frames", with(func(p []byte) []byte { p[17] = 0; return p[:batchHeaderLen] })},
		{"count over data", with(func(p []byte) []byte { p[17] = 200; return p })},
		{"frame over data", with(func(p []byte) []byte { p[batchHeaderLen] = 9; return p })},
		{"truncated frame", good.buf[:len(good.buf)-1]},
		{"trailing bytes", append(bytes.Clone(good.buf), 0)},
	} {
		dst := [][]byte{[]byte("kept")}
		_, got, err := decodeBatch(tc.data, dst)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
		if len(got) != 1 {
			t.Errorf("%s: %d frames returned from a malformed batch", tc.name, len(got)-1)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b := new(batch)
	b.reset("g")
	b.add([]byte("hello"))
	b.add(nil)
	b.seal(3, 9)
	f.Add(b.buf)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, frames, err := decodeBatch(data, nil)
		if err != nil {
			if len(frames) != 0 {
				t.Fatal("frames from a rejected batch")
			}
			return
		}
		// A batch that decodes re-encodes to the same bytes.
		re := new(batch)
		re.reset("g")
		for _, fr := range frames {
			re.add(fr)
		}
		re.seal(h.node, h.seq)
		if h.count != len(frames) || !bytes.Equal(re.buf, data) {
			t.Fatalf("decode/encode changed the batch")
		}
	})
}

func TestSubjectEscaping(t *testing.T) {
	names := []string{"", "_", "room", "room.1", "room_2E1", "a b", "*", ">", "x\x00y", "émoji🙂", "-Z9", "_5F"}
	seen := map[string]string{}
	for _, g := range names {
		s := subject(g)
		tok, ok := strings.CutPrefix(s, subjectPrefix)
		if !ok || tok == "" {
			t.Errorf("%q: subject %q", g, s)
		}
		for _, c := range []byte(tok) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				t.Errorf("%q: subject %q has byte %q", g, s, c)
			}
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("%q and %q share subject %q", prev, g, s)
		}
		seen[s] = g
	}
	if got := subject("room.1"); got != subjectPrefix+"room_2E1" {
		t.Errorf("subject(room.1) = %q", got)
	}
}

func TestReporterSumsPerGroup(t *testing.T) {
	var out testlog.Buffer
	r := &reporter{log: zerolog.New(&out), every: time.Hour}
	r.add(msgLost, "g", ErrQueueFull, 1) // first: written at once
	r.add(msgLost, "g", ErrQueueFull, 2) // within the interval: summed
	r.add(msgLost, "g", ErrQueueFull, 3)
	r.add(msgLost, "h", ErrQueueFull, 4)
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines before the interval, want 1:\n%s", n, out.String())
	}
	r.stop()
	log := out.String()
	if !strings.Contains(log, `"group":"g","frames":5`) || !strings.Contains(log, `"group":"h","frames":4`) {
		t.Errorf("sums not logged per group:\n%s", log)
	}
}
