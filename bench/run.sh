#!/usr/bin/env bash
# bench/run.sh: herald against its baselines, measured with cmd/loadgen.
#
# Builds herald's demos (cmd/broadcast, cmd/echo), the baselines (bench/*)
# and loadgen into a temporary directory, then for ROUNDS rounds runs every
# scenario against every server in turn (herald, baseline, baseline, ...,
# herald, ...), each run on a fresh server process on a free 127.0.0.1 port.
# For each run it records loadgen's result (-json), the server's CPU time
# (utime+stime from /proc/PID/stat, before and after the load) and its peak
# RSS (VmHWM), then prints medians per server and herald's ratios to the
# baselines.
#
# Usage: bench/run.sh            (from anywhere inside the repository)
#        ROUNDS=1 QUICK=1 bench/run.sh     smoke run, well under a minute
#
# Scenarios (SCENARIOS, default all nine):
#   fanout1   fan-out FANOUT1 clients x frames (default 200x200), SIZE-byte
#             payloads, window WINDOW: herald, gnetcopy, gochan, redis pub/sub,
#             nats-server
#   fanout2   the same with FANOUT2 (default 50x1000)
#   fanout3   the same with FANOUT3 (default 1000x40) and FANOUT3_SERVERS
#             (default herald, redis, nats: gochan's per-client queue cannot
#             take 1,000 senders' windows, and gnetcopy copies per recipient)
#   scale     loadgen -mode scale: SCALE_CLIENTS idle sessions (default
#             10000) opened in a burst, SCALE_BROADCASTS broadcasts one at a
#             time after 1 s, then a disconnect storm: herald, gnetcopy,
#             gochan; memory per session (VmRSS), time until every session
#             has a broadcast, longest storm probe; for herald also its loop
#             lag probes during the storm (over 10 ms, and the longest)
#   twonode   fan-out TWONODE clients x frames (default 200x200) over two
#             herald nodes sharing the room through one nats-server
#             ("herald2": cmd/broadcast -nats, loadgen's clients alternate
#             between the nodes), next to one herald node and redis pub/sub
#             (TWONODE_SERVERS); cpu and peak memory are summed over every
#             server process (both nodes and nats-server for herald2)
#   wsfanout  fan-out WSFANOUT clients x frames (default 200x200) over
#             WebSocket (loadgen -transport ws): herald's -ws listener
#             ("herald"), the same run over herald's TCP listener
#             ("heraldtcp", the per-frame yardstick), and bench/wsbase
#             (gorilla/websocket, a goroutine pair per connection)
#   stream    echo, pipelined byte stream, MB/s: herald echo, gnetecho, netecho
#   pingpong  echo, one message in flight per client, msgs/s: same servers
#   ppepoll   pingpong with loadgen's epoll engine (-engine epoll): every
#             client on one goroutine, which leaves the server more CPU
#
# Environment knobs (defaults in brackets; QUICK=1 shrinks the sizes):
#   ROUNDS [5]           rounds; medians are over the rounds
#   QUICK [0]            1: fanout 50x50 and 20x200, echo runs of 1s
#   SCENARIOS            subset of "fanout1 fanout2 fanout3 twonode wsfanout stream pingpong ppepoll scale"
#   FANOUT1 [200x200]    CLIENTSxFRAMES per client
#   FANOUT2 [50x1000]
#   FANOUT3 [1000x40]    FANOUT3_SERVERS ["herald redis nats"]
#   TWONODE [200x200]    TWONODE_SERVERS ["herald herald2 redis"]
#   WSFANOUT [200x200]   WSFANOUT_SERVERS ["herald heraldtcp wsbase"]
#   SCALE_CLIENTS [10000]  SCALE_BROADCASTS [5]  SCALE_SERVERS ["herald gnetcopy gochan"]
#   SIZE [64]            fan-out payload bytes
#   WINDOW [16]          fan-out frames outstanding per client
#   STREAM_CLIENTS [8]  STREAM_SIZE [16384]  STREAM_WINDOW [16]
#   PINGPONG_CLIENTS [50]  PINGPONG_SIZE [64]
#   ECHO_DURATION [5s]   length of each echo run
#   FANOUT_SERVERS ["herald gnetcopy gochan redis nats"]
#   ECHO_SERVERS ["herald gnetecho netecho"]
#   FANOUT_MULTICORE [false]  -multicore for herald and the gnet baselines in
#                        fan-out: one event loop each, the load generator needs
#                        the other core
#   ECHO_MULTICORE [true]     the same in echo, where every gnet server, raw gnet
#                        echo included, is faster with a loop per core
#   PPEPOLL_MULTICORE [false] the same in ppepoll: its client is one goroutine,
#                        and every gnet server is faster with one loop then
#   SCALE_MULTICORE [true]    the same in scale: gochan writes to its sessions
#                        from every core, and loadgen's scale client is one
#                        goroutine, so the gnet servers get a loop per core
#   MULTICORE            sets all four
#   HERALD_ARGS ["-log-level warn"]     extra flags for herald's servers
#   BASELINE_ARGS ["-log-level warn"]   extra flags for the baselines
#   GOCHAN_QUEUE [1024]  gochan's per-client queue (frames)
#   HERALD_BROADCAST_PKG [./cmd/broadcast]  HERALD_ECHO_PKG [./cmd/echo]
#                        packages built as "herald" (e.g. ./bench/gnetcopy to
#                        try the runner before herald's demos exist)
#   BASE_REV             a git revision (e.g. HEAD~3, main): its demos are built
#                        too and run as server "base" beside herald in every
#                        fan-out and echo scenario, so a change is measured
#                        against the code before it in the same run
#                        (herald/base ratios, paired by round)
#   RUN_TIMEOUT [120]    seconds before one loadgen run is abandoned
#   OUT [new temp dir]   directory for results.tsv and per-run logs (kept)
#
# redis-server is used if installed (apt-get install redis-server);
# otherwise its runs are skipped with a note. nats-server is built from the
# Go module proxy into the temporary directory (NATS_VERSION [latest]); if
# that fails its runs are skipped with a note. The open-file limit is raised
# to the hard limit (scale needs two descriptors per session, one in each
# process). All traffic stays on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	FANOUT1=${FANOUT1:-50x50}
	FANOUT2=${FANOUT2:-20x200}
	FANOUT3=${FANOUT3:-200x20}
	TWONODE=${TWONODE:-50x50}
	WSFANOUT=${WSFANOUT:-50x50}
	SCALE_CLIENTS=${SCALE_CLIENTS:-2000}
	ECHO_DURATION=${ECHO_DURATION:-1s}
