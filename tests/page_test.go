package tests

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// openSpy counts the sessions that opened.
type openSpy struct {
	handler.Base
	opened atomic.Int32
}

func (h *openSpy) OnConnected(*sessionmgr.Session) { h.opened.Add(1) }

// startPages starts a server whose WebSocket listener (endpoint /ws) serves
// pages, logging into logs.
func startPages(t *testing.T, h handler.Handler, pages map[string]handler.Page, logs *syncBuffer, opts ...handler.Option) *handler.Server {
	t.Helper()
	return startServer(t, h, append([]handler.Option{
		handler.WithCodec(codec.Line(0)), handler.WithLogger(zerolog.New(logs)),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, Pages: pages}),
	}, opts...)...)
}

// httpExchange writes raw to a new connection to addr, each string in its
// own write, reads until the server closes the connection (failing the
// test after 5 s), and parses the response to a request with method.
func httpExchange(t *testing.T, addr, method string, raw ...string) (resp *http.Response, body, all []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, r := range raw {
		if _, err := conn.Write([]byte(r)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a separate read for the server, usually
	}
	all, _ = closedBy(t, conn)
	br := bufio.NewReader(bytes.NewReader(all))
	resp, err = http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s response %q: %v", method, all, err)
	}
	if method != "HEAD" {
		body = make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("%s body: %v", method, err)
		}
	}
	return resp, body, all
}

// TestWebSocketPages: the WebSocket listener answers a plain GET for a page
// with the page (intact up to MaxPageBytes, the query ignored), a HEAD with
// its headers alone, and then closes the connection; a path with no page
// gets 404, the endpoint's path without an upgrade 400, another method 405.
// None of them opens a session, only refusals are logged as warnings, and
// the endpoint still upgrades.
func TestWebSocketPages(t *testing.T) {
	logs := &syncBuffer{}
	h := &openSpy{}
	index := handler.Page{ContentType: "text/html; charset=utf-8", Body: []byte("<!doctype html><title>chat</title>\n")}
	big := handler.Page{ContentType: "application/octet-stream", Body: garbage(7, handler.MaxPageBytes)}
	srv := startPages(t, h, map[string]handler.Page{"/": index, "/big": big}, logs)
	addr := srv.WebSocketAddr().String()
	req := func(method, target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n"
	}

	tests := []struct {
		name, method, target string
		status               int
		page                 *handler.Page // the body expected, nil for a refusal
		header               string        // a header a refusal must carry
	}{
		{name: "index", method: "GET", target: "/", status: 200, page: &index},
		{name: "query ignored", method: "GET", target: "/?room=lobby", status: 200, page: &index},
		{name: "largest page", method: "GET", target: "/big", status: 200, page: &big},
		{name: "head", method: "HEAD", target: "/", status: 200, page: &index},
		{name: "no page", method: "GET", target: "/favicon.ico", status: 404},
		{name: "head of no page", method: "HEAD", target: "/nope", status: 404},
		{name: "endpoint without upgrade", method: "GET", target: "/ws", status: 400},
		{name: "post", method: "POST", target: "/", status: 405, header: "Allow"},
	}
	refused := 0
	for _, tt := range tests {
		if tt.page == nil {
			refused++
		}
		t.Run(tt.name, func(t *testing.T) {
			resp, body, all := httpExchange(t, addr, tt.method, req(tt.method, tt.target))
			if resp.StatusCode != tt.status || !resp.Close {
				t.Fatalf("status %d, close %v; want %d, close", resp.StatusCode, resp.Close, tt.status)
			}
			head := bytes.Index(all, []byte("\r\n\r\n")) + 4
			if tt.method == "HEAD" && head != len(all) {
				t.Fatalf("HEAD answered with %d bytes after the headers", len(all)-head)
			}
			if tt.header != "" && resp.Header.Get(tt.header) == "" {
				t.Fatalf("no %s header: %v", tt.header, resp.Header)
			}
			if tt.page == nil {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tt.page.ContentType || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", resp.Header)
			}
			if resp.ContentLength != int64(len(tt.page.Body)) {
				t.Fatalf("Content-Length %d, want %d", resp.ContentLength, len(tt.page.Body))
			}
			if tt.method == "GET" && (!bytes.Equal(body, tt.page.Body) || head+len(body) != len(all)) {
				t.Fatalf("body of %d bytes (%d after the headers), want the page's %d", len(body), len(all)-head, len(tt.page.Body))
			}
		})
	}
	if n := h.opened.Load(); n != 0 {
		t.Fatalf("%d sessions opened for page requests", n)
	}
	warns := logLines(t, logs, func(l logLine) bool { return l.Level == "warn" })
	if len(warns) != refused {
		t.Fatalf("%d warnings for %d refusals: %+v", len(warns), refused, warns)
	}
	dialWS(t, srv)
	waitFor(t, 5*time.Second, "the WebSocket session open", func() bool { return h.opened.Load() == 1 })
}

// TestWebSocketPageOpening: a page request goes through the same opening as
// a handshake: behind a PROXY header (whole, or split from the request) it
// is logged with the client's address, and a request that never ends is
// closed by the handshake timeout and counted with it.
func TestWebSocketPageOpening(t *testing.T) {
	logs := &syncBuffer{}
	h := &openSpy{}
	index := handler.Page{ContentType: "text/plain", Body: []byte("hello\n")}
	srv := startPages(t, h, map[string]handler.Page{"/": index}, logs,
		handler.WithProxyProtocol(nil), handler.WithHandshakeTimeout(300*time.Millisecond), handler.WithTick(20*time.Millisecond))
	addr := srv.WebSocketAddr().String()
	get := "GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"

	for i, raw := range [][]string{
		{"PROXY TCP4 192.0.2.1 127.0.0.1 5001 80\r\n" + get},
		{"PROXY TCP4 192.0.2.1 127.0.0.1 5002 80\r\n", get[:7], get[7:]},
	} {
		resp, body, _ := httpExchange(t, addr, "GET", raw...)
		if resp.StatusCode != 200 || !bytes.Equal(body, index.Body) {
			t.Fatalf("request %d: status %d, body %q", i, resp.StatusCode, body)
		}
		remote := "192.0.2.1:" + strconv.Itoa(5001+i)
		waitFor(t, 5*time.Second, "the page's close logged", func() bool {
			return len(logLines(t, logs, func(l logLine) bool {
				return l.Remote == remote && strings.Contains(l.Error, "served page /")
			})) == 1
		})
	}

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PROXY TCP4 192.0.2.1 127.0.0.1 5003 80\r\n" + get[:20])); err != nil {
		t.Fatal(err)
	}
	if got, took := closedBy(t, conn); len(got) != 0 || took < 250*time.Millisecond {
		t.Fatalf("an unfinished request got %q after %v; want nothing, closed by the 300ms handshake timeout", got, took)
	}
	waitFor(t, 5*time.Second, "the timeout counted", func() bool { return srv.Stats().FrameTimeouts == 1 })
	if n := h.opened.Load(); n != 0 {
		t.Fatalf("%d sessions opened for page requests", n)
	}
}
