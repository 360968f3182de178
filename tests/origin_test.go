package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// TestWebSocketOrigin: the demos' -ws-origin "URL, URL": a handshake with
// another Origin gets 403 and is closed alone with a logged reason; an
// allowed Origin (in any case) and none at all (not a browser) open
// sessions, whose messages keep flowing. An empty -ws-origin allows any.
func TestWebSocketOrigin(t *testing.T) {
	if got := demo.SplitList(""); got != nil {
		t.Errorf(`SplitList("") = %q; want nil (any Origin)`, got)
	}
	origins := demo.SplitList(" http://127.0.0.1:7080, ,https://chat.example ")
	if want := []string{"http://127.0.0.1:7080", "https://chat.example"}; !slices.Equal(origins, want) {
		t.Fatalf("SplitList = %q; want %q", origins, want)
	}
	logs := &syncBuffer{}
	srv := startServer(t, demo.Broadcast{}, handler.WithCodec(codec.Line(0)), handler.WithLogger(zerolog.New(logs)),
		handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws", Origins: origins}}))
	dial := func(origin string) (*websocket.Conn, int) {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		conn, resp, err := d.Dial("ws://"+srv.WebSocketAddr().String()+"/ws", hdr)
		if resp == nil {
			t.Fatalf("origin %q: no response: %v", origin, err)
		}
		resp.Body.Close()
		if conn != nil {
			t.Cleanup(func() { conn.Close() })
		}
		return conn, resp.StatusCode
	}

	member, status := dial("HTTPS://Chat.Example")
	if member == nil {
		t.Fatalf("allowed origin: status %d", status)
	}
	denied := []string{"https://evil.example", "http://127.0.0.1:7081", "null"}
	for _, o := range denied {
		if conn, status := dial(o); conn != nil || status != http.StatusForbidden {
			t.Errorf("origin %q: status %d; want 403", o, status)
		}
	}
	other, status := dial("")
	if other == nil {
		t.Fatalf("no origin: status %d", status)
	}
	if n := len(logLines(t, logs, func(l logLine) bool {
		return l.Message == "herald: closing websocket connection: bad handshake" && strings.Contains(l.Error, ws.ErrOriginDenied.Error())
	})); n != len(denied) {
		t.Errorf("%d origin refusals logged; want %d", n, len(denied))
	}
	if err := member.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{member, other} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, m, err := c.ReadMessage(); err != nil || string(m) != "still here" {
			t.Fatalf("after the refusals: %q %v", m, err)
		}
	}
	if n := srv.Manager().Len(); n != 2 {
		t.Errorf("%d sessions; want the 2 allowed ones", n)
	}
}