fi
FANOUT1=${FANOUT1:-200x200}
FANOUT2=${FANOUT2:-50x1000}
FANOUT3=${FANOUT3:-1000x40}
FANOUT3_SERVERS=${FANOUT3_SERVERS:-herald redis nats}
TWONODE=${TWONODE:-200x200}
TWONODE_SERVERS=${TWONODE_SERVERS:-herald herald2 redis}
WSFANOUT=${WSFANOUT:-200x200}
WSFANOUT_SERVERS=${WSFANOUT_SERVERS:-herald heraldtcp wsbase}
SCALE_CLIENTS=${SCALE_CLIENTS:-10000}
SCALE_BROADCASTS=${SCALE_BROADCASTS:-5}
SCALE_SERVERS=${SCALE_SERVERS:-herald gnetcopy gochan}
NATS_VERSION=${NATS_VERSION:-latest}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-16}
STREAM_CLIENTS=${STREAM_CLIENTS:-8}
STREAM_SIZE=${STREAM_SIZE:-16384}
STREAM_WINDOW=${STREAM_WINDOW:-16}
PINGPONG_CLIENTS=${PINGPONG_CLIENTS:-50}
PINGPONG_SIZE=${PINGPONG_SIZE:-64}
ECHO_DURATION=${ECHO_DURATION:-5s}
SCENARIOS=${SCENARIOS:-fanout1 fanout2 fanout3 twonode wsfanout stream pingpong ppepoll scale}
FANOUT_SERVERS=${FANOUT_SERVERS:-herald gnetcopy gochan redis nats}
ECHO_SERVERS=${ECHO_SERVERS:-herald gnetecho netecho}
FANOUT_MULTICORE=${FANOUT_MULTICORE:-${MULTICORE:-false}}
ECHO_MULTICORE=${ECHO_MULTICORE:-${MULTICORE:-true}}
PPEPOLL_MULTICORE=${PPEPOLL_MULTICORE:-${MULTICORE:-false}}
SCALE_MULTICORE=${SCALE_MULTICORE:-${MULTICORE:-true}}
HERALD_ARGS=${HERALD_ARGS:-"-log-level warn"}
BASELINE_ARGS=${BASELINE_ARGS:-"-log-level warn"}
GOCHAN_QUEUE=${GOCHAN_QUEUE:-1024}
HERALD_BROADCAST_PKG=${HERALD_BROADCAST_PKG:-./cmd/broadcast}
HERALD_ECHO_PKG=${HERALD_ECHO_PKG:-./cmd/echo}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}

BIN=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench-bin.XXXXXX")
if [[ -n ${OUT:-} ]]; then
	mkdir -p "$OUT"
else
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench-results.XXXXXX")
fi
RESULTS=$OUT/results.tsv
SCALE_RESULTS=$OUT/scale.tsv
CLK_TCK=$(getconf CLK_TCK)
SERVER_PID=
EXTRA_PIDS=() # the other processes of a run with several (herald2)

