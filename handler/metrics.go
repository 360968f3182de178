package handler

import (
	"errors"
	"sync/atomic"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/prometheus/client_golang/prometheus"
)

// Close reasons, the values of herald_sessions_closed_total's reason label.
// The first sentinel the close reason matches (errors.Is) names it.
var closeReasons = [...]struct {
	name string
	err  error
}{
	{"slow_consumer", sessionmgr.ErrSlowConsumer},
	{"held_limit", sessionmgr.ErrHeldLimit},
	{"idle", ErrIdle},
	{"frame_timeout", ErrFrameTimeout},
	{"protocol", ErrProtocol},
	{"panic", ErrHandlerPanic},
	{"server", ErrClosedByServer},
}

// Further close reasons: "peer" (gnet reported the connection gone: EOF,
// reset, a failed write), "handler" (content code closed it with a reason
// of its own, CloseWith) and "server" (Session.Close, or the server
// stopping).
const (
	reasonPeer    = "peer"
	reasonHandler = "handler"
	reasonServer  = "server"
)

// Protocol error reasons, the values of herald_protocol_errors_total's
// reason label; a custom codec's own errors count as "other".
var protocolReasons = [...]struct {
	name string
	err  error
}{
	{"frame_too_large", codec.ErrFrameTooLarge},
	{"bad_length", codec.ErrBadLength},
	{"other", nil},
}

// Transports, the values of the transport label: the index is the
// session's kind (transportTCP, transportWS).
const (
	transportTCP = iota
	transportWS
)

var transports = [...]string{transportTCP: "tcp", transportWS: "ws"}

// counters are the Server's totals for events that happen once per
// session, not per frame. Any goroutine.
type counters struct {
	opened   [len(transports)]atomic.Uint64       // by transport
	closed   [len(closeReasons) + 2]atomic.Uint64 // closeReasons, then peer, handler
	protocol [len(protocolReasons)]atomic.Uint64
}

// closeReason returns the index in counters.closed of a close with
// recorded reason (Session.CloseReason) and gnet's error err.
func closeReason(recorded, err error) int {
	if errors.Is(recorded, ErrPeerClose) {
		return len(closeReasons) // peer: a WebSocket close handshake
	}
	if recorded == nil {
		if err != nil {
			return len(closeReasons) // peer
		}
		recorded = ErrClosedByServer
	}
	for i, r := range closeReasons {
		if errors.Is(recorded, r.err) {
			return i
		}
	}
	return len(closeReasons) + 1 // handler
}

// closeReasonName returns the label value of counters.closed[i].
func closeReasonName(i int) string {
	switch i {
	case len(closeReasons):
		return reasonPeer
	case len(closeReasons) + 1:
		return reasonHandler
	}
	return closeReasons[i].name
}

// countClose counts a session's close. On its loop, in OnClose.
func (c *counters) countClose(recorded, err error) { c.closed[closeReason(recorded, err)].Add(1) }

// countProtocol counts a codec error that closed a session.
func (c *counters) countProtocol(err error) {
	for i, r := range protocolReasons {
		if r.err == nil || errors.Is(err, r.err) {
			c.protocol[i].Add(1)
			return
		}
	}
}

// PendingBuckets are the upper bounds, in bytes, of the
// herald_session_pending_bytes histogram.
var PendingBuckets = []float64{0, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}

// Collector returns a prometheus.Collector of the server's metrics; register
// it in your own registry, beside the Go runtime and process collectors:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(srv.Collector(), collectors.NewGoCollector(),
//		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Everything is computed when it is scraped, from totals herald keeps anyway
// (per event loop for frames and bytes, once per write or read), so
// collecting costs the send path nothing. Safe from any goroutine.
//
// The metrics, all prefixed herald_: sessions (gauge, by transport),
// sessions_opened_total, sessions_closed_total (by reason: peer, server,
// handler, slow_consumer, idle, frame_timeout, protocol, panic),
// connections_refused_total, frames_received_total, bytes_received_total,
// frames_sent_total, bytes_sent_total, write_batch_frames (histogram of
// frames per write), session_pending_bytes (histogram over the open
// sessions at scrape time), frames_dropped_total (by reason: slow_consumer,
// conflated, session_closed), protocol_errors_total (by reason),
// sendbuffers_live and sendbuffers_live_bytes (process-wide),
// oldest_held_frame_age_seconds (see TopSessions for who holds it),
// loop_lag_seconds (histogram) and loop_lag_max_seconds (see LoopLag); and
// for WithBackplane, backplane_frames_published_total, _received_total,
// _lost_total, _missing_total (sequence gaps), _unrouted_total (for a group
// with no members here), backplane_batches_published_total,
// backplane_malformed_total, backplane_disconnects_total,
// backplane_reconnects_total and backplane_groups (zero without one).
func (srv *Server) Collector() prometheus.Collector { return collector{srv} }

type collector struct{ srv *Server }

