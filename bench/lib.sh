# shellcheck shell=bash
# Measurements shared by the demo (scripts/demo.sh) and bench/same-host.
# WHERE is one of:
#   host    both ends on the host, over loopback (no container)
#   bridge  c2 -> c1 over the container network (no shim)
#   ffnet   c2 -> c1 with the shim preloaded, through the router
#   ffexec  c2 -> c1, the same programs under ffexec (no LD_PRELOAD): the
#           router's seccomp supervisor accelerates their sockets
# Pinning: throughput runs put the server on CPU $BENCH_SRV_CPU and the
# client on $BENCH_CLI_CPU; latency runs put both on $BENCH_SRV_CPU (on
# this machine an idle vCPU halts, and a ping-pong across two vCPUs
# measures wake-up latency, not the network: see shared/notes).
# Each measure_* prints numbers on stdout; progress goes to stderr.
# BX_SPIN: FFNET_SPIN_US for the ffnet side's programs (libffshim.7).

# shellcheck source=../tests/integ/lib/ffenv.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/integ/lib/ffenv.sh"
# shellcheck source=stats.sh
. "$(dirname "${BASH_SOURCE[0]}")/stats.sh"

: "${BENCH_SECS:=5}"
ncpu=$(nproc)
: "${BENCH_SRV_CPU:=$((ncpu > 1 ? 1 : 0))}"
: "${BENCH_CLI_CPU:=0}"

bench_ip() { [[ $1 == host ]] && echo 127.0.0.1 || echo "$FF_IP1"; }

# bx WHERE SIDE CPU -- CMD...: run in the foreground (SIDE: c1 server, c2 client)
bx() {
	local where=$1 side=$2 cpu=$3
	shift 4
	case $where in
	host) taskset -c "$cpu" "$@" ;;
	bridge) tb_exec "$side" --cpu "$cpu" -- "$@" ;;
	ffnet) ff_x "$side" --cpu "$cpu" ${BX_SPIN:+--env FFNET_SPIN_US=$BX_SPIN} -- "$@" ;;
	ffexec) ff_e "$side" --cpu "$cpu" -- "$@" ;;
	esac
}

# bx_bg WHERE SIDE CPU -- CMD...: start in the background, print a handle
bx_bg() {
	local where=$1 side=$2 cpu=$3
	shift 4
	case $where in
	host)
		taskset -c "$cpu" "$@" >/dev/null 2>&1 &
		echo "pid:$!"
		;;
	bridge) tb_exec_bg "$side" --cpu "$cpu" -- "$@" ;;
	ffnet) ff_x_bg "$side" --cpu "$cpu" ${BX_SPIN:+--env FFNET_SPIN_US=$BX_SPIN} -- "$@" ;;
	ffexec) ff_e_bg "$side" --cpu "$cpu" -- "$@" ;;
	esac
}

bx_stop() { # HANDLE: stop a server and wait until it is gone (its port free)
	local pid i
	if [[ $1 == pid:* ]]; then
		pid=${1#pid:}
		kill "$pid" 2>/dev/null
		# started in a command substitution: not our child, poll for it
		for ((i = 0; i < 200; i++)); do
			[[ -e /proc/$pid ]] || break
			sleep 0.01
		done
		kill -KILL "$pid" 2>/dev/null || true
	else
		tb_kill "$1"
		tb_wait "$1" 10 >/dev/null 2>&1 || true
	fi
}

bx_wait_port() { # WHERE PORT (a failed measurement reads 0; the run goes on)
	local i
	if [[ $1 == host ]]; then
		for ((i = 0; i < 250; i++)); do
			ss -ltn 2>/dev/null | grep -q ":$2 " && return 0
			sleep 0.02
		done
		return 1
	fi
	tb_wait_port c1 "$2"
}

# measure_iperf WHERE STREAMS: received Gbit/s
measure_iperf() {
	local where=$1 p=$2 srv out port=5301
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- iperf3 -s -p $port)
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo 0; return 0; }
	out=$(bx "$where" c2 "$BENCH_CLI_CPU" -- iperf3 -c "$(bench_ip "$where")" -p $port \
		-t "$BENCH_SECS" -P "$p" -J 2>/dev/null || true)
	bx_stop "$srv"
	[[ $(iperf_gbps "$out") != 0 ]] ||
		ff_log "iperf3 -P $p in $where failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null | tail -n 1)"
	iperf_gbps "$out"
}

# measure_sockperf WHERE: "P50 P99" in microseconds (ping-pong, both ends on one CPU)
measure_sockperf() {
	local where=$1 srv out port=11311
	# (sockperf sends with sendto(address) on its TCP socket: ffexec --sendto)
	local opt=()
	[[ $where == ffexec ]] && opt=(--sendto)
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- "${opt[@]}" sockperf sr --tcp -i 0.0.0.0 -p $port)
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo "0 0"; return 0; }
	out=$(bx "$where" c2 "$BENCH_SRV_CPU" -- "${opt[@]}" sockperf pp --tcp -i "$(bench_ip "$where")" -p $port \
		-t "$BENCH_SECS" 2>&1 || true)
	bx_stop "$srv"
	grep -q 'percentile 50.000' <<<"$out" ||
		ff_log "sockperf in $where failed: $(grep -m 1 ERROR <<<"$out" || tail -n 1 <<<"$out")"
	sockperf_pcts "$out"
}