cleanup() {
	local p
	for p in $SERVER_PID "${EXTRA_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$BIN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# ---- build -----------------------------------------------------------------
log "building into $BIN"
cd "$ROOT"
go build -o "$BIN/loadgen" ./cmd/loadgen
for b in gnetcopy gochan gnetecho netecho wsbase; do
	go build -o "$BIN/$b" "./bench/$b"
done
HAVE_HERALD_BROADCAST=1 HAVE_HERALD_ECHO=1
go build -o "$BIN/herald-broadcast" "$HERALD_BROADCAST_PKG" || {
	log "WARNING: $HERALD_BROADCAST_PKG does not build; herald fan-out runs skipped"
	HAVE_HERALD_BROADCAST=0
}
go build -o "$BIN/herald-echo" "$HERALD_ECHO_PKG" || {
	log "WARNING: $HERALD_ECHO_PKG does not build; herald echo runs skipped"
	HAVE_HERALD_ECHO=0
}
if [[ -n ${BASE_REV:-} ]]; then
	log "building $BASE_REV as server \"base\""
	mkdir -p "$BIN/base-src"
	git -C "$ROOT" archive "$BASE_REV" | tar -x -C "$BIN/base-src"
	(cd "$BIN/base-src" && go build -o "$BIN/base-broadcast" ./cmd/broadcast && go build -o "$BIN/base-echo" ./cmd/echo)
	[[ " $FANOUT_SERVERS " == *" base "* ]] || FANOUT_SERVERS="$FANOUT_SERVERS base"
	[[ " $ECHO_SERVERS " == *" base "* ]] || ECHO_SERVERS="$ECHO_SERVERS base"
fi
HAVE_REDIS=0
if command -v redis-server >/dev/null; then
	HAVE_REDIS=1
else
	log "NOTE: redis-server is not installed; redis runs skipped (install: apt-get install redis-server)"
fi
HAVE_NATS=0
if [[ " $FANOUT_SERVERS $FANOUT3_SERVERS " == *" nats "* || " $SCENARIOS " == *" twonode "* ]]; then
	if (cd "$BIN" && GOBIN=$BIN GOFLAGS= go install "github.com/nats-io/nats-server/v2@$NATS_VERSION") >"$OUT/nats-build.log" 2>&1; then
		HAVE_NATS=1
	else
		log "NOTE: could not build nats-server@$NATS_VERSION (see $OUT/nats-build.log); nats runs skipped"
	fi
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- helpers ---------------------------------------------------------------

# cpu_ticks PID: utime+stime of PID in clock ticks.
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) } # fields after "pid (comm) "; utime and stime are 12th and 13th
	awk '{print $12 + $13}' <<<"$stat"
}

