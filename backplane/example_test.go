package backplane_test

import (
	"fmt"
	"net"
	"time"

	"github.com/herald-mmo/herald/backplane"
	"github.com/nats-io/nats-server/v2/server"
)

// Two nodes share a room through an in-process NATS server: what one
// publishes, the other delivers to its members.
func Example() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)

	got := make(chan string, 3)
	node := func(name string) *backplane.NATS {
		cfg := backplane.DefaultConfig()
		cfg.URL, cfg.Name = url, name
		cfg.Deliver = func(group string, frames [][]byte) {
			for _, f := range frames {
				got <- name + " got " + group + ": " + string(f) // copied: f is only valid during Deliver
			}
		}
		bp, err := backplane.NewNATS(cfg)
		if err != nil {
			panic(err)
		}
		return bp
	}
	east, west := node("east"), node("west")
	defer west.Close()

	// west has a member in room 7: it subscribes. east has none, so it
	// receives nothing and delivers its own broadcasts locally itself.
	subs := ns.NumSubscriptions()
	_ = west.Join("room 7")
	for ns.NumSubscriptions() == subs {
		time.Sleep(time.Millisecond)
	}

	_ = east.Publish("room 7", []byte("hello"))
	_ = east.Publish("room 7", []byte("world"))
	east.Flush() // end of the loop turn: both frames in one NATS message
	fmt.Println(<-got)
	fmt.Println(<-got)
	_ = east.Close() // waits for its sending goroutine: counters are final
	c := east.Counters()
	fmt.Println("east published", c.Published, "frames in", c.Batches, "message")
	// Output:
	// west got room 7: hello
	// west got room 7: world
	// east published 2 frames in 1 message
}
