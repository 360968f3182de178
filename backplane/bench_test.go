package backplane

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far: the publisher,
// the receiver and the in-process nats-server together.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanOut publishes 64-byte frames on one node and delivers them on
// another through an in-process nats-server, flushing after every frame
// (one NATS message per frame) or after every 64 (a loop turn's burst: one
// message per 64 frames). The two run alternately within one -count run, so
// their ratio is measured under the same load. ns/op and allocs/op are per
// frame, publisher and receiver together; cpu-ns/frame is the CPU the whole
// process (both nodes and nats-server) spent per delivered frame, which a
// busy machine disturbs less than wall time.
func BenchmarkFanOut(b *testing.B) {
	for _, bc := range []struct {
		name  string
		burst int
	}{
		{"per-frame", 1},
		{"batched-64", 64},
	} {
		b.Run(bc.name, func(b *testing.B) { benchFanOut(b, bc.burst) })
	}
}

func benchFanOut(b *testing.B, burst int) {
	const (
		size   = 64
		window = 16 << 10 // frames in flight before the publisher waits
	)
	ns := startNATS(b)
	var got atomic.Int64
	deliver := func(_ string, frames [][]byte) {
		n := 0
		for _, f := range frames {
			n += len(f)
		}
		if n != len(frames)*size {
			panic("bad frame size")
		}
		got.Add(int64(len(frames)))
	}
	big := func(c *Config) { c.MaxQueued = 64 << 20 }
	pub := newNode(b, ns, "pub", big)
	sub := newNode(b, ns, "sub", func(c *Config) { big(c); c.Deliver = deliver })
	join(b, ns, "bench", sub)
	frame := make([]byte, size)
	wait := func(want int64) {
		deadline := time.Now().Add(30 * time.Second)
		for got.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("delivered %d of %d frames; counters pub %+v sub %+v", got.Load(), want, pub.Counters(), sub.Counters())
			}
			time.Sleep(50 * time.Microsecond)
		}
	}

	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 1; i <= b.N; i++ {
		if err := pub.Publish("bench", frame); err != nil {
			b.Fatal(err)
		}
		if i%burst == 0 {
			pub.Flush()
		}
		if i%1024 == 0 {
			wait(int64(i - window))
		}
	}
	pub.Flush()
	wait(int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/frame")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	c := pub.Counters()
	b.ReportMetric(float64(c.Published)/float64(max(c.Batches, 1)), "frames/msg")
	if c.Lost != 0 || sub.Counters().Gaps != 0 {
		b.Fatalf("lost %d, gaps %d", c.Lost, sub.Counters().Gaps)
	}
}
