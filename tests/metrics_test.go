package tests

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
)

// TestMetrics: /metrics reports the open sessions and the refusals, in the
// Prometheus text format.
func TestMetrics(t *testing.T) {
	srv := startServer(t, &relay{}, handler.WithMaxConns(1))
	addr := srv.Addr().String()
	dialPacket(t, addr)
	waitFor(t, 5*time.Second, "one session", func() bool { return srv.Manager().Len() == 1 })
	dialPacket(t, addr).expectClosed(5 * time.Second) // over the limit
	waitFor(t, 5*time.Second, "the refusal counted", func() bool { return srv.Stats().Refused == 1 })

	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"# TYPE herald_sessions gauge\nherald_sessions 1\n",
		"herald_connections_refused_total 1\n",
		"herald_sessions_closed_total{reason=\"slow_consumer\"} 0\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
