package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
)

// PubSubConfig configures RunPubSub: a fan-out run through a redis server.
type PubSubConfig struct {
	FanoutConfig
	// Channel is the redis channel every client subscribes and publishes
	// to. Default "herald-loadgen".
	Channel string
}

// RunPubSub runs the fan-out scenario against a redis server (RESP2
// PUBLISH/SUBSCRIBE), for comparison with RunFanout. Each client has a
// subscriber connection that SUBSCRIBEs cfg.Channel (the barrier waits for
// every confirmation) and a publisher connection that PUBLISHes frames with
// the same payloads, window and verification as RunFanout; a client's frame
// is back when its own subscriber receives it. Errors as for RunFanout.
func RunPubSub(ctx context.Context, cfg PubSubConfig) (Result, error) {
	return runBroker(ctx, "pubsub", cfg, func(ch string, size int) fanProto { return newRESPProto(ch, size) })
}

// runBroker runs a fan-out through a broker whose protocol newProto makes
// for a channel and payload size.
func runBroker(ctx context.Context, mode string, cfg PubSubConfig, newProto func(channel string, size int) fanProto) (Result, error) {
	fc, err := cfg.FanoutConfig.normalizeFanout()
	if err != nil {
		return Result{}, err
	}
	if fc.Transport != TransportTCP {
		return Result{}, configErr("pubsub speaks RESP over TCP: Transport %q", fc.Transport)
	}
	if cfg.Channel == "" {
		cfg.Channel = "herald-loadgen"
	}
	return runFanout(ctx, mode, fc, newProto(cfg.Channel, fc.Size))
}

// respProto speaks RESP2 publish/subscribe.
type respProto struct {
	brokerCmds // SUBSCRIBE; PUBLISH up to the payload
}

