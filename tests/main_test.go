// Package tests holds herald's end-to-end tests: real gnet servers and real
// clients over 127.0.0.1 sockets on free ports, each bounded in time.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// startServer starts a herald server for h on a free 127.0.0.1 port and
// stops it when the test ends, checking that no session and no SendBuffer
// outlives it.
func startServer(t *testing.T, h handler.Handler, opts ...handler.Option) *handler.Server {
	t.Helper()
	leakcheck.Check(t) // registered first, so it runs after Stop below
	srv, err := handler.NewServer(h, append([]handler.Option{handler.WithAddr("127.0.0.1:0")}, opts...)...)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if n := srv.Manager().Len(); n != 0 {
			t.Errorf("%d sessions left after stop", n)
		}
	})
	return srv
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's loops to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLine is the part of a zerolog JSON line the tests read.
type logLine struct {
	Level   string `json:"level"`
	Session uint64 `json:"session"`
	Remote  string `json:"remote"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// logLines returns the JSON lines logged into logs that keep accepts,
// failing the test for each line that is not JSON.
func logLines(t *testing.T, logs *syncBuffer, keep func(logLine) bool) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Errorf("log line %q: %v", sc.Text(), err)
			continue
		}
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// lockedCopy returns a copy of the map *m, made holding mu.
func lockedCopy[K comparable, V any](mu *sync.Mutex, m *map[K]V) map[K]V {
	mu.Lock()
	defer mu.Unlock()
	out := make(map[K]V, len(*m))
	maps.Copy(out, *m)
	return out
}

// lockedLookup returns (*m)[k], looked up holding mu.
func lockedLookup[K comparable, V any](mu *sync.Mutex, m *map[K]V, k K) (V, bool) {
	mu.Lock()
	defer mu.Unlock()
	v, ok := (*m)[k]
	return v, ok
}
