package tests

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/gorilla/websocket"
	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/handler"
	"github.com/herald-mmo/herald/internal/demo"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/rs/zerolog"
)

// edgeAddrs fills an edge proxy's configuration: the PEM bundle (certificate
// then key), the proxy's two TLS frontends and herald's two listeners.
type edgeAddrs struct {
	Dir, PEM string
	TLS, WSS string // the proxy's frontends, host:port
	TCP, WS  string // herald's -addr and -ws
}

// haproxyConfig terminates TLS on two frontends and sends each connection
// to one of herald's listeners with a PROXY v2 header. README's "TLS and
// proxies" shows it filled with edgeReadme.
const haproxyConfig = `global
    log stderr format raw local0 info
    nbthread 1

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s

# TLS for the TCP listener (-addr)
frontend herald_tls
    bind {{.TLS}} ssl crt {{.PEM}}
    default_backend herald_tcp

backend herald_tcp
    server herald {{.TCP}} send-proxy-v2

# WSS: TLS here, plain WebSocket to herald's -ws listener
frontend herald_wss
    bind {{.WSS}} ssl crt {{.PEM}}
    default_backend herald_ws

backend herald_ws
    server herald {{.WS}} send-proxy-v2
`

// nginxConfig is haproxyConfig for nginx's stream module, which writes a
// PROXY v1 header. The first lines only make nginx run unprivileged in the
// foreground from a temporary directory; README's "TLS and proxies" shows
// the stream block.
const nginxConfig = `daemon off;
master_process off;
pid {{.Dir}}/nginx.pid;
error_log stderr notice;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events { worker_connections 64; }

stream {
    ssl_certificate     {{.PEM}};
    ssl_certificate_key {{.PEM}};
    proxy_protocol on;
    proxy_connect_timeout 2s;

    # TLS for the TCP listener (-addr)
    server {
        listen {{.TLS}} ssl;
        proxy_pass {{.TCP}};
    }
    # WSS: TLS here, plain WebSocket to herald's -ws listener
    server {
        listen {{.WSS}} ssl;
        proxy_pass {{.WS}};
    }
}
`

// edgeReadme is what README's configurations are filled with.
var edgeReadme = edgeAddrs{PEM: "/etc/herald/herald.pem",
	TLS: "0.0.0.0:7443", WSS: "0.0.0.0:7444", TCP: "127.0.0.1:7001", WS: "127.0.0.1:7080"}

// edgeProxies are the TLS-terminating proxies TestTLSEdge runs herald
// behind.
var edgeProxies = []struct {
	name, install string
	files         []string // what it needs beside its binary
	config        string
	args          func(dir, conf string) []string
}{
	{name: "haproxy", install: "apt-get install haproxy", config: haproxyConfig,
		args: func(dir, conf string) []string { return []string{"-db", "-f", conf} }},
	{name: "nginx", install: "apt-get install nginx libnginx-mod-stream", config: nginxConfig,
		files: []string{"/usr/lib/nginx/modules/ngx_stream_module.so"},
		args:  func(dir, conf string) []string { return []string{"-p", dir, "-e", "stderr", "-c", conf} }},
}