# peak_rss_kb PID: VmHWM of PID in kB.
peak_rss_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# all_cpu_ticks, all_peak_rss_kb, all_alive: the same (and kill -0) over
# the run's server processes, SERVER_PID and EXTRA_PIDS, summed.
all_cpu_ticks() {
	local p t=0
	for p in $SERVER_PID "${EXTRA_PIDS[@]}"; do t=$((t + $(cpu_ticks "$p"))); done
	echo "$t"
}
all_peak_rss_kb() {
	local p t=0
	for p in $SERVER_PID "${EXTRA_PIDS[@]}"; do t=$((t + $(peak_rss_kb "$p"))); done
	echo "$t"
}
all_alive() {
	local p
	for p in $SERVER_PID "${EXTRA_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

# wait_ready PORT PID: wait up to 5s for PORT to accept connections.
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# stop_server: SIGTERM, then SIGKILL after 5s; herald nodes before the
# nats-server they use (EXTRA_PIDS lists it first).
stop_server() {
	local i p pids=()
	[[ -n $SERVER_PID ]] && pids+=("$SERVER_PID")
	for ((i = ${#EXTRA_PIDS[@]} - 1; i >= 0; i--)); do pids+=("${EXTRA_PIDS[i]}"); done
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	SERVER_PID= EXTRA_PIDS=()
}

# jnum KEY: the number after "KEY": in the JSON on stdin.
jnum() { grep -o "\"$1\":[-0-9.e+]*" | head -n1 | cut -d: -f2; }

# run_one SCENARIO SERVER ROUND
run_one() {
	local scenario=$1 server=$2 round=$3
	local port addr kind mode unitdiv clients messages
	port=$("$BIN/loadgen" -free-port)
	addr=127.0.0.1:$port
	local multicore=$ECHO_MULTICORE
	case $scenario in
	fanout1 | fanout2 | fanout3 | twonode | wsfanout) kind=fanout multicore=$FANOUT_MULTICORE ;;
	scale) kind=fanout multicore=$SCALE_MULTICORE ;;
	ppepoll) kind=echo multicore=$PPEPOLL_MULTICORE ;;
	*) kind=echo ;;
	esac

	local -a srv srv2 lg
	local nport= port2= lgaddr=$addr
	case $server in
	herald2)
		nport=$("$BIN/loadgen" -free-port)
		port2=$("$BIN/loadgen" -free-port)
		while [[ $port2 == "$port" || $port2 == "$nport" || $nport == "$port" ]]; do
			nport=$("$BIN/loadgen" -free-port)
			port2=$("$BIN/loadgen" -free-port)
		done
		read -ra extra <<<"$HERALD_ARGS"
		srv=("$BIN/herald-broadcast" -addr "$addr" -nats "nats://127.0.0.1:$nport" -node east -multicore="$multicore" "${extra[@]}")
		srv2=("$BIN/herald-broadcast" -addr "127.0.0.1:$port2" -nats "nats://127.0.0.1:$nport" -node west -multicore="$multicore" "${extra[@]}")
		lgaddr=$addr,127.0.0.1:$port2
		;;
	herald | base | heraldtcp)
		if [[ $scenario == wsfanout && $server != heraldtcp ]]; then
			# loadgen and wait_ready use the WebSocket listener; the
			# TCP one is on a port of its own, unused
			port2=$("$BIN/loadgen" -free-port)
			while [[ $port2 == "$port" ]]; do port2=$("$BIN/loadgen" -free-port); done
			srv=("$BIN/$server-broadcast" -addr "127.0.0.1:$port2" -ws "$addr")
		elif [[ $kind == fanout ]]; then
			srv=("$BIN/herald-broadcast" -addr "$addr")
			[[ $server == base ]] && srv=("$BIN/base-broadcast" -addr "$addr")
		else
			srv=("$BIN/$server-echo" -addr "$addr")
		fi
		read -ra extra <<<"$HERALD_ARGS"
		srv+=(-multicore="$multicore" "${extra[@]}")
		;;
	redis)
		srv=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning)
		;;
	nats)
		srv=("$BIN/nats-server" -a 127.0.0.1 -p "$port")
		;;
	gnetcopy | gochan | gnetecho | netecho | wsbase)
		srv=("$BIN/$server" -addr "$addr")
		read -ra extra <<<"$BASELINE_ARGS"
		srv+=(-multicore="$multicore" "${extra[@]}")
		[[ $server == gochan ]] && srv+=(-queue "$GOCHAN_QUEUE")
		[[ $server == wsbase ]] && srv=("$BIN/wsbase" -addr "$addr" "${extra[@]}") # no -multicore: goroutines
		;;
	esac

	case $scenario in
	scale)
		run_scale "$server" "$round" "$addr" "$port" "${srv[@]}"
		return
		;;
	fanout1 | fanout2 | fanout3 | twonode | wsfanout)
		local shape=$FANOUT1
		[[ $scenario == fanout2 ]] && shape=$FANOUT2
		[[ $scenario == fanout3 ]] && shape=$FANOUT3
		[[ $scenario == twonode ]] && shape=$TWONODE
		[[ $scenario == wsfanout ]] && shape=$WSFANOUT
		clients=${shape%x*} messages=${shape#*x}
		mode=fanout
		[[ $server == redis ]] && mode=pubsub
		[[ $server == nats ]] && mode=nats
		lg=(-mode "$mode" -clients "$clients" -messages "$messages" -size "$SIZE" -window "$WINDOW")
		[[ $scenario == wsfanout && $server != heraldtcp ]] && lg+=(-transport ws)
		unitdiv=1 # CPU per delivered frame
		;;
	stream)
		lg=(-mode stream -clients "$STREAM_CLIENTS" -size "$STREAM_SIZE" -window "$STREAM_WINDOW" -duration "$ECHO_DURATION")
		unitdiv=0 # CPU per MB echoed
		;;
	pingpong | ppepoll)
		lg=(-mode pingpong -clients "$PINGPONG_CLIENTS" -size "$PINGPONG_SIZE" -duration "$ECHO_DURATION")
		[[ $scenario == ppepoll ]] && lg+=(-engine epoll)
		unitdiv=1 # CPU per round trip
		;;
	esac

	local tag=$scenario.$server.$round started=1
	if [[ $server == herald2 ]]; then
		"$BIN/nats-server" -a 127.0.0.1 -p "$nport" >"$OUT/$tag.nats.log" 2>&1 &
		EXTRA_PIDS+=($!)
		wait_ready "$nport" "${EXTRA_PIDS[0]}" || started=0
		"${srv2[@]}" >"$OUT/$tag.server2.log" 2>&1 &
		EXTRA_PIDS+=($!)
		((started)) && { wait_ready "$port2" "${EXTRA_PIDS[1]}" || started=0; }
	fi
	"${srv[@]}" >"$OUT/$tag.server.log" 2>&1 &
	SERVER_PID=$!
	if ! ((started)) || ! wait_ready "$port" "$SERVER_PID"; then
		log "  $tag: server did not start; see $OUT/$tag.server.log"
		tail -n 5 "$OUT/$tag.server.log" >&2 || true
		stop_server
		printf '%s\t%s\t%s\t\t\t\t\t\t\t\t1\tnostart\n' "$scenario" "$server" "$round" >>"$RESULTS"
		return
	fi
	local cpu0 cpu1 rss json rc=0
	cpu0=$(all_cpu_ticks)
	json=$(timeout "$((RUN_TIMEOUT + 10))" "$BIN/loadgen" -addr "$lgaddr" "${lg[@]}" -json -quiet \
		-timeout "${RUN_TIMEOUT}s" 2>"$OUT/$tag.loadgen.log") || rc=$?
	if all_alive; then
		cpu1=$(all_cpu_ticks)
		rss=$(all_peak_rss_kb)
	else
		cpu1=$cpu0 rss=0
		log "  $tag: server died during the run; see $OUT/$tag.server.log"
		[[ $rc == 0 ]] && rc=99
	fi
	stop_server

	local per_sec mbs p50 p99 recv bytes errors
	per_sec=$(jnum per_sec <<<"$json")
	mbs=$(jnum mb_per_sec <<<"$json")
	p50=$(jnum p50_ns <<<"$json")
	p99=$(jnum p99_ns <<<"$json")
	recv=$(jnum received <<<"$json")
	bytes=$(jnum bytes <<<"$json")
	errors=$(jnum errors <<<"$json")
	if [[ -z $per_sec ]]; then
		log "  $tag: loadgen failed (exit $rc): $(tail -n 1 "$OUT/$tag.loadgen.log")"
		printf '%s\t%s\t%s\t\t\t\t\t\t\t\t1\tfail%s\n' "$scenario" "$server" "$round" "$rc" >>"$RESULTS"
		return
	fi
	local units cpu_ns
	if ((unitdiv)); then units=$recv; else units=$(awk -v b="$bytes" 'BEGIN{print b/1e6}'); fi
	cpu_ns=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v u="$units" \
		'BEGIN{ if (u > 0) printf "%.1f", t * 1e9 / hz / u; else print "" }')
	# latency in us; none for stream
	local p50us= p99us=
	if [[ ${p50:-0} != 0 ]]; then
		p50us=$(awk -v v="$p50" 'BEGIN{printf "%.1f", v/1e3}')
		p99us=$(awk -v v="$p99" 'BEGIN{printf "%.1f", v/1e3}')
	fi
	# scenario server round per_sec mb_per_sec p50_us p99_us cpu_ns_per_unit rss_mb cpu_s errors status
	printf '%s\t%s\t%s\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$server" "$round" \
		"$per_sec" "$mbs" "$p50us" "$p99us" \
		"$cpu_ns" "$(awk -v v="$rss" 'BEGIN{printf "%.1f", v/1024}')" \
		"$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}')" \
		"$errors" "$([[ $rc == 0 ]] && echo ok || echo "fail$rc")" >>"$RESULTS"
	log "$(printf '  %-9s %-9s r%-2s %12.0f/s %8.1f MB/s  p50 %8sus  p99 %9sus  cpu %9s ns/%-4s  rss %6.1f MB  errors %s' \
		"$scenario" "$server" "$round" "$per_sec" "$mbs" "${p50us:--}" "${p99us:--}" \
		"${cpu_ns:-?}" "$([[ $unitdiv == 1 ]] && echo unit || echo MB)" \
		"$(awk -v v="$rss" 'BEGIN{print v/1024}')" "$errors")"
}

