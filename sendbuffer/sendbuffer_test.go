package sendbuffer_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/sendbuffer"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// withDebug runs fn with debug mode set to on and restores debug mode after.
func withDebug(t *testing.T, on bool, fn func()) {
	t.Helper()
	sendbuffer.SetDebug(on)
	defer sendbuffer.SetDebug(true)
	fn()
}

func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic; want one containing %q", want)
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Fatalf("panic %q; want it to contain %q", r, want)
		}
	}()
	fn()
}

func TestGetCapacityClasses(t *testing.T) {
	tests := []struct {
		n       int
		wantCap int
	}{
		{n: 0, wantCap: 64},
		{n: 1, wantCap: 64},
		{n: 64, wantCap: 64},
		{n: 65, wantCap: 256},
		{n: 256, wantCap: 256},
		{n: 257, wantCap: 1024},
		{n: 4097, wantCap: 16384},
		{n: 65535, wantCap: 65536},
		{n: sendbuffer.MaxPooled, wantCap: sendbuffer.MaxPooled},
		{n: sendbuffer.MaxPooled + 1, wantCap: sendbuffer.MaxPooled + 1}, // unpooled, exact
	}
	for _, tt := range tests {
		b := sendbuffer.Get(tt.n)
		if b.Cap() != tt.wantCap || b.Len() != 0 || b.Refs() != 1 {
			t.Errorf("Get(%d): cap %d len %d refs %d; want cap %d len 0 refs 1", tt.n, b.Cap(), b.Len(), b.Refs(), tt.wantCap)
		}
		b.Release()
	}
}

func TestWriteGrowsAcrossClasses(t *testing.T) {
	b := sendbuffer.Get(10)
	defer b.Release()
	want := bytes.Repeat([]byte("abcdefg"), 1000)
	for i := 0; i < len(want); i += 7 {
		if _, err := b.Write(want[i : i+7]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatal("contents differ after growing")
	}
	if b.Cap() < len(want) {
		t.Fatalf("cap %d < len %d", b.Cap(), len(want))
	}
}

func TestAvailableBufferWriteInPlace(t *testing.T) {
	b := sendbuffer.Get(100)
	defer b.Release()
	_, _ = b.Write([]byte("head:"))
	out := append(b.AvailableBuffer(), "tail"...)
	if _, err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	if got := string(b.Bytes()); got != "head:tail" {
		t.Fatalf("got %q", got)
	}
}

func TestExtendTooLarge(t *testing.T) {
	b := sendbuffer.Get(0)
	defer b.Release()
	if _, err := b.Extend(sendbuffer.MaxSize + 1); !errors.Is(err, sendbuffer.ErrTooLarge) {
		t.Fatalf("err = %v; want ErrTooLarge", err)
	}
	if b.Len() != 0 {
		t.Fatalf("len %d after failed Extend", b.Len())
	}
}

func TestRefcountReturnsAtLastRelease(t *testing.T) {
	before := sendbuffer.Live()
	b := sendbuffer.Copy([]byte("monster spawned"))
	b.RetainN(999) // a broadcast to 999 more sessions
	for i := 0; i < 999; i++ {
		b.Release()
		if got := string(b.Bytes()); got != "monster spawned" {
			t.Fatalf("after %d releases: %q", i+1, got)
		}
	}
	if sendbuffer.Live() != before+1 {
		t.Fatalf("live %d; want %d", sendbuffer.Live(), before+1)
	}
	b.Release()
	if sendbuffer.Live() != before {
		t.Fatalf("live %d after last release; want %d", sendbuffer.Live(), before)
	}
}

func TestConcurrentReleaseExactlyOnce(t *testing.T) {
	const holders = 64
	for round := 0; round < 200; round++ {
		b := sendbuffer.Copy([]byte("x"))
		b.RetainN(holders - 1)
		var wg sync.WaitGroup
		for i := 0; i < holders; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); b.Release() }()
		}
		wg.Wait()
		if b.Refs() != 0 {
			t.Fatalf("refs %d; want 0", b.Refs())
		}
	}
}

