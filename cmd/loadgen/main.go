// Command loadgen drives a herald server (or a baseline from bench/, or
// redis) with many clients, verifies everything that comes back and reports
// throughput and HDR latency percentiles. It is a thin front end to package
// loadgen.
//
// Modes:
//
//	loadgen -mode fanout   -addr 127.0.0.1:7001 -clients 200 -messages 200 -size 64 -window 16
//	loadgen -mode pubsub   -addr 127.0.0.1:6379 -clients 200 -messages 200 -size 64 -window 16
//	loadgen -mode nats     -addr 127.0.0.1:4222 -clients 200 -messages 200 -size 64 -window 16
//	loadgen -mode echo -echo pingpong -addr 127.0.0.1:7000 -clients 50 -duration 5s
//	loadgen -mode pingpong -engine epoll -addr 127.0.0.1:7000 -clients 50 -duration 5s
//	loadgen -mode echo -echo stream   -addr 127.0.0.1:7000 -clients 8 -size 16384 -duration 5s
//	loadgen -mode selftest -clients 50 -messages 1000   # loadgen's own receive ceiling
//	loadgen -mode fanout -transport ws -addr 127.0.0.1:7080 -clients 200 -messages 200 -size 64 -window 16
//	loadgen -mode scale    -addr 127.0.0.1:7001 -clients 10000 -messages 5 -pid SERVER_PID -storm
//
// pingpong and stream are accepted as modes of their own. A progress line
// goes to stderr every second; the summary goes to stdout, or with -json to
// stderr while stdout gets one JSON line (loadgen.Result). The exit status
// is 1 if the run failed or verification found errors, 2 for bad flags.
//
// -free-port prints a free 127.0.0.1 TCP port and exits (for scripts).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/herald-mmo/herald/loadgen"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		mode     = flag.String("mode", "fanout", "fanout, pubsub (redis), nats, echo, selftest, scale (or pingpong, stream)")
		echoMode = flag.String("echo", loadgen.EchoPingPong, "echo mode: pingpong or stream")
		engine   = flag.String("engine", loadgen.EngineGoroutines, "pingpong clients: goroutines (one each) or epoll (all on one loop; Linux, no -rate); scale sessions: the same, epoll by default on Linux")
		addr     = flag.String("addr", "", "server address, or several comma-separated that the clients take in turn (default 127.0.0.1:7001 fanout, :7000 echo, :6379 pubsub)")
		clients  = flag.Int("clients", loadgen.DefaultClients, "number of clients")
		messages = flag.Int("messages", 0, "frames (pingpong: round trips, stream: chunks) per client; 0: until -duration, or 1000 if that is 0 too")
		size     = flag.Int("size", 0, "payload bytes per frame (stream: bytes per write); default 64, stream 16384")
		rate     = flag.Float64("rate", 0, "total frames (messages, chunks) per second over all clients; 0: unlimited")
		window   = flag.Int("window", loadgen.DefaultWindow, "own frames (stream: chunks) outstanding per client")
		duration = flag.Duration("duration", 0, "cap on the sending phase; 0: none")
		channel  = flag.String("channel", "herald-loadgen", "pubsub, nats: redis channel or NATS subject")
		drain    = flag.Duration("drain", loadgen.DefaultDrainTimeout, "how long to wait for frames in flight after the last send")
		timeout  = flag.Duration("timeout", 2*time.Minute, "abort the whole run after this long")
		readBuf  = flag.Int("read-buffer", loadgen.DefaultReadBuffer, "read buffer bytes per connection")
		jsonOut  = flag.Bool("json", false, "print the result as one JSON line on stdout (summary to stderr)")
		quiet    = flag.Bool("quiet", false, "no progress lines")
		freePort = flag.Bool("free-port", false, "print a free 127.0.0.1 TCP port and exit")
		trans    = flag.String("transport", loadgen.TransportTCP, "tcp, or ws: a WebSocket per client, one binary message per frame (fanout, echo; -addr is the WebSocket listener)")
		wsPath   = flag.String("ws-path", loadgen.DefaultWSPath, "-transport ws: the request path")

		pid        = flag.Int("pid", 0, "scale: the server's pid, to read its memory per session from /proc")
		settle     = flag.Duration("settle", time.Second, "scale: wait after the last connect before the first broadcast")
		dialers    = flag.Int("dialers", 64, "scale: connects in flight at once")
		storm      = flag.Bool("storm", false, "scale: then close every connection at once while probing how long the server takes to close a bad connection")
		stormEvery = flag.Duration("storm-interval", 2*time.Millisecond, "scale: spacing of the storm probes")
		stormTail  = flag.Duration("storm-tail", 500*time.Millisecond, "scale: probing after the last close")
		metricsURL = flag.String("metrics", "", "scale -storm: a herald server's /metrics URL (e.g. http://127.0.0.1:9090/metrics): report its loop lag during the storm")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if *freePort {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return 0
	}
	switch *mode {
	case "pingpong", "stream":
		*echoMode, *mode = *mode, "echo"
	}
	if *addr == "" {
		*addr = map[string]string{"fanout": "127.0.0.1:7001", "scale": "127.0.0.1:7001", "nats": "127.0.0.1:4222", "echo": "127.0.0.1:7000", "pubsub": "127.0.0.1:6379"}[*mode]
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var progress func(loadgen.Progress)
	if !*quiet {
		progress = func(p loadgen.Progress) { fmt.Fprintln(os.Stderr, p) }
	}
	cfg := loadgen.Config{
		Addr: *addr, Clients: *clients, Messages: *messages, Size: *size, Rate: *rate, Window: *window,
		Duration: *duration, DrainTimeout: *drain, ReadBuffer: *readBuf, Progress: progress,
		Transport: *trans, WSPath: *wsPath,
	}
	if *mode == "scale" {
		cfg.Messages = *messages // 0: the scale default
		scaleEngine := ""        // epoll on Linux, unless -engine says otherwise
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "engine" {
				scaleEngine = *engine
			}
		})
		return runScale(ctx, loadgen.ScaleConfig{Config: cfg, ServerPID: *pid, Settle: *settle, Dialers: *dialers, Engine: scaleEngine,
			Storm: *storm, StormInterval: *stormEvery, StormTail: *stormTail, Metrics: *metricsURL}, *jsonOut)
	}
	var (
		res loadgen.Result
		err error
	)
	switch *mode {
	case "fanout":
		res, err = loadgen.RunFanout(ctx, cfg)
	case "pubsub":
		res, err = loadgen.RunPubSub(ctx, loadgen.PubSubConfig{FanoutConfig: cfg, Channel: *channel})
	case "nats":
		res, err = loadgen.RunNATS(ctx, loadgen.PubSubConfig{FanoutConfig: cfg, Channel: *channel})
	case "selftest":
		res, err = loadgen.RunSelftest(ctx, cfg)
	case "echo":
		res, err = loadgen.RunEcho(ctx, loadgen.EchoConfig{Config: cfg, Mode: *echoMode, Engine: *engine})
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown -mode %q\n", *mode)
		return 2
	}
	if errors.Is(err, loadgen.ErrConfig) {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	summary, ok := output(res, *jsonOut)
	if !ok {
		return 1
	}
	printSummary(summary, res)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // library errors carry the "loadgen:" prefix
		return 1
	}
	return 0
}

