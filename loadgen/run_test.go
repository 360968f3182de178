package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a tiny TCP server on a free 127.0.0.1 port, stopped with
// everything it started when the test ends.
type testServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]*sync.Mutex // open connections and their write locks
	subs  map[net.Conn]bool        // pubsubServer: subscribed connections
}

// startServer serves each connection with serve, after registering it.
func startServer(t *testing.T, serve func(s *testServer, c net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, conns: make(map[net.Conn]*sync.Mutex), subs: make(map[net.Conn]bool)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = new(sync.Mutex)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					delete(s.subs, c)
					s.mu.Unlock()
					c.Close()
				}()
				serve(s, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

// each calls fn for every open connection with its write lock held (and
// s.mu).
func (s *testServer) each(fn func(c net.Conn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, wmu := range s.conns {
		wmu.Lock()
		fn(c)
		wmu.Unlock()
	}
}

// broadcastServer sends every packet frame to every connection, sender
// included; mangle, if set, may change or drop (return nil) the copy for
// one recipient.
func broadcastServer(mangle func(frame []byte, to net.Conn) []byte) func(s *testServer, c net.Conn) {
	return func(s *testServer, c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		hdr := make([]byte, 2)
		for {
			if _, err := io.ReadFull(br, hdr); err != nil {
				return
			}
			size := binary.LittleEndian.Uint16(hdr)
			if size < PacketHeaderLen {
				return // a protocol error closes the connection, as the real servers do
			}
			frame := make([]byte, size)
			copy(frame, hdr)
			if _, err := io.ReadFull(br, frame[2:]); err != nil {
				return
			}
			s.each(func(to net.Conn) {
				out := frame
				if mangle != nil {
					if out = mangle(frame, to); out == nil {
						return
					}
				}
				_, _ = to.Write(out)
			})
		}
	}
}

func echoServer(_ *testServer, c net.Conn) { _, _ = io.Copy(c, c) }

// pubsubServer is a minimal redis: SUBSCRIBE and PUBLISH on any channel.
func pubsubServer(s *testServer, c net.Conn) {
	br := bufio.NewReader(c)
	for {
		args, err := readRESPCommand(br)
		if err != nil {
			return
		}
		var reply string
		switch {
		case strings.EqualFold(args[0], "SUBSCRIBE") && len(args) == 2:
			s.mu.Lock()
			s.subs[c] = true
			s.mu.Unlock()
			reply = fmt.Sprintf("*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n", len(args[1]), args[1])
		case strings.EqualFold(args[0], "PUBLISH") && len(args) == 3:
			msg := fmt.Sprintf("*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(args[1]), args[1], len(args[2]), args[2])
			n := 0
			s.each(func(to net.Conn) {
				if s.subs[to] {
					_, _ = io.WriteString(to, msg)
					n++
				}
			})
			reply = ":" + strconv.Itoa(n) + "\r\n"
		default:
			reply = "-ERR unknown command\r\n"
		}
		s.mu.Lock()
		wmu := s.conns[c]
		s.mu.Unlock()
		wmu.Lock()
		_, err = io.WriteString(c, reply)
		wmu.Unlock()
		if err != nil {
			return
		}
	}
}

func readRESPCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array %q", line)
	}
	args := make([]string, n)
	for i := range args {
		if line, err = br.ReadString('\n'); err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk %q", line)
		}
		b := make([]byte, l+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:l])
	}
	return args, nil
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunFanout(t *testing.T) {
	tests := []struct {
		name string
		cfg  FanoutConfig
	}{
		{name: "window 1", cfg: FanoutConfig{Clients: 4, Messages: 50, Size: 20, Window: 1}},
		{name: "window 16", cfg: FanoutConfig{Clients: 20, Messages: 100, Size: 64, Window: 16}},
		{name: "large frames", cfg: FanoutConfig{Clients: 3, Messages: 20, Size: 40000, Window: 4}},
		{name: "rate and duration", cfg: FanoutConfig{Clients: 5, Duration: 300 * time.Millisecond, Rate: 500, Size: 64, Window: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, broadcastServer(nil))
			cfg := tt.cfg
			cfg.Addr = srv.addr()
			var progress int
			cfg.ProgressInterval = 50 * time.Millisecond
			cfg.Progress = func(Progress) { progress++ }
			res, err := RunFanout(testContext(t), cfg)
			if err != nil {
				t.Fatalf("RunFanout: %v\n%+v", err, res)
			}
			n := int64(cfg.Clients)
			if cfg.Messages > 0 && res.Sent != n*int64(cfg.Messages) {
				t.Errorf("Sent = %d, want %d", res.Sent, n*int64(cfg.Messages))
			}
			if res.Sent == 0 || res.Received != n*res.Sent {
				t.Errorf("Sent %d, Received %d; want Received = %d × Sent", res.Sent, res.Received, n)
			}
			if res.Latency.Count != res.Sent {
				t.Errorf("Latency.Count = %d, want one per frame sent (%d)", res.Latency.Count, res.Sent)
			}
			if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.PerSec <= 0 || res.Elapsed <= 0 {
				t.Errorf("implausible result: %+v", res)
			}
			if wantBytes := res.Received * int64(cfg.Size+PacketHeaderLen); res.Bytes < wantBytes {
				t.Errorf("Bytes = %d, want at least %d", res.Bytes, wantBytes)
			}
			if cfg.Duration > 0 {
				if rate := float64(res.Sent) / cfg.Duration.Seconds(); rate > cfg.Rate*1.5 {
					t.Errorf("sent %.0f frames/s, want about %v at most", rate, cfg.Rate)
				}
				if progress == 0 {
					t.Error("Progress never called")
				}
			}
		})
	}
}

