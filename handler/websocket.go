package handler

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/herald-mmo/herald/codec"
	"github.com/herald-mmo/herald/sessionmgr"
	"github.com/herald-mmo/herald/transport/ws"
	"github.com/panjf2000/gnet/v2"
)

// WebSocketConfig configures the WebSocket listener (WithWebSocket).
type WebSocketConfig struct {
	// Config is the handshake's: the endpoint path ("" accepts any), the
	// Origin allow-list, the cap on the header size, and Deflate.
	//
	// Deflate accepts clients' permessage-deflate offers (RFC 7692) with
	// no context takeover either way: such a client's compressed messages
	// are inflated (bounded by MaxMessage; a corrupt one closes its
	// session with 1007), and it gets every message of at least
	// DeflateMin bytes compressed when that makes it smaller, the others
	// plain. A broadcast is compressed once per frame, by the first loop
	// that writes it, and the compressed bytes are shared by every
	// recipient that negotiated it (sessionmgr.Session.SetDeflate); TCP
	// and other WebSocket members get the frame as without it.
	//
	// Whether it pays, measured on the 2-core development machine against
	// plain sessions in the same run (sessionmgr's
	// BenchmarkBroadcastDeflate over socketpairs, the writing thread's CPU
	// per delivered message, medians of 6; transport/ws's BenchmarkDecode):
	// 4 KiB of chat text goes out at 0.38x the bytes for 0.75x-0.95x the
	// CPU with 100 recipients (the one compression, 60-70 us, costs about
	// what the kernel's copies of the saved bytes would) but 1.8x with 10.
	// A 100-byte chat line shrinks only to 0.87x and a 64-byte binary
	// packet not at all, for about 10 us of compression per frame: hence
	// DeflateMin's 1 KiB. Inbound is the other cost: clients that
	// negotiated it compress every message they send (browsers and gorilla
	// do), and inflating a 64-byte one takes about 150x its plain decode
	// (some 8 us). Turn it on when clients' bandwidth counts (browsers on
	// mobile links, metered egress) and kilobyte-sized text goes to large
	// rooms; leave it off for small binary game traffic.
	ws.Config
	// MaxMessage is the largest message payload a peer may send, all its
	// fragments together (0: ws.DefaultMaxMessage, the packet codec's
	// largest frame). Larger ones close the session with code 1009. Set it
	// to the codec's largest frame.
	MaxMessage int
	// Pages are static responses to plain HTTP GETs on the listener, by
	// request path (the query is ignored): "/" can be a page whose script
	// opens the WebSocket endpoint on the same address. A page is answered
	// 200 with its Content-Type, Content-Length, Cache-Control: no-store and
	// Connection: close (a HEAD gets the headers alone), then the connection
	// closes: it never becomes a session (no OnConnected), and counts in the
	// metrics as a ws connection closed by the server. With Pages set, a
	// GET for a path with no page that is not Config.Path gets 404 (logged
	// and counted as a refused handshake). A method other than GET and HEAD
	// gets 405 with or without Pages; without, every plain GET gets 400.
	Pages map[string]Page
	// DeflateMin is, with Deflate, the smallest message payload sent
	// compressed (0: sessionmgr.DefaultDeflateMin, 1 KiB). Below it,
	// compressing costs more CPU than the few bytes it saves are worth.
	DeflateMin int
}

// WithWebSocket makes the server listen for WebSocket sessions (RFC 6455) on
// addr (host:port, port 0 picks a free one; Server.WebSocketAddr reports it)
// beside the TCP address, in the same gnet engine: one Handler serves both
// kinds of session. A WebSocket message carries exactly one frame of the
// server's codec: with a delimited codec (codec.Line) a text message holds
// one frame without its delimiter, with any other codec a binary message
// holds one whole frame (with the packet codec: size and id included, as on
// TCP). A message that is not exactly one frame closes its session with
// code 1002 (1003 for the wrong message type, 1009 for too large); so does
// every protocol violation, with a logged reason. The session opens (the
// Handler's OnConnected) once the handshake is done.
//
// The frames the server sends are encoded once whatever the transport: a
// WebSocket session's loop writes the 2-10-byte message header before the
// shared frame (see sessionmgr.Session.SetWebSocket). Limits, backpressure,
// timeouts, metrics and logs apply to WebSocket sessions as to TCP ones; a
// handshake that does not arrive whole within the handshake timeout
// (WithHandshakeTimeout) is closed.
func WithWebSocket(addr string, cfg WebSocketConfig) Option {
	return func(o *options) { o.wsAddr, o.ws = addr, cfg }
}

