package backplane

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/internal/natstest"
	"github.com/herald-mmo/herald/internal/testlog"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// natsServer is the in-process server with the tests' helpers.
type natsServer struct{ *natstest.Server }

// startNATS starts a server on a free loopback port; t.Cleanup stops it.
func startNATS(t testing.TB) *natsServer { return &natsServer{natstest.Start(t)} }

// subs is the server's subscription count.
func (ns *natsServer) subs() uint32 { return ns.Subscriptions() }

// raw connects a plain NATS client, as anyone on the server could;
// t.Cleanup closes it.
func (ns *natsServer) raw(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// join makes every node Join group and waits until the server has their
// subscriptions.
func join(t testing.TB, ns *natsServer, group string, nodes ...*node) {
	t.Helper()
	want := ns.subs() + uint32(len(nodes))
	for _, nd := range nodes {
		if err := nd.Join(group); err != nil {
			t.Fatal(err)
		}
	}
	ns.WaitSubscriptions(want)
}

// recorder is a Deliver that copies what it receives, per group.
type recorder struct {
	mu     sync.Mutex
	frames map[string][][]byte
	calls  int
}

func (r *recorder) deliver(group string, frames [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frames == nil {
		r.frames = map[string][][]byte{}
	}
	for _, f := range frames {
		r.frames[group] = append(r.frames[group], bytes.Clone(f))
	}
	r.calls++
}

func (r *recorder) get(group string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames[group]...)
}

func (r *recorder) len(group string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames[group])
}

// node is one backplane node under test.
type node struct {
	*NATS
	name string
	rec  *recorder
	log  *testlog.Buffer
}

// newNode connects a node to ns; t.Cleanup closes it.
func newNode(t testing.TB, ns *natsServer, name string, edit func(*Config)) *node {
	t.Helper()
	nd := &node{name: name, rec: &recorder{}, log: &testlog.Buffer{}}
	cfg := DefaultConfig()
	cfg.URL = ns.URL()
	cfg.Name = name
	cfg.Deliver = nd.rec.deliver
	cfg.Logger = zerolog.New(nd.log)
	cfg.ReconnectWait = 20 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	bp, err := NewNATS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.NATS = bp
	t.Cleanup(func() { _ = bp.Close() })
	return nd
}

// frame builds test frame i from sender: [sender u32][i u32] then a body
// whose length and bytes both depend on sender and i.
func frame(sender, i int) []byte {
	body := 1 + (i*7+sender)%120
	f := make([]byte, 8, 8+body)
	binary.LittleEndian.PutUint32(f, uint32(sender))
	binary.LittleEndian.PutUint32(f[4:], uint32(i))
	for k := 0; k < body; k++ {
		f = append(f, byte(sender*31+i+k))
	}
	return f
}

// parse checks f against frame and returns its sender and index.
func parse(t testing.TB, f []byte) (sender, i int) {
	t.Helper()
	if len(f) < 8 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	sender = int(binary.LittleEndian.Uint32(f))
	i = int(binary.LittleEndian.Uint32(f[4:]))
	if !bytes.Equal(f, frame(sender, i)) {
		t.Fatalf("frame %d from sender %d is corrupt", i, sender)
	}
	return sender, i
}

// eventually polls cond every few milliseconds for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