func TestDebugCatchesMisuse(t *testing.T) {
	tests := []struct {
		name string
		use  func(b *sendbuffer.Buffer)
		want string
	}{
		{"double release", func(b *sendbuffer.Buffer) { b.Release() }, "double Release"},
		{"bytes after release", func(b *sendbuffer.Buffer) { _ = b.Bytes() }, "use of a released buffer"},
		{"write after release", func(b *sendbuffer.Buffer) { _, _ = b.Write([]byte("x")) }, "use of a released buffer"},
		{"retain after release", func(b *sendbuffer.Buffer) { b.Retain() }, "Retain of a released buffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sendbuffer.Copy([]byte("payload"))
			b.Release()
			mustPanic(t, tt.want, func() { tt.use(b) })
			// The message names where the buffer was allocated.
			mustPanic(t, "sendbuffer_test.TestDebugCatchesMisuse", func() { tt.use(b) })
		})
	}
}

func TestDebugPoisonsReleasedMemory(t *testing.T) {
	b := sendbuffer.Copy([]byte("secret frame"))
	stale := b.Bytes()
	b.Release()
	for i, c := range stale {
		if c != 0xDE {
			t.Fatalf("byte %d = %#x after release; want poison 0xde", i, c)
		}
	}
}

func TestLeaksReportsAllocationSite(t *testing.T) {
	if got := sendbuffer.Leaks(); got != "" {
		t.Fatalf("leaks before test: %s", got)
	}
	b := sendbuffer.Get(1)
	report := sendbuffer.Leaks()
	b.Release()
	if !strings.Contains(report, "1 live buffer(s)") || !strings.Contains(report, "TestLeaksReportsAllocationSite") {
		t.Fatalf("report does not name the leak and its site:\n%s", report)
	}
	if got := sendbuffer.Leaks(); got != "" {
		t.Fatalf("leaks after release: %s", got)
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 200)
	withDebug(t, false, func() {
		allocs := testing.AllocsPerRun(1000, func() {
			b := sendbuffer.Get(len(payload))
			_, _ = b.Write(payload)
			b.RetainN(10)
			for i := 0; i < 11; i++ {
				b.Release()
			}
		})
		if allocs != 0 {
			t.Fatalf("get/fill/share/release allocates %.1f times per run; want 0", allocs)
		}
	})
}

func BenchmarkGetFillRelease(b *testing.B) {
	sendbuffer.SetDebug(false)
	defer sendbuffer.SetDebug(true)
	payload := bytes.Repeat([]byte{7}, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf := sendbuffer.Get(len(payload))
		_, _ = buf.Write(payload)
		buf.Release()
	}
}

// TestHandoffOwnership: a reference handed to a queue is the queue's. The
// caller's later Release panics in the caller, in both modes, and leaves the
// queue's reference intact, so the frame still goes out and is recycled once.
func TestHandoffOwnership(t *testing.T) {
	for _, debug := range []bool{true, false} {
		withDebug(t, debug, func() {
			b := sendbuffer.Copy([]byte("frame"))
			b.Handoff(1) // Session.Send
			mustPanic(t, "Release after Send", b.Release)
			mustPanic(t, "sent twice", func() { b.Handoff(1) })
			if b.Refs() != 1 || string(b.Bytes()) != "frame" {
				t.Fatalf("after misuse: refs %d, bytes %q; want the queue's reference and the frame", b.Refs(), b.Bytes())
			}
			b.Share(2) // two slow sessions keep it
			b.Drop()
			b.Drop()
			b.Drop()
			if b.Refs() != 0 {
				t.Fatalf("refs %d after every queue dropped; want 0", b.Refs())
			}

			c := sendbuffer.Copy([]byte("x"))
			c.Retain()
			c.Handoff(3) // a broadcast to three loops; the caller keeps its Retain
			c.Release()
			for range 3 {
				c.Drop()
			}
			if c.Refs() != 0 {
				t.Fatalf("refs %d; want 0", c.Refs())
			}
			d := sendbuffer.Copy(nil)
			d.Handoff(0) // a broadcast to nobody releases
			if d.Refs() != 0 {
				t.Fatalf("Handoff(0): refs %d; want 0", d.Refs())
			}
		})
	}
}