# run_scale SERVER ROUND ADDR PORT CMD...: one scale run, a line in scale.tsv.
run_scale() {
	local server=$1 round=$2 addr=$3 port=$4
	shift 4
	local tag=scale.$server.$round json rc=0
	local -a lagargs=()
	if [[ $server == herald || $server == base ]]; then
		# herald's loop lag histogram, read by loadgen around the storm
		local mport
		mport=$("$BIN/loadgen" -free-port)
		while [[ $mport == "$port" ]]; do mport=$("$BIN/loadgen" -free-port); done
		set -- "$@" -metrics "127.0.0.1:$mport"
		lagargs=(-metrics "http://127.0.0.1:$mport/metrics")
	fi
	"$@" >"$OUT/$tag.server.log" 2>&1 &
	SERVER_PID=$!
	if ! wait_ready "$port" "$SERVER_PID"; then
		log "  $tag: server did not start; see $OUT/$tag.server.log"
		stop_server
		printf 'scale\t%s\t%s\t\t\t\t\t\t\tnostart\n' "$server" "$round" >>"$SCALE_RESULTS"
		return
	fi
	sleep 0.2 # wait_ready's probe connection is closed and gone
	json=$(timeout "$((RUN_TIMEOUT + 10))" "$BIN/loadgen" -mode scale -addr "$addr" -clients "$SCALE_CLIENTS" \
		-messages "$SCALE_BROADCASTS" -pid "$SERVER_PID" -storm "${lagargs[@]}" -json -quiet -timeout "${RUN_TIMEOUT}s" \
		2>"$OUT/$tag.loadgen.log") || rc=$?
	kill -0 "$SERVER_PID" 2>/dev/null || { log "  $tag: server died; see $OUT/$tag.server.log"; [[ $rc == 0 ]] && rc=99; }
	stop_server
	local per first med storm errors
	per=$(jnum bytes_per_session <<<"$json")
	first=$(jnum first_broadcast_ns <<<"$json")
	med=$(jnum median_broadcast_ns <<<"$json")
	storm=$(jnum storm_max_probe_ns <<<"$json")
	errors=$(jnum errors <<<"$json")
	local lagover= lagworst=
	if ((${#lagargs[@]})); then
		lagover=$(jnum storm_lag_over_10ms <<<"$json")
		lagworst=$(jnum storm_lag_worst_le <<<"$json" | awk '{ if ($1 < 0) print "inf"; else printf "%g\n", $1 * 1000 }')
	fi
	if [[ -z $per ]]; then
		log "  $tag: loadgen failed (exit $rc): $(tail -n 1 "$OUT/$tag.loadgen.log")"
		printf 'scale\t%s\t%s\t\t\t\t\t\t\tfail%s\n' "$server" "$round" "$rc" >>"$SCALE_RESULTS"
		return
	fi
	local ms='BEGIN{printf "%.2f", v/1e6}'
	# scenario server round sessions bytes_per_session first_ms median_ms storm_max_ms errors status
	#   lag_over_10ms lag_worst_ms (herald only)
	printf 'scale\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$SCALE_CLIENTS" "$per" \
		"$(awk -v v="$first" "$ms")" "$(awk -v v="$med" "$ms")" "$(awk -v v="$storm" "$ms")" "$errors" \
		"$([[ $rc == 0 ]] && echo ok || echo "fail$rc")" "$lagover" "$lagworst" >>"$SCALE_RESULTS"
	log "$(printf '  %-9s %-9s r%-2s %6s sessions %6.0f B/session  first %8s ms  median %8s ms  storm max %8s ms  errors %s%s' \
		scale "$server" "$round" "$SCALE_CLIENTS" "$per" "$(awk -v v="$first" "$ms")" "$(awk -v v="$med" "$ms")" \
		"$(awk -v v="$storm" "$ms")" "$errors" "${lagover:+  storm loop lag: $lagover probes over 10 ms, longest <= $lagworst ms}")"
}

servers_for() {
	local list s out=()
	case $1 in
	fanout1 | fanout2) list=$FANOUT_SERVERS ;;
	fanout3) list=$FANOUT3_SERVERS ;;
	twonode) list=$TWONODE_SERVERS ;;
	wsfanout) list=$WSFANOUT_SERVERS ;;
	scale) list=$SCALE_SERVERS ;;
	*) list=$ECHO_SERVERS ;;
	esac
	for s in $list; do
		case $s in
		herald | heraldtcp)
			if [[ $1 == *fanout* || $1 == twonode ]]; then ((HAVE_HERALD_BROADCAST)) || continue; else ((HAVE_HERALD_ECHO)) || continue; fi
			;;
		herald2) ((HAVE_HERALD_BROADCAST && HAVE_NATS)) || continue ;;
		redis) ((HAVE_REDIS)) || continue ;;
		nats) ((HAVE_NATS)) || continue ;;
		esac
		out+=("$s")
	done
	echo "${out[@]}"
}

