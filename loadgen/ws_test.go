package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/herald-mmo/herald/transport/ws"
)

// TestWSConnFraming checks the adapter over an in-memory pipe against a
// server side built on transport/ws: one Write of three packet frames
// arrives as three masked binary messages, a server ping is answered, and
// Read returns server messages' payloads as one stream.
func TestWSConnFraming(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	type result struct {
		msgs [][]byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer srv.Close()
		var buf []byte
		rd := make([]byte, 512)
		var d *ws.Decoder
		var res result
		for len(res.msgs) < 4 { // three frames and the pong
			k, err := srv.Read(rd)
			if err != nil {
				res.err = err
				break
			}
			buf = append(buf, rd[:k]...)
			if d == nil {
				u, n, err := ws.ParseUpgrade(buf, nil)
				if err != nil {
					res.err = err
					break
				}
				if n == 0 {
					continue
				}
				buf = buf[n:]
				d = ws.NewDecoder(0)
				out := ws.AppendAccept(nil, u)
				out = ws.AppendFrame(out, ws.OpPing, []byte("p"))
				out = ws.AppendFrame(out, ws.OpBinary, []byte("hello "))
				out = ws.AppendFrame(out, ws.OpBinary, []byte("world"))
				go srv.Write(out) // net.Pipe is unbuffered: the client reads it below
			}
			for {
				m, n, err := d.Next(buf)
				if err != nil {
					res.err = err
					break
				}
				buf = buf[n:]
				if m.Op == 0 {
					break
				}
				res.msgs = append(res.msgs, append([]byte{byte(m.Op)}, m.Payload...))
			}
		}
		done <- res
	}()
	wc, err := newWSConn(cli, "pipe", "/ws", true, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 11)
	if _, err := io.ReadFull(wc, got); err != nil || string(got) != "hello world" {
		t.Fatalf("Read %q, %v", got, err)
	}
	frames := AppendPayloadPacket(nil, FrameID, 1, 1, 0, 20)
	frames = AppendPayloadPacket(frames, FrameID, 1, 2, 0, 20)
	frames = AppendPayloadPacket(frames, FrameID, 1, 3, 0, 32)
	if n, err := wc.Write(frames); err != nil || n != len(frames) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := wc.Write(frames[:5]); err == nil {
		t.Fatal("a write of a partial packet frame was accepted")
	}
	res := <-done
	if res.err != nil || len(res.msgs) != 4 {
		t.Fatalf("server saw %d messages, %v", len(res.msgs), res.err)
	}
	if !bytes.Equal(res.msgs[0], []byte{byte(ws.OpPong), 'p'}) {
		t.Fatalf("first message % x, want the pong", res.msgs[0])
	}
	for i, m := range res.msgs[1:] {
		if m[0] != byte(ws.OpBinary) || !bytes.Equal(m[1:], AppendPayloadPacket(nil, FrameID, 1, uint32(i+1), 0, []int{20, 20, 32}[i])) {
			t.Fatalf("message %d: % x", i+1, m)
		}
	}
}

func TestTransportConfig(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Addr: "127.0.0.1:1", Transport: TransportWS}
	for name, err := range map[string]error{
		"unknown transport": func() error { _, err := RunFanout(ctx, Config{Addr: "127.0.0.1:1", Transport: "quic"}); return err }(),
		"epoll engine":      func() error { _, err := RunEcho(ctx, EchoConfig{Config: cfg, Engine: EngineEpoll}); return err }(),
		"pubsub":            func() error { _, err := RunPubSub(ctx, PubSubConfig{FanoutConfig: cfg}); return err }(),
		"selftest":          func() error { _, err := RunSelftest(ctx, cfg); return err }(),
	} {
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s over ws: %v, want ErrConfig", name, err)
		}
	}
}

// TestTransportWSAgainstWSBase runs fan-out and echo over WebSocket against
// bench/wsbase, the gorilla/websocket broadcast baseline, built and started
// on a free 127.0.0.1 port. With one client a broadcast server is an echo
// server.
func TestTransportWSAgainstWSBase(t *testing.T) {
	addr := startWSBase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunFanout(ctx, Config{Addr: addr, Transport: TransportWS, Clients: 20, Messages: 50, Window: 4})
	if err != nil || res.Received != 20*20*50 {
		t.Fatalf("fanout: %v; received %d of %d", err, res.Received, 20*20*50)
	}
	res, err = RunEcho(ctx, EchoConfig{Config: Config{Addr: addr, Transport: TransportWS, Clients: 1, Messages: 300}})
	if err != nil || res.Received != 300 {
		t.Fatalf("pingpong: %v; %d round trips", err, res.Received)
	}
	res, err = RunEcho(ctx, EchoConfig{Mode: EchoStream, Config: Config{Addr: addr, Transport: TransportWS, Clients: 1, Messages: 100, Size: 32 << 10}})
	if err != nil || res.Received != 100 {
		t.Fatalf("stream: %v; %d chunks", err, res.Received)
	}
}

func startWSBase(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building bench/wsbase needs the go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "wsbase")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/herald-mmo/herald/bench/wsbase").CombinedOutput(); err != nil {
		t.Fatalf("go build bench/wsbase: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-addr", addr, "-max-frame", "65536")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("bench/wsbase did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replayConn is a net.Conn whose reads return data in chunks of at most
// 64 KiB, as a fast server's writes arrive; writes are discarded.
type replayConn struct {
	net.Conn // nil: only Read and Write are called
	data     []byte
	pos      int
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.pos == len(c.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 64<<10)], c.data[c.pos:])
	c.pos += n
	return n, nil
}

func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkReceive measures what loadgen's receive path costs per 64-byte
// frame over WebSocket (wsConn unwrapping server frames) against plain TCP
// (the same frames read directly), both decoding packets from a 64 KiB
// read buffer as readLoop does: the ratio says how much of loadgen's own
// ceiling (selftest) the WebSocket adapter takes.
func BenchmarkReceive(b *testing.B) {
	const frames = 4096
	var tcp, wsData []byte
	for i := range frames {
		f := AppendPayloadPacket(nil, FrameID, 1, uint32(i), 0, 64)
		tcp = append(tcp, f...)
		wsData = ws.AppendFrame(wsData, ws.OpBinary, f)
	}
	run := func(b *testing.B, conn func() net.Conn) {
		b.ReportAllocs()
		buf := make([]byte, 64<<10)
		for b.Loop() {
			c := conn()
			start, end, got := 0, 0, 0
			for {
				n, err := c.Read(buf[end:])
				end += n
				for {
					_, _, used, derr := DecodePacket(buf[start:end])
					if derr != nil {
						b.Fatal(derr)
					}
					if used == 0 {
						break
					}
					start += used
					got++
				}
				end = copy(buf, buf[start:end])
				start = 0
				if err != nil {
					break
				}
			}
			if got != frames {
				b.Fatalf("%d frames, want %d", got, frames)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
	}
	b.Run("tcp", func(b *testing.B) { run(b, func() net.Conn { return &replayConn{data: tcp} }) })
	in := make([]byte, 128<<10)
	b.Run("ws", func(b *testing.B) {
		run(b, func() net.Conn {
			return &wsConn{Conn: &replayConn{data: wsData}, dec: ws.NewClientDecoder(wsMaxMessage), in: in}
		})
	})
}
