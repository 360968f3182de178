package tests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
)

// lineClient is a chat client as nc or telnet is one: it writes bytes and
// reads whole lines, endings included.
type lineClient struct {
	t    *testing.T
	name string
	conn net.Conn
	r    *bufio.Reader
}

func dialLine(t *testing.T, addr, name string) *lineClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lineClient{t: t, name: name, conn: conn, r: bufio.NewReader(conn)}
}

// typeText writes text in one write, or one byte per write (TCP_NODELAY is
// on, so one segment per byte) as a terminal in character mode sends it.
func (c *lineClient) typeText(text string, byteByByte bool) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if !byteByByte {
		if _, err := c.conn.Write([]byte(text)); err != nil {
			c.t.Fatalf("%s: write: %v", c.name, err)
		}
		return
	}
	for i := range len(text) {
		if _, err := c.conn.Write([]byte{text[i]}); err != nil {
			c.t.Fatalf("%s: write: %v", c.name, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// hear reads one line, ending included, failing the test after d.
func (c *lineClient) hear(d time.Duration) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: read line: %v (got %q)", c.name, err, line)
	}
	return line
}

// TestChatRoom: the line broadcast server (cmd/broadcast -codec line) is a
// chat room. Whatever one member types reaches every member, the typist
// included, exactly as typed: the server forwards Frame.Wire unchanged, so a
// telnet line ending in "\r\n" comes back with its "\r\n" (the codec drops
// the "\r" from Frame.Body only), and a "\n" line with its "\n".
func TestChatRoom(t *testing.T) {
	const maxLine = 1024
	srv := startServer(t, &relay{}, handler.WithCodec(codec.Line(maxLine)), handler.WithLoops(2))
	addr := srv.Addr().String()
	room := []*lineClient{dialLine(t, addr, "alice"), dialLine(t, addr, "bob"), dialLine(t, addr, "carol")}
	const alice, bob, carol = 0, 1, 2
	waitFor(t, 5*time.Second, "3 members", func() bool { return srv.Manager().Len() == 3 })

	t.Run("turns", func(t *testing.T) {
		longest := strings.Repeat("x", maxLine-1) + "\r\n" // maxLine bytes before "\n", "\r" included
		turns := []struct {
			name       string
			from       int
			typed      string
			byteByByte bool
			want       []string // lines every member hears; nil means typed
		}{
			{name: "LF line", from: alice, typed: "hello everyone\n"},
			{name: "telnet CRLF line comes back with CRLF", from: bob, typed: "hi alice\r\n"},
			{name: "typed one key per segment", from: carol, typed: "typing one key at a time\r\n", byteByByte: true},
			{name: "empty telnet line", from: alice, typed: "\r\n"},
			{name: "empty LF line", from: bob, typed: "\n"},
			{name: "lone CR inside a line is content", from: carol, typed: "a\rb\r\n"},
			{name: "UTF-8 and tabs", from: alice, typed: "tab\there, ünïcödé ✓\n"},
			{name: "two lines in one write", from: bob, typed: "first\r\nsecond\n", want: []string{"first\r\n", "second\n"}},
			{name: "longest line allowed", from: carol, typed: longest},
		}
		for _, tt := range turns {
			room[tt.from].typeText(tt.typed, tt.byteByByte)
			want := tt.want
			if want == nil {
				want = []string{tt.typed}
			}
			for _, c := range room {
				for _, w := range want {
					if got := c.hear(5 * time.Second); got != w {
						t.Fatalf("%s: %s heard %.60q, want %.60q", tt.name, c.name, got, w)
					}
				}
			}
		}
	})

	t.Run("everyone types at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const lines = 300
		res := runLineFanout(ctx, lineFanoutConfig{
			Addr:    addr,
			Clients: 3,
			Lines:   lines,
			Window:  16,
			Size:    120,
			CRLF:    func(client int) bool { return client%2 == 1 },
		})
		if len(res.Errors) > 0 || res.Received != 3*3*lines {
			t.Fatalf("received %d lines, want %d; %d errors: %v", res.Received, 3*3*lines, res.ErrorCount, res.Errors)
		}
		t.Logf("%d lines delivered, max latency %v", res.Received, res.MaxLatency)
	})

	for _, c := range room {
		c.conn.Close()
	}
	waitFor(t, 5*time.Second, "members gone", func() bool { return srv.Manager().Len() == 0 })
}

