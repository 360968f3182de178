package tests

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/backplane"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/natstest"
	"github.com/herald-mmo/herald/sendbuffer"
	"github.com/herald-mmo/herald/sessionmgr"
)

// crossRoom is cmd/broadcast's room on one of several nodes: a frame goes
// to every session on every node, sender included. The server's backplane
// (handler.WithBackplane) does the rest: the Manager publishes what it
// broadcasts, joins while it has sessions, flushes when the callback ends
// and delivers what the other nodes publish.
type crossRoom struct{ handler.Base }

func (crossRoom) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	s.Manager().Broadcast(sendbuffer.Copy(f.Wire))
}

// crossNode is a herald server with a NATS backplane.
type crossNode struct {
	srv *handler.Server
}

// bp returns the node's backplane counters.
func (n *crossNode) bp() backplane.Counters { return n.srv.Stats().Backplane }

func startCrossNode(t *testing.T, ns *natstest.Server, name string, h handler.Handler) *crossNode {
	t.Helper()
	srv := startServer(t, h, handler.WithBackplane(func(d backplane.Deliver) (backplane.Backplane, error) {
		cfg := backplane.DefaultConfig()
		cfg.URL, cfg.Name, cfg.Deliver = ns.URL(), name, d
		cfg.ReconnectWait = 20 * time.Millisecond
		cfg.ReconnectBuf = 4 << 10 // an outage of a few hundred frames overflows it
		return backplane.NewNATS(cfg)
	}))
	return &crossNode{srv: srv}
}

// roomClient sends numbered frames and records, from a goroutine of its
// own, the (client, number) of every frame it receives.
type roomClient struct {
	id   int
	node int
	pc   *packetClient

	mu  sync.Mutex
	got [][2]int
	err error
}

func dialRoom(t *testing.T, addr string, id, node int, readers *sync.WaitGroup) *roomClient {
	c := &roomClient{id: id, node: node, pc: dialPacket(t, addr)}
	readers.Go(func() { c.read(c.pc.conn, c.pc.r) })
	return c
}

// roomPayload is frame n of client id: [id u8][n u32][id+n repeated 8 times].
func roomPayload(id, n int) []byte {
	p := []byte{byte(id)}
	p = binary.LittleEndian.AppendUint32(p, uint32(n))
	for range 8 {
		p = append(p, byte(id+n))
	}
	return p
}

func (c *roomClient) send(n int) { c.pc.send(9, roomPayload(c.id, n)) }

func (c *roomClient) read(conn net.Conn, r *bufio.Reader) {
	for {
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return // closed at the end of the test
		}
		p := make([]byte, int(binary.LittleEndian.Uint16(hdr[:]))-4)
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		c.mu.Lock()
		if len(p) != 13 || string(p) != string(roomPayload(int(p[0]), int(binary.LittleEndian.Uint32(p[1:])))) {
			c.err = io.ErrUnexpectedEOF
		} else {
			c.got = append(c.got, [2]int{int(p[0]), int(binary.LittleEndian.Uint32(p[1:]))})
		}
		c.mu.Unlock()
	}
}

// received returns, per sending client, the numbers received in order.
func (c *roomClient) received() (map[int][]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int][]int{}
	for _, g := range c.got {
		out[g[0]] = append(out[g[0]], g[1])
	}
	return out, c.err
}

