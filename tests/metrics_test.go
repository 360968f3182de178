package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsUnderTraffic runs cmd/broadcast's handler with the demos'
// /metrics mux, drives traffic whose totals the test knows, and checks that
// the scraped counters say the same: frames and bytes in and out, closes by
// reason (a peer's close, a protocol error, a slow consumer, the server
// stopping), refusals; and that the exposition passes promtool.
func TestMetricsUnderTraffic(t *testing.T) {
	limits := sessionmgr.Limits{LowWatermark: 16 << 10, HighWatermark: 64 << 10, MaxPending: 256 << 10, Policy: sessionmgr.Disconnect}
	srv := startServer(t, demo.Broadcast{}, handler.WithLimits(limits), handler.WithMaxConns(4))
	web := httptest.NewServer(demo.MetricsMux(srv))
	defer web.Close()
	addr := srv.Addr().String()

	// Phase 1: three clients each send k frames; each hears all 3k.
	const k, payload = 50, 100
	wire := 4 + payload
	cs := []*packetClient{dialPacket(t, addr), dialPacket(t, addr), dialPacket(t, addr)}
	waitFor(t, 5*time.Second, "three sessions", func() bool { return srv.Manager().Len() == 3 })
	for _, c := range cs {
		for i := range k {
			c.send(uint16(i), make([]byte, payload))
		}
	}
	for _, c := range cs {
		for range 3 * k {
			c.recv(5 * time.Second)
		}
	}
	// A client can read a batch before the loop that wrote it has counted
	// it: scrape until the count settles (or the time runs out).
	m := scrapeUntil(t, web.URL, "herald_frames_sent_total", 9*k)
	m.expect(t, "herald_sessions{transport=tcp}", 3)
	m.expect(t, "herald_sessions_opened_total{transport=tcp}", 3)
	m.expect(t, "herald_frames_received_total", 3*k)
	m.expect(t, "herald_bytes_received_total", 3*k*wire)
	m.expect(t, "herald_frames_sent_total", 9*k)
	m.expect(t, "herald_bytes_sent_total", 9*k*wire)
	m.expect(t, "herald_write_batch_frames_sum", 9*k)
	if n := m["herald_write_batch_frames_count"]; n < 3 || n > 9*k {
		t.Errorf("herald_write_batch_frames_count = %v; want 3..%d (at least one write per session)", n, 9*k)
	}
	m.expect(t, "herald_session_pending_bytes_count", 3)
	m.expect(t, "herald_session_pending_bytes_bucket{le=0}", 3) // all read: nothing pending
	if m["herald_write_batch_frames_bucket{le=1024}"] != m["herald_write_batch_frames_count"] {
		t.Errorf("write batches: %v in the last bucket, %v in all; want the same", m["herald_write_batch_frames_bucket{le=1024}"], m["herald_write_batch_frames_count"])
	}

	// Phase 2: closes with known reasons.
	_ = cs[0].conn.Close() // peer
	waitFor(t, 5*time.Second, "the peer's close", func() bool { return srv.Manager().Len() == 2 })
	if _, err := cs[1].conn.Write([]byte{2, 0, 0, 0}); err != nil { // size 2 < header: bad length
		t.Fatal(err)
	}
	cs[1].expectClosed(5 * time.Second)
	waitFor(t, 5*time.Second, "the protocol close", func() bool { return srv.Manager().Len() == 1 })

	// A slow consumer: it never reads, the last client broadcasts until the
	// server cuts it. The sender reads everything it hears meanwhile, and
	// stays at most 64 frames ahead of what it has heard, so that it is
	// never the slow one.
	slow := dialSmallWindow(t, addr)
	waitFor(t, 5*time.Second, "the slow session", func() bool { return srv.Manager().Len() == 2 })
	sender := cs[2]
	var wg sync.WaitGroup
	stopRead := make(chan struct{})
	var heard atomic.Int64
	defer wg.Wait()
	defer close(stopRead)
	wg.Go(func() {
		for {
			select {
			case <-stopRead:
				return
			default:
			}
			_ = sender.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			var hdr [4]byte
			if _, err := io.ReadFull(sender.r, hdr[:]); err != nil {
				continue // a timeout: look at stopRead again
			}
			if _, err := io.CopyN(io.Discard, sender.r, int64(binary.LittleEndian.Uint16(hdr[:])-4)); err != nil {
				t.Errorf("sender read: %v", err)
				return
			}
			heard.Add(1)
		}
	})
	big := make([]byte, 1000)
	sent := 0
	for srv.Stats().SlowDisconnects == 0 && sent < 100_000 {
		if _, err := sender.conn.Write(packetFrame(1, big)); err != nil {
			t.Fatal(err)
		}
		sent++
		waitFor(t, 10*time.Second, "the sender to hear its frames", func() bool { return int64(sent)-heard.Load() <= 64 })
	}
	waitFor(t, 10*time.Second, "the slow consumer's close", func() bool { return srv.Manager().Len() == 1 })
	waitFor(t, 10*time.Second, "the sender to hear all its frames", func() bool { return heard.Load() == int64(sent) })
	_ = slow.Close()
	t.Logf("the slow consumer was cut after %d frames of %d bytes", sent, 4+len(big))

	// A refusal: the limit is 4 connections, and only one is open, so
	// open four and count one refusal.
	extra := []*packetClient{dialPacket(t, addr), dialPacket(t, addr), dialPacket(t, addr), dialPacket(t, addr)}
	waitFor(t, 5*time.Second, "one refusal", func() bool { return srv.Stats().Refused == 1 })
	for _, c := range extra {
		_ = c.conn.Close()
	}
	waitFor(t, 5*time.Second, "the extra sessions to close", func() bool { return srv.Manager().Len() == 1 })

	m = scrape(t, web.URL)
	m.expect(t, "herald_frames_received_total", 3*k+sent)
	m.expect(t, "herald_bytes_received_total", 3*k*wire+sent*(4+len(big)))
	m.expect(t, "herald_sessions_closed_total{reason=peer}", 1+3)
	m.expect(t, "herald_sessions_closed_total{reason=protocol}", 1)
	m.expect(t, "herald_protocol_errors_total{reason=bad_length}", 1)
	m.expect(t, "herald_sessions_closed_total{reason=slow_consumer}", 1)
	m.expect(t, "herald_sessions_closed_total{reason=server}", 0)
	m.expect(t, "herald_connections_refused_total", 1)
	m.expect(t, "herald_sessions_opened_total{transport=tcp}", 3+1+3)
	// Every frame the slow session was handed, and every one it was owed
	// and never got, is accounted for: sent to it, or dropped unsent.
	toSlow := m["herald_frames_sent_total"] - float64(9*k+sent)
	// Frames broadcast after it left the Manager were not addressed to it.
	unsent := m["herald_frames_dropped_total{reason=session_closed}"]
	if owed := float64(sent); toSlow >= owed || unsent < 1 || toSlow+unsent > owed {
		t.Errorf("the slow session got %v of the %v frames broadcast and %v were dropped unsent; want got < got+dropped <= broadcast, dropped >= 1",
			toSlow, owed, unsent)
	}

	// Stopping the server closes the last session as "server".
	if err := stopNow(srv); err != nil {
		t.Fatal(err)
	}
	body := scrapeBody(t, web.URL)
	m = parseMetrics(t, body)
	m.expect(t, "herald_sessions_closed_total{reason=server}", 1)
	m.expect(t, "herald_sessions{transport=tcp}", 0)
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "herald_sendbuffers_live", "herald_sendbuffers_live_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	promtoolCheck(t, body)
}

