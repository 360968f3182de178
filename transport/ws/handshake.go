package ws

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// DefaultMaxHeaderBytes caps a handshake's request line and headers when
// Config.MaxHeaderBytes is 0. Browsers send well under 2 KiB.
const DefaultMaxHeaderBytes = 8 << 10

// acceptGUID is RFC 6455's fixed suffix for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Config says what ParseUpgrade accepts. The zero value accepts any path
// and any origin with DefaultMaxHeaderBytes. It is read, never written, so
// one Config may be shared by every connection.
type Config struct {
	// Path, when not empty, is the only request path accepted (the query,
	// if any, is ignored); other paths get ErrBadPath (404).
	Path string
	// Origins, when not nil, lists the Origin header values allowed, each
	// compared whole and ASCII case-insensitively ("http://127.0.0.1:7080").
	// A request with another Origin gets ErrOriginDenied (403). A request
	// without Origin is accepted: browsers always send one, and any other
	// client could send whatever it likes, so the check protects browser
	// users from cross-site pages, not the server from clients.
	Origins []string
	// MaxHeaderBytes caps the request line and headers, final CRLF
	// included; 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Deflate accepts a client's permessage-deflate offer (RFC 7692), with
	// no context takeover either way (see AppendDeflatedFrame). Off, offers
	// are ignored and clients send uncompressed messages.
	Deflate bool
}

func (c *Config) maxHeader() int {
	if c == nil || c.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return c.MaxHeaderBytes
}

// Upgrade is a parsed handshake request. Its strings are copies: they stay
// valid after the input is discarded.
type Upgrade struct {
	Path      string // request path without the query
	Host      string // Host header
	Origin    string // Origin header, "" if absent
	Key       string // Sec-WebSocket-Key, as sent
	Protocols string // Sec-WebSocket-Protocol as sent, "" if absent (herald selects none)
	// Head is whether the request is a HEAD, never an upgrade: it comes
	// with ErrNotWebSocket, for a page's headers without its body.
	Head bool
	// Deflate is whether permessage-deflate was negotiated (Config.Deflate
	// and an acceptable offer): AppendAccept then confirms it, the
	// connection's Decoder needs AcceptDeflate, and the connection may be
	// sent AppendDeflatedFrame's frames (or plain ones).
	Deflate bool
}

// HandshakeError is a rejected handshake: the HTTP status to answer with
// (AppendReject writes it) and the sentinel it wraps.
type HandshakeError struct {
	Status int    // 400, 403, 404, 405, 426 or 431
	Err    error  // one of the handshake sentinels
	Detail string // what exactly was wrong
}

// Error says why the handshake was refused.
func (e *HandshakeError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *HandshakeError) Unwrap() error { return e.Err }

func reject(status int, err error, format string, args ...any) *HandshakeError {
	return &HandshakeError{Status: status, Err: err, Detail: fmt.Sprintf(format, args...)}
}

var (
	crlf      = []byte("\r\n")
	endHeader = []byte("\r\n\r\n")
)

// maxMethod bounds a request method's length (the longest registered one,
// UPDATEREDIRECTREF, has 17 bytes).
const maxMethod = 20

// ParseUpgrade parses a WebSocket opening handshake (RFC 6455 section 4.2.1)
// from the bytes buffered so far. It never blocks and keeps no state:
// n == 0 with a nil error means the header block is not complete yet, so
// call again with more bytes (the same prefix plus what arrived). Otherwise
// n is the length of the request, header block included; the bytes after
// it are the first frames.
//
// A rejected request returns n > 0 for a complete request (0 when it is
// rejected early, from its first bytes or for being too large) and a
// *HandshakeError; answer it with AppendReject and close. A well-formed
// GET that is not an upgrade, or a well-formed HEAD (Upgrade.Head), returns
// ErrNotWebSocket with Upgrade.Path and Host set, so a caller may serve a
// page there instead. Any other method is refused with 405 (ErrBadMethod)
// as soon as it is read.
//
// A peer that never finishes its header is the caller's to time out;
// ParseUpgrade only bounds its size (ErrHeaderTooLarge once
// Config.MaxHeaderBytes arrive without the end of the header). A request
// body is not expected: an upgrade has none.
func ParseUpgrade(in []byte, cfg *Config) (u Upgrade, n int, err error) {
	if err := checkMethod(in); err != nil {
		return Upgrade{}, 0, err
	}
	limit := cfg.maxHeader()
	end := bytes.Index(in[:min(len(in), limit)], endHeader)
	if end < 0 {
		if len(in) >= limit {
			return Upgrade{}, 0, reject(http.StatusRequestHeaderFieldsTooLarge, ErrHeaderTooLarge, "no end of header in %d bytes", limit)
		}
		return Upgrade{}, 0, nil
	}
	n = end + len(endHeader)
	u, err = parseRequest(in[:end], cfg)
	return u, n, err
}

