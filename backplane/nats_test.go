package backplane

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkStream checks that frames hold, per sender, consecutive indexes
// starting at from[sender] (each frame once, intact, in send order), that
// none comes from self, and returns how many came from each sender.
func checkStream(t *testing.T, self int, frames [][]byte) map[int]int {
	t.Helper()
	next := map[int]int{}
	for _, f := range frames {
		s, i := parse(t, f)
		if s == self {
			t.Fatalf("node %d received its own frame %d", self, i)
		}
		if i != next[s] {
			t.Fatalf("node %d: from %d got frame %d, want %d", self, s, i, next[s])
		}
		next[s]++
	}
	return next
}

func TestEveryFrameReachesEveryOtherMember(t *testing.T) {
	const (
		nodes  = 3
		frames = 3000
		group  = "room.1 *>" // needs escaping
	)
	ns := startNATS(t)
	var all []*node
	for i := range nodes {
		all = append(all, newNode(t, ns, string(rune('a'+i)), nil))
	}
	join(t, ns, group, all...)

	var wg sync.WaitGroup
	for s, nd := range all {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			for i := 0; i < frames; {
				burst := 1 + rng.IntN(60)
				for ; burst > 0 && i < frames; burst-- {
					if err := nd.Publish(group, frame(s, i)); err != nil {
						t.Error(err)
						return
					}
					i++
				}
				nd.Flush()
			}
		})
	}
	wg.Wait()
	want := (nodes - 1) * frames
	for _, nd := range all {
		eventually(t, 20*time.Second, "delivery to "+nd.name, func() bool { return nd.rec.len(group) >= want })
	}
	for self, nd := range all {
		got := checkStream(t, self, nd.rec.get(group))
		for s := range nodes {
			if s != self && got[s] != frames {
				t.Errorf("node %d got %d frames from %d, want %d", self, got[s], s, frames)
			}
		}
		c := nd.Counters()
		if c.Published != frames || c.Received != uint64(want) || c.Lost != 0 || c.Gaps != 0 || c.Malformed != 0 {
			t.Errorf("node %d counters %+v", self, c)
		}
		if c.Batches >= c.Published/4 {
			t.Errorf("node %d: %d frames in %d NATS messages: not batched", self, c.Published, c.Batches)
		}
		if c.Groups != 1 {
			t.Errorf("node %d subscribes to %d groups, want 1", self, c.Groups)
		}
	}
}