# ---- runs ------------------------------------------------------------------
printf 'scenario\tserver\tround\tper_sec\tmb_per_sec\tp50_us\tp99_us\tcpu_ns_per_unit\trss_mb\tcpu_s\terrors\tstatus\n' >"$RESULTS"
printf 'scenario\tserver\tround\tsessions\tbytes_per_session\tfirst_ms\tmedian_ms\tstorm_max_ms\terrors\tstatus\tlag_over_10ms\tlag_worst_ms\n' >"$SCALE_RESULTS"
log "rounds=$ROUNDS scenarios=($SCENARIOS) fanout1=$FANOUT1 fanout2=$FANOUT2 fanout3=$FANOUT3 twonode=$TWONODE scale=$SCALE_CLIENTS size=$SIZE window=$WINDOW echo=$ECHO_DURATION fanout_multicore=$FANOUT_MULTICORE echo_multicore=$ECHO_MULTICORE ppepoll_multicore=$PPEPOLL_MULTICORE"
for ((round = 1; round <= ROUNDS; round++)); do
	log "round $round/$ROUNDS"
	for scenario in $SCENARIOS; do
		for server in $(servers_for "$scenario"); do
			run_one "$scenario" "$server" "$round"
		done
	done
done

# ---- report ----------------------------------------------------------------
# median over the runs that verified cleanly (status ok).
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
col() { # col SCENARIO SERVER COLUMN
	awk -F'\t' -v s="$1" -v v="$2" -v c="$3" 'NR>1 && $1==s && $2==v && $12=="ok" && $c!="" {print $c}' "$RESULTS" | median
}
count() { awk -F'\t' -v s="$1" -v v="$2" -v ok="$3" 'NR>1 && $1==s && $2==v && (ok=="" || $12=="ok") {n++} END{print n+0}' "$RESULTS"; }
fmtnum() { awk -v d="$1" '{ if ($1 == "") print "-"; else printf("%." d "f\n", $1) } END { if (NR == 0) print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || b==0) print "-"; else printf "%.2fx", a/b }'; }
# paired SCENARIO COLUMN BASELINE...: the median over rounds of herald's
# throughput over the best of the baselines in the same round (rounds where
# every one of them verified), and the rounds' range.
paired() {
	local scenario=$1 c=$2
	shift 2
	awk -F'\t' -v s="$scenario" -v c="$c" -v bl="$*" -v h="${PAIRED_NUM:-herald}" '
		BEGIN { n = split(bl, b, " ") }
		NR > 1 && $1 == s && $12 == "ok" && $c != "" { v[$2, $3] = $c; r[$3] = 1 }
		END {
			for (round in r) {
				if (!((h, round) in v)) continue
				best = ""
				for (i = 1; i <= n; i++) {
					if (!((b[i], round) in v)) { best = ""; break }
					if (best == "" || v[b[i], round] > best) best = v[b[i], round]
				}
				if (best != "" && best > 0) print v[h, round] / best
			}
		}' "$RESULTS" | sort -g | awk '{a[NR] = $1} END {
			if (NR == 0) { print "-"; exit }
			m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			printf "%.2fx (%.2f-%.2f, %d)", m, a[1], a[NR], NR
		}'
}