func fill(t *testing.T, config string, a edgeAddrs) string {
	t.Helper()
	var b strings.Builder
	if err := template.Must(template.New("").Parse(config)).Execute(&b, a); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// edgeSpy is cmd/broadcast's handler that also records, for each line
// received, the remote address of the session that sent it.
type edgeSpy struct {
	demo.Broadcast
	mu  sync.Mutex
	saw map[string]string // line body -> sender's Session.RemoteAddr
}

func (h *edgeSpy) OnRecv(s *sessionmgr.Session, f codec.Frame) {
	h.mu.Lock()
	h.saw[string(f.Body)] = s.RemoteAddr().String()
	h.mu.Unlock()
	h.Broadcast.OnRecv(s, f)
}

// TestTLSEdge: herald with the PROXY protocol behind a real TLS-terminating
// proxy (haproxy with send-proxy-v2, nginx's stream module with
// proxy_protocol on), as README's "TLS and proxies" configures it. A Go
// crypto/tls client on the TCP frontend and a WSS client on the WebSocket
// frontend chat through it, and herald's sessions carry each client's own
// address, not the proxy's. A client that skips the proxy is closed with a
// logged reason while the proxied sessions keep chatting.
func TestTLSEdge(t *testing.T) {
	for _, p := range edgeProxies {
		t.Run(p.name, func(t *testing.T) {
			bin := needTool(t, p.name, p.install, p.files...)
			logs := &syncBuffer{}
			h := &edgeSpy{saw: map[string]string{}}
			srv := startServer(t, h, handler.WithCodec(codec.Line(1024)), handler.WithLogger(zerolog.New(logs)),
				handler.WithProxyProtocol(nil), // loopback: the proxy
				handler.WithWebSocket("127.0.0.1:0", handler.WebSocketConfig{Config: ws.Config{Path: "/ws"}, MaxMessage: 1024}))

			dir := t.TempDir()
			roots := writeCert(t, filepath.Join(dir, "herald.pem"))
			a := edgeAddrs{Dir: dir, PEM: filepath.Join(dir, "herald.pem"), TLS: freeAddr(t), WSS: freeAddr(t),
				TCP: srv.Addr().String(), WS: srv.WebSocketAddr().String()}
			conf := filepath.Join(dir, p.name+".conf")
			if err := os.WriteFile(conf, []byte(fill(t, p.config, a)), 0o600); err != nil {
				t.Fatal(err)
			}
			startTool(t, bin, p.args(dir, conf), a.TLS, a.WSS)

			tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			raw, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a.TLS, tlsCfg)
			if err != nil {
				t.Fatalf("TLS dial through %s: %v", p.name, err)
			}
			t.Cleanup(func() { raw.Close() })
			tc := &lineClient{t: t, name: "tls", conn: raw, r: bufio.NewReader(raw)}
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: tlsCfg}
			wc, resp, err := d.Dial("wss://"+a.WSS+"/ws", nil)
			if err != nil {
				t.Fatalf("WSS dial through %s: %v", p.name, err)
			}
			resp.Body.Close()
			t.Cleanup(func() { wc.Close() })
			waitFor(t, 5*time.Second, "both sessions open", func() bool { return srv.Manager().Len() == 2 })

			// chat sends one line from each client and checks that both
			// hear both, the TLS client as lines, the WSS one as text
			// messages.
			chat := func(round string) (tcpLine, wsLine string) {
				tcpLine = fmt.Sprintf("%s: tls from %s", round, raw.LocalAddr())
				wsLine = fmt.Sprintf("%s: wss from %s", round, wc.LocalAddr())
				tc.typeText(tcpLine+"\n", false)
				if err := wc.WriteMessage(websocket.TextMessage, []byte(wsLine)); err != nil {
					t.Fatalf("wss write: %v", err)
				}
				// Each sender's line reaches each member in order, but the
				// two senders' lines may interleave either way.
				want := map[string]bool{tcpLine: true, wsLine: true}
				for range 2 {
					if l := strings.TrimSuffix(tc.hear(5*time.Second), "\n"); !want[l] {
						t.Fatalf("tls client heard %q; want one of %v", l, want)
					}
					_ = wc.SetReadDeadline(time.Now().Add(5 * time.Second))
					op, m, err := wc.ReadMessage()
					if err != nil || op != websocket.TextMessage || !want[string(m)] {
						t.Fatalf("wss client got %d %q %v; want a text message, one of %v", op, m, err, want)
					}
				}
				return tcpLine, wsLine
			}
			tcpLine, wsLine := chat("before")
			h.mu.Lock()
			saw := map[string]string{tcpLine: h.saw[tcpLine], wsLine: h.saw[wsLine]}
			h.mu.Unlock()
			if saw[tcpLine] != raw.LocalAddr().String() || saw[wsLine] != wc.LocalAddr().String() {
				t.Errorf("herald saw the TLS client as %s and the WSS client as %s; want %s and %s",
					saw[tcpLine], saw[wsLine], raw.LocalAddr(), wc.LocalAddr())
			}
			// And the proxy's own side of each connection was another one.
			for _, l := range proxyHeaders(t, logs) {
				if l.Remote == l.Proxy || !strings.HasPrefix(l.Proxy, "127.0.0.1:") {
					t.Errorf("PROXY header from %q gave %q; want the client's address, not the proxy's", l.Proxy, l.Remote)
				}
			}
			if n := len(proxyHeaders(t, logs)); n != 2 {
				t.Errorf("%d PROXY headers logged; want 2", n)
			}

			// Past the proxy: no header, closed alone, with a logged reason.
			bypass := []struct {
				addr string
				out  []byte
			}{
				{a.TCP, []byte("bypass: no header\n")},
				{a.WS, ws.AppendRequest(nil, a.WS, "/ws", ws.NewKey())},
			}
			var direct []string
			for _, b := range bypass {
				conn, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				direct = append(direct, conn.LocalAddr().String())
				if _, err := conn.Write(b.out); err != nil {
					t.Fatal(err)
				}
				if got, _ := closedBy(t, conn); len(got) > 0 {
					t.Errorf("%s without a PROXY header: server answered %q", b.addr, got)
				}
				conn.Close()
			}
			var closed []string
			for _, l := range logLines(t, logs, func(l logLine) bool {
				return l.Message == "herald: closing connection: bad PROXY protocol header"
			}) {
				closed = append(closed, l.Remote)
			}
			if strings.Join(closed, " ") != strings.Join(direct, " ") {
				t.Errorf("closed for a bad PROXY header: %v; want the direct connections %v", closed, direct)
			}

			tcpLine, wsLine = chat("after")
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.saw[tcpLine] != raw.LocalAddr().String() || h.saw[wsLine] != wc.LocalAddr().String() {
				t.Errorf("after the bypass herald saw %s and %s", h.saw[tcpLine], h.saw[wsLine])
			}
			if _, ok := h.saw["bypass: no header"]; ok || len(h.saw) != 4 {
				t.Errorf("herald received %v; want the 4 chat lines only", h.saw)
			}
		})
	}
}