// request collects the headers parseRequest checks.
type request struct {
	host, upgrade, connection, key, version, origin, protocols, extensions string
	hosts, keys, versions                                                  int
}

// checkMethod refuses, from its first bytes, a request whose method is not
// GET or HEAD (405), or that cannot start with a method at all (400). A
// method not complete yet is no error.
func checkMethod(in []byte) error {
	m := in[:min(len(in), maxMethod+1)]
	sp := bytes.IndexByte(m, ' ')
	if sp < 0 {
		if len(m) <= maxMethod && isToken(m) {
			return nil // to be continued
		}
		return reject(http.StatusBadRequest, ErrBadRequest, "no request method")
	}
	m = m[:sp]
	switch {
	case string(m) == "GET" || string(m) == "HEAD":
		return nil
	case len(m) > 0 && isToken(m):
		return reject(http.StatusMethodNotAllowed, ErrBadMethod, "method %q", m)
	}
	return reject(http.StatusBadRequest, ErrBadRequest, "no request method")
}

func parseRequest(head []byte, cfg *Config) (Upgrade, error) {
	line, rest, _ := bytes.Cut(head, crlf)
	target, isHead, ok := parseRequestLine(line)
	if !ok {
		return Upgrade{}, reject(http.StatusBadRequest, ErrBadRequest, "malformed request line %q", line)
	}
	var r request
	if err := parseHeaders(rest, func(name, value []byte) {
		v := string(value)
		switch {
		case asciiEqualFold(name, "host"):
			r.host, r.hosts = v, r.hosts+1
		case asciiEqualFold(name, "upgrade"):
			r.upgrade = joinList(r.upgrade, v)
		case asciiEqualFold(name, "connection"):
			r.connection = joinList(r.connection, v)
		case asciiEqualFold(name, "sec-websocket-key"):
			r.key, r.keys = v, r.keys+1
		case asciiEqualFold(name, "sec-websocket-version"):
			r.version, r.versions = v, r.versions+1
		case asciiEqualFold(name, "origin"):
			r.origin = v
		case asciiEqualFold(name, "sec-websocket-protocol"):
			r.protocols = joinList(r.protocols, v)
		case asciiEqualFold(name, "sec-websocket-extensions"):
			r.extensions = joinList(r.extensions, v)
		}
	}); err != nil {
		return Upgrade{}, err
	}
	path, _, _ := strings.Cut(target, "?")
	u := Upgrade{Path: path, Host: r.host, Origin: r.origin, Key: r.key, Protocols: r.protocols,
		Deflate: cfg != nil && cfg.Deflate && acceptDeflate(r.extensions)}
	switch {
	case r.hosts != 1 || r.host == "":
		return u, reject(http.StatusBadRequest, ErrBadRequest, "want one Host header, got %d", r.hosts)
	case isHead:
		u.Head = true
		return u, reject(http.StatusBadRequest, ErrNotWebSocket, "HEAD request")
	case !hasToken(r.upgrade, "websocket"):
		return u, reject(http.StatusBadRequest, ErrNotWebSocket, "no Upgrade: websocket")
	case cfg != nil && cfg.Path != "" && path != cfg.Path:
		return u, reject(http.StatusNotFound, ErrBadPath, "path %q", path)
	case !hasToken(r.connection, "upgrade"):
		return u, reject(http.StatusBadRequest, ErrBadRequest, "Connection %q has no upgrade token", r.connection)
	case r.versions != 1 || r.version != "13":
		return u, reject(http.StatusUpgradeRequired, ErrBadVersion, "Sec-WebSocket-Version %q", r.version)
	case r.keys != 1 || !validKey(r.key):
		return u, reject(http.StatusBadRequest, ErrBadRequest, "Sec-WebSocket-Key %q is not 16 bytes in base64", r.key)
	case cfg != nil && cfg.Origins != nil && r.origin != "" && !originAllowed(r.origin, cfg.Origins):
		return u, reject(http.StatusForbidden, ErrOriginDenied, "origin %q", r.origin)
	}
	return u, nil
}

// parseRequestLine checks "GET SP origin-form SP HTTP/1.x" (x >= 1), or
// HEAD, and returns the target. checkMethod has seen the method.
func parseRequestLine(line []byte) (target string, head, ok bool) {
	method, rest, _ := bytes.Cut(line, []byte(" "))
	t, version, found := bytes.Cut(rest, []byte(" "))
	if !found || len(t) == 0 || t[0] != '/' || !httpVersion11(version) {
		return "", false, false
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f {
			return "", false, false
		}
	}
	return string(t), string(method) == "HEAD", true
}

