package handler

import (
	"fmt"
	"net/http"

	"github.com/herald-mmo/herald/sendbuffer"
)

// MetricsHandler serves the server's Stats in the Prometheus text format;
// mount it at /metrics. Close and drop counters carry their reason as a
// label.
func (srv *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := srv.Stats()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metrics := []struct {
			name, kind, help, labels string
			value                    uint64
		}{
			{"herald_sessions", "gauge", "Open sessions.", "", uint64(st.Sessions)},
			{"herald_buffers_live", "gauge", "SendBuffers obtained and not yet released.", "", uint64(sendbuffer.Live())},
			{"herald_connections_refused_total", "counter", "Connections refused (max connections, or stopping).", "", st.Refused},
			{"herald_sessions_closed_total", "counter", "Sessions closed by the server, by reason.", `reason="slow_consumer"`, st.SlowDisconnects},
			{"herald_sessions_closed_total", "", "", `reason="idle"`, st.IdleClosed},
			{"herald_sessions_closed_total", "", "", `reason="frame_timeout"`, st.FrameTimeouts},
			{"herald_frames_dropped_total", "counter", "Frames not sent, by reason.", `reason="slow_consumer"`, st.Dropped},
			{"herald_frames_dropped_total", "", "", `reason="conflated"`, st.Conflated},
			{"herald_frames_dropped_total", "", "", `reason="session_closed"`, st.Unsent},
		}
		for _, m := range metrics {
			if m.kind != "" {
				fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.kind)
			}
			if m.labels != "" {
				fmt.Fprintf(w, "%s{%s} %d\n", m.name, m.labels, m.value)
			} else {
				fmt.Fprintf(w, "%s %d\n", m.name, m.value)
			}
		}
	})
}