declare -A MED
# ratio_row SCENARIO SERVER BASELINE: SERVER's medians over BASELINE's and
# the paired throughput ratio, one line.
ratio_row() {
	printf '%-9s %-40s %12s %12s %10s  %s\n' "$1" "$2/$3" \
		"$(ratio "${MED[$1.$2.tp]}" "${MED[$1.$3.tp]}")" \
		"$(ratio "${MED[$1.$2.cpu]}" "${MED[$1.$3.cpu]}")" \
		"$(ratio "${MED[$1.$2.p99]}" "${MED[$1.$3.p99]}")" \
		"$(PAIRED_NUM=$2 paired "$1" "${4:-4}" "$3")"
}
echo
echo "medians over verified runs (ok/runs); throughput is frames/s delivered (fanout), MB/s (stream), round trips/s (pingpong, ppepoll);"
echo "server cpu is per delivered frame, per MB echoed (stream) or per round trip (pingpong, ppepoll)"
echo "gnet servers (herald included) -multicore: fan-out $FANOUT_MULTICORE, echo $ECHO_MULTICORE, ppepoll $PPEPOLL_MULTICORE, scale $SCALE_MULTICORE"
printf '%-9s %-9s %6s %14s %10s %10s %12s %14s %8s\n' scenario server ok/runs throughput MB/s p50_us p99_us cpu_ns/unit rss_MB
for scenario in $SCENARIOS; do
	[[ $scenario == scale ]] && continue # its own table below
	for server in $(servers_for "$scenario"); do
		tp=$(col "$scenario" "$server" 4)
		[[ $scenario == stream ]] && tp=$(col "$scenario" "$server" 5)
		MED[$scenario.$server.tp]=$tp
		MED[$scenario.$server.cpu]=$(col "$scenario" "$server" 8)
		MED[$scenario.$server.p99]=$(col "$scenario" "$server" 7)
		printf '%-9s %-9s %6s %14s %10s %10s %12s %14s %8s\n' "$scenario" "$server" \
			"$(count "$scenario" "$server" ok)/$(count "$scenario" "$server" "")" \
			"$(fmtnum 0 <<<"$tp")" "$(col "$scenario" "$server" 5 | fmtnum 1)" "$(col "$scenario" "$server" 6 | fmtnum 1)" \
			"$(fmtnum 1 <<<"${MED[$scenario.$server.p99]}")" "$(fmtnum 1 <<<"${MED[$scenario.$server.cpu]}")" \
			"$(col "$scenario" "$server" 9 | fmtnum 1)"
	done
done

echo
echo "herald / baseline (throughput: >1 is better; cpu per unit and p99: <1 is better); paired: median over"
echo "rounds of herald's throughput over the baseline's (echo: the better one's) in the same round (min-max, rounds)"
printf '%-9s %-40s %12s %12s %10s  %s\n' scenario ratio throughput cpu/unit p99 paired
for scenario in $SCENARIOS; do
	[[ $scenario == scale ]] && continue
	list=" $(servers_for "$scenario") "
	[[ $list == *" herald "* || $list == *" herald2 "* ]] || continue
	if [[ $scenario == twonode ]]; then
		[[ $list == *" herald2 "* ]] || continue
		for b in redis herald; do
			[[ $list == *" $b "* ]] || continue
			ratio_row "$scenario" herald2 "$b"
		done
	elif [[ $scenario == wsfanout ]]; then
		for b in wsbase heraldtcp base; do
			[[ $list == *" $b "* ]] || continue
			ratio_row "$scenario" herald "$b"
		done
	elif [[ $scenario == fanout* ]]; then
		for b in redis nats gnetcopy gochan base; do
			[[ $list == *" $b "* ]] || continue
			ratio_row "$scenario" herald "$b"
		done
	else
		best= bestv=
		for b in gnetecho netecho; do
			[[ $list == *" $b "* && -n ${MED[$scenario.$b.tp]} ]] || continue
			if [[ -z $best ]] || awk -v a="${MED[$scenario.$b.tp]}" -v b="$bestv" 'BEGIN{exit !(a>b)}'; then
				best=$b bestv=${MED[$scenario.$b.tp]}
			fi
		done
		[[ -n $best ]] || continue
		tpcol=4
		[[ $scenario == stream ]] && tpcol=5
		printf '%-9s %-40s %12s %12s %10s  %s\n' "$scenario" "herald/max(gnetecho,netecho)=$best" \
			"$(ratio "${MED[$scenario.herald.tp]}" "$bestv")" \
			"$(ratio "${MED[$scenario.herald.cpu]}" "${MED[$scenario.$best.cpu]}")" \
			"$(ratio "${MED[$scenario.herald.p99]}" "${MED[$scenario.$best.p99]}")" \
			"$(paired "$scenario" "$tpcol" $(servers_for "$scenario" | tr ' ' '\n' | grep -v '^herald$' | grep -v '^base$' | tr '\n' ' '))"
		[[ $list == *" base "* ]] && ratio_row "$scenario" herald base "$tpcol"
	fi