// upper is a Twin build: b's bytes in upper case, counting its calls.
func upper(calls *int64, mu *sync.Mutex) func([]byte) *sendbuffer.Buffer {
	return func(p []byte) *sendbuffer.Buffer {
		mu.Lock()
		*calls++
		mu.Unlock()
		return sendbuffer.Copy(bytes.ToUpper(p))
	}
}

// TestTwinBuiltOnceShared: goroutines racing for a buffer's twin, each
// holding its own queue reference, build it once and all get the same
// bytes; the twin lives until the buffer's last reference goes and is
// released with it, so the live count returns to where it was.
func TestTwinBuiltOnceShared(t *testing.T) {
	before := sendbuffer.Live()
	var (
		calls int64
		mu    sync.Mutex
	)
	b := sendbuffer.Copy([]byte("shared frame"))
	const holders = 8
	b.Handoff(holders)
	twins := make([]*sendbuffer.Buffer, holders)
	var wg sync.WaitGroup
	for i := range holders {
		wg.Go(func() {
			twins[i] = b.Twin(upper(&calls, &mu))
			if got := string(twins[i].Bytes()); got != "SHARED FRAME" {
				t.Errorf("holder %d: twin %q", i, got)
			}
			if i > 0 {
				b.Drop()
			}
		})
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("build ran %d times; want 1", calls)
	}
	for i, tw := range twins {
		if tw != twins[0] {
			t.Errorf("holder %d got another twin", i)
		}
	}
	// One holder left: the twin is still valid.
	if got := string(twins[0].Bytes()); got != "SHARED FRAME" || sendbuffer.Live() != before+2 {
		t.Fatalf("with one holder left: twin %q, live %d; want 2 above %d", got, sendbuffer.Live(), before)
	}
	b.Drop()
	if sendbuffer.Live() != before {
		t.Fatalf("live %d after the last reference; want %d: the twin was not released", sendbuffer.Live(), before)
	}
	// Debug mode: the twin was released with the buffer, so a stale reader panics.
	mustPanic(t, "use of a released buffer", func() { twins[0].Bytes() })
	mustPanic(t, "use of a released buffer", func() { b.Twin(upper(&calls, &mu)) })
}

// TestTwinStaleAfterWrite: changing the bytes drops the twin, so the next
// Twin derives it from the new bytes.
func TestTwinStaleAfterWrite(t *testing.T) {
	before := sendbuffer.Live()
	var (
		calls int64
		mu    sync.Mutex
	)
	b := sendbuffer.Copy([]byte("a"))
	old := b.Twin(upper(&calls, &mu))
	_, _ = b.Write([]byte("b"))
	if got := string(b.Twin(upper(&calls, &mu)).Bytes()); got != "AB" || calls != 2 {
		t.Errorf("after Write: twin %q, %d builds; want \"AB\", 2", got, calls)
	}
	mustPanic(t, "use of a released buffer", func() { old.Bytes() })
	b.Reset()
	if got := string(b.Twin(upper(&calls, &mu)).Bytes()); got != "" || calls != 3 {
		t.Errorf("after Reset: twin %q, %d builds; want \"\", 3", got, calls)
	}
	b.Release()
	if sendbuffer.Live() != before {
		t.Fatalf("live %d; want %d", sendbuffer.Live(), before)
	}
}

// TestTwinRecycled: outside debug mode a recycled buffer comes back from
// the pool without its old twin, and the twin went back too.
func TestTwinRecycled(t *testing.T) {
	withDebug(t, false, func() {
		var (
			calls int64
			mu    sync.Mutex
		)
		for i := range 100 {
			b := sendbuffer.Get(10)
			_, _ = b.Write([]byte{byte('a' + i%26)})
			want := strings.ToUpper(string(rune('a' + i%26)))
			if got := string(b.Twin(upper(&calls, &mu)).Bytes()); got != want {
				t.Fatalf("round %d: twin %q; want %q (a stale twin from the pool?)", i, got, want)
			}
			b.Release()
		}
		if calls != 100 {
			t.Errorf("build ran %d times for 100 buffers", calls)
		}
	})
}
