package loadgen

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunScale(t *testing.T) {
	engines := []string{EngineGoroutines}
	if epollSupported {
		engines = append(engines, EngineEpoll)
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { testRunScale(t, engine) })
	}
}

func testRunScale(t *testing.T, engine string) {
	srv := startServer(t, broadcastServer(nil))
	res, err := RunScale(testContext(t), ScaleConfig{
		Config:    Config{Addr: srv.addr(), Clients: 40, Messages: 3, Size: 32},
		ServerPID: os.Getpid(), Settle: 20 * time.Millisecond, Dialers: 4, Engine: engine,
		Storm: true, StormInterval: time.Millisecond, StormTail: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("RunScale: %v\n%+v", err, res)
	}
	if res.Sessions != 40 || len(res.Broadcasts) != 3 || res.Received != 3*40 || res.Errors != 0 {
		t.Errorf("sessions %d, %d broadcasts timed, %d copies, %d errors; want 40, 3, 120, 0", res.Sessions, len(res.Broadcasts), res.Received, res.Errors)
	}
	if res.RSSBefore <= 0 || res.RSSAfter <= 0 || res.FirstBroadcast <= 0 || res.MedianBroadcast <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
	if res.StormProbes == 0 || res.StormMaxProbe < res.StormMedProbe || res.StormMedProbe <= 0 {
		t.Errorf("storm: %d probes, max %v, median %v; want probes with max >= median > 0", res.StormProbes, res.StormMaxProbe, res.StormMedProbe)
	}
}

// TestRunScaleReportsErrors: a copy the server drops for one session is
// lost, one it sends twice is duplicated, one it mangles is corrupt.
func TestRunScaleReportsErrors(t *testing.T) {
	tests := []struct {
		name  string
		fault func(frame []byte) [][]byte // the copies one recipient gets instead
		check func(r ScaleResult) bool
	}{
		{"lost", func([]byte) [][]byte { return nil }, func(r ScaleResult) bool { return r.Lost == 1 }},
		{"duplicated", func(f []byte) [][]byte { return [][]byte{f, f} }, func(r ScaleResult) bool { return r.Duplicated == 1 }},
		{"corrupt", func(f []byte) [][]byte {
			bad := append([]byte(nil), f...)
			bad[len(bad)-1] ^= 1
			return [][]byte{bad}
		}, func(r ScaleResult) bool { return r.Corrupt == 1 && r.Lost == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var victim atomic.Pointer[net.Conn]
			srv := startServer(t, broadcastServer(func(frame []byte, to net.Conn) []byte {
				if victim.CompareAndSwap(nil, &to) || *victim.Load() != to {
					return frame
				}
				p, _ := ParsePayload(frame[PacketHeaderLen:])
				if binary.LittleEndian.Uint16(frame[2:]) != FrameID || p.Seq != 1 {
					return frame
				}
				var out []byte
				for _, c := range tt.fault(frame) {
					out = append(out, c...)
				}
				if out == nil {
					return nil
				}
				return out
			}))
			res, err := RunScale(testContext(t), ScaleConfig{
				Config: Config{Addr: srv.addr(), Clients: 8, Messages: 3, Size: 32, DrainTimeout: 300 * time.Millisecond},
				Settle: 20 * time.Millisecond,
			})
			if !errors.Is(err, ErrVerify) || !tt.check(res) {
				t.Errorf("err %v, result %+v; want ErrVerify and the fault counted", err, res)
			}
		})
	}
}

func TestNATSDecode(t *testing.T) {
	p := newNATSProto("subj", 24)
	payload := AppendPayload(nil, 1, 2, 3, 24)
	msg := append([]byte("MSG subj 1 24\r\n"), payload...)
	msg = append(msg, "\r\n"...)
	tests := []struct {
		name    string
		in      string
		kind    msgKind
		n       int
		wantErr bool
	}{
		{name: "msg", in: string(msg), kind: kindData, n: len(msg)},
		{name: "msg with reply-to", in: "MSG subj 1 r 2\r\nab\r\n", kind: kindData, n: 20},
		{name: "partial msg", in: string(msg[:len(msg)-1]), kind: kindIgnore, n: 0},
		{name: "partial line", in: "MSG subj", kind: kindIgnore, n: 0},
		{name: "pong", in: "PONG\r\n", kind: kindSubscribed, n: 6},
		{name: "info", in: "INFO {}\r\nPONG\r\n", kind: kindIgnore, n: 9},
		{name: "err", in: "-ERR 'Slow Consumer'\r\n", wantErr: true},
		{name: "bad size", in: "MSG subj 1 x\r\n", wantErr: true},
		{name: "unterminated payload", in: "MSG subj 1 2\r\nabcd", wantErr: true},
		{name: "unknown", in: "HELLO\r\n", kind: kindUnknown, n: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, pl, n, err := p.decode([]byte(tt.in))
			if (err != nil) != tt.wantErr || (err == nil && (kind != tt.kind || n != tt.n)) {
				t.Fatalf("decode(%q) = kind %d, n %d, err %v; want kind %d, n %d, error %v", tt.in, kind, n, err, tt.kind, tt.n, tt.wantErr)
			}
			if tt.name == "msg" {
				if got, err := ParsePayload(pl); err != nil || got.Seq != 2 {
					t.Errorf("payload %v, %v", got, err)
				}
			}
		})
	}
	if got := string(p.appendData(nil, 0, 0, 0, 24)[:len("PUB subj 24\r\n")]); got != "PUB subj 24\r\n" {
		t.Errorf("PUB line %q", got)
	}
}
