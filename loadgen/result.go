package loadgen

import (
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is the outcome of one run. Its JSON form (cmd/loadgen -json) uses
// the tags below; durations are integer nanoseconds.
type Result struct {
	// Mode is "fanout", "pubsub", "pingpong", "stream" or "selftest".
	Mode    string `json:"mode"`
	Addr    string `json:"addr"`
	Clients int    `json:"clients"`
	// Size is the payload size (fanout, pubsub, pingpong) or the write
	// chunk size (stream), in bytes.
	Size   int `json:"size"`
	Window int `json:"window"`
	// Elapsed runs from the moment every client is connected (and, for
	// fan-out, registered) until the last expected frame arrived.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Sent counts units sent by all clients: frames (fanout, pubsub),
	// messages (pingpong) or chunks of Size bytes (stream).
	Sent int64 `json:"sent"`
	// Received counts units received by all clients: fan-out counts a frame
	// once per receiver (delivered frames), pingpong counts completed
	// round trips, stream counts whole chunks echoed.
	Received int64 `json:"received"`
	// Bytes counts bytes received by all clients, protocol framing included.
	Bytes int64 `json:"bytes"`
	// Reads counts socket reads that returned data (not counted for
	// pingpong); Bytes/Reads shows how well the server batches its writes.
	Reads int64 `json:"reads"`
	// PerSec is Received per second of Elapsed: delivered frames/s, round
	// trips/s or chunks/s.
	PerSec float64 `json:"per_sec"`
	// MBPerSec is Bytes per second of Elapsed, in units of 10^6 bytes.
	MBPerSec float64 `json:"mb_per_sec"`
	// Latency of fan-out frames (send to the sender receiving it back) and
	// ping-pong round trips. Empty for stream and selftest.
	Latency Latency `json:"latency"`

	// Lost counts frames (stream: chunks) sent but never received.
	Lost int64 `json:"lost"`
	// Duplicated counts extra copies received.
	Duplicated int64 `json:"duplicated"`
	// Reordered counts frames received after a later frame of their sender.
	Reordered int64 `json:"reordered"`
	// Corrupt counts frames that failed verification (checksum, size,
	// unknown sender, unexpected bytes, undecodable stream).
	Corrupt int64 `json:"corrupt"`
	// Disconnects counts connections that failed (read or write error, or
	// closed by the server) before the run ended.
	Disconnects int64 `json:"disconnects"`
	// Errors is the sum of the five counts above; a run with Errors > 0
	// returns an error wrapping ErrVerify.
	Errors int64 `json:"errors"`
	// ErrorSamples describes the first few errors.
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// Latency summarizes a latency histogram (HDR, 3 significant digits).
type Latency struct {
	Count int64         `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Progress is a snapshot passed to a Progress callback while a run is going.
type Progress struct {
	// Elapsed since the clock started (zero during connect and barrier).
	Elapsed  time.Duration
	Sent     int64
	Received int64
	Bytes    int64
	// PerSec and MBPerSec are rates over the last interval.
	PerSec   float64
	MBPerSec float64
	// Errors counts errors seen so far.
	Errors int64
	// P99 is the 99th percentile latency over the last interval (zero if
	// nothing was measured).
	P99 time.Duration
}

// String formats p as one status line.
func (p Progress) String() string {
	return fmt.Sprintf("[%6.1fs] %10.0f/s %8.1f MB/s  sent %d  recv %d  errors %d  p99 %v",
		p.Elapsed.Seconds(), p.PerSec, p.MBPerSec, p.Sent, p.Received, p.Errors, p.P99)
}

// finish computes r's totals and rates at the end of a run that is
// returning err. It returns err if that is not nil, else an error wrapping
// ErrVerify if r counts any errors, else nil.
func (r *Result) finish(err error) error {
	r.Errors = r.Lost + r.Duplicated + r.Reordered + r.Corrupt + r.Disconnects
	if s := r.Elapsed.Seconds(); s > 0 {
		r.PerSec = float64(r.Received) / s
		r.MBPerSec = float64(r.Bytes) / s / 1e6
	}
	if err != nil || r.Errors == 0 {
		return err
	}
	return fmt.Errorf("%w: %d lost, %d duplicated, %d reordered, %d corrupt, %d disconnects",
		ErrVerify, r.Lost, r.Duplicated, r.Reordered, r.Corrupt, r.Disconnects)
}

const (
	histMax       = int64(60 * time.Second)
	latBatch      = 256
	latFlushEvery = int64(100 * time.Millisecond)
)

// latencies holds the run's histograms. Guarded by mu.
type latencies struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
}

func newLatencies() *latencies {
	return &latencies{
		total:    hdrhistogram.New(1, histMax, 3),
		interval: hdrhistogram.New(1, histMax, 3),
	}
}

func (l *latencies) add(vals []int64) {
	l.mu.Lock()
	for _, v := range vals {
		v = min(max(v, 1), histMax)
		_ = l.total.RecordValue(v)
		_ = l.interval.RecordValue(v)
	}
	l.mu.Unlock()
}

// takeP99 returns the interval's 99th percentile and starts a new interval.
func (l *latencies) takeP99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := time.Duration(l.interval.ValueAtQuantile(99))
	l.interval.Reset()
	return p
}

func (l *latencies) summary() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.total
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Min:   time.Duration(h.Min()),
		Mean:  time.Duration(h.Mean()),
		P50:   time.Duration(h.ValueAtQuantile(50)),
		P90:   time.Duration(h.ValueAtQuantile(90)),
		P99:   time.Duration(h.ValueAtQuantile(99)),
		P999:  time.Duration(h.ValueAtQuantile(99.9)),
		Max:   time.Duration(h.Max()),
	}
}

// latBuf batches one goroutine's latency samples so the shared histograms'
// lock is taken once per batch. Owned by one goroutine.
type latBuf struct {
	l     *latencies
	vals  []int64
	flush int64 // time of the last flush, ns since the run started
}

func (l *latencies) buf() *latBuf {
	return &latBuf{l: l, vals: make([]int64, 0, latBatch)}
}

// record adds a sample taken at now (ns since the run started).
func (b *latBuf) record(now, lat int64) {
	b.vals = append(b.vals, lat)
	if len(b.vals) == cap(b.vals) || now-b.flush > latFlushEvery {
		b.done(now)
	}
}

// done flushes the batch.
func (b *latBuf) done(now int64) {
	if len(b.vals) > 0 {
		b.l.add(b.vals)
		b.vals = b.vals[:0]
	}
	b.flush = now
}

// errorLog keeps counts' first few descriptions. Safe for concurrent use.
type errorLog struct {
	mu      sync.Mutex
	samples []string
}

const maxErrorSamples = 10

func (e *errorLog) note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.samples) < maxErrorSamples {
		e.samples = append(e.samples, fmt.Sprintf(format, args...))
	}
}

func (e *errorLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.samples...)
}
