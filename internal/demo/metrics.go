package demo

import (
	"net/http"

	"github.com/herald-mmo/herald/handler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsMux returns the demos' -metrics mux: /metrics serves a registry
// holding srv's collector and the Go runtime and process collectors, and
// /debug/herald/sessions?top=N the sessions holding the most bytes
// (handler.Server.SessionsHandler).
func MetricsMux(srv *handler.Server) *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Collector(), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/debug/herald/sessions", srv.SessionsHandler())
	return mux
}
