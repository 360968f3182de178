package loadgen

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to zero config fields.
const (
	DefaultClients          = 50
	DefaultMessages         = 1000
	DefaultSize             = 64
	DefaultStreamSize       = 16 << 10
	DefaultWindow           = 16
	DefaultConnectTimeout   = 10 * time.Second
	DefaultDrainTimeout     = 5 * time.Second
	DefaultReadBuffer       = 64 << 10
	DefaultProgressInterval = time.Second
)

// base is what every kind of run shares: the clock, the histograms, the
// error log and the stop signals.
type base struct {
	epoch time.Time // fixed at construction; stamps are ns since epoch
	lat   *latencies
	errs  errorLog

	// t0 is when the clock started, ns since epoch; zero until then.
	t0 atomic.Int64
	// errCount counts errors noted so far, for progress lines.
	errCount atomic.Int64
	// closing is set before the run closes its connections, so the read
	// and write errors that follow are not counted.
	closing atomic.Bool

	clock    *time.Timer   // stops the senders after Duration; set by startClock
	start    chan struct{} // closed when the clock starts
	stopSend chan struct{} // closed when senders must stop
	stopOnce sync.Once
	wg       sync.WaitGroup // every goroutine the run starts
}

func newBase() base {
	return base{
		epoch:    time.Now(),
		lat:      newLatencies(),
		start:    make(chan struct{}),
		stopSend: make(chan struct{}),
	}
}

// now returns ns since the run's epoch (monotonic).
func (b *base) now() int64 { return int64(time.Since(b.epoch)) }

// startClock opens the gate for senders and starts stopping them after d
// (if d > 0). On the run's own goroutine.
func (b *base) startClock(d time.Duration) {
	b.t0.Store(b.now())
	close(b.start)
	if d > 0 {
		b.clock = time.AfterFunc(d, b.stop)
	}
}

// runner is what each kind of run gives track: its counters for progress
// lines, a way to close its connections, and its clients' counts into a
// Result.
type runner interface {
	snapshot() (sent, recv, bytes int64)
	closeConns()
	collect(res *Result)
}

// track starts progress reports on r and returns end, for the run to defer:
// it stops the clock's timer and the senders, closes r's connections (the
// errors that follow are not counted), waits for every goroutine of the
// run, stops the reports, collects r into res and adds the latencies and
// error samples. On the run's own goroutine.
func (b *base) track(r runner, interval time.Duration, fn func(Progress)) (end func(res *Result)) {
	stopProgress := b.runProgress(interval, fn, r.snapshot)
	return func(res *Result) {
		if b.clock != nil {
			b.clock.Stop()
		}
		b.closing.Store(true)
		b.stop()
		r.closeConns()
		b.wg.Wait()
		stopProgress()
		r.collect(res)
		res.Latency = b.lat.summary()
		res.ErrorSamples = b.errs.list()
	}
}

func (b *base) stop() { b.stopOnce.Do(func() { close(b.stopSend) }) }

// fail counts one error and keeps its description if it is among the first.
func (b *base) fail(format string, args ...any) {
	b.errCount.Add(1)
	b.errs.note(format, args...)
}

// connFailed notes err, from client id's op (read, write) on its
// connection, as the client's *dst and as a failure of the run, unless the
// run is closing the connections. Call from the goroutine that owns *dst.
func (b *base) connFailed(dst *error, id uint32, op string, err error) {
	if !b.closing.Load() {
		*dst = err
		b.fail("client %d: %s: %v", id, op, err)
	}
}

// waitStart blocks a sender until the clock starts. It returns false if
// the senders are stopped first.
func (b *base) waitStart() bool {
	select {
	case <-b.start:
		return true
	case <-b.stopSend:
		return false
	}
}

// elapsed returns the time since the clock started.
func (b *base) elapsed() time.Duration {
	t0 := b.t0.Load()
	if t0 == 0 {
		return 0
	}
	return time.Duration(b.now() - t0)
}

// pacer spaces one client's sends interval apart from the clock's start.
// Owned by one goroutine.
type pacer struct {
	b        *base
	interval time.Duration
	timer    *time.Timer
}

// newPacer paces one of clients clients sharing rate units/s; rate 0 is
// unlimited.
func newPacer(b *base, rate float64, clients int) *pacer {
	p := &pacer{b: b}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) * float64(clients) / rate)
	}
	return p
}

// wait blocks until unit seq is due. It returns false if the run is
// stopping.
func (p *pacer) wait(seq uint32) bool {
	if p.interval <= 0 {
		return true
	}
	due := p.b.t0.Load() + int64(seq)*int64(p.interval)
	d := time.Duration(due - p.b.now())
	if d <= 0 {
		return true
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
		return true
	case <-p.b.stopSend:
		p.timer.Stop()
		return false
	}
}

// counters returns the totals a progress line shows.
type counters func() (sent, recv, bytes int64)

// runProgress calls fn every interval with a snapshot until the returned
// func is called; the returned func waits for the reporter to exit.
func (b *base) runProgress(interval time.Duration, fn func(Progress), snap counters) (stop func()) {
	if fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		var lastRecv, lastBytes int64
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				sent, recv, bytes := snap()
				dt := now.Sub(last).Seconds()
				last = now
				p := Progress{
					Elapsed:  b.elapsed(),
					Sent:     sent,
					Received: recv,
					Bytes:    bytes,
					Errors:   b.errCount.Load(),
					P99:      b.lat.takeP99(),
				}
				if dt > 0 {
					p.PerSec = float64(recv-lastRecv) / dt
					p.MBPerSec = float64(bytes-lastBytes) / dt / 1e6
				}
				lastRecv, lastBytes = recv, bytes
				fn(p)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// dialAll opens n connections to addr within timeout: connection i to the
// i-th of addr's comma-separated addresses, modulo their number (addrFor).
func dialAll(ctx context.Context, addr string, n int, timeout time.Duration) ([]net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conns := make([]net.Conn, 0, n)
	for i := range n {
		a := addrFor(addr, i)
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("loadgen: dial %s (connection %d of %d): %w", a, len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// addrFor returns the address connection i dials: addr is one host:port or
// several, comma-separated, taken in turn (round robin), so fan-out clients
// can spread over the nodes of a cluster.
func addrFor(addr string, i int) string {
	if !strings.Contains(addr, ",") {
		return addr
	}
	addrs := strings.Split(addr, ",")
	return strings.TrimSpace(addrs[i%len(addrs)])
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}