var (
	descSessions = prometheus.NewDesc("herald_sessions",
		"Open sessions.", []string{"transport"}, nil)
	descOpened = prometheus.NewDesc("herald_sessions_opened_total",
		"Sessions opened (connections accepted past the limits).", []string{"transport"}, nil)
	descClosed = prometheus.NewDesc("herald_sessions_closed_total",
		"Sessions closed, by reason.", []string{"reason"}, nil)
	descRefused = prometheus.NewDesc("herald_connections_refused_total",
		"Connections refused (over the max connections, or while stopping).", nil, nil)
	descFramesIn = prometheus.NewDesc("herald_frames_received_total",
		"Frames decoded from the peers.", nil, nil)
	descBytesIn = prometheus.NewDesc("herald_bytes_received_total",
		"Bytes of the frames decoded from the peers.", nil, nil)
	descFramesOut = prometheus.NewDesc("herald_frames_sent_total",
		"Frames handed to the sockets (written, or copied into gnet's outbound buffer).", nil, nil)
	descBytesOut = prometheus.NewDesc("herald_bytes_sent_total",
		"Bytes handed to the sockets.", nil, nil)
	descBatch = prometheus.NewDesc("herald_write_batch_frames",
		"Frames per write call (one writev, or one write) to a session.", nil, nil)
	descPending = prometheus.NewDesc("herald_session_pending_bytes",
		"Bytes pending per open session at scrape time (held by herald plus gnet's outbound buffer); a snapshot, not cumulative.", nil, nil)
	descDropped = prometheus.NewDesc("herald_frames_dropped_total",
		"Frames never sent, by reason: slow_consumer (Drop policy), conflated (replaced by a newer frame with its key), session_closed (still pending at the close).", []string{"reason"}, nil)
	descProtocol = prometheus.NewDesc("herald_protocol_errors_total",
		"Frames that failed to decode and closed their session, by reason.", []string{"reason"}, nil)
	descBuffers = prometheus.NewDesc("herald_sendbuffers_live",
		"SendBuffers obtained and not yet released, in the whole process.", nil, nil)
	descBufferBytes = prometheus.NewDesc("herald_sendbuffers_live_bytes",
		"Capacity of the live SendBuffers, in bytes, in the whole process.", nil, nil)
	descDeflated = prometheus.NewDesc("herald_ws_deflated_frames_total",
		"Frames compressed for permessage-deflate WebSocket sessions: once per broadcast frame whatever the recipients, once per large reply.", nil, nil)
	descOldest = prometheus.NewDesc("herald_oldest_held_frame_age_seconds",
		"Age of the oldest frame herald holds for an unwritable session; 0 when none is held.", nil, nil)
)

// Describe sends the descriptors of every metric Collect sends.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descOpened, descClosed, descRefused,
		descFramesIn, descBytesIn, descFramesOut, descBytesOut, descBatch, descPending,
		descDropped, descProtocol, descBuffers, descBufferBytes, descOldest, descLag, descLagMax, descDeflated} {
		ch <- d
	}
	for _, d := range backplaneDescs {
		ch <- d
	}
}

// Collect computes the metrics from the server's totals.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	srv := c.srv
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	sessions := srv.mgr.Sessions()
	var byTransport [len(transports)]int
	for _, s := range sessions {
		if s.WebSocket() {
			byTransport[transportWS]++
		} else {
			byTransport[transportTCP]++
		}
	}
	for i, name := range transports {
		gauge(descSessions, float64(byTransport[i]), name)
		counter(descOpened, srv.counts.opened[i].Load(), name)
	}
	for i := range srv.counts.closed {
		counter(descClosed, srv.counts.closed[i].Load(), closeReasonName(i))
	}
	counter(descRefused, srv.refused.Load())

	var loops sessionmgr.LoopStats
	srv.loops.Range(func(_, l any) bool {
		st := l.(*sessionmgr.Loop).Stats()
		loops.FramesSent += st.FramesSent
		loops.BytesSent += st.BytesSent
		loops.FramesRecv += st.FramesRecv
		loops.BytesRecv += st.BytesRecv
		for i, n := range st.Batches {
			loops.Batches[i] += n
		}
		return true
	})
	counter(descFramesIn, loops.FramesRecv)
	counter(descBytesIn, loops.BytesRecv)
	counter(descFramesOut, loops.FramesSent)
	counter(descBytesOut, loops.BytesSent)
	batches := make(map[float64]uint64, len(sessionmgr.BatchBuckets))
	var writes uint64
	for i, bound := range sessionmgr.BatchBuckets {
		writes += loops.Batches[i]
		batches[float64(bound)] = writes
	}
	ch <- prometheus.MustNewConstHistogram(descBatch, writes, float64(loops.FramesSent), batches)

	pending := make(map[float64]uint64, len(PendingBuckets))
	for _, bound := range PendingBuckets {
		pending[bound] = 0 // every bucket is exposed, empty ones too
	}
	sum := 0.0
	for _, s := range sessions {
		p := float64(s.Pending())
		sum += p
		for _, bound := range PendingBuckets {
			if p <= bound {
				pending[bound]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(descPending, uint64(len(sessions)), sum, pending)

	mc := srv.mgr.Counters()
	counter(descDropped, mc.Dropped, "slow_consumer")
	counter(descDropped, mc.Conflated, "conflated")
	counter(descDropped, mc.Unsent, "session_closed")
	counter(descDeflated, mc.Deflated)
	for i, r := range protocolReasons {
		counter(descProtocol, srv.counts.protocol[i].Load(), r.name)
	}
	gauge(descBuffers, float64(sendbuffer.Live()))
	gauge(descBufferBytes, float64(sendbuffer.LiveBytes()))
	gauge(descOldest, srv.oldestHeld(sessions).Seconds())
	srv.collectLag(ch)
	srv.collectBackplane(ch)
}