func httpVersion11(v []byte) bool {
	minor, found := bytes.CutPrefix(v, []byte("HTTP/1."))
	if !found || len(minor) == 0 {
		return false
	}
	for _, c := range minor {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(minor) > 1 || minor[0] >= '1'
}

// parseHeaders calls fn for each "name: value" line of block (CRLF
// separated), with the value trimmed of optional whitespace. It rejects
// obsolete line folding, empty or non-token names and control characters.
func parseHeaders(block []byte, fn func(name, value []byte)) error {
	for len(block) > 0 {
		var line []byte
		line, block, _ = bytes.Cut(block, crlf)
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || len(name) == 0 || !isToken(name) {
			return reject(http.StatusBadRequest, ErrBadRequest, "malformed header line %q", line)
		}
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return reject(http.StatusBadRequest, ErrBadRequest, "control character in header %q", name)
			}
		}
		fn(name, bytes.Trim(value, " \t"))
	}
	return nil
}

// isToken reports whether b is an RFC 9110 token (a header name).
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// joinList merges repeated list headers as RFC 9110 section 5.3 allows.
func joinList(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// hasToken reports whether the comma-separated list holds token, compared
// ASCII case-insensitively.
func hasToken(list, token string) bool {
	for elem := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.Trim(elem, " \t"), token) {
			return true
		}
	}
	return false
}

func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

func originAllowed(origin string, allowed []string) bool {
	for _, a := range allowed {
		if strings.EqualFold(origin, a) {
			return true
		}
	}
	return false
}

// AcceptKey is the Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// AppendAccept appends the 101 Switching Protocols response that completes
// u's handshake to dst.
func AppendAccept(dst []byte, u Upgrade) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, AcceptKey(u.Key)...)
	if u.Deflate {
		dst = append(dst, "\r\nSec-WebSocket-Extensions: "+deflateResponse...)
	}
	return append(dst, "\r\n\r\n"...)
}

// AppendReject appends the HTTP response that answers a failed handshake:
// the *HandshakeError's status (400 for any other error), the reason as a
// text body, "Connection: close", for 405 the methods served and for 426
// the version herald speaks. Close the connection after writing it.
func AppendReject(dst []byte, err error) []byte {
	status := http.StatusBadRequest
	if he, ok := err.(*HandshakeError); ok {
		status = he.Status
	}
	body := http.StatusText(status) + "\n"
	if err != nil {
		body += err.Error() + "\n"
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"...)
	switch status {
	case http.StatusMethodNotAllowed:
		dst = append(dst, "Allow: GET, HEAD\r\n"...)
	case http.StatusUpgradeRequired:
		dst = append(dst, "Sec-WebSocket-Version: 13\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// NewKey returns a fresh random Sec-WebSocket-Key for a client.
func NewKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// AppendRequest appends a client's opening handshake for host and path
// (origin-form, such as "/ws") with key (NewKey) to dst.
func AppendRequest(dst []byte, host, path, key string) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	return append(dst, "\r\n\r\n"...)
}

// ParseAccept parses a server's handshake response to a request sent with
// key (by AppendRequest, which offers no extension), with ParseUpgrade's contract: n == 0 and a nil error mean more bytes
// are needed; n is the response's length and the frames follow it. Any
// status but 101, or a missing or wrong Sec-WebSocket-Accept, is a
// *HandshakeError wrapping ErrBadResponse.
func ParseAccept(in []byte, key string) (n int, err error) {
	end := bytes.Index(in[:min(len(in), DefaultMaxHeaderBytes)], endHeader)
	if end < 0 {
		if len(in) >= DefaultMaxHeaderBytes {
			return 0, reject(0, ErrBadResponse, "no end of header in %d bytes", DefaultMaxHeaderBytes)
		}
		return 0, nil
	}
	n = end + len(endHeader)
	line, rest, _ := bytes.Cut(in[:end], crlf)
	status, found := bytes.CutPrefix(line, []byte("HTTP/1.1 "))
	if !found || !bytes.HasPrefix(status, []byte("101")) {
		return n, reject(0, ErrBadResponse, "status line %q", line)
	}
	var upgrade, connection, accept, extensions string
	if err := parseHeaders(rest, func(name, value []byte) {
		switch {
		case asciiEqualFold(name, "upgrade"):
			upgrade = joinList(upgrade, string(value))
		case asciiEqualFold(name, "connection"):
			connection = joinList(connection, string(value))
		case asciiEqualFold(name, "sec-websocket-accept"):
			accept = string(value)
		case asciiEqualFold(name, "sec-websocket-extensions"):
			extensions = joinList(extensions, string(value))
		}
	}); err != nil {
		return n, reject(0, ErrBadResponse, "%v", err)
	}
	if !hasToken(upgrade, "websocket") || !hasToken(connection, "upgrade") || accept != AcceptKey(key) {
		return n, reject(0, ErrBadResponse, "Upgrade %q, Connection %q, Sec-WebSocket-Accept %q", upgrade, connection, accept)
	}
	if extensions != "" { // AppendRequest offers none
		return n, reject(0, ErrBadResponse, "extensions %q not offered", extensions)
	}
	return n, nil
}
