package handler

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/panjf2000/gnet/v2"
)

// MaxPageBytes caps a Page's body. A page is written with one write and the
// connection closed after it; gnet flushes what the socket did not take at
// once without waiting (v2.9.7 eventloop.close), so the response must fit
// in a new socket's send buffer (16 KiB by default on Linux). Bigger
// content belongs on a web server.
const MaxPageBytes = 16 << 10

// Page is a static HTTP response that the WebSocket listener serves to a
// plain GET (WebSocketConfig.Pages): a browser loads the page, the page
// connects to the WebSocket endpoint on the same address.
type Page struct {
	// ContentType is the Content-Type header, such as
	// "text/html; charset=utf-8".
	ContentType string
	// Body is the response body, at most MaxPageBytes; NewServer copies it.
	Body []byte
}

// pageSetup checks the Pages and builds their whole responses, shared read
// only by every loop. In NewServer.
func (srv *Server) pageSetup() error {
	if srv.opts.wsAddr == "" || srv.opts.ws.Pages == nil {
		return nil
	}
	srv.pages = make(map[string][]byte, len(srv.opts.ws.Pages))
	for path, p := range srv.opts.ws.Pages {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "? \t") || p.ContentType == "" ||
			strings.ContainsFunc(p.ContentType, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(p.Body) > MaxPageBytes {
			return fmt.Errorf("%w: WebSocket page %q: want a path from /, a content type, at most %d bytes", ErrBadOption, path, MaxPageBytes)
		}
		r := []byte("HTTP/1.1 200 OK\r\nContent-Type: " + p.ContentType + "\r\nContent-Length: ")
		r = strconv.AppendInt(r, int64(len(p.Body)), 10)
		r = append(r, "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"...)
		srv.pages[path] = append(r, p.Body...)
	}
	return nil
}

// servePage answers a request that is no WebSocket upgrade (err wraps
// ws.ErrNotWebSocket) with the page at u.Path: its headers for a HEAD. A
// path without a page gets err's 400 (the endpoint's path, or any path
// when Config.Path is empty) or 404. Either way the connection closes
// after the response and never becomes a session. In OnTraffic, on the loop.
func (srv *Server) servePage(c gnet.Conn, s *sessionmgr.Session, u ws.Upgrade, err error) gnet.Action {
	resp, ok := srv.pages[u.Path]
	if ok {
		s.SetCloseReason(fmt.Errorf("%w: served page %s", ErrClosedByServer, u.Path))
	} else {
		if path := srv.opts.ws.Path; path != "" && u.Path != path {
			err = &ws.HandshakeError{Status: http.StatusNotFound, Err: ws.ErrBadPath, Detail: fmt.Sprintf("no page %q", u.Path)}
		}
		resp = ws.AppendReject(nil, err)
		srv.wsReject(s, "request for no page", err)
	}
	if u.Head {
		resp = resp[:bytes.Index(resp, []byte("\r\n\r\n"))+4]
	}
	if _, werr := c.Write(resp); werr == nil && c.OutboundBuffered() > 0 {
		srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Str("path", u.Path).
			Int("unsent_bytes", c.OutboundBuffered()).Msg("herald: response larger than the socket took; it may arrive cut")
	}
	return gnet.Close
}
