package ws_test

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-mmo/herald/transport/ws"
)

func TestAcceptKeyRFCExample(t *testing.T) {
	if got := ws.AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %q, want RFC 6455 section 1.3's", got)
	}
}

func TestParseUpgrade(t *testing.T) {
	browsers := &ws.Config{Path: "/ws", Origins: []string{"http://127.0.0.1:7080"}}
	// edit replaces the first old in r with new.
	edit := func(r, old, new string) string { return strings.Replace(r, old, new, 1) }
	tests := []struct {
		name   string
		in     string
		cfg    *ws.Config
		want   ws.Upgrade
		status int   // of the *HandshakeError, 0 for success
		sent   error // its sentinel
	}{
		{name: "chrome", in: chromeUpgrade, cfg: browsers,
			want: ws.Upgrade{Path: "/ws", Host: "127.0.0.1:7080", Origin: "http://127.0.0.1:7080", Key: "dGhlIHNhbXBsZSBub25jZQ=="}},
		{name: "firefox, query ignored", in: firefoxUpgrade, cfg: browsers,
			want: ws.Upgrade{Path: "/ws", Host: "127.0.0.1:7080", Origin: "http://127.0.0.1:7080", Key: "x3JJHMbDL1EzLkh9GBhXDw=="}},
		{name: "rfc example, any path and origin", in: rfcUpgrade,
			want: ws.Upgrade{Path: "/chat", Host: "server.example.com", Origin: "http://example.com", Key: "dGhlIHNhbXBsZSBub25jZQ==", Protocols: "chat, superchat"}},
		{name: "no origin passes an allow-list", in: edit(chromeUpgrade, "Origin: http://127.0.0.1:7080\r\n", ""), cfg: browsers,
			want: ws.Upgrade{Path: "/ws", Host: "127.0.0.1:7080", Key: "dGhlIHNhbXBsZSBub25jZQ=="}},
		{name: "lower-case method", in: "get" + rfcUpgrade[3:], status: 405, sent: ws.ErrBadMethod},
		{name: "upper-case names", in: edit(edit(rfcUpgrade, "Upgrade: websocket", "UPGRADE: WebSocket"), "Connection: Upgrade", "connection: UPGRADE"),
			want: ws.Upgrade{Path: "/chat", Host: "server.example.com", Origin: "http://example.com", Key: "dGhlIHNhbXBsZSBub25jZQ==", Protocols: "chat, superchat"}},

		{name: "post", in: "POST" + rfcUpgrade[3:], status: 405, sent: ws.ErrBadMethod},
		{name: "a TLS hello", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: 400, sent: ws.ErrBadRequest},
		{name: "no method", in: " / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, sent: ws.ErrBadRequest},
		{name: "method too long", in: strings.Repeat("A", 21) + " / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, sent: ws.ErrBadRequest},
		{name: "longest method", in: strings.Repeat("A", 20) + " / HTTP/1.1\r\nHost: h\r\n\r\n", status: 405, sent: ws.ErrBadMethod},
		{name: "http/1.0", in: edit(rfcUpgrade, "HTTP/1.1", "HTTP/1.0"), status: 400, sent: ws.ErrBadRequest},
		{name: "absolute target", in: edit(rfcUpgrade, "/chat", "http://x/chat"), status: 400, sent: ws.ErrBadRequest},
		{name: "no host", in: edit(rfcUpgrade, "Host: server.example.com\r\n", ""), status: 400, sent: ws.ErrBadRequest},
		{name: "two hosts", in: edit(rfcUpgrade, "Host:", "Host: a\r\nHost:"), status: 400, sent: ws.ErrBadRequest},
		{name: "folded header", in: edit(rfcUpgrade, "Origin:", " Origin:"), status: 400, sent: ws.ErrBadRequest},
		{name: "control character", in: edit(rfcUpgrade, "example.com\r\n", "exa\x00mple.com\r\n"), status: 400, sent: ws.ErrBadRequest},
		{name: "plain GET for a page", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", cfg: browsers, want: ws.Upgrade{Path: "/", Host: "h"}, status: 400, sent: ws.ErrNotWebSocket},
		{name: "HEAD for a page", in: "HEAD /?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", cfg: browsers, want: ws.Upgrade{Path: "/", Host: "h", Head: true}, status: 400, sent: ws.ErrNotWebSocket},
		{name: "HEAD is never an upgrade", in: "HEAD" + rfcUpgrade[3:], status: 400, sent: ws.ErrNotWebSocket},
		{name: "upgrade to h2c", in: edit(rfcUpgrade, "Upgrade: websocket", "Upgrade: h2c"), status: 400, sent: ws.ErrNotWebSocket},
		{name: "connection without upgrade", in: edit(rfcUpgrade, "Connection: Upgrade", "Connection: keep-alive"), status: 400, sent: ws.ErrBadRequest},
		{name: "version 8", in: edit(rfcUpgrade, "Version: 13", "Version: 8"), status: 426, sent: ws.ErrBadVersion},
		{name: "short key", in: edit(rfcUpgrade, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="), status: 400, sent: ws.ErrBadRequest},
		{name: "key not base64", in: edit(rfcUpgrade, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!="), status: 400, sent: ws.ErrBadRequest},
		{name: "wrong path", in: rfcUpgrade, cfg: &ws.Config{Path: "/ws"}, status: 404, sent: ws.ErrBadPath},
		{name: "foreign origin", in: edit(chromeUpgrade, "Origin: http://127.0.0.1:7080", "Origin: http://evil.example"), cfg: browsers, status: 403, sent: ws.ErrOriginDenied},
		{name: "header too large", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", cfg: &ws.Config{MaxHeaderBytes: 100}, status: 431, sent: ws.ErrHeaderTooLarge},
		{name: "a header that never ends, default cap", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", ws.DefaultMaxHeaderBytes), status: 431, sent: ws.ErrHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in + "\x81\x80") // a frame's first bytes follow
			u, n, err := ws.ParseUpgrade(in, tt.cfg)
			var he *ws.HandshakeError
			switch {
			case tt.status == 0 && err != nil:
				t.Fatal(err)
			case tt.status == 0 && n != len(tt.in):
				t.Fatalf("n = %d, want %d", n, len(tt.in))
			case tt.status != 0 && (!errors.As(err, &he) || he.Status != tt.status || !errors.Is(err, tt.sent)):
				t.Fatalf("error %v, want status %d (%v)", err, tt.status, tt.sent)
			}
			if (tt.status == 0 || tt.want != ws.Upgrade{}) && u != tt.want {
				t.Fatalf("Upgrade = %+v, want %+v", u, tt.want)
			}
			for k := range len(in) {
				if _, pn, perr := ws.ParseUpgrade(in[:k], tt.cfg); (pn != 0 || perr != nil) && k < len(tt.in) && !(tt.status != 0 && errors.Is(perr, tt.sent)) {
					t.Fatalf("prefix of %d bytes: n %d, %v; want more bytes asked for", k, pn, perr)
				}
			}
		})
	}
}

func TestAppendAcceptParsesAsHTTP(t *testing.T) {
	u, _, err := ws.ParseUpgrade([]byte(chromeUpgrade), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(ws.AppendAccept(nil, u))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	if n, err := ws.ParseAccept(ws.AppendAccept(nil, u), u.Key); err != nil || n != len(ws.AppendAccept(nil, u)) {
		t.Fatalf("ParseAccept = %d, %v", n, err)
	}
	if _, err := ws.ParseAccept(ws.AppendAccept(nil, u), ws.NewKey()); !errors.Is(err, ws.ErrBadResponse) {
		t.Fatalf("ParseAccept took the accept of another key: %v", err)
	}
}

func TestAppendRejectParsesAsHTTP(t *testing.T) {
	_, _, err := ws.ParseUpgrade([]byte(strings.Replace(rfcUpgrade, "Version: 13", "Version: 8", 1)), nil)
	resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(ws.AppendReject(nil, err))), nil)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if resp.StatusCode != 426 || resp.Header.Get("Sec-WebSocket-Version") != "13" || !resp.Close {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
}

func TestAppendRejectAllowsGETAndHEAD(t *testing.T) {
	_, _, err := ws.ParseUpgrade([]byte("DELETE /ws HTTP/1.1\r\n"), nil)
	resp, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(ws.AppendReject(nil, err))), nil)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" || !resp.Close {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
}

func TestClientRequestRoundTrip(t *testing.T) {
	key := ws.NewKey()
	req := ws.AppendRequest(nil, "127.0.0.1:7080", "/ws", key)
	u, n, err := ws.ParseUpgrade(req, &ws.Config{Path: "/ws"})
	if err != nil || n != len(req) || u.Key != key || u.Host != "127.0.0.1:7080" {
		t.Fatalf("ParseUpgrade(AppendRequest) = %+v, %d, %v", u, n, err)
	}
}