// dialSmallWindow connects with a 4 KiB receive buffer and never reads.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	return c
}

func stopNow(srv *handler.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(ctx)
}

// metrics maps a sample, written name{label=value,...} with labels sorted,
// to its value; histograms give name_sum and name_count.
type metrics map[string]float64

func (m metrics) expect(t *testing.T, key string, want int) {
	t.Helper()
	got, ok := m[key]
	if !ok {
		t.Errorf("no sample %s", key)
		return
	}
	if got != float64(want) {
		t.Errorf("%s = %v; want %d", key, got, want)
	}
}

func scrapeBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return body
}

func scrape(t *testing.T, url string) metrics { return parseMetrics(t, scrapeBody(t, url)) }

// scrapeUntil scrapes until key reaches want, for up to 5 seconds, and
// returns the last scrape.
func scrapeUntil(t *testing.T, url, key string, want int) metrics {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, url)
		if m[key] >= float64(want) || time.Now().After(deadline) {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func parseMetrics(t *testing.T, body []byte) metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	m := metrics{}
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			key := name
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case s.Counter != nil:
				m[key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				m[key] = s.GetGauge().GetValue()
			case s.Histogram != nil:
				m[key+"_sum"] = s.GetHistogram().GetSampleSum()
				m[key+"_count"] = float64(s.GetHistogram().GetSampleCount())
				for _, b := range s.GetHistogram().GetBucket() {
					m[fmt.Sprintf("%s_bucket{le=%g}", key, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			case s.Untyped != nil:
				m[key] = s.GetUntyped().GetValue()
			}
		}
	}
	return m
}

// promtoolCheck runs `promtool check metrics` on body. CI installs promtool
// (.ci/run); elsewhere a missing promtool skips this check, loudly.
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	cmd := exec.Command(needTool(t, "promtool", "apt-get install prometheus"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