// lineFanoutConfig configures runLineFanout: loadgen's fan-out check for a
// line broadcast server.
type lineFanoutConfig struct {
	Addr    string
	Clients int
	// Lines is how many lines each client sends; 0 sends until Duration.
	Lines int
	// Duration caps the sending phase; 0 is no cap (then Lines must be set).
	Duration time.Duration
	// Window is how many of its own lines a client may have outstanding.
	Window int
	// Interval is the pause after each line a client sends; 0 is none.
	Interval time.Duration
	// Size is the length of a line before its ending (at least the
	// "sender seq stamp " prefix, about 30 bytes).
	Size int
	// CRLF says which clients end their lines with "\r\n" instead of "\n".
	CRLF func(client int) bool
	// Started, if set, is called once every client is registered and
	// sending begins.
	Started func()
}

type lineFanoutResult struct {
	Sent     int64 // lines sent by all clients
	Received int64 // lines received by all clients, each client's own included
	// MaxLatency is the longest time from a client writing a line to it
	// reading the line back.
	MaxLatency time.Duration
	ErrorCount int
	Errors     []string // the first few
}

// chatLine is line seq of sender: "sender seq stamp " padded to size with a
// letter derived from sender and seq, then the sender's ending. Every byte
// of it can be checked by a receiver.
func chatLine(sender, seq int, stamp int64, size int, crlf bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %d %d ", sender, seq, stamp)
	pad := byte('a' + (sender*7+seq)%26)
	for b.Len() < size {
		b.WriteByte(pad)
	}
	if crlf {
		b.WriteString("\r\n")
	} else {
		b.WriteByte('\n')
	}
	return b.String()
}

// parseChatLine reads sender, seq and stamp back from a chatLine.
func parseChatLine(line string) (sender, seq int, stamp int64, ok bool) {
	f := strings.SplitN(line, " ", 4)
	if len(f) < 4 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	sender, err1 = strconv.Atoi(f[0])
	seq, err2 = strconv.Atoi(f[1])
	stamp, err3 = strconv.ParseInt(f[2], 10, 64)
	return sender, seq, stamp, err1 == nil && err2 == nil && err3 == nil
}

