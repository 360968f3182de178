package handler

import (
	"fmt"
	"net/netip"

	"github.com/herald-mmo/herald/transport/proxyproto"
	"github.com/panjf2000/gnet/v2"
)

// WithProxyProtocol makes every connection, on the TCP and the WebSocket
// listener alike, start with a PROXY protocol header (v1 or v2, as haproxy's
// send-proxy and send-proxy-v2 or nginx's proxy_protocol write it), so that
// Session.RemoteAddr is the client's address, not the proxy's. Only peers
// in trusted may connect at all (nil: proxyproto.DefaultTrusted, loopback
// only): anyone else could claim any address, so a connection from
// elsewhere is refused, counted (Stats().ProxyRefused) and logged. A
// malformed or missing header closes the connection with a logged reason;
// one that does not arrive within the handshake timeout
// (WithHandshakeTimeout) too. The session opens (OnConnected) once the
// header, and on the WebSocket listener the handshake after it, is in.
func WithProxyProtocol(trusted []netip.Prefix) Option {
	return func(o *options) {
		o.proxy = true
		o.proxyFrom = trusted
	}
}

// proxySetup fills in the default trusted prefixes. In NewServer.
func (srv *Server) proxySetup() error {
	o := &srv.opts
	if !o.proxy || o.proxyFrom != nil {
		return nil
	}
	p, err := proxyproto.ParsePrefixes(proxyproto.DefaultTrusted)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	o.proxyFrom = p
	return nil
}

// trusted reports whether c may connect: always without the PROXY
// protocol, else only from a trusted proxy. A refusal is counted and
// logged. In OnOpen.
func (srv *Server) trusted(c gnet.Conn) bool {
	if !srv.opts.proxy || proxyproto.Trusted(c.RemoteAddr(), srv.opts.proxyFrom) {
		return true
	}
	srv.proxyRefused.Add(1)
	srv.log.Warn().Stringer("remote", c.RemoteAddr()).
		Msg("herald: refusing connection: not from a trusted proxy (PROXY protocol is on)")
	return false
}

// proxyTraffic parses the PROXY header at the start of in and sets the
// session's remote address from it; a raw TCP session then opens. It
// returns the header's length (0: wait for more bytes); stop means
// OnTraffic returns action at once.
func (srv *Server) proxyTraffic(c gnet.Conn, st *conn, in []byte) (n int, stop bool, action gnet.Action) {
	s := st.s
	h, n, err := proxyproto.Parse(in)
	if err != nil {
		srv.counts.countProtocol(err)
		s.SetCloseReason(fmt.Errorf("%w: %w", ErrProtocol, err))
		srv.log.Warn().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
			Err(err).Msg("herald: closing connection: bad PROXY protocol header")
		return 0, true, gnet.Close
	}
	if n == 0 {
		return 0, true, gnet.None // the handshake timeout runs (OnOpen)
	}
	st.needProxy = false
	s.SetRemoteAddr(h.RemoteAddr(c.RemoteAddr()))
	srv.log.Debug().Uint64("session", s.ID()).Stringer("remote", s.RemoteAddr()).
		Stringer("proxy", c.RemoteAddr()).Int("version", h.Version).Msg("herald: PROXY protocol header")
	if st.ws != nil {
		if n == len(in) {
			// The handshake is still to come: keep its timeout running
			// from OnOpen, which OnTraffic's end would reset.
			_, _ = c.Discard(n)
			return n, true, gnet.None
		}
		return n, false, gnet.None
	}
	if srv.openNow(st) {
		return n, true, gnet.None
	}
	return n, false, gnet.None
}
