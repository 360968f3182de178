package natstest_test

import (
	"testing"

	"github.com/herald-mmo/herald/internal/leakcheck"
	"github.com/herald-mmo/herald/internal/natstest"
	"github.com/nats-io/nats.go"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestRestartKeepsThePort(t *testing.T) {
	s := natstest.Start(t)
	url := s.URL()
	base := s.Subscriptions()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync("x"); err != nil {
		t.Fatal(err)
	}
	s.WaitSubscriptions(base + 1)
	s.Stop()
	s.Stop() // a second Stop does nothing
	if _, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		t.Fatal("connected to a stopped server")
	}
	s.Restart()
	if s.URL() != url {
		t.Fatalf("restarted at %s, want %s", s.URL(), url)
	}
	nc2, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	nc2.Close()
}
