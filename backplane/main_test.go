package backplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/internal/testlog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// natsServer is an in-process nats-server on 127.0.0.1 that a test can stop
// and start again on the same port.
type natsServer struct {
	t    testing.TB
	port int
	srv  *server.Server
}

// startNATS starts a server on a free loopback port; t.Cleanup stops it.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, port: -1}
	ns.start()
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) start() {
	ns.t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: ns.port, NoLog: true, NoSigs: true})
	if err != nil {
		ns.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		ns.t.Fatal("nats-server not ready")
	}
	ns.srv = srv
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

func (ns *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ns.port) }

// subs is the server's subscription count.
func (ns *natsServer) subs() uint32 { return ns.srv.NumSubscriptions() }

// raw connects a plain NATS client, as anyone on the server could;
// t.Cleanup closes it.
func (ns *natsServer) raw(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.url())
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
	eventually(t, 10*time.Second, "subscriptions to "+group, func() bool { return ns.subs() == want })
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
	cfg.URL = ns.url()
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