func TestRunFanoutReportsErrors(t *testing.T) {
	const clients, messages = 4, 30
	tests := []struct {
		name   string
		mangle func(frame []byte, to net.Conn) []byte
		check  func(r Result) bool
	}{
		{
			name: "lost",
			mangle: func(frame []byte, to net.Conn) []byte {
				if p, _ := ParsePayload(frame[4:]); binary.LittleEndian.Uint16(frame[2:]) == FrameID && p.Seq == 7 && p.Sender != 0 {
					return nil // lost for everyone; sender 1..3's window keeps going
				}
				return frame
			},
			check: func(r Result) bool { return r.Lost == (clients-1)*clients },
		},
		{
			name: "duplicated",
			mangle: func(frame []byte, to net.Conn) []byte {
				if p, _ := ParsePayload(frame[4:]); binary.LittleEndian.Uint16(frame[2:]) == FrameID && p.Seq == 3 && p.Sender == 1 {
					return append(append([]byte(nil), frame...), frame...)
				}
				return frame
			},
			check: func(r Result) bool { return r.Duplicated == clients && r.Lost == 0 },
		},
		{
			name: "corrupt",
			mangle: func(frame []byte, to net.Conn) []byte {
				if p, _ := ParsePayload(frame[4:]); binary.LittleEndian.Uint16(frame[2:]) == FrameID && p.Seq == 5 && p.Sender == 2 {
					bad := append([]byte(nil), frame...)
					bad[len(bad)-10] ^= 0xFF
					return bad
				}
				return frame
			},
			check: func(r Result) bool { return r.Corrupt == clients && r.Lost == clients },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, broadcastServer(tt.mangle))
			res, err := RunFanout(testContext(t), FanoutConfig{
				Addr: srv.addr(), Clients: clients, Messages: messages, Window: 4, DrainTimeout: time.Second,
			})
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("err = %v, want ErrVerify", err)
			}
			if !tt.check(res) || res.Errors == 0 || len(res.ErrorSamples) == 0 {
				t.Fatalf("unexpected counts: %+v", res)
			}
		})
	}
}

