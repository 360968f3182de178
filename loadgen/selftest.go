package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// RunSelftest measures loadgen's own receive ceiling: an in-process blaster
// on a free 127.0.0.1 port plays the part of a broadcast server, writing to
// each of cfg.Clients connections the frames of cfg.Clients senders ×
// cfg.Messages sequences, pre-encoded, in large writes. The clients decode
// and verify them with the same code RunFanout uses. Result.PerSec is the
// delivered frames per second loadgen can take in; a server measured near
// it is limited by loadgen, not by itself. cfg.Addr is ignored; Rate,
// Window and Duration do not apply. The blaster shares the machine's CPUs,
// so the ceiling is a lower bound.
func RunSelftest(ctx context.Context, cfg FanoutConfig) (res Result, err error) {
	cfg.Addr = "127.0.0.1:0"
	cfg.Duration = 0
	if cfg, err = cfg.normalizeFanout(); err != nil {
		return Result{}, err
	}
	if cfg.Transport != TransportTCP {
		return Result{}, configErr("selftest's blaster speaks TCP: Transport %q", cfg.Transport)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("loadgen: selftest listen: %w", err)
	}
	cfg.Addr = ln.Addr().String()

	var stream []byte
	for seq := range cfg.Messages {
		for s := range cfg.Clients {
			stream = AppendPayloadPacket(stream, FrameID, uint32(s), uint32(seq), 0, cfg.Size)
		}
	}

	// The blaster: accept every client, wait for the clock, write stream
	// to each, then hold the connection until the client closes it.
	go1 := make(chan struct{})
	var blaster sync.WaitGroup
	var accepted []net.Conn
	blaster.Add(1)
	go func() {
		defer blaster.Done()
		defer close(go1)
		for range cfg.Clients {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, c)
		}
	}()
	defer func() {
		ln.Close()
		blaster.Wait()
		closeAll(accepted)
	}()

	res = Result{Mode: "selftest", Addr: cfg.Addr, Clients: cfg.Clients, Size: cfg.Size}
	conns, err := dialAll(ctx, cfg.Addr, cfg.Clients, cfg.ConnectTimeout)
	if err != nil {
		return res, err
	}
	r := newFanRun(cfg, packetProto{})
	for _, c := range conns {
		// Receivers only: an id outside the senders' range has no own frames.
		r.clients = append(r.clients, r.newClient(uint32(cfg.Clients), c, c))
	}
	for _, c := range r.clients {
		close(c.sendDone)
		// Verdict reads clients[s].sent as what sender s sent: every
		// sender in the stream sent cfg.Messages frames.
		c.sent.Store(int64(cfg.Messages))
		r.wg.Add(1)
		go c.readLoop()
	}
	end := r.track(r, cfg.ProgressInterval, cfg.Progress)
	defer func() {
		end(&res)
		res.Sent = int64(cfg.Clients) * int64(cfg.Messages)
		err = res.finish(err)
	}()
	select {
	case <-go1:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if len(accepted) != cfg.Clients {
		return res, fmt.Errorf("loadgen: selftest accepted %d of %d connections", len(accepted), cfg.Clients)
	}
	total := int64(cfg.Clients) * int64(cfg.Messages)
	r.target.Store(total)
	r.startClock(0)
	for _, c := range accepted {
		blaster.Add(1)
		go func() {
			defer blaster.Done()
			defer c.Close()
			if _, err := c.Write(stream); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
		}()
	}
	r.waitComplete(ctx, total, nil)
	res.Elapsed = r.elapsed()
	return res, ctx.Err()
}