func TestNoMembersNoTraffic(t *testing.T) {
	ns := startNATS(t)
	base := ns.subs()
	a := newNode(t, ns, "a", nil)
	b := newNode(t, ns, "b", nil)
	join(t, ns, "lobby", a, b)
	join(t, ns, "raid", a)

	// publish sends frames 0..n-1 from a to raid and then one to lobby, and
	// waits for b to have lobby's.
	lobby := 0
	publish := func(n int) {
		t.Helper()
		for i := range n {
			if err := a.Publish("raid", frame(0, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Publish("lobby", frame(0, lobby)); err != nil {
			t.Fatal(err)
		}
		lobby++
		a.Flush()
		eventually(t, 5*time.Second, "lobby frame at b", func() bool { return b.rec.len("lobby") == lobby })
	}

	publish(50)
	if n := b.rec.len("raid"); n != 0 {
		t.Fatalf("b has no member in raid but received %d of its frames", n)
	}

	// Two Joins, one Leave: still subscribed.
	_ = b.Join("raid")
	_ = b.Join("raid")
	b.Leave("raid")
	eventually(t, 5*time.Second, "b's raid subscription", func() bool { return ns.subs() == base+4 })
	publish(20)
	eventually(t, 5*time.Second, "raid frames at b", func() bool { return b.rec.len("raid") == 20 })

	// The last Leave unsubscribes on the server; another Leave is ignored.
	b.Leave("raid")
	b.Leave("raid")
	eventually(t, 5*time.Second, "b's raid unsubscription", func() bool { return ns.subs() == base+3 })
	if g := b.Counters().Groups; g != 1 {
		t.Errorf("b subscribes to %d groups, want 1", g)
	}
	publish(30)
	if n := b.rec.len("raid"); n != 20 {
		t.Errorf("b received %d raid frames, want the 20 sent while it was a member", n)
	}
	if got := checkStream(t, 1, b.rec.get("raid")); got[0] != 20 {
		t.Errorf("raid frames at b: %v", got)
	}
	if c := a.Counters(); c.Received != 0 {
		t.Errorf("a received %d frames; only a published", c.Received)
	}
}

func TestServerRestart(t *testing.T) {
	const group = "room"
	ns := startNATS(t)
	edit := func(c *Config) { c.ReconnectBuf = 16 << 10 }
	nodes := []*node{newNode(t, ns, "a", edit), newNode(t, ns, "b", edit)}
	join(t, ns, group, nodes...)

	sent := make([]int, len(nodes))
	publish := func(n int) {
		var wg sync.WaitGroup
		for s, nd := range nodes {
			wg.Go(func() {
				for k := range n {
					_ = nd.Publish(group, frame(s, sent[s])) // a loss is counted, checked below
					sent[s]++
					if k%25 == 24 {
						nd.Flush()
					}
				}
				nd.Flush()
			})
		}
		wg.Wait()
	}
	// seen reports whether every node has received the other's last frame.
	seen := func() bool {
		for self, nd := range nodes {
			f := nd.rec.get(group)
			if len(f) == 0 {
				return false
			}
			if s, i := parse(t, f[len(f)-1]); s != 1-self || i != sent[s]-1 {
				return false
			}
		}
		return true
	}

	publish(500)
	eventually(t, 10*time.Second, "delivery before the restart", seen)

	ns.Stop()
	for _, nd := range nodes {
		eventually(t, 10*time.Second, nd.name+" to notice the disconnect", func() bool { return nd.Counters().Disconnects > 0 })
	}
	publish(2000)              // about 150 KiB each: more than the 16 KiB reconnect buffer
	for s, nd := range nodes { // restart once the senders have tried it all
		eventually(t, 10*time.Second, nd.name+" to publish", func() bool {
			c := nd.Counters()
			return c.Published+c.Lost == uint64(sent[s])
		})
	}
	ns.Restart()
	for _, nd := range nodes {
		eventually(t, 10*time.Second, nd.name+" to reconnect", func() bool { return nd.Counters().Reconnects > 0 })
	}
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; !seen(); round++ {
		if time.Now().After(deadline) || round > 200 {
			t.Fatalf("after %d rounds a node still misses the other's last frame", round)
		}
		publish(20)
		time.Sleep(10 * time.Millisecond)
	}

	for self, nd := range nodes {
		other := nodes[1-self]
		got := nd.rec.get(group)
		c, oc := nd.Counters(), other.Counters()
		if int(c.Received) != len(got) {
			t.Errorf("%s: Received %d, delivered %d", nd.name, c.Received, len(got))
		}
		if c.Published+c.Lost != uint64(sent[self]) {
			t.Errorf("%s: Published %d + Lost %d != sent %d", nd.name, c.Published, c.Lost, sent[self])
		}
		if c.Lost == 0 {
			t.Errorf("%s: nothing lost beyond a 16 KiB reconnect buffer", nd.name)
		}
		if c.Received+c.Gaps+oc.Lost != uint64(sent[1-self]) {
			t.Errorf("%s: received %d + gaps %d + lost by %s %d != %d sent", nd.name, c.Received, c.Gaps, other.name, oc.Lost, sent[1-self])
		}
		// Frames from the other node arrive in send order, each once, intact.
		last := -1
		for _, f := range got {
			s, i := parse(t, f)
			if s != 1-self || i <= last {
				t.Fatalf("%s: frame %d from %d after frame %d", nd.name, i, s, last)
			}
			last = i
		}
		if !strings.Contains(other.log.String(), msgLost) || !strings.Contains(nd.log.String(), "reconnected") {
			t.Errorf("%s: losses or reconnect not logged:\n%s", nd.name, nd.log.String())
		}
		t.Logf("%s: sent %d, published %d, lost %d; received %d, gaps %d", nd.name, sent[self], c.Published, c.Lost, c.Received, c.Gaps)
	}
}

func TestMalformedMessageHarmsNobody(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, ns, "a", nil)
	b := newNode(t, ns, "b", nil)
	join(t, ns, "g", b)
	raw := ns.raw(t)
	for _, junk := range [][]byte{nil, []byte("hello"), make([]byte, batchHeaderLen+3)} {
		if err := raw.Publish(subject("g"), junk); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = a.Publish("g", frame(0, 0))
	a.Flush()
	eventually(t, 5*time.Second, "a's frame at b", func() bool { return b.rec.len("g") == 1 })
	eventually(t, 5*time.Second, "malformed count", func() bool { return b.Counters().Malformed == 3 })
	checkStream(t, 1, b.rec.get("g"))
}

func TestPublishRefusals(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, ns, "a", func(c *Config) {
		c.MaxBatch = 1024
		c.MaxQueued = 4096
	})
	if err := a.Publish("g", make([]byte, a.MaxFrame()+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("frame over MaxFrame: %v, want ErrFrameTooLarge", err)
	}
	if err := a.Publish("g", make([]byte, a.MaxFrame())); err != nil {
		t.Errorf("frame of MaxFrame bytes: %v", err)
	}
	if err := a.Publish(strings.Repeat("x", MaxGroupName+1), nil); !errors.Is(err, ErrGroupName) {
		t.Errorf("long group name: %v, want ErrGroupName", err)
	}
	if err := a.Join(strings.Repeat("x", MaxGroupName+1)); !errors.Is(err, ErrGroupName) {
		t.Errorf("Join with a long group name: %v, want ErrGroupName", err)
	}
	// Unflushed batches count against MaxQueued: one small frame to each of
	// many groups fills it without anything leaving.
	var err error
	refused := 0
	for i := 0; i < 1000 && err == nil; i++ {
		err = a.Publish("room-"+strings.Repeat("y", i%3)+string(rune('a'+i%26))+string(rune('a'+i/26)), make([]byte, 10))
		if err != nil {
			refused++
		}
	}
	if !errors.Is(err, ErrQueueFull) {
		t.Errorf("publishing past MaxQueued without Flush: %v, want ErrQueueFull", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Publish("g", []byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := a.Join("g"); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	// too large, long name, queue full, after close: one frame each.
	if c := a.Counters(); c.Lost != uint64(3+refused) {
		t.Errorf("Lost %d, want %d", c.Lost, 3+refused)
	}
	if log := a.log.String(); !strings.Contains(log, ErrQueueFull.Error()) || !strings.Contains(log, ErrFrameTooLarge.Error()) {
		t.Errorf("losses not logged with reasons:\n%s", log)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Deliver = func(string, [][]byte) {}
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultConfig with Deliver: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"no deliver":          func(c *Config) { c.Deliver = nil },
		"no url":              func(c *Config) { c.URL = "" },
		"tiny batch":          func(c *Config) { c.MaxBatch = batchHeaderLen },
		"queue below batch":   func(c *Config) { c.MaxQueued = c.MaxBatch - 1 },
		"no reconnect buf":    func(c *Config) { c.ReconnectBuf = 0 },
		"no reconnect wait":   func(c *Config) { c.ReconnectWait = 0 },
		"negative close wait": func(c *Config) { c.CloseTimeout = -1 },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
		if _, err := NewNATS(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewNATS %s: %v, want ErrBadConfig", name, err)
		}
	}
}

func TestGapsCountedBySequence(t *testing.T) {
	ns := startNATS(t)
	b := newNode(t, ns, "b", nil)
	join(t, ns, "g", b)
	raw := ns.raw(t)

	delivered := 0
	for _, step := range []struct {
		name      string
		node, seq uint64
		frames    int
		gaps      uint64 // Counters.Gaps after this batch
	}{
		{"first batch of a stream", 7, 1, 2, 0},
		{"follows on", 7, 3, 1, 0},
		{"two frames missing", 7, 6, 1, 2},
		{"another sender starts mid-stream", 8, 40, 1, 2},
		{"sender forgot the group: restart at 1", 7, 1, 1, 2},
		{"after the restart", 7, 2, 3, 2},
		{"one missing after the restart", 7, 6, 1, 3},
		{"second sender follows on", 8, 41, 1, 3},
	} {
		bt := new(batch)
		bt.reset("g")
		for k := range step.frames {
			bt.add(frame(int(step.node), k))
		}
		bt.seal(step.node, step.seq)
		if err := raw.Publish(subject("g"), bt.buf); err != nil {
			t.Fatal(err)
		}
		delivered += step.frames
		eventually(t, 5*time.Second, step.name, func() bool { return b.rec.len("g") == delivered })
		if c := b.Counters(); c.Gaps != step.gaps || c.Received != uint64(delivered) {
			t.Fatalf("%s: gaps %d received %d, want %d and %d", step.name, c.Gaps, c.Received, step.gaps, delivered)
		}
	}
	if log := b.log.String(); !strings.Contains(log, msgGap) {
		t.Errorf("gaps not logged:\n%s", log)
	}
}

func TestForgetIdle(t *testing.T) {
	n := &NATS{pubs: map[string]*pubState{
		"busy": {next: 9, used: true},
		"idle": {next: 5},
	}}
	n.forgetIdle()
	if _, ok := n.pubs["idle"]; ok {
		t.Error("idle group kept")
	}
	if ps := n.pubs["busy"]; ps == nil || ps.next != 9 || ps.used {
		t.Errorf("busy group: %+v", ps)
	}
	n.forgetIdle()
	if len(n.pubs) != 0 {
		t.Errorf("%d groups kept after two idle sweeps", len(n.pubs))
	}
}

func TestNoDeliveryAfterClose(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, ns, "a", nil)
	var closed atomic.Bool
	var late atomic.Int64
	b := newNode(t, ns, "b", func(c *Config) {
		c.Deliver = func(string, [][]byte) {
			time.Sleep(time.Millisecond) // a Close that did not wait for this call would return now
			if closed.Load() {
				late.Add(1)
			}
		}
	})
	join(t, ns, "g", b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = a.Publish("g", frame(0, i))
			a.Flush()
			time.Sleep(100 * time.Microsecond)
		}
	})
	eventually(t, 5*time.Second, "deliveries", func() bool { return b.Counters().Received > 10 })
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	closed.Store(true)
	time.Sleep(50 * time.Millisecond) // a's frames keep coming
	close(stop)
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Errorf("Deliver called %d times after Close returned", n)
	}
}

func TestCloseWhileNATSIsDown(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, ns, "a", func(c *Config) { c.CloseTimeout = 200 * time.Millisecond })
	ns.Stop()
	eventually(t, 10*time.Second, "the disconnect", func() bool { return a.Counters().Disconnects > 0 })
	for i := range 100 {
		_ = a.Publish("g", frame(0, i))
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung with the server down")
	}
	if c := a.Counters(); c.Published+c.Lost != 100 {
		t.Errorf("%d published + %d lost, want the 100 frames accounted for", c.Published, c.Lost)
	}
}