done
if [[ " $SCENARIOS " == *" scale "* ]]; then
	scol() { # scol SERVER COLUMN: median over the verified scale runs
		awk -F'\t' -v v="$1" -v c="$2" 'NR>1 && $2==v && $10=="ok" && $c!="" {print $c}' "$SCALE_RESULTS" | median
	}
	# spaired COLUMN BASELINE OP: median over rounds of herald's COLUMN
	# against the baseline's in the same round, OP "ratio" or "diff".
	spaired() {
		awk -F'\t' -v c="$1" -v b="$2" -v op="$3" '
			NR > 1 && $10 == "ok" && $c != "" { v[$2, $3] = $c; r[$3] = 1 }
			END { for (k in r) if ((("herald", k) in v) && ((b, k) in v) && (op == "diff" || v[b, k] > 0))
				print (op == "diff") ? v["herald", k] - v[b, k] : v["herald", k] / v[b, k] }' "$SCALE_RESULTS" |
			sort -g | awk -v op="$3" '{a[NR] = $1} END {
				if (NR == 0) { print "-"; exit }
				m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
				f = (op == "diff") ? "%+.0f B (%+.0f..%+.0f, %d)" : "%.2fx (%.2f-%.2f, %d)"
				printf f, m, a[1], a[NR], NR }'
	}
	echo
	echo "scale: $SCALE_CLIENTS idle sessions opened in a burst; memory per session from VmRSS; time until every"
	echo "session has a broadcast (the first 1 s after the burst, and the median of $SCALE_BROADCASTS); then all close at"
	echo "once while a probe times a bad-frame close (it waits behind the storm's EOFs: how far behind the loops fell). Medians over verified runs."
	echo "herald's loop lag during the storm (its probe task every 10 ms per loop, read from /metrics): probes over 10 ms,"
	echo "and the bucket of the longest, every run."
	printf '%-9s %7s %16s %12s %12s %14s  %s\n' server ok/runs bytes/session first_ms median_ms storm_max_ms "loop lag: over 10 ms/longest <= ms"
	for server in $(servers_for scale); do
		printf '%-9s %7s %16s %12s %12s %14s  %s\n' "$server" \
			"$(awk -F'\t' -v v="$server" 'NR>1 && $2==v && $10=="ok" {n++} END{print n+0}' "$SCALE_RESULTS")/$(awk -F'\t' -v v="$server" 'NR>1 && $2==v {n++} END{print n+0}' "$SCALE_RESULTS")" \
			"$(scol "$server" 5 | fmtnum 0)" "$(scol "$server" 6 | fmtnum 1)" "$(scol "$server" 7 | fmtnum 1)" "$(scol "$server" 8 | fmtnum 1)" \
			"$(awk -F'\t' -v v="$server" 'NR>1 && $2==v && $10=="ok" && $11!="" {printf "%s%s/%s", sep, $11, $12; sep=" "}' "$SCALE_RESULTS")"
	done
	list=" $(servers_for scale) "
	if [[ $list == *" herald "* ]]; then
		echo "herald against the baselines, paired by round: median (min..max, rounds)"
		[[ $list == *" gnetcopy "* ]] && printf '  %-44s %s\n' "bytes/session, herald - gnetcopy" "$(spaired 5 gnetcopy diff)" \
			"storm max probe, herald / gnetcopy" "$(spaired 8 gnetcopy ratio)"
		[[ $list == *" gochan "* ]] && printf '  %-44s %s\n' "first broadcast after the burst, herald / gochan" "$(spaired 6 gochan ratio)" \
			"median broadcast, herald / gochan" "$(spaired 7 gochan ratio)" "bytes/session, herald - gochan" "$(spaired 5 gochan diff)"
	fi
fi
echo
echo "raw results and logs: $OUT"
exit 0
