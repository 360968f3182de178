package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
)

// browserTab is one page of the chat, in a tab of a headless chromium.
type browserTab struct {
	t   *testing.T
	ctx context.Context
}

// lines returns the lines the page shows, in order.
func (b *browserTab) lines() []string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#log li"), li => li.textContent)`))
	if err != nil {
		b.t.Fatalf("reading the page's lines: %v", err)
	}
	return got
}

// waitLine waits up to 10 s until the page shows line.
func (b *browserTab) waitLine(line string) {
	b.t.Helper()
	q, _ := json.Marshal(line)
	expr := `Array.from(document.querySelectorAll("#log li")).some(li => li.textContent === ` + string(q) + `)`
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		b.t.Fatalf("page never showed %q (it shows %q): %v", line, b.lines(), err)
	}
}

// say types line into the page's input and presses Enter.
func (b *browserTab) say(line string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.ID("line"), line+kb.Enter)); err != nil {
		b.t.Fatalf("typing %q: %v", line, err)
	}
}

// openBrowser starts a headless chromium and returns a context for its
// first tab. The browser is closed when the test ends, and the test fails
// if any of its processes is left.
func openBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(needTool(t, "chromium", "apt-get install chromium")),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // containers and CI runners often have no user namespaces
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(tabCtx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	proc := chromedp.FromContext(tabCtx).Browser.Process()
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(proc.Pid) + "/cmdline")
	var dataDir []byte // chromium hands --user-data-dir to every child process
	for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
		if bytes.HasPrefix(arg, []byte("--user-data-dir=")) {
			dataDir = arg
		}
	}
	t.Cleanup(func() {
		if err := chromedp.Cancel(tabCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancelTab()
		cancelAlloc() // waits for the browser's exit and the removal of its data directory
		if err := proc.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("chromium (pid %d) still runs after the test: %v", proc.Pid, err)
		}
		if left := processesWith(dataDir); len(dataDir) == 0 || len(left) > 0 {
			t.Errorf("chromium processes left after the test: %v (user data dir %q)", left, dataDir)
		}
	})
	return tabCtx
}

// processesWith returns the pids of the processes whose command line has
// the argument arg.
func processesWith(arg []byte) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(a []byte) bool { return bytes.Equal(a, arg) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestBrowserChat: cmd/broadcast's room with -codec line and -ws, its chat
// page open in two tabs of a real headless chromium and a raw TCP client
// (nc) on the TCP port. A line typed into page 1 reaches page 2 and the
// TCP client; the TCP client's line reaches both pages; page 2's reaches
// page 1 and the TCP client; everyone sees every line once, in order.
func TestBrowserChat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := codec.ByName("line", 65535)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, demo.Broadcast{}, handler.WithCodec(c), handler.WithWebSocket("127.0.0.1:0", demo.WebSocketConfig(65535)))
	url := "http://" + srv.WebSocketAddr().String() + "/"

	tab1 := openBrowser(t, ctx)
	tab2, cancelTab2 := chromedp.NewContext(tab1) // a second tab of the same browser
	defer cancelTab2()
	pages := []*browserTab{{t, tab1}, {t, tab2}}
	for i, p := range pages {
		connected := `document.getElementById("status").textContent === "connected"`
		if err := chromedp.Do(p.ctx, chromedp.Navigate(url), chromedp.Poll[chromedp.Void](connected, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("page %d: opening %s: %v", i+1, url, err)
		}
	}

	nc, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ncr := bufio.NewReader(nc)
	ncHears := func(want string) {
		t.Helper()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := ncr.ReadString('\n')
		if err != nil || got != want+"\n" {
			t.Fatalf("the TCP client read %q, %v; want %q", got, err, want)
		}
	}
	waitFor(t, 5*time.Second, "three sessions in the room", func() bool { return srv.Manager().Len() == 3 })

	want := []string{"hello from page 1 ✓", "hello from nc", "and from page 2 <b>not bold</b>"}
	pages[0].say(want[0])
	pages[1].waitLine(want[0])
	ncHears(want[0])

	if _, err := nc.Write([]byte(want[1] + "\n")); err != nil {
		t.Fatal(err)
	}
	ncHears(want[1]) // the room includes the sender
	pages[0].waitLine(want[1])
	pages[1].waitLine(want[1])

	pages[1].say(want[2])
	pages[0].waitLine(want[2])
	ncHears(want[2])
	pages[1].waitLine(want[2])

	for i, p := range pages {
		if got := p.lines(); !slices.Equal(got, want) {
			t.Fatalf("page %d shows %q; want %q", i+1, got, want)
		}
	}
	if got, err := chromedp.Run(tab1, chromedp.Value(chromedp.ID("line"))); err != nil || got != "" {
		t.Fatalf("page 1's input holds %q after sending (%v); want it cleared", got, err)
	}
}