# measure_redis WHERE: "SET GET" requests/s (redis-benchmark -t set,get, 50 clients)
measure_redis() {
	local where=$1 srv out port=6389 n=$((BENCH_SECS * 40000))
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- redis-server --port $port --save '' \
		--appendonly no --protected-mode no)
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo "0 0"; return 0; }
	out=$(bx "$where" c2 "$BENCH_CLI_CPU" -- redis-benchmark -h "$(bench_ip "$where")" -p $port \
		-t set,get -n "$n" -c 50 -q 2>&1 | tr '\r' '\n' || true)
	bx_stop "$srv"
	printf '%s %s\n' \
		"$(sed -n 's/^ *SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)" \
		"$(sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)"
}

# Connection set-up: bench/connrate (glibc) everywhere, gonet (static Go,
# tests/progs) where no shim is meant to reach it. The image has gonet but
# not connrate: bench_setup copies it into the containers.
BENCH_CONNRATE=$FF_BUILD/bench/connrate
BENCH_CONNRATE_IN=/usr/local/bin/connrate
bench_gonet() { [[ -x $FF_BUILD/tests/progs/gonet ]]; } # built, so in the image
bench_connrate() { [[ $1 == host ]] && echo "$BENCH_CONNRATE" || echo "$BENCH_CONNRATE_IN"; }

# measure_connrate WHERE: connections/s of one connrate client (0 on failure)
measure_connrate() {
	local where=$1 srv out c port=7400
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- "$(bench_connrate "$where")" server $port)
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo 0; return 0; }
	out=$(bx "$where" c2 "$BENCH_CLI_CPU" -- "$(bench_connrate "$where")" client "$(bench_ip "$where")" \
		$port "$BENCH_SECS" 2>&1 || true)
	bx_stop "$srv"
	c=$(sed -n 's/^\([0-9]*\) connections\/s$/\1/p' <<<"$out" | head -n 1)
	[[ -n $c ]] || ff_log "connrate in $where failed: $(tail -n 2 <<<"$out")"
	echo "${c:-0}"
}

# measure_calls WHERE: microseconds per getsockname and per setsockopt
# (TCP_NODELAY) on one held connection, the calls ffexec traps ("0 0" on
# failure)
measure_calls() {
	local where=$1 srv out g o port=7402
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- "$(bench_connrate "$where")" hold $port)
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo 0 0; return 0; }
	out=$(bx "$where" c2 "$BENCH_CLI_CPU" -- "$(bench_connrate "$where")" calls "$(bench_ip "$where")" \
		$port 20000 2>&1 || true)
	bx_stop "$srv"
	read -r g o < <(sed -n 's/^getsockname \([0-9.]*\) us setsockopt \([0-9.]*\) us$/\1 \2/p' <<<"$out")
	[[ -n ${g:-} ]] || ff_log "connrate calls in $where failed: $(tail -n 2 <<<"$out")"
	echo "${g:-0} ${o:-0}"
}

# measure_gonet WHERE: requests/s of one `gonet rate` worker, each request
# on a new connection (0 on failure or on any error)
measure_gonet() {
	local where=$1 srv out c port=7401
	srv=$(bx_bg "$where" c1 "$BENCH_SRV_CPU" -- gonet serve "0.0.0.0:$port")
	bx_wait_port "$where" $port || { bx_stop "$srv"; echo 0; return 0; }
	out=$(bx "$where" c2 "$BENCH_CLI_CPU" -- gonet rate "http://$(bench_ip "$where"):$port/bytes?n=100" \
		-d "$BENCH_SECS" 2>&1 || true)
	bx_stop "$srv"
	c=$(sed -n 's/^requests [0-9]* errors 0 per_sec \([0-9.]*\)$/\1/p' <<<"$out" | head -n 1)
	[[ -n $c ]] || ff_log "gonet rate in $where failed: $(tail -n 2 <<<"$out")"
	echo "${c:-0}"
}

# bench_setup NAME SUBNET: test bed, router, two registered containers
# (with connrate; gonet when it was built)
bench_setup() {
	local c
	tb_ensure iperf3 sockperf redis-server redis-benchmark:redis-tools jq taskset:util-linux || return 1
	[[ -x $BENCH_CONNRATE ]] || { ff_log "build first (scripts/build.sh): no $BENCH_CONNRATE"; return 1; }
	ff_init "$1" || return $?
	ff_router_start || return 1
	ff_pair "$2" || return 1
	# into each container's root, seen from the host (either backend)
	for c in c1 c2; do
		cp "$BENCH_CONNRATE" "/proc/$(tb_pid "$c")/root$BENCH_CONNRATE_IN" || return 1
	done
}