// WebSocketAddr returns the address the WebSocket listener is bound to once
// Start has returned, or nil without WithWebSocket.
func (srv *Server) WebSocketAddr() net.Addr {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.wsAddr
}

// pickWSPort replaces port 0 in the WebSocket address with a free port.
// gnet finds a listener by its configured address (Engine.DupListener), so
// two listeners configured alike could not be told apart in OnBoot. The
// port is free when checked; another process may still take it before gnet
// binds it, and then Start fails. In Start.
func (srv *Server) pickWSPort() error {
	network, hostPort, _ := strings.Cut(protoAddr(srv.opts.wsAddr), "://")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || port != "0" {
		return nil // gnet reports a bad address
	}
	ln, err := net.Listen(network, hostPort)
	if err != nil {
		return fmt.Errorf("herald/handler: websocket listener: %w", err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	srv.opts.wsAddr = network + "://" + net.JoinHostPort(host, strconv.Itoa(p))
	return nil
}

// wsConn is a WebSocket session's inbound state, beside its conn. Owned by
// the loop.
type wsConn struct {
	d    *ws.Decoder // nil until the handshake is done
	line []byte      // a delimited codec's frame: a text message's payload and the delimiter
}

// wsSetup checks the WebSocket options and fixes the wire format every
// WebSocket session of the server uses. In NewServer.
func (srv *Server) wsSetup() error {
	o := &srv.opts
	if o.wsAddr == "" {
		return nil
	}
	if o.ws.MaxMessage < 0 || o.ws.DeflateMin < 0 {
		return fmt.Errorf("%w: WebSocket: negative MaxMessage or DeflateMin", ErrBadOption)
	}
	srv.wsOp = ws.OpBinary
	if d, ok := srv.codec.(codec.Delimited); ok {
		srv.wsOp, srv.wsTrim = ws.OpText, d.Delimiter()
	}
	return nil
}

// openWS prepares a WebSocket connection's session: its frames go out as
// messages. The session opens once the handshake is done. In OnOpen.
func (srv *Server) openWS(st *conn) {
	st.s.SetWebSocket(srv.wsOp, srv.wsTrim)
	st.ws = &wsConn{}
}

// wsTraffic is OnTraffic's decoding for a WebSocket session: the handshake,
// then one codec frame per data message, handed to the handler. It returns
// how many bytes of in it consumed and how many frames it delivered; stop
// means OnTraffic returns action at once (the session is closing).
func (srv *Server) wsTraffic(c gnet.Conn, st *conn, in []byte) (off, frames int, stop bool, action gnet.Action) {
	w, s := st.ws, st.s
	if w.d == nil {
		u, n, err := ws.ParseUpgrade(in, &srv.opts.ws.Config)
		if err != nil {
			if srv.pages != nil && errors.Is(err, ws.ErrNotWebSocket) {
				return 0, 0, true, srv.servePage(c, s, u, err) // page.go
			}
			_, _ = c.Write(ws.AppendReject(nil, err))
			srv.wsReject(s, "bad handshake", err)
			return 0, 0, true, gnet.Close
		}
		if n == 0 {
			return 0, 0, false, gnet.None // the handshake timeout runs (openWS)
		}
		if _, err := c.Write(ws.AppendAccept(nil, u)); err != nil {
			return 0, 0, true, gnet.None
		}
		w.d = ws.NewDecoder(srv.opts.ws.MaxMessage)
		if u.Deflate {
			w.d.AcceptDeflate()
			s.SetDeflate(srv.opts.ws.DeflateMin) // before openNow's Add
		}
		off = n
		if srv.openNow(st) {
			return off, 0, true, gnet.None
		}
	}
	for off < len(in) {
		m, n, err := w.d.Next(in[off:])
		if err != nil {
			var ce *ws.CloseError
			errors.As(err, &ce)
			return off, frames, true, srv.wsClose(c, s, ce)
		}
		off += n
		switch m.Op {
		case 0:
			return off, frames, false, gnet.None // a partial frame, or fragments so far
		case ws.OpPing:
			_, _ = c.Write(ws.AppendFrame(nil, ws.OpPong, m.Payload))
		case ws.OpPong:
		case ws.OpClose:
			s.SetCloseReason(fmt.Errorf("%w: code %d", ErrPeerClose, m.Code))
			_, _ = c.Write(ws.AppendClose(nil, ws.CloseNormal, ""))
			return off, frames, true, gnet.Close
		default:
			f, ce := srv.wsFrame(w, m)
			if ce != nil {
				return off, frames, true, srv.wsClose(c, s, ce)
			}
			frames++
			srv.h.OnRecv(s, f)
			if s.Closing() {
				return off, frames, true, gnet.None // as in OnTraffic
			}
			if st.paused.Load() {
				return off, frames, false, gnet.None // the rest waits for the resume
			}
		}
	}
	return off, frames, false, gnet.None
}

// wsFrame decodes the one codec frame data message m must hold. The frame
// aliases m's payload, or w.line for a delimited codec.
func (srv *Server) wsFrame(w *wsConn, m ws.Message) (codec.Frame, *ws.CloseError) {
	if m.Op != srv.wsOp {
		return codec.Frame{}, &ws.CloseError{Code: ws.CloseUnsupported, Err: ws.ErrProtocol,
			Reason: fmt.Sprintf("%s message; codec %s takes %s messages", opName(m.Op), srv.codec.Name(), opName(srv.wsOp))}
	}
	p := m.Payload
	if srv.wsTrim != nil {
		if cap(w.line) > 64<<10 {
			w.line = nil // a large line's buffer is not kept
		}
		w.line = append(append(w.line[:0], p...), srv.wsTrim...)
		p = w.line
	}
	f, n, err := srv.codec.Decode(p)
	switch {
	case errors.Is(err, codec.ErrFrameTooLarge):
		return f, &ws.CloseError{Code: ws.CloseTooLarge, Err: ws.ErrTooLarge, Reason: err.Error()}
	case err != nil:
		return f, &ws.CloseError{Code: ws.CloseProtocolError, Err: ws.ErrProtocol, Reason: err.Error()}
	case n != len(p):
		return f, &ws.CloseError{Code: ws.CloseProtocolError, Err: ws.ErrProtocol,
			Reason: fmt.Sprintf("message of %d bytes is not one whole %s frame", len(m.Payload), srv.codec.Name())}
	}
	return f, nil
}

func opName(op ws.Opcode) string {
	if op == ws.OpText {
		return "text"
	}
	return "binary"
}

// wsClose answers a protocol violation: the close frame with its code, a
// logged and counted reason, and the close of this session only.
func (srv *Server) wsClose(c gnet.Conn, s *sessionmgr.Session, ce *ws.CloseError) gnet.Action {
	_, _ = c.Write(ce.AppendFrame(nil))
	srv.counts.countProtocol(ce)
	s.SetCloseReason(fmt.Errorf("%w: websocket close %d: %w", ErrProtocol, ce.Code, ce))
	srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).Uint16("close_code", ce.Code).
		Err(ce).Msg("herald: closing websocket session: protocol violation")
	return gnet.Close
}

// wsReject records and logs a failed handshake.
func (srv *Server) wsReject(s *sessionmgr.Session, what string, err error) {
	srv.counts.countProtocol(err)
	s.SetCloseReason(fmt.Errorf("%w: websocket %s: %w", ErrProtocol, what, err))
	srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
		Err(err).Msg("herald: closing websocket connection: " + what)
}
