package handler

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/prometheus/client_golang/prometheus"
)

// Loop lag: every lagEvery (or every tick, if ticks are shorter) the
// server queues a probe task on each event loop and measures how long the
// loop took to run it. That is how long a broadcast pushed at that moment
// waited before the loop could write it (herald's flush task is queued the
// same way), whatever kept the loop busy: handler callbacks, gnet's event
// batches, closes in the kernel. One probe is in flight per loop, so a
// stuck loop is not buried in probes.

// lagEvery spaces the probes: whenever a loop stalls for longer than that,
// a probe waits through the stall (less at most lagEvery). A probe costs
// the loop one task, about a microsecond, 100 times a second.
const lagEvery = 10 * time.Millisecond

// lagBuckets are the upper bounds, in seconds, of herald_loop_lag_seconds.
var lagBuckets = [...]float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1}

// lagProbe measures one loop. Any goroutine.
type lagProbe struct {
	queued atomic.Bool  // a probe waits on the loop
	at     atomic.Int64 // when it was queued (unix nanoseconds)
	counts [len(lagBuckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64 // nanoseconds
}

// Run records how long the probe waited. gnet runs it on the loop.
func (p *lagProbe) Run(context.Context) error {
	d := time.Now().UnixNano() - p.at.Load()
	i := 0
	for i < len(lagBuckets) && float64(d) > lagBuckets[i]*1e9 {
		i++
	}
	p.counts[i].Add(1)
	p.sum.Add(d)
	if d > p.max.Load() {
		p.max.Store(d) // only this loop stores
	}
	p.queued.Store(false)
	return nil
}

// probeLoops queues a probe on every loop that has none waiting. From the
// ticker.
func (srv *Server) probeLoops() {
	srv.loops.Range(func(k, _ any) bool {
		el, ok := k.(sessionmgr.Executor)
		if !ok {
			return true
		}
		v, _ := srv.lags.LoadOrStore(k, &lagProbe{})
		p := v.(*lagProbe)
		if p.queued.CompareAndSwap(false, true) {
			p.at.Store(time.Now().UnixNano())
			if el.Execute(context.Background(), p) != nil {
				p.queued.Store(false) // the engine is stopping
			}
		}
		return true
	})
}

// LoopLag reports the longest a probe task waited for an event loop since
// the server started (the worst over all loops).
func (srv *Server) LoopLag() time.Duration {
	var worst int64
	srv.lags.Range(func(_, v any) bool {
		worst = max(worst, v.(*lagProbe).max.Load())
		return true
	})
	return time.Duration(worst)
}

var (
	descLag = prometheus.NewDesc("herald_loop_lag_seconds",
		"How long a probe task queued every 10 ms waited for its event loop, over all loops: what a broadcast waited before its loop could write it.", nil, nil)
	descLagMax = prometheus.NewDesc("herald_loop_lag_max_seconds",
		"The longest a probe task waited for an event loop since the server started.", nil, nil)
)

// collectLag sends the loop lag metrics.
func (srv *Server) collectLag(ch chan<- prometheus.Metric) {
	var n uint64
	var sum int64
	var counts [len(lagBuckets) + 1]uint64
	srv.lags.Range(func(_, v any) bool {
		p := v.(*lagProbe)
		for i := range p.counts {
			counts[i] += p.counts[i].Load()
		}
		sum += p.sum.Load()
		return true
	})
	buckets := make(map[float64]uint64, len(lagBuckets))
	for i, b := range lagBuckets {
		n += counts[i]
		buckets[b] = n
	}
	n += counts[len(lagBuckets)]
	ch <- prometheus.MustNewConstHistogram(descLag, n, float64(sum)/1e9, buckets)
	ch <- prometheus.MustNewConstMetric(descLagMax, prometheus.GaugeValue, srv.LoopLag().Seconds())
}
