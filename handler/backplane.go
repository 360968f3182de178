package handler

import (
	"sync/atomic"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/prometheus/client_golang/prometheus"
)

// NewBackplane makes a server's backplane. deliver is what the backplane
// must call with the other nodes' frames (backplane.Config.Deliver): it
// hands them to the server's Manager, which NewServer makes after the
// backplane.
type NewBackplane func(deliver backplane.Deliver) (backplane.Backplane, error)

// WithBackplane makes the server a node of rooms that span servers:
// Manager.Broadcast and Group.Broadcast reach the members on every node
// that shares the backplane (sessionmgr.Config.Backplane). NewServer calls
// newBP once; Stop closes the backplane before the loops drain. Without it
// the server is one node and nothing about a backplane runs; so it is with
// a nil newBP. For NATS:
//
//	handler.WithBackplane(func(d backplane.Deliver) (backplane.Backplane, error) {
//		cfg := backplane.DefaultConfig()
//		cfg.URL, cfg.Name, cfg.Deliver = "nats://127.0.0.1:4222", "east", d
//		return backplane.NewNATS(cfg)
//	})
func WithBackplane(newBP NewBackplane) Option { return func(o *options) { o.backplane = newBP } }

// openBackplane makes the backplane of o, if any, and returns it with the
// function that binds it to the Manager once that exists; frames that
// arrive before are dropped (none can: the Manager joins no group before it
// has a session).
func (o *options) openBackplane() (backplane.Backplane, func(*sessionmgr.Manager), error) {
	if o.backplane == nil {
		return nil, func(*sessionmgr.Manager) {}, nil
	}
	var mgr atomic.Pointer[sessionmgr.Manager]
	bp, err := o.backplane(func(group string, frames [][]byte) {
		if m := mgr.Load(); m != nil {
			m.Deliver(group, frames)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return bp, mgr.Store, nil
}

// closeBackplane closes the server's backplane once: what it has queued
// goes out, and nothing more arrives from the other nodes.
func (srv *Server) closeBackplane() {
	if srv.bp == nil {
		return
	}
	srv.bpClose.Do(func() {
		if err := srv.bp.Close(); err != nil {
			srv.log.Warn().Err(err).Msg("herald: closing the backplane")
		}
	})
}

// backplaneCounters returns the backplane's totals, zero without one.
func (srv *Server) backplaneCounters() backplane.Counters {
	if srv.bp == nil {
		return backplane.Counters{}
	}
	return srv.bp.Counters()
}

// The backplane's metrics (see Collector); zero without WithBackplane.
var (
	descBPPublished = prometheus.NewDesc("herald_backplane_frames_published_total",
		"Frames this node published to the backplane (handed to NATS).", nil, nil)
	descBPBatches = prometheus.NewDesc("herald_backplane_batches_published_total",
		"Backplane messages published; frames_published_total over this is the batching factor.", nil, nil)
	descBPReceived = prometheus.NewDesc("herald_backplane_frames_received_total",
		"Frames received from the other nodes.", nil, nil)
	descBPLost = prometheus.NewDesc("herald_backplane_frames_lost_total",
		"Frames this node could not publish (queue or reconnect buffer full, too large, closed); each loss is logged with its group.", nil, nil)
	descBPMissing = prometheus.NewDesc("herald_backplane_frames_missing_total",
		"Frames missing from what other nodes published, by their sequence numbers; logged with the group.", nil, nil)
	descBPNoMembers = prometheus.NewDesc("herald_backplane_frames_unrouted_total",
		"Frames received for a group with no members on this node (it left while they travelled).", nil, nil)
	descBPMalformed = prometheus.NewDesc("herald_backplane_malformed_total",
		"Backplane messages dropped as not well-formed.", nil, nil)
	descBPDisconnects = prometheus.NewDesc("herald_backplane_disconnects_total",
		"Backplane connection losses.", nil, nil)
	descBPReconnects = prometheus.NewDesc("herald_backplane_reconnects_total",
		"Backplane reconnections.", nil, nil)
	descBPGroups = prometheus.NewDesc("herald_backplane_groups",
		"Groups this node receives from the backplane now (it has members of them).", nil, nil)
)

var backplaneDescs = []*prometheus.Desc{descBPPublished, descBPBatches, descBPReceived, descBPLost,
	descBPMissing, descBPNoMembers, descBPMalformed, descBPDisconnects, descBPReconnects, descBPGroups}

// collectBackplane sends the backplane's metrics.
func (srv *Server) collectBackplane(ch chan<- prometheus.Metric) {
	c := srv.backplaneCounters()
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{descBPPublished, c.Published}, {descBPBatches, c.Batches}, {descBPReceived, c.Received},
		{descBPLost, c.Lost}, {descBPMissing, c.Gaps}, {descBPNoMembers, srv.mgr.Counters().NoMembers},
		{descBPMalformed, c.Malformed}, {descBPDisconnects, c.Disconnects}, {descBPReconnects, c.Reconnects},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(descBPGroups, prometheus.GaugeValue, float64(c.Groups))
}