func printSummary(w io.Writer, r loadgen.Result) {
	unit := map[string]string{"pingpong": "round trips", "stream": "chunks"}[r.Mode]
	if unit == "" {
		unit = "frames delivered"
	}
	fmt.Fprintf(w, "%s %s: %d clients, size %d, window %d, %.3fs\n", r.Mode, r.Addr, r.Clients, r.Size, r.Window, r.Elapsed.Seconds())
	fmt.Fprintf(w, "  sent %d, %s %d, %.0f/s, %.1f MB/s", r.Sent, unit, r.Received, r.PerSec, r.MBPerSec)
	if r.Reads > 0 {
		fmt.Fprintf(w, ", %d reads (%.0f bytes/read)", r.Reads, float64(r.Bytes)/float64(r.Reads))
	}
	fmt.Fprintln(w)
	if l := r.Latency; l.Count > 0 {
		fmt.Fprintf(w, "  latency (%d samples): min %v  p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  mean %v\n",
			l.Count, l.Min, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	}
	fmt.Fprintf(w, "  errors %d: lost %d, duplicated %d, reordered %d, corrupt %d, disconnects %d\n",
		r.Errors, r.Lost, r.Duplicated, r.Reordered, r.Corrupt, r.Disconnects)
	for _, s := range r.ErrorSamples {
		fmt.Fprintln(w, "   ", s)
	}
}

// runScale runs -mode scale and prints its result.
func runScale(ctx context.Context, cfg loadgen.ScaleConfig, jsonOut bool) int {
	res, err := loadgen.RunScale(ctx, cfg)
	if errors.Is(err, loadgen.ErrConfig) {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, ok := output(res, jsonOut)
	if !ok {
		return 1
	}
	fmt.Fprintf(w, "scale %s: %d sessions, size %d, connected in %v\n", res.Addr, res.Sessions, res.Size, res.ConnectTime.Round(time.Millisecond))
	if res.RSSAfter > 0 {
		fmt.Fprintf(w, "  server VmRSS %.1f MB -> %.1f MB: %.0f bytes per session\n", float64(res.RSSBefore)/1e6, float64(res.RSSAfter)/1e6, res.PerSession)
	}
	if len(res.Broadcasts) > 0 {
		fmt.Fprintf(w, "  broadcast to everyone: first %v, median %v, all %v\n", res.FirstBroadcast, res.MedianBroadcast, res.Broadcasts)
	}
	if cfg.Storm {
		fmt.Fprintf(w, "  storm: closed %d in %v; probe (bad frame to close) idle max %v; during the storm %d probes, max %v, median %v\n",
			res.Sessions, res.StormCloseTime.Round(time.Millisecond), res.IdleMaxProbe, res.StormProbes, res.StormMaxProbe, res.StormMedProbe)
		if cfg.Metrics != "" {
			fmt.Fprintf(w, "  storm: server loop lag probes %d, %d waited over 10 ms, the longest at most %s\n",
				res.StormLagProbes, res.StormLagOver10, leString(res.StormLagWorst))
		}
	}
	fmt.Fprintf(w, "  copies received %d; errors %d: lost %d, duplicated %d, corrupt %d, disconnects %d\n",
		res.Received, res.Errors, res.Lost, res.Duplicated, res.Corrupt, res.Disconnects)
	for _, s := range res.Samples {
		fmt.Fprintln(w, "   ", s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// output prints res as one JSON line on stdout if jsonOut, and returns
// where the summary goes: stderr then, else stdout. It reports false if res
// could not be encoded.
func output(res any, jsonOut bool) (summary io.Writer, ok bool) {
	if !jsonOut {
		return os.Stdout, true
	}
	line, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return nil, false
	}
	fmt.Println(string(line))
	return os.Stderr, true
}

// leString writes a histogram bucket's upper bound in seconds (-1: +Inf).
func leString(le float64) string {
	if le < 0 {
		return "+Inf"
	}
	return (time.Duration(le * float64(time.Second))).String()
}