// runLineFanout connects cfg.Clients line clients to a line broadcast
// server. Each registers (sends "hello N" and waits for it to come back, so
// it is in the server's Manager), then all send their lines concurrently
// with at most cfg.Window outstanding, and every client checks that it
// receives every line of every sender exactly once, byte for byte, in the
// sender's order. Every wait is bounded: by ctx, by the 10 s barrier and by a
// 10 s drain after the last line is sent.
func runLineFanout(ctx context.Context, cfg lineFanoutConfig) lineFanoutResult {
	var (
		mu  sync.Mutex
		res lineFanoutResult
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		res.ErrorCount++
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}
	crlf := func(i int) bool { return cfg.CRLF != nil && cfg.CRLF(i) }
	window := max(cfg.Window, 1)

	n := cfg.Clients
	conns := make([]net.Conn, 0, n)
	readers := make([]*bufio.Reader, 0, n)
	var closing atomic.Bool
	defer func() {
		closing.Store(true)
		for _, c := range conns {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: 5 * time.Second}
	for i := range n {
		c, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			fail("client %d: dial: %v", i, err)
			return res
		}
		conns = append(conns, c)
		readers = append(readers, bufio.NewReader(c))
	}

	// Barrier: a client is registered once its own hello comes back.
	for i, c := range conns {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "hello %d\n", i); err != nil {
			fail("client %d: hello: %v", i, err)
			return res
		}
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for want := fmt.Sprintf("hello %d\n", i); ; {
			line, err := readers[i].ReadString('\n')
			if err != nil {
				fail("client %d: waiting for its hello: %v", i, err)
				return res
			}
			if line == want {
				break
			}
		}
		_ = c.SetReadDeadline(time.Time{}) // the deferred Close ends the reader
	}

	epoch := time.Now()
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopSending := func() { stopOnce.Do(func() { close(stop) }) }
	if cfg.Duration > 0 {
		timer := time.AfterFunc(cfg.Duration, stopSending)
		defer timer.Stop()
	}
	go func() {
		select {
		case <-ctx.Done():
			stopSending()
		case <-stop:
		}
	}()
	defer stopSending()
	if cfg.Started != nil {
		cfg.Started()
	}

	sent := make([]atomic.Int64, n)
	recv := make([]atomic.Int64, n)
	var maxLat atomic.Int64
	sems := make([]chan struct{}, n)
	for i := range sems {
		sems[i] = make(chan struct{}, window)
	}

	var readWG sync.WaitGroup
	for i := range n {
		readWG.Add(1)
		go func() { // reader: ends when the deferred Close closes its conn
			defer readWG.Done()
			next := make([]int, n)
			for {
				line, err := readers[i].ReadString('\n')
				if err != nil {
					if !closing.Load() {
						fail("client %d: read: %v", i, err)
					}
					return
				}
				if strings.HasPrefix(line, "hello ") {
					continue // a later client's registration
				}
				sender, seq, stamp, ok := parseChatLine(line)
				if !ok || sender < 0 || sender >= n {
					fail("client %d: unexpected line %.60q", i, line)
					continue
				}
				if want := chatLine(sender, seq, stamp, cfg.Size, crlf(sender)); line != want {
					fail("client %d: corrupt line %.60q, want %.60q", i, line, want)
					continue
				}
				if seq != next[sender] {
					fail("client %d: line %d of sender %d, want line %d", i, seq, sender, next[sender])
				}
				next[sender] = seq + 1
				recv[i].Add(1)
				if sender == i {
					lat := int64(time.Since(epoch)) - stamp
					for cur := maxLat.Load(); lat > cur && !maxLat.CompareAndSwap(cur, lat); cur = maxLat.Load() {
					}
					select {
					case <-sems[i]:
					default:
					}
				}
			}
		}()
	}

	var sendWG sync.WaitGroup
	for i := range n {
		sendWG.Add(1)
		go func() { // sender: bounded by Lines, Duration or ctx
			defer sendWG.Done()
			for seq := 0; cfg.Lines == 0 || seq < cfg.Lines; seq++ {
				select {
				case sems[i] <- struct{}{}:
				case <-stop:
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				line := chatLine(i, seq, int64(time.Since(epoch)), cfg.Size, crlf(i))
				_ = conns[i].SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := conns[i].Write([]byte(line)); err != nil {
					fail("client %d: write: %v", i, err)
					return
				}
				sent[i].Store(int64(seq + 1))
				if cfg.Interval > 0 {
					select {
					case <-time.After(cfg.Interval):
					case <-stop:
						return
					}
				}
			}
		}()
	}
	sendWG.Wait()

	var total int64
	for i := range sent {
		total += sent[i].Load()
	}
	complete := func() bool {
		for i := range recv {
			if recv[i].Load() < total {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !complete() && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	closing.Store(true)
	for _, c := range conns {
		c.Close()
	}
	readWG.Wait()

	mu.Lock()
	defer mu.Unlock()
	for i := range recv {
		if got := recv[i].Load(); got != total {
			res.ErrorCount++
			if len(res.Errors) < 10 {
				res.Errors = append(res.Errors, fmt.Sprintf("client %d: received %d of %d lines", i, got, total))
			}
		}
		res.Received += recv[i].Load()
	}
	res.Sent = total
	res.MaxLatency = time.Duration(maxLat.Load())
	return res
}