// TestBackplaneCrossNode: two herald nodes share one room through an
// in-process nats-server, three clients on each. Every client gets every
// frame from every client once, intact, in per-sender order. Then NATS
// stops and restarts mid-run: local delivery goes on, and for every client
// what arrives from the other node plus what that node counted as lost
// plus the gaps this node counted equals what the other node's clients sent.
func TestBackplaneCrossNode(t *testing.T) {
	const perNode = 3
	ns := natstest.Start(t)
	base := ns.Subscriptions()
	nodes := []*crossNode{startCrossNode(t, ns, "east", crossRoom{}), startCrossNode(t, ns, "west", crossRoom{})}
	var readers sync.WaitGroup
	t.Cleanup(readers.Wait) // after the connections close (cleanups run last first)
	var clients []*roomClient
	for n, nd := range nodes {
		for range perNode {
			clients = append(clients, dialRoom(t, nd.srv.Addr().String(), len(clients), n, &readers))
		}
		waitFor(t, 5*time.Second, "sessions", func() bool { return nd.srv.Manager().Len() == perNode })
	}
	ns.WaitSubscriptions(base + 2) // one per node: the Manager joins once for all its sessions

	sent := make([]int, len(clients))
	send := func(rounds int) {
		for range rounds {
			for _, c := range clients {
				c.send(sent[c.id])
				sent[c.id]++
			}
		}
	}
	// caughtUp reports whether every client has every sender's last frame.
	caughtUp := func() bool {
		for _, c := range clients {
			got, _ := c.received()
			for s := range clients {
				if l := got[s]; len(l) == 0 || l[len(l)-1] != sent[s]-1 {
					return false
				}
			}
		}
		return true
	}
	check := func(phase string, outage bool) {
		t.Helper()
		for _, c := range clients {
			got, err := c.received()
			if err != nil {
				t.Fatalf("%s: client %d received a corrupt frame", phase, c.id)
			}
			here, there := nodes[c.node], nodes[1-c.node]
			fromThere, sentThere := 0, 0
			for s, nums := range got {
				for k := 1; k < len(nums); k++ {
					if nums[k] <= nums[k-1] {
						t.Fatalf("%s: client %d got %d after %d from client %d", phase, c.id, nums[k], nums[k-1], s)
					}
				}
				if clients[s].node == c.node && len(nums) != sent[s] {
					t.Errorf("%s: client %d got %d of the %d frames sent on its own node by %d", phase, c.id, len(nums), sent[s], s)
				}
				if clients[s].node != c.node {
					fromThere += len(nums)
				}
			}
			for _, o := range clients {
				if o.node != c.node {
					sentThere += sent[o.id]
				}
			}
			hc, tc := here.bp(), there.bp()
			if !outage && (fromThere != sentThere || hc.Gaps != 0 || tc.Lost != 0) {
				t.Errorf("%s: client %d got %d of %d frames from the other node (gaps %d, lost %d)", phase, c.id, fromThere, sentThere, hc.Gaps, tc.Lost)
			}
			if uint64(fromThere)+hc.Gaps+tc.Lost != uint64(sentThere) {
				t.Errorf("%s: client %d: %d received + %d gaps + %d lost != %d sent on the other node",
					phase, c.id, fromThere, hc.Gaps, tc.Lost, sentThere)
			}
		}
	}

	send(100)
	waitFor(t, 20*time.Second, "every frame at every client", caughtUp)
	check("connected", false)

	ns.Stop()
	for _, nd := range nodes {
		waitFor(t, 10*time.Second, "disconnect", func() bool { return nd.bp().Disconnects > 0 })
	}
	send(300)
	// Restart only once each node has tried to publish all of it.
	for n, nd := range nodes {
		waitFor(t, 10*time.Second, "publishes during the outage", func() bool {
			c, want := nd.bp(), 0
			for _, cl := range clients {
				if cl.node == n {
					want += sent[cl.id]
				}
			}
			return c.Published+c.Lost == uint64(want)
		})
	}
	ns.Restart()
	for _, nd := range nodes {
		waitFor(t, 10*time.Second, "reconnect", func() bool { return nd.bp().Reconnects > 0 })
	}
	deadline := time.Now().Add(20 * time.Second)
	for !caughtUp() {
		if time.Now().After(deadline) {
			t.Fatal("clients still miss the other node's last frames 20 s after NATS came back")
		}
		send(5)
		time.Sleep(20 * time.Millisecond)
	}
	check("after the outage", true)
	for _, nd := range nodes {
		c := nd.bp()
		if c.Lost == 0 {
			t.Errorf("%+v: nothing lost beyond a 4 KiB reconnect buffer", c)
		}
		t.Logf("counters %+v", c)
	}
}

// TestBackplaneGroupStaysWithMembers: a group's traffic reaches only the
// nodes that have members of it: east broadcasts to a group only it has
// members of and to one both have; west subscribes to the second alone,
// receives exactly its frames, in order, and none of the first. When west's
// members leave, west unsubscribes.
func TestBackplaneGroupStaysWithMembers(t *testing.T) {
	const frames = 50
	ns := natstest.Start(t)
	base := ns.Subscriptions()
	east, west := startCrossNode(t, ns, "east", handler.Base{}), startCrossNode(t, ns, "west", handler.Base{})
	var readers sync.WaitGroup
	t.Cleanup(readers.Wait)
	var clients []*roomClient
	for n, nd := range []*crossNode{east, west} {
		for range 2 {
			clients = append(clients, dialRoom(t, nd.srv.Addr().String(), len(clients), n, &readers))
		}
		waitFor(t, 5*time.Second, "sessions", func() bool { return nd.srv.Manager().Len() == 2 })
	}
	em, wm := east.srv.Manager(), west.srv.Manager()
	for _, s := range em.Sessions() {
		em.Group("east-only").Join(s)
		em.Group("both").Join(s)
	}
	for _, s := range wm.Sessions() {
		wm.Group("both").Join(s)
	}
	ns.WaitSubscriptions(base + 2 + 3) // every session per node; east-only; both on each node

	// Sender 0 is the east-only group, sender 1 the shared one.
	for n := range frames {
		em.Group("east-only").Broadcast(sendbuffer.Copy(packetFrame(9, roomPayload(0, n))))
		em.Group("both").Broadcast(sendbuffer.Copy(packetFrame(9, roomPayload(1, n))))
	}
	all := make([]int, frames)
	for i := range all {
		all[i] = i
	}
	waitFor(t, 10*time.Second, "every frame at every member", func() bool {
		for _, c := range clients {
			got, _ := c.received()
			if len(got[1]) < frames || (c.node == 0 && len(got[0]) < frames) {
				return false
			}
		}
		return true
	})
	for _, c := range clients {
		got, err := c.received()
		if err != nil {
			t.Fatalf("client %d received a corrupt frame", c.id)
		}
		if !slices.Equal(got[1], all) {
			t.Errorf("client %d got %v of the shared group; want 0..%d once, in order", c.id, got[1], frames-1)
		}
		switch {
		case c.node == 0 && !slices.Equal(got[0], all):
			t.Errorf("east client %d got %v of its own group; want 0..%d once, in order", c.id, got[0], frames-1)
		case c.node == 1 && len(got[0]) != 0:
			t.Errorf("west client %d got %d frames of a group west has no members of", c.id, len(got[0]))
		}
	}
	if wc, ec := west.bp(), east.bp(); wc.Received != frames || ec.Received != 0 || wm.Counters().NoMembers != 0 {
		t.Errorf("west received %d frames (want %d: the shared group only), east %d (want 0: nobody else broadcast), west unrouted %d (want 0)",
			wc.Received, frames, ec.Received, wm.Counters().NoMembers)
	}
	for _, s := range wm.Sessions() {
		wm.Group("both").Leave(s)
	}
	ns.WaitSubscriptions(base + 2 + 2) // west no longer receives the shared group
}