func TestRunFanoutBarrierTimeout(t *testing.T) {
	// A server that never sends anything back: nobody registers.
	srv := startServer(t, func(_ *testServer, c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	_, err := RunFanout(testContext(t), FanoutConfig{Addr: srv.addr(), Clients: 3, ConnectTimeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrBarrier) {
		t.Fatalf("err = %v, want ErrBarrier", err)
	}
}

func TestRunFanoutCancel(t *testing.T) {
	srv := startServer(t, broadcastServer(nil))
	ctx, cancel := context.WithCancel(testContext(t))
	res, err := RunFanout(ctx, FanoutConfig{
		Addr: srv.addr(), Clients: 3, Duration: time.Hour, Rate: 100,
		ProgressInterval: 10 * time.Millisecond,
		Progress: func(p Progress) {
			if p.Sent > 0 {
				cancel() // mid-run
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Sent == 0 {
		t.Fatalf("partial result missing: %+v", res)
	}
}

func TestRunPubSub(t *testing.T) {
	srv := startServer(t, pubsubServer)
	res, err := RunPubSub(testContext(t), PubSubConfig{
		FanoutConfig: FanoutConfig{Addr: srv.addr(), Clients: 5, Messages: 40, Size: 64, Window: 8},
		Channel:      "test",
	})
	if err != nil {
		t.Fatalf("RunPubSub: %v\n%+v", err, res)
	}
	if res.Sent != 200 || res.Received != 1000 || res.Latency.Count != 200 {
		t.Fatalf("Sent %d, Received %d, Latency.Count %d; want 200, 1000, 200", res.Sent, res.Received, res.Latency.Count)
	}
}

func TestRunEcho(t *testing.T) {
	tests := []struct {
		name string
		cfg  EchoConfig
	}{
		{name: "pingpong", cfg: EchoConfig{Mode: EchoPingPong, Config: Config{Clients: 4, Messages: 200, Size: 64}}},
		{name: "pingpong duration", cfg: EchoConfig{Mode: EchoPingPong, Config: Config{Clients: 2, Duration: 200 * time.Millisecond}}},
		{name: "pingpong epoll", cfg: EchoConfig{Mode: EchoPingPong, Engine: EngineEpoll, Config: Config{Clients: 4, Messages: 200, Size: 64}}},
		{name: "pingpong epoll duration", cfg: EchoConfig{Mode: EchoPingPong, Engine: EngineEpoll, Config: Config{Clients: 3, Duration: 200 * time.Millisecond}}},
		{name: "stream", cfg: EchoConfig{Mode: EchoStream, Config: Config{Clients: 3, Messages: 300, Size: 16 << 10, Window: 8}}},
		{name: "stream odd sizes", cfg: EchoConfig{Mode: EchoStream, Config: Config{Clients: 2, Messages: 5000, Size: 997, Window: 3}}},
		{name: "stream duration", cfg: EchoConfig{Mode: EchoStream, Config: Config{Clients: 2, Duration: 200 * time.Millisecond, Size: 4096}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, echoServer)
			cfg := tt.cfg
			cfg.Addr = srv.addr()
			res, err := RunEcho(testContext(t), cfg)
			if err != nil {
				t.Fatalf("RunEcho: %v\n%+v", err, res)
			}
			if cfg.Messages > 0 && res.Sent != int64(cfg.Clients*cfg.Messages) {
				t.Errorf("Sent = %d, want %d", res.Sent, cfg.Clients*cfg.Messages)
			}
			if res.Sent == 0 || res.Received != res.Sent || res.PerSec <= 0 || res.MBPerSec <= 0 {
				t.Errorf("implausible result: %+v", res)
			}
			if cfg.Mode == EchoPingPong && res.Latency.Count != res.Received {
				t.Errorf("Latency.Count = %d, want %d", res.Latency.Count, res.Received)
			}
		})
	}
}

func TestRunEchoDetectsCorruption(t *testing.T) {
	// Flips one byte somewhere after the first kilobyte of each connection.
	srv := startServer(t, func(_ *testServer, c net.Conn) {
		buf := make([]byte, 4096)
		var total int
		flipped := false
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if !flipped && total+n > 1024 {
					buf[1024-total] ^= 1
					flipped = true
				}
				total += n
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	for _, tt := range []struct{ mode, engine string }{
		{EchoPingPong, EngineGoroutines}, {EchoPingPong, EngineEpoll}, {EchoStream, ""},
	} {
		t.Run(tt.mode+" "+tt.engine, func(t *testing.T) {
			res, err := RunEcho(testContext(t), EchoConfig{Mode: tt.mode, Engine: tt.engine, Config: Config{
				Addr: srv.addr(), Clients: 2, Messages: 100, Size: 256, DrainTimeout: 300 * time.Millisecond,
			}})
			if !errors.Is(err, ErrVerify) || res.Corrupt != 2 {
				t.Fatalf("err %v, Corrupt %d; want ErrVerify, 2", err, res.Corrupt)
			}
		})
	}
}

func TestRunSelftest(t *testing.T) {
	res, err := RunSelftest(testContext(t), FanoutConfig{Clients: 4, Messages: 500, Size: 64})
	if err != nil {
		t.Fatalf("RunSelftest: %v\n%+v", err, res)
	}
	if res.Received != 4*4*500 || res.PerSec <= 0 {
		t.Fatalf("Received %d, PerSec %v; want %d, > 0", res.Received, res.PerSec, 4*4*500)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := testContext(t)
	for _, cfg := range []FanoutConfig{
		{},
		{Addr: "x", Size: 10},
		{Addr: "x", Size: MaxPayloadSize + 1},
		{Addr: "x", Window: -1},
		{Addr: "x", ReadBuffer: 1024},
	} {
		if _, err := RunFanout(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", cfg, err)
		}
	}
	for _, cfg := range []EchoConfig{
		{},
		{Mode: "nope", Config: Config{Addr: "x"}},
		{Mode: EchoStream, Config: Config{Addr: "x", Size: 2 << 20}},
		{Engine: "threads", Config: Config{Addr: "x"}},
		{Mode: EchoStream, Engine: EngineEpoll, Config: Config{Addr: "x"}},
		{Engine: EngineEpoll, Config: Config{Addr: "x", Rate: 100}},
	} {
		if _, err := RunEcho(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestRunEchoServerHangsUp(t *testing.T) {
	// Echoes the first message of each connection, then closes it.
	srv := startServer(t, func(_ *testServer, c net.Conn) {
		buf := make([]byte, 64+PacketHeaderLen)
		if _, err := io.ReadFull(c, buf); err == nil {
			_, _ = c.Write(buf)
		}
	})
	for _, engine := range []string{EngineGoroutines, EngineEpoll} {
		t.Run(engine, func(t *testing.T) {
			res, err := RunEcho(testContext(t), EchoConfig{Mode: EchoPingPong, Engine: engine, Config: Config{
				Addr: srv.addr(), Clients: 3, Messages: 100, Size: 64,
			}})
			if !errors.Is(err, ErrVerify) || res.Disconnects != 3 || res.Received != 3 {
				t.Fatalf("err %v, Disconnects %d, Received %d; want ErrVerify, 3, 3", err, res.Disconnects, res.Received)
			}
		})
	}
}