// TestTLSEdgeReadme: README's "TLS and proxies" shows the configurations
// TestTLSEdge runs, filled with edgeReadme (nginx's from its stream block).
func TestTLSEdgeReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range edgeProxies {
		conf := fill(t, p.config, edgeReadme)
		if i := strings.Index(conf, "stream {"); i >= 0 {
			conf = conf[i:]
		}
		if !strings.Contains(string(readme), conf) {
			t.Errorf("README does not show the %s configuration TestTLSEdge tests:\n%s", p.name, conf)
		}
	}
}

// proxyHeaders returns the PROXY headers herald logged (at debug level):
// the client's address each gave and the proxy's side it came from.
func proxyHeaders(t *testing.T, logs *syncBuffer) []struct{ Remote, Proxy string } {
	t.Helper()
	var out []struct{ Remote, Proxy string }
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct{ Message, Remote, Proxy string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l.Message == "herald: PROXY protocol header" {
			out = append(out, struct{ Remote, Proxy string }{l.Remote, l.Proxy})
		}
	}
	return out
}

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// its key into one PEM file (haproxy's crt; nginx reads both from it) and
// returns a pool holding the certificate, for clients to trust.
func writeCert(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return roots
}

// needTool returns the path of the program a test runs (on PATH, or in
// /usr/sbin where Debian puts daemons) once it and the files it needs are
// there. Anything missing fails the test under CI (.ci/run installs it) and
// elsewhere skips it, loudly, saying how to install it.
func needTool(t *testing.T, name, install string, files ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/" + name)
	}
	missing := name
	if err == nil {
		missing = ""
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				missing = f
				break
			}
		}
	}
	if missing == "" {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found; CI must install it (%s)", missing, install)
	}
	fmt.Fprintf(os.Stderr, "!!! %s not found: %s SKIPPED; install %s: %s\n", missing, t.Name(), name, install)
	t.Skipf("%s not found (install %s: %s)", missing, name, install)
	return ""
}

// startTool runs bin with args until the test ends (then kills it by pid
// and waits for it) and returns once each of addrs accepts connections,
// failing the test if that takes 10 s or the program exits first. Its
// output is logged if the test fails.
func startTool(t *testing.T, bin string, args []string, addrs ...string) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s %s:\n%s", bin, strings.Join(args, " "), out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range addrs {
		for attempt := 0; ; attempt++ {
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				t.Fatalf("%s exited before %s accepted: %v\n%s", bin, addr, err, out)
			default:
			}
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) || attempt == 400 {
				t.Fatalf("%s does not accept on %s after %d attempts: %v\n%s", bin, addr, attempt, err, out)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}
