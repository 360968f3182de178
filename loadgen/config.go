package loadgen

import (
	"cmp"
	"math"
	"time"
)

// Config holds the settings every kind of run shares. Zero fields take the
// defaults named in their comments. Where a field means something different
// per kind of run, fan-out is RunFanout, RunPubSub and RunSelftest, and
// pingpong and stream are RunEcho's modes.
type Config struct {
	// Addr is the server's host:port, or several comma-separated (the
	// nodes of a cluster): connection i goes to the i-th, modulo their
	// number (not for RunScale). Required (except for RunSelftest).
	Addr string
	// Clients is the number of clients, one connection each (fan-out: each
	// sends and receives). Default DefaultClients.
	Clients int
	// Messages is what each client sends: frames (fan-out), round trips
	// (pingpong) or chunks of Size bytes (stream); 0 sends until Duration.
	// If both are zero, DefaultMessages.
	Messages int
	// Size is the payload size of each frame in bytes, MinPayloadSize to
	// MaxPayloadSize, default DefaultSize. Pingpong sends its messages as
	// packet frames too, so a raw or a packet-codec echo server both echo
	// them. For stream, Size is the size of each write, 1 to 1 MiB, default
	// DefaultStreamSize.
	Size int
	// Rate caps the frames (messages, chunks) sent per second by all
	// clients together; 0 is unlimited (each client limited by Window
	// only).
	Rate float64
	// Window is how many of its own frames (stream: chunks) a client may
	// have outstanding: written and not yet received back. Default
	// DefaultWindow. Pingpong always has one message outstanding.
	Window int
	// Duration caps the sending phase; 0 is no cap.
	Duration time.Duration
	// ConnectTimeout bounds dialing and, for fan-out, the barrier. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// DrainTimeout bounds the wait, after the last frame is sent, for
	// frames still on their way; what has not arrived then is lost.
	// Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ReadBuffer is each connection's read buffer in bytes: for fan-out at
	// least 64 KiB and Size+256 (one whole packet frame), for stream 4 KiB
	// to 16 MiB. Default DefaultReadBuffer.
	ReadBuffer int
	// ProgressInterval is how often Progress is called. Default
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// Progress, if set, is called every ProgressInterval from a goroutine
	// of its own while the run goes on.
	Progress func(Progress)
	// Transport is TransportTCP (default) or TransportWS (fan-out and
	// echo with EngineGoroutines only; see ws.go).
	Transport string
	// WSPath is the WebSocket request path, default DefaultWSPath.
	WSPath string
}

// FanoutConfig configures RunFanout, RunPubSub and RunSelftest.
type FanoutConfig = Config

// normalize fills in c's defaults, Size's being defaultSize, and checks
// the fields whose limits every kind of run shares. Size and ReadBuffer
// are left to the caller to check.
func (c Config) normalize(defaultSize int) (Config, error) {
	if c.Addr == "" {
		return c, configErr("Addr is empty")
	}
	c.Clients = cmp.Or(c.Clients, DefaultClients)
	if c.Messages == 0 && c.Duration == 0 {
		c.Messages = DefaultMessages
	}
	c.Size = cmp.Or(c.Size, defaultSize)
	c.Window = cmp.Or(c.Window, DefaultWindow)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	c.ReadBuffer = cmp.Or(c.ReadBuffer, DefaultReadBuffer)
	c.ProgressInterval = cmp.Or(c.ProgressInterval, DefaultProgressInterval)
	c.Transport = cmp.Or(c.Transport, TransportTCP)
	c.WSPath = cmp.Or(c.WSPath, DefaultWSPath)
	if err := checkTransport(c.Transport); err != nil {
		return c, err
	}
	switch {
	case c.Clients < 0:
		return c, configErr("Clients %d < 0", c.Clients)
	case c.Messages < 0 || int64(c.Messages) > math.MaxUint32:
		return c, configErr("Messages %d out of range", c.Messages)
	case c.Rate < 0:
		return c, configErr("Rate %v < 0", c.Rate)
	case c.Window < 0:
		return c, configErr("Window %d < 0", c.Window)
	case c.Duration < 0:
		return c, configErr("Duration %v < 0", c.Duration)
	}
	return c, nil
}

// checkPayloadSize checks a Size sent as packet frame payloads.
func checkPayloadSize(size int) error {
	if size < MinPayloadSize || size > MaxPayloadSize {
		return configErr("Size %d not in [%d, %d]", size, MinPayloadSize, MaxPayloadSize)
	}
	return nil
}

// sendLimit is how many frames (messages, chunks) each client sends at
// most: Messages, or as many as a sequence number counts if Messages is 0.
func (c *Config) sendLimit() uint32 {
	if c.Messages > 0 {
		return uint32(c.Messages)
	}
	return math.MaxUint32
}
