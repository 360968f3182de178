package tests

import (
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/prometheus/client_golang/prometheus"
)

// TestSessionsByTransport: herald_sessions and herald_sessions_opened_total
// count TCP and WebSocket sessions under their own transport label.
func TestSessionsByTransport(t *testing.T) {
	srv := startWS(t, codec.Packet(0), 0xFFFF, nil)
	_ = dialPacket(t, srv.Addr().String())
	w1, w2 := dialWS(t, srv), dialWS(t, srv)
	defer w1.Close()
	defer w2.Close()
	waitFor(t, 5*time.Second, "three sessions", func() bool { return srv.Manager().Len() == 3 })
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "transport" {
					continue
				}
				switch f.GetName() {
				case "herald_sessions":
					got["open "+l.GetValue()] = m.GetGauge().GetValue()
				case "herald_sessions_opened_total":
					got["opened "+l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"open tcp": 1, "open ws": 2, "opened tcp": 1, "opened ws": 2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v (all: %v)", k, got[k], v, got)
		}
	}
}
