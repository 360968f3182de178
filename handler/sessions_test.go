package handler_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/handler/handlertest"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWhoHoldsTheMemory: of three sessions, the one whose socket is full
// holds the broadcasts; TopSessions, the JSON endpoint and the oldest-frame
// gauge say so, with the age of its oldest held frame on the server's
// clock.
func TestWhoHoldsTheMemory(t *testing.T) {
	limits := sessionmgr.Limits{LowWatermark: 256, HighWatermark: 1 << 10, MaxPending: 1 << 20, Policy: sessionmgr.Disconnect}
	k := handlertest.New(t, demo.Broadcast{}, handler.WithLimits(limits))
	fast, full, slowish := k.Connect(), k.Connect(), k.Connect()
	full.SetReadRate(0)
	slowish.SetPartialWrites(100)
	msg := codec.Frame{ID: 1, Body: make([]byte, 500)}
	for range 4 { // 2 KiB: past the 1 KiB high watermark for full
		fast.FeedFrame(msg)
	}
	k.Advance(3 * time.Second)
	for range 2 { // held behind the first, not older than them
		fast.FeedFrame(msg)
	}
	_ = fast.Frames()

	top := k.Server().TopSessions(1)
	if len(top) != 1 || top[0].ID != full.Session().ID() {
		t.Fatalf("top session %+v; want the full one, id %d", top, full.Session().ID())
	}
	got := top[0]
	// 4 frames of 504 bytes: gnet's outbound buffer takes 3 before it
	// passes the high watermark, 1 is held; 2 more are held 3 s later.
	if got.Held != 3 || got.Pending != 6*504 || got.Writable {
		t.Errorf("full session holds %d frames, %d bytes pending, writable %v; want 3, %d, false", got.Held, got.Pending, got.Writable, 6*504)
	}
	if got.OldestHeld != 3*time.Second {
		t.Errorf("oldest held frame %v old; want 3s", got.OldestHeld)
	}
	if got.Remote != full.Session().RemoteAddr().String() {
		t.Errorf("remote %q; want %q", got.Remote, full.Session().RemoteAddr())
	}

	rec := httptest.NewRecorder()
	k.Server().SessionsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/herald/sessions?top=2", nil))
	var body struct {
		Sessions int                   `json:"sessions"`
		Top      []handler.SessionInfo `json:"top"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if body.Sessions != 3 || len(body.Top) != 2 || body.Top[0].ID != got.ID || body.Top[0].OldestAge != 3 || body.Top[0].Held != 3 {
		t.Errorf("JSON %s; want 3 sessions, the full one first with 3 held frames, the oldest 3 s old", rec.Body)
	}
	rec = httptest.NewRecorder()
	k.Server().SessionsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/herald/sessions?top=x", nil))
	if rec.Code != 400 {
		t.Errorf("top=x: status %d; want 400", rec.Code)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(k.Server().Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "herald_oldest_held_frame_age_seconds" {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 3 {
				t.Errorf("oldest held frame gauge %v; want 3", v)
			}
			return
		}
	}
	t.Error("no herald_oldest_held_frame_age_seconds")
}