func newRESPProto(channel string, size int) *respProto {
	return &respProto{brokerCmds{
		subscribe: appendRESPCommand(nil, "SUBSCRIBE", channel),
		pubPrefix: fmt.Appendf(nil, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n", len(channel), channel, size),
	}}
}

// appendRESPCommand appends args as a RESP array of bulk strings.
func appendRESPCommand(dst []byte, args ...string) []byte {
	dst = fmt.Appendf(dst, "*%d\r\n", len(args))
	for _, a := range args {
		dst = fmt.Appendf(dst, "$%d\r\n%s\r\n", len(a), a)
	}
	return dst
}

// brokerCmds is what both brokers' protocols share: a subscription sent
// on the subscriber connection, and publishes of a command prefix, the
// payload and CRLF on a connection of their own.
type brokerCmds struct {
	subscribe []byte // what registers a subscriber
	pubPrefix []byte // a publish command up to the payload
}

func (brokerCmds) separatePub() bool { return true }

func (p brokerCmds) appendRegister(dst []byte, _ uint32, _ int64, _ int) []byte {
	return append(dst, p.subscribe...)
}

func (p brokerCmds) appendData(dst []byte, sender, seq uint32, stamp int64, size int) []byte {
	dst = append(dst, p.pubPrefix...)
	dst = AppendPayload(dst, sender, seq, stamp, size)
	return append(dst, '\r', '\n')
}

// maxBulk bounds a bulk string length loadgen accepts.
const maxBulk = 1 << 20

func (*respProto) decode(in []byte) (msgKind, []byte, int, error) {
	if len(in) == 0 {
		return kindIgnore, nil, 0, nil
	}
	switch in[0] {
	case '*':
	case '-':
		line, _, ok := respLine(in, 1)
		if !ok {
			return kindIgnore, nil, 0, nil
		}
		return kindIgnore, nil, 0, fmt.Errorf("loadgen: redis error: %s", line)
	default:
		return kindIgnore, nil, 0, fmt.Errorf("loadgen: unexpected RESP type %q", in[0])
	}
	count, pos, ok, err := respInt(in, 1)
	if !ok || err != nil {
		return kindIgnore, nil, 0, err
	}
	if count < 1 || count > 4 {
		return kindIgnore, nil, 0, fmt.Errorf("loadgen: unexpected RESP array of %d", count)
	}
	var elems [4][]byte
	for i := range count {
		if pos >= len(in) {
			return kindIgnore, nil, 0, nil
		}
		switch in[pos] {
		case '$':
			l, next, ok, err := respInt(in, pos+1)
			if !ok || err != nil {
				return kindIgnore, nil, 0, err
			}
			if l < 0 || l > maxBulk {
				return kindIgnore, nil, 0, fmt.Errorf("loadgen: RESP bulk length %d", l)
			}
			if next+l+2 > len(in) {
				return kindIgnore, nil, 0, nil
			}
			if in[next+l] != '\r' || in[next+l+1] != '\n' {
				return kindIgnore, nil, 0, fmt.Errorf("loadgen: RESP bulk string not terminated")
			}
			elems[i] = in[next : next+l]
			pos = next + l + 2
		case ':':
			_, next, ok, err := respInt(in, pos+1)
			if !ok || err != nil {
				return kindIgnore, nil, 0, err
			}
			pos = next
		default:
			return kindIgnore, nil, 0, fmt.Errorf("loadgen: unexpected RESP element type %q", in[pos])
		}
	}
	switch string(elems[0]) {
	case "message":
		return kindData, elems[2], pos, nil
	case "subscribe":
		return kindSubscribed, nil, pos, nil
	}
	return kindIgnore, nil, pos, nil
}

// respLine returns the line starting at in[pos] without its CRLF and the
// position after it; ok is false if the line is incomplete.
func respLine(in []byte, pos int) (line []byte, next int, ok bool) {
	for i := pos; i+1 < len(in); i++ {
		if in[i] == '\r' && in[i+1] == '\n' {
			return in[pos:i], i + 2, true
		}
	}
	return nil, 0, false
}

// respInt parses the decimal integer line starting at in[pos].
func respInt(in []byte, pos int) (v, next int, ok bool, err error) {
	line, next, ok := respLine(in, pos)
	if !ok {
		if len(in)-pos > 20 {
			return 0, 0, false, fmt.Errorf("loadgen: RESP integer too long")
		}
		return 0, 0, false, nil
	}
	neg := false
	if len(line) > 0 && line[0] == '-' {
		neg, line = true, line[1:]
	}
	if len(line) == 0 || len(line) > 18 {
		return 0, 0, false, fmt.Errorf("loadgen: bad RESP integer %q", line)
	}
	for _, b := range line {
		if b < '0' || b > '9' {
			return 0, 0, false, fmt.Errorf("loadgen: bad RESP integer %q", line)
		}
		v = v*10 + int(b-'0')
	}
	if neg {
		v = -v
	}
	return v, next, true, nil
}

// RunNATS runs the fan-out scenario against a nats-server (core NATS
// PUB/SUB, the text protocol), as RunPubSub does against redis: each
// client's subscriber connection SUBscribes to cfg.Channel (the barrier
// waits for the PONG that follows), and its publisher connection PUBlishes
// the frames. loadgen speaks the protocol itself, as it does RESP, so the
// client's cost per message is the same for both brokers (nats.go would add
// a *Msg and a callback per delivery). Errors as for RunFanout.
func RunNATS(ctx context.Context, cfg PubSubConfig) (Result, error) {
	return runBroker(ctx, "nats", cfg, func(subj string, size int) fanProto { return newNATSProto(subj, size) })
}

// natsProto speaks core NATS publish/subscribe.
type natsProto struct {
	brokerCmds        // CONNECT, SUB and a PING whose PONG confirms the SUB; PUB up to the payload
	connect    []byte // CONNECT: no +OK acknowledgements
}

func newNATSProto(subject string, size int) *natsProto {
	connect := []byte(`CONNECT {"verbose":false,"pedantic":false,"name":"herald-loadgen","lang":"go","version":"0","protocol":1}` + "\r\n")
	return &natsProto{
		brokerCmds: brokerCmds{
			subscribe: fmt.Appendf(bytes.Clone(connect), "SUB %s 1\r\nPING\r\n", subject),
			pubPrefix: fmt.Appendf(nil, "PUB %s %d\r\n", subject, size),
		},
		connect: connect,
	}
}

// pubHello is written on each publisher connection before its first PUB.
func (p *natsProto) pubHello() []byte { return p.connect }

func (*natsProto) decode(in []byte) (msgKind, []byte, int, error) {
	line, next, ok := respLine(in, 0)
	if !ok {
		if len(in) > 4096 {
			return kindIgnore, nil, 0, fmt.Errorf("loadgen: NATS control line over 4 KiB")
		}
		return kindIgnore, nil, 0, nil
	}
	op, rest, _ := bytes.Cut(line, []byte(" "))
	switch string(op) {
	case "MSG": // MSG <subject> <sid> [reply-to] <#bytes>
		f := bytes.Fields(rest)
		if len(f) < 3 || len(f) > 4 {
			return kindIgnore, nil, 0, fmt.Errorf("loadgen: bad NATS MSG line %q", line)
		}
		n, err := strconv.Atoi(string(f[len(f)-1]))
		if err != nil || n < 0 || n > maxBulk {
			return kindIgnore, nil, 0, fmt.Errorf("loadgen: bad NATS MSG size in %q", line)
		}
		if next+n+2 > len(in) {
			return kindIgnore, nil, 0, nil
		}
		if in[next+n] != '\r' || in[next+n+1] != '\n' {
			return kindIgnore, nil, 0, fmt.Errorf("loadgen: NATS MSG payload not terminated")
		}
		return kindData, in[next : next+n], next + n + 2, nil
	case "PONG":
		return kindSubscribed, nil, next, nil
	case "INFO", "PING", "+OK":
		return kindIgnore, nil, next, nil
	case "-ERR":
		return kindIgnore, nil, 0, fmt.Errorf("loadgen: NATS error: %s", rest)
	}
	return kindUnknown, nil, next, nil
}
