#!/usr/bin/env bash
# bench/rdma-sockets: TCP sockets between containers on two hosts carried
# over RDMA by the routers (issue 13), against the same containers over
# ffnet's host-TCP hand-off, against rsocket, and against the device's own
# limit, all on one rxe pair in one run of the rxe VM (tests/vm/ffvm,
# layout pair: rxe0 on veth0 10.77.0.1, rxe1 on veth1 10.77.0.2, RDMA
# namespaces exclusive). The setups:
#   rdma     ffnet over RDMA: router h1 on rxe0 and h2 on rxe1, each
#            declaring the other --rdma (--sock-rdma auto); the client in
#            container a on h1, the server in container b on h2 (network
#            namespaces with no link and no RDMA device, shim preloaded):
#            the apps hold an AF_UNIX end, the routers move the bytes over
#            one RC QP between them
#   tcp      ffnet over host TCP: a second pair of routers on the same
#            devices and addresses (h1t on rxe0, h2t on rxe1, ingress port
#            7947), declaring each other --rdma too but started with
#            --sock-rdma off; client in container c on h1t, server in d on
#            h2t, addressed like a and b: the host-TCP hand-off
#   rsocket  rdma-core's rsocket, natively: the server bound to 10.77.0.1
#            (rxe0), the client from 10.77.0.2 (rxe1). Debian's
#            librspreload.so (package librdmacm1) under iperf3 and
#            sockperf when it can run them (checked at the start of every
#            run of this script: see "rsocket:" in the header), otherwise
#            only rdma-core's own rstream (rdmacm-utils) and connrate
#   native   ib_write_bw and ib_send_bw, 64 KiB, server on rxe0, client on
#            rxe1 (the device's limit at that size)
# The ffnet setups send a -> b (rxe0 to rxe1), rsocket and perftest rxe1
# to rxe0: the two devices are alike, on one veth pair.
# Figures (each the median of BENCH_RUNS interleaved runs):
#   iperf3   1 stream, 64 KiB writes (-l 64K), -t BENCH_SECS: MiB/s the
#            server received (rdma, tcp; rsocket if librspreload runs it)
#   rstream  the same program everywhere: rstream -T s (kernel sockets)
#            in the containers for rdma and tcp, rsocket natively; 64 KiB
#            x BENCH_RS_COUNT each way (MiB/s), and a 64 B ping-pong x
#            BENCH_RS_ITERS (its usec/xfer: the mean half round trip).
#            rstream's default mode, non-blocking calls in a busy loop
#            (rsocket polls its CQ itself; the ffnet apps spin on their
#            AF_UNIX ends and leave the routers only what the 2 vCPUs
#            have left); BENCH_RS_MODE=b runs every rstream blocking (-T b)
#            instead. In two runs of this script, busy then blocking:
#            ffnet RDMA 7.9 then 14.1 MiB/s at 64 KiB, 1062 then 975 us
#            at 64 B; rsocket 12.7 then 18.3 MiB/s, 46 then 271 us
#   sockperf ping-pong --tcp --msg-size 64 -t BENCH_SECS: p50, p99 (us,
#            half round trip; rdma, tcp; rsocket if librspreload runs it)
#   connrate bench/connrate, connections/s for BENCH_SECS: connect, read
#            the server's close (rdma and tcp in the containers, rsocket
#            under librspreload)
#   CPU/GB   utime+stime of both routers of the setup (/proc/PID/stat)
#            from before iperf3's server starts to after both ends exit,
#            over the bytes the server received: CPU seconds per 10^9 B.
#            rxe is a CPU's work: what it does inside the routers' verbs
#            calls (posting, polling) is charged to them too
#   perftest ib_write_bw, ib_send_bw -s 65536 -n BENCH_PERF_ITERS (MiB/s:
#            perftest's MB/sec are 2^20 B)
# Units: MiB/s everywhere, so iperf3 and rstream compare with perftest.
# Order: the tests in the order of TESTS, each over every setup back to
# back; the setups' order reverses from run to run.
# Checks: every ffnet figure counts only if the connections took the
# setup's path: rdma, h1's .rsock.conns_total grew, .rsock.fallbacks did
# not, and (iperf3) h1's pair with h2 sent at least what b received; tcp,
# h1t handed off connections (.conns_total) and made no RDMA ones. A
# figure that fails (program error, timeout, wrong path) is left out, said
# on stderr and listed under the table; its median is over the rest.
#
# Under QEMU TCG, soft-RoCE is much slower than the kernel's TCP (rxe's
# work is emulated CPU work, TCP over a veth is a memcpy): ffnet over RDMA
# is expected to lose to ffnet over TCP here, and that ratio is printed
# for information only. Compare within RDMA: ffnet RDMA against rsocket
# and against native perftest on the same devices in the same run.
# Targets (issue 13, printed next to the ratios, never enforced):
# throughput >= 1.0x rsocket and >= 0.8x native ib_write_bw at 64 KiB;
# p50 <= 1.0x rsocket; connects/s >= 1.0x rsocket. When librspreload
# cannot run iperf3 or sockperf, the rsocket ratios use rstream (mean
# latency, not p50) and say so.
# Noise: another VM on this machine's 2 CPUs moves every figure by up to
# 10x from one run to the next (rsocket's 64 B rstream ping-pong measured
# from 42 us to 3.8 ms in the VM runs of one afternoon; perftest's clock
# estimate fails now and then, see "figures left out"); the header shows
# the host's load average before and after.
#
#   bench/rdma-sockets.sh        (root; after scripts/build.sh)
# Prints a table on stdout (progress on stderr), writes
# bench/out/rdma-sockets.json and .png, keeps every program's output and
# the router logs in bench/out/rdma-sockets/. Exits 77 when the VM cannot
# run here, 124 when it times out, 0 otherwise (whatever the ratios).
# A run of the defaults takes 5 to 6 minutes in the VM.
# Environment: BENCH_RUNS (3), BENCH_SECS (3), BENCH_RS_COUNT (160),
# BENCH_RS_ITERS (500), BENCH_RS_MODE (empty: non-blocking; b: blocking),
# BENCH_PERF_ITERS (500), BENCH_SETTLE (1 s before each measurement),
# BENCH_VM_TIMEOUT (1200 s), BENCH_OUT (bench/out), FF_BUILD (build/),
# BENCH_ROUTER_ARGS (extra options for all four routers, e.g.
# "--log-level debug").
set -euo pipefail
here=$(cd "$(dirname -- "$(readlink -f -- "$0")")" && pwd -P)
top=$(dirname -- "$here")
# shellcheck source=../tests/vm/lib.sh
. "$top/tests/vm/lib.sh"
# shellcheck source=stats.sh
. "$here/stats.sh"

# The tests, in the order they run (each m_TEST skips the setups it has
# no figure for).
TESTS=(iperf perftest rs_bw sockperf rs_lat conns)
RSP_GLOB='/usr/lib/*/rsocket/librspreload.so'

# ---------------------------------------------------------------- guest --

log() { printf '%s\n' "$*"; }

# on_cmd WHERE ROLE SECS CMD...: in ON, the command line that runs CMD
# under timeout -k 5 SECS as the server or the client of WHERE (rdma:
# containers b and a, as vb_ct runs them; tcp: d and c; rsocket: natively,
# with librspreload.so preloaded into CMD unless RS_PRELOAD=0). An array,
# not a function, so that a server started with & is its own process (ip
# netns exec, env and timeout each exec the next): killing that pid stops
# timeout, which stops CMD.
on_cmd() {
	local where=$1 role=$2 secs=$3 ct=
	shift 3
	case $where:$role in
	rdma:server) ct=b ;;
	rdma:client) ct=a ;;
	tcp:server) ct=d ;;
	tcp:client) ct=c ;;
	esac
	if [[ -n $ct ]]; then
		ON=(ip netns exec "ffv-$ct" env LD_PRELOAD="$VB_SHIM"
			FFNET_SOCK="${VB_RUNDIR[${VB_NS[$ct]}]}/c/$ct/ffrouter.sock" timeout -k 5 "$secs" "$@")
	elif [[ ${RS_PRELOAD:-1} == 1 ]]; then
		ON=(timeout -k 5 "$secs" env LD_PRELOAD="$RSP" "$@")
	else
		ON=(timeout -k 5 "$secs" "$@")
	fi
}
on() { # WHERE ROLE SECS CMD...: runs what on_cmd makes
	on_cmd "$@"
	"${ON[@]}"
}
srv_ip() { [[ $1 == rsocket ]] && echo 10.77.0.1 || echo 10.78.0.2; }
cli_ip() { [[ $1 == rsocket ]] && echo 10.77.0.2 || echo 10.78.0.1; }

# wait_srv WHERE PORT: until WHERE's server listens on PORT (rsocket: an
# rdma_cm id in state LISTEN); 1 after 15 s.
wait_srv() {
	local i ns=b
	[[ $1 == tcp ]] && ns=d
	for ((i = 0; i < 150; i++)); do
		if [[ $1 == rsocket ]]; then
			rdma res show cm_id 2>/dev/null | grep -Eq "state LISTEN .*src-addr [^ ]*:$2 " && return 0
		else
			[[ -n $(ip netns exec "ffv-$ns" ss -Hltn "sport = :$2") ]] && return 0
		fi
		sleep 0.1
	done
	return 1
}

# start_srv WHERE LOG CMD...: CMD as WHERE's server in the background
# (timeout-bounded), its output in LOG; its pid in SPID.
start_srv() {
	local where=$1 out=$2
	shift 2
	on_cmd "$where" server "$T_MAX" "$@"
	"${ON[@]}" >"$out" 2>&1 &
	SPID=$!
}
stop_srv() { # stop SPID (a server that does not end by itself)
	kill -TERM "$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}

ticks() { # PID...: their utime + stime, in clock ticks
	local p sum=0 t
	for p; do
		t=$(awk '{ print $14 + $15 }' "/proc/$p/stat") || return 1
		sum=$((sum + t))
	done
	echo "$sum"
}
ticks_of() { # WHERE: the CPU ticks of its two routers so far
	case $1 in
	rdma) ticks "${VB_PID[h1]}" "${VB_PID[h2]}" ;;
	tcp) ticks "${VB_PID[h1t]}" "${VB_PID[h2t]}" ;;
	esac
}

# snap WHERE: "RSOCK-CONNS-TOTAL FALLBACKS PAIR-TX HANDOFFS" of the client's
# router (h1 for rdma, h1t for tcp); empty for rsocket.
snap() {
	local h peer
	case $1 in
	rdma) h=h1 peer=h2 ;;
	tcp) h=h1t peer=h2t ;;
	*) return 0 ;;
	esac
	vb_status "$h" --json | jq -r --arg p "$peer" '[(.rsock.conns_total // 0), (.rsock.fallbacks // 0),
		([.rsock.pairs[]? | select(.host == $p) | .tx_bytes] | add // 0), (.conns_total // 0)] | @tsv'
}

# path_ok WHERE BEFORE AFTER [BYTES]: the connections since snapshot
# BEFORE took WHERE's path (see the top of this file); else says why on
# stdout and returns 1.
path_ok() {
	local t0 f0 x0 h0 t1 f1 x1 h1
	[[ $1 == rsocket ]] && return 0
	read -r t0 f0 x0 h0 <<<"$2"
	read -r t1 f1 x1 h1 <<<"$3"
	if [[ $1 == rdma ]]; then
		((f1 == f0)) || { echo "h1 counted $((f1 - f0)) fallbacks from RDMA to TCP"; return 1; }
		((t1 > t0)) || { echo "h1's .rsock.conns_total did not grow: not over RDMA"; return 1; }
		((x1 - x0 >= ${4:-0})) ||
			{ echo "h1's pair with h2 sent $((x1 - x0)) B, less than the $4 B b received"; return 1; }
	else
		((t1 == t0)) || { echo "h1t made $((t1 - t0)) RDMA connections with --sock-rdma off"; return 1; }
		((h1 > h0)) || { echo "h1t handed off no connection"; return 1; }
	fi
	return 0
}

record() { # KEY WHERE VALUE
	printf '%s %s %s %s\n' "$1" "$2" "$RUN" "$3" >>"$RESULTS"
}
# miss KEY WHERE WHY [FILE...]: a figure left out; the files' ends on stderr
miss() {
	local key=$1 where=$2 why=${3//[$'\t\n']/ } f
	shift 3
	printf '%s\t%s\t%s\t%s\n' "$key" "$where" "$RUN" "$why" >>"$FAILURES"
	printf 'run %s %-7s %-9s FAILED: %s\n' "$RUN" "$where" "$key" "$why" >&2
	for f; do
		[[ -s $f ]] && { printf -- '----- %s (last lines)\n' "$(basename "$f")" >&2; tail -n 15 "$f" >&2; }
	done
	return 0
}

next_port() { PORT=$((PORT + 1)); }

# ---- the measurements: m_TEST WHERE, each records its figures or misses

m_iperf() {
	local w=$1 lg=$LOGS/iperf.$1.$RUN c0 c1 s0 s1 crc=0 bytes secs mib why bind=()
	next_port
	s0=$(snap "$w")
	[[ $w == rsocket ]] || c0=$(ticks_of "$w")
	start_srv "$w" "$lg.server" iperf3 -s -1 -B "$(srv_ip "$w")" -p "$PORT"
	if ! wait_srv "$w" "$PORT"; then
		stop_srv
		miss iperf "$w" "no iperf3 server on port $PORT" "$lg.server"
		return 0
	fi
	[[ $w == rsocket ]] && bind=(-B "$(cli_ip "$w")")
	on "$w" client "$((SECS + 30))" iperf3 -c "$(srv_ip "$w")" "${bind[@]}" -p "$PORT" \
		-l 64K -t "$SECS" -J >"$lg.client" 2>&1 || crc=$?
	# the server ends once its client has (-1), unless the client failed
	if ((crc)); then stop_srv; else wait "$SPID" 2>/dev/null || true; fi
	[[ $w == rsocket ]] || c1=$(ticks_of "$w")
	s1=$(snap "$w")
	bytes=$(jq -r '.end.sum_received.bytes // 0' "$lg.client" 2>/dev/null || echo 0)
	secs=$(jq -r '.end.sum_received.seconds // 0' "$lg.client" 2>/dev/null || echo 0)
	if ((crc != 0)) || [[ $bytes == 0 || $secs == 0 ]]; then
		miss iperf "$w" "iperf3 client exited $crc, server received $bytes B ($(jq -r '.error // empty' \
			"$lg.client" 2>/dev/null))" "$lg.client" "$lg.server"
		return 0
	fi
	if ! why=$(path_ok "$w" "$s0" "$s1" "$bytes"); then
		miss iperf "$w" "$why"
		return 0
	fi
	mib=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.2f", b / s / 1048576 }')
	record iperf "$w" "$mib"
	if [[ $w != rsocket ]]; then
		record cpu_gb "$w" "$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v b="$bytes" \
			'BEGIN { printf "%.2f", t / hz / (b / 1e9) }')"
	fi
	log "run $RUN $w iperf3: $mib MiB/s ($bytes B in $secs s), routers' CPU $(((${c1:-0} - ${c0:-0}) * 1000 / HZ)) ms"
}

# perftest PROG KEY: native PROG -s 65536, rxe1 -> rxe0; a run whose
# clock estimate failed (a descheduled guest) is run again, 3 tries.
m_perf_one() {
	local prog=$1 key=$2 lg=$LOGS/$2.native.$RUN try crc src line avg
	for try in 1 2 3; do
		next_port
		crc=0 src=0
		timeout -k 5 "$T_MAX" "$prog" -d rxe0 -x 1 -F -s 65536 -n "$PERF_ITERS" -p "$PORT" \
			>"$lg.server" 2>&1 &
		SPID=$!
		wait_listen "$PORT"
		timeout -k 5 "$T_MAX" "$prog" -d rxe1 -x 1 -F -s 65536 -n "$PERF_ITERS" -p "$PORT" 10.77.0.1 \
			>"$lg.client" 2>&1 || crc=$?
		wait "$SPID" || src=$?
		grep -q 'Correlation coefficient' "$lg.client" || break
		log "run $RUN native $prog: perftest could not estimate its clock (try $try)"
		((try == 3)) || { mv "$lg.client" "$lg.client.try$try"; mv "$lg.server" "$lg.server.try$try"; }
	done
	line=$(grep -E "^[[:space:]]*65536[[:space:]]+${PERF_ITERS}[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+" \
		"$lg.client" || true)
	read -r _ _ _ avg _ <<<"$line"
	if grep -q 'Correlation coefficient' "$lg.client"; then
		miss "$key" native "$prog: perftest could not estimate its clock in 3 tries (a busy host)"
		return 0
	fi
	if ((crc != 0 || src != 0)) || ! awk -v a="${avg:-0}" 'BEGIN { exit !(a > 0) }'; then
		miss "$key" native "$prog: client exited $crc, server $src, result line '${line//[[:space:]]/ }'" \
			"$lg.client" "$lg.server"
		return 0
	fi
	record "$key" native "$avg"
	log "run $RUN native $prog 64 KiB x $PERF_ITERS: $avg MiB/s"
}
m_perftest() {
	[[ $1 == native ]] || return 0
	m_perf_one ib_write_bw write_bw
	m_perf_one ib_send_bw send_bw
}

# rstream WHERE KEY ARGS...: one rstream pair (-T s in the containers),
# the client's usec/xfer in RS_USEC.
rstream_pair() {
	local w=$1 key=$2 lg=$LOGS/$2.$1.$RUN crc=0 src=0 ts=() s0 s1 why
	shift 2
	RS_USEC=
	next_port
	[[ $w == rsocket ]] || ts=(-T s)
	[[ -z $RS_MODE ]] || ts+=(-T "$RS_MODE")
	s0=$(snap "$w")
	RS_PRELOAD=0 start_srv "$w" "$lg.server" rstream "${ts[@]}" -b "$(srv_ip "$w")" -p "$PORT" "$@"
	if ! wait_srv "$w" "$PORT"; then
		stop_srv
		miss "$key" "$w" "no rstream server on port $PORT" "$lg.server"
		return 1
	fi
	RS_PRELOAD=0 on "$w" client "$T_MAX" rstream "${ts[@]}" -s "$(srv_ip "$w")" \
		-b "$(cli_ip "$w")" -p "$PORT" "$@" >"$lg.client" 2>&1 || crc=$?
	if ((crc)); then
		stop_srv
	else
		wait "$SPID" || src=$?
	fi
	s1=$(snap "$w")
	RS_USEC=$(awk '$1 == "custom" { v = $NF } END { print v }' "$lg.client")
	if ((crc != 0 || src != 0)) || ! awk -v u="${RS_USEC:-0}" 'BEGIN { exit !(u > 0) }'; then
		miss "$key" "$w" "rstream: client exited $crc, server $src, usec/xfer '$RS_USEC'" \
			"$lg.client" "$lg.server"
		return 1
	fi
	if ! why=$(path_ok "$w" "$s0" "$s1"); then
		miss "$key" "$w" "$why"
		return 1
	fi
}
m_rs_bw() {
	local mib
	[[ $1 == native ]] && return 0
	rstream_pair "$1" rs_bw -S 65536 -C "$RS_COUNT" -I 1 || return 0
	mib=$(awk -v u="$RS_USEC" 'BEGIN { printf "%.2f", 65536 / u * 1e6 / 1048576 }')
	record rs_bw "$1" "$mib"
	log "run $RUN $1 rstream 64 KiB x $RS_COUNT each way: $mib MiB/s ($RS_USEC us/xfer)"
}
m_rs_lat() {
	[[ $1 == native ]] && return 0
	rstream_pair "$1" rs_lat -S 64 -C 1 -I "$RS_ITERS" || return 0
	record rs_lat "$1" "$RS_USEC"
	log "run $RUN $1 rstream 64 B ping-pong x $RS_ITERS: $RS_USEC us per transfer"
}

m_sockperf() {
	local w=$1 lg=$LOGS/sockperf.$1.$RUN crc=0 s0 s1 p50 p99 why
	[[ $w == native ]] && return 0
	[[ $w == rsocket && $RS_SOCKPERF != ok ]] && return 0
	next_port
	s0=$(snap "$w")
	start_srv "$w" "$lg.server" sockperf sr --tcp -i "$(srv_ip "$w")" -p "$PORT"
	if ! wait_srv "$w" "$PORT"; then
		stop_srv
		miss sockperf "$w" "no sockperf server on port $PORT" "$lg.server"
		return 0
	fi
	on "$w" client "$((SECS + 30))" sockperf pp --tcp -i "$(srv_ip "$w")" -p "$PORT" \
		-t "$SECS" --msg-size 64 >"$lg.client.raw" 2>&1 || crc=$?
	stop_srv
	s1=$(snap "$w")
	sed 's/\x1b\[[0-9;]*m//g' "$lg.client.raw" >"$lg.client"
	read -r p50 p99 <<<"$(sockperf_pcts "$(<"$lg.client")")"
	if ((crc != 0)) || [[ -z $p50 || -z $p99 ]]; then
		miss sockperf "$w" "sockperf pp exited $crc, p50 '$p50' p99 '$p99'" "$lg.client" "$lg.server"
		return 0
	fi
	if ! why=$(path_ok "$w" "$s0" "$s1"); then
		miss sockperf "$w" "$why"
		return 0
	fi
	record p50 "$w" "$p50"
	record p99 "$w" "$p99"
	log "run $RUN $w sockperf ping-pong 64 B: p50 $p50 us, p99 $p99 us"
}

m_conns() {
	local w=$1 lg=$LOGS/conns.$1.$RUN crc=0 s0 s1 c why
	[[ $w == native ]] && return 0
	next_port
	s0=$(snap "$w")
	start_srv "$w" "$lg.server" "$CONNRATE" server "$PORT"
	if ! wait_srv "$w" "$PORT"; then
		stop_srv
		miss conns "$w" "no connrate server on port $PORT" "$lg.server"
		return 0
	fi
	on "$w" client "$((SECS + 30))" "$CONNRATE" client "$(srv_ip "$w")" "$PORT" "$SECS" \
		>"$lg.client" 2>&1 || crc=$?
	stop_srv
	s1=$(snap "$w")
	c=$(sed -n 's/^\([0-9]*\) connections\/s$/\1/p' "$lg.client" | head -n 1)
	if ((crc != 0)) || [[ -z $c ]]; then
		miss conns "$w" "connrate client exited $crc" "$lg.client" "$lg.server"
		return 0
	fi
	if ! why=$(path_ok "$w" "$s0" "$s1"); then
		miss conns "$w" "$why"
		return 0
	fi
	record conns "$w" "$c"
	log "run $RUN $w connrate: $c connections/s"
}

# rs_probe: can librspreload run iperf3 and sockperf here? Sets
# RS_IPERF and RS_SOCKPERF to "ok" or to what went wrong.
rs_probe() {
	local lg=$LOGS/probe crc=0 bytes
	RUN=0
	next_port
	start_srv rsocket "$lg.iperf3.server" iperf3 -s -1 -B 10.77.0.1 -p "$PORT"
	if wait_srv rsocket "$PORT"; then
		on rsocket client 12 iperf3 -c 10.77.0.1 -B 10.77.0.2 -p "$PORT" -l 64K -t 1 -J \
			>"$lg.iperf3.client" 2>&1 || crc=$?
		bytes=$(jq -r '.end.sum_received.bytes // 0' "$lg.iperf3.client" 2>/dev/null || echo 0)
		if ((crc == 0 && bytes > 0)); then
			RS_IPERF=ok
		else
			RS_IPERF="iperf3 under librspreload: client exit $crc, the server received $bytes B"
		fi
	else
		RS_IPERF="iperf3 under librspreload: no rsocket listener"
	fi
	stop_srv
	next_port
	crc=0
	start_srv rsocket "$lg.sockperf.server" sockperf sr --tcp -i 10.77.0.1 -p "$PORT"
	if wait_srv rsocket "$PORT"; then
		on rsocket client 15 sockperf pp --tcp -i 10.77.0.1 -p "$PORT" -t 1 --msg-size 64 \
			>"$lg.sockperf.client" 2>&1 || crc=$?
		if ((crc == 0)) && grep -q 'percentile 50.000' "$lg.sockperf.client"; then
			RS_SOCKPERF=ok
		else
			RS_SOCKPERF="sockperf under librspreload: exit $crc: $(grep -m 1 -o 'ERROR: .*' \
				"$lg.sockperf.client" | sed 's/\x1b\[[0-9;]*m//g' || tail -n 1 "$lg.sockperf.client")"
		fi
	else
		RS_SOCKPERF="sockperf under librspreload: no rsocket listener"
	fi
	stop_srv
	log "rsocket: iperf3: $RS_IPERF; sockperf: $RS_SOCKPERF"
}

# router_pair H1 H2 PORT MODE: routers H1 on rxe0 and H2 on rxe1, ingress
# on PORT, --sock-rdma MODE, each declaring the other with RDMA.
router_pair() {
	local a=$1 b=$2 port=$3 mode=$4
	# shellcheck disable=SC2086 # options, split on purpose
	vb_router "$a" rxe0 --host-id "$a" --ingress "10.77.0.1:$port" --secret-file "$SECRET" \
		--sock-rdma "$mode" ${FF_ROUTER_ARGS:-}
	# shellcheck disable=SC2086
	vb_router "$b" rxe1 --host-id "$b" --ingress "10.77.0.2:$port" --secret-file "$SECRET" \
		--sock-rdma "$mode" ${FF_ROUTER_ARGS:-}
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$a]}" host add "$b" --addr "10.77.0.2:$port" --rdma >/dev/null ||
		fail "host add $b on $a"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$b]}" host add "$a" --addr "10.77.0.1:$port" --rdma >/dev/null ||
		fail "host add $a on $b"
}

guest_exit() {
	local rc=$?
	vb_cleanup
	cp -f "$VB_LOGS"/router-*.log "$LOGS/" 2>/dev/null || true
	exit "$rc"
}

# guest RUNS SECS RS_COUNT RS_ITERS PERF_ITERS SETTLE [RS_MODE]
guest() {
	local runs=$1 t w order left ct
	SECS=$2 RS_COUNT=$3 RS_ITERS=$4 PERF_ITERS=$5 SETTLE=$6 RS_MODE=${7:-}
	[[ -n ${FFVM_OUT:-} ]] || fail "no /ffvm/out in the guest (ffvm --out missing)"
	[[ $FFVM_HOSTS == "10.77.0.1:rxe0 10.77.0.2:rxe1" ]] || fail "FFVM_HOSTS='$FFVM_HOSTS', want the pair layout"
	LOGS=$FFVM_OUT/logs RESULTS=$FFVM_OUT/results.tsv FAILURES=$FFVM_OUT/failures.tsv
	T_MAX=120 PORT=18800 HZ=$(getconf CLK_TCK)
	mkdir -p "$LOGS"
	: >"$RESULTS"
	: >"$FAILURES"
	RSP=$(compgen -G "$RSP_GLOB" | head -n 1)
	[[ -n $RSP ]] || fail "no librspreload.so ($RSP_GLOB)"
	# shellcheck disable=SC2034 # read by verbs-lib.sh
	VB_VERBS_PATH=auto
	# shellcheck source=../tests/vm/verbs-lib.sh
	. "$top/tests/vm/verbs-lib.sh"
	trap guest_exit EXIT
	CONNRATE=${VB_BUILD:?}/bench/connrate
	[[ -x $CONNRATE ]] || fail "no $CONNRATE: build first"
	# the guest loads no module by itself; without the socket-diag ones ss
	# sees no TCP socket and the routers' sweep drops the hand-offs
	busybox modprobe -a inet_diag tcp_diag unix_diag || fail "cannot load the sock_diag modules"
	rdma system show | grep -q 'netns exclusive' || fail "RDMA namespaces are not exclusive"
	for d in rxe0 rxe1; do
		ibv_devices | grep -Eq "^[[:space:]]+${d}[[:space:]]" || fail "the initial namespace does not see $d"
	done

	SECRET=$VB_LOGS/secret
	head -c 32 /dev/urandom >"$SECRET"
	chmod 600 "$SECRET"
	vb_alone a 10.78.0.1
	vb_alone b 10.78.0.2
	vb_alone c 10.78.0.1
	vb_alone d 10.78.0.2
	router_pair h1 h2 7946 auto
	router_pair h1t h2t 7947 off
	vb_register h1 a
	vb_register_remote h1 b h2
	vb_register h2 b
	vb_register_remote h2 a h1
	vb_register h1t c
	vb_register_remote h1t d h2t
	vb_register h2t d
	vb_register_remote h2t c h1t
	for ct in a b c d; do vb_no_device "$ct"; done
	vb_status h1 --json | jq -e '.rsock.enabled == true' >/dev/null ||
		fail "router h1 does not report .rsock.enabled: no sockets over RDMA in this build"
	log "routers h1/h2 (--sock-rdma auto) and h1t/h2t (--sock-rdma off) up; containers a, b, c, d"

	rs_probe
	printf '%s\n' "kernel $(uname -r)" "cpus $(nproc)" "rsp $RSP" >"$FFVM_OUT/info"
	printf '%s\n' "$RS_IPERF" >"$FFVM_OUT/rs_iperf"
	printf '%s\n' "$RS_SOCKPERF" >"$FFVM_OUT/rs_sockperf"

	for ((RUN = 1; RUN <= runs; RUN++)); do
		order=(rdma tcp rsocket native)
		((RUN % 2)) || order=(native rsocket tcp rdma)
		for t in "${TESTS[@]}"; do
			for w in "${order[@]}"; do
				case $t:$w in
				iperf:native | perftest:rdma | perftest:tcp | perftest:rsocket) continue ;;
				iperf:rsocket) [[ $RS_IPERF == ok ]] || continue ;;
				esac
				sleep "$SETTLE"
				"m_$t" "$w"
			done
		done
	done
	for h in h1 h2 h1t h2t; do
		vb_status "$h" --json >"$LOGS/status-$h.json" 2>&1 || true
	done
	# (pgrep -x takes names, not a pattern longer than 15 characters)
	left=$(for p in iperf3 sockperf rstream connrate ib_write_bw ib_send_bw; do
		pgrep -a -x "$p"
	done || true)
	[[ -z $left ]] || log "still running at the end (a server not stopped): $left"
}

if in_vm; then
	guest "$@"
	exit
fi

# ----------------------------------------------------------------- host --

# shellcheck source=../tests/integ/lib/testbed.sh
. "$top/tests/integ/lib/testbed.sh"
: "${BENCH_RUNS:=3}" "${BENCH_SECS:=3}" "${BENCH_RS_COUNT:=160}" "${BENCH_RS_ITERS:=500}"
: "${BENCH_PERF_ITERS:=500}" "${BENCH_SETTLE:=1}" "${BENCH_VM_TIMEOUT:=1200}"
out=${BENCH_OUT:-$here/out}
export FF_BUILD=${FF_BUILD:-$top/build}
export FF_ROUTER_ARGS=${BENCH_ROUTER_ARGS:-}
die() { printf 'bench/rdma-sockets: %s\n' "$1" >&2; exit "${2:-1}"; }

[[ -x $FF_BUILD/ffrouter/ffrouter && -f $FF_BUILD/libffshim/libffshim.so && -x $FF_BUILD/ffctl/ffctl &&
	-x $FF_BUILD/bench/connrate ]] ||
	die "no ffrouter, libffshim.so, ffctl or bench/connrate in $FF_BUILD: build first (scripts/build.sh)"
((EUID == 0)) || die "run as root (the VM reads the host's / as the caller)"
# the guest runs the host's programs (librspreload.so comes with librdmacm1,
# which rdmacm-utils depends on)
tb_ensure ib_write_bw:perftest ibv_devices:ibverbs-utils rstream:rdmacm-utils rdma:iproute2 ss:iproute2 \
	jq iperf3 sockperf timeout:coreutils busybox:busybox-static || die "missing packages (above)"
compgen -G "$RSP_GLOB" >/dev/null || die "no $RSP_GLOB (package librdmacm1)"
compgen -G '/usr/lib/*/libibverbs/librxe-*.so' >/dev/null ||
	die "no rxe provider for libibverbs (package ibverbs-providers)"

mkdir -p "$out"
raw=$out/rdma-sockets
rm -rf "$raw"
mkdir -p "$raw"
printf 'bench/rdma-sockets: one VM run, %d runs of %s; logs in %s; router options: %s\n' \
	"$BENCH_RUNS" "${TESTS[*]}" "$raw" "${FF_ROUTER_ARGS:-none}" >&2
load0=$(cut -d ' ' -f 1-3 /proc/loadavg)
t0=$SECONDS
rc=0
FFVM_RDMA_NETNS=exclusive "$FFVM" --layout pair --mem 1536 --timeout "$BENCH_VM_TIMEOUT" --out "$raw" \
	--log "$raw/console.log" -- "$here/rdma-sockets.sh" "$BENCH_RUNS" "$BENCH_SECS" "$BENCH_RS_COUNT" \
	"$BENCH_RS_ITERS" "$BENCH_PERF_ITERS" "$BENCH_SETTLE" "${BENCH_RS_MODE:-}" >&2 || rc=$?
case $rc in
0) ;;
77) die "the rxe VM cannot run here (reason above)" 77 ;;
124) die "the VM run timed out after $BENCH_VM_TIMEOUT s (BENCH_VM_TIMEOUT); partial results in $raw" 124 ;;
125) die "the VM failed around the benchmark (see above and $raw/console.log)" 125 ;;
*) die "the benchmark failed in the VM (status $rc, see above); outputs in $raw/logs" "$rc" ;;
esac
vm_secs=$((SECONDS - t0))
load1=$(cut -d ' ' -f 1-3 /proc/loadavg)

declare -A v=() m=()
while read -r key where _ val; do
	v[$key.$where]+=" $val"
done <"$raw/results.tsv"
medians
rs_iperf=$(<"$raw/rs_iperf")
rs_sockperf=$(<"$raw/rs_sockperf")
kernel=$(awk '$1 == "kernel" { print $2 }' "$raw/info")
cpus=$(awk '$1 == "cpus" { print $2 }' "$raw/info")
rsp=$(awk '$1 == "rsp" { print $2 }' "$raw/info")
rdmacm=$(dpkg-query -W -f='${Version}' librdmacm1 2>/dev/null || echo unknown)
perftest=$(dpkg-query -W -f='${Version}' perftest 2>/dev/null || echo unknown)
src=$(jq -r .directories.source "$FF_BUILD/meson-info/meson-info.json" 2>/dev/null || echo "$top")
commit=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)

# shellcheck disable=SC2034 # wheres and lower: read by json_metrics (stats.sh)
wheres=(rdma tcp rsocket native)
metrics=(iperf write_bw send_bw rs_bw p50 p99 rs_lat conns cpu_gb)
declare -A label=([iperf]="iperf3 1 stream, 64 KiB (MiB/s)" [write_bw]="ib_write_bw 64 KiB (MiB/s)"
	[send_bw]="ib_send_bw 64 KiB (MiB/s)" [rs_bw]="rstream 64 KiB x $BENCH_RS_COUNT (MiB/s)"
	[p50]="sockperf 64 B p50 (us)" [p99]="sockperf 64 B p99 (us)" [rs_lat]="rstream 64 B mean (us)"
	[conns]="connrate (conn/s)" [cpu_gb]="routers' CPU in iperf3 (s/GB)")
# shellcheck disable=SC2034
declare -A lower=([p50]=1 [p99]=1 [rs_lat]=1 [cpu_gb]=1)
cell() { # METRIC WHERE: its median, with the runs it rests on when some failed
	local n
	# shellcheck disable=SC2086
	n=$(wc -w <<<"${v[$1.$2]:-}")
	if ((n == 0)); then
		echo -
	elif ((n < BENCH_RUNS)); then
		echo "${m[$1.$2]}($n)"
	else
		echo "${m[$1.$2]}"
	fi
}
# within RATIO OP LIMIT: met when RATIO OP LIMIT (ge or le)
within() {
	awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { if (r == "-") { print "n/a"; exit }
		ok = op == "ge" ? r + 0 >= t : r + 0 <= t; print ok ? "met" : "MISSED" }'
}

# the rsocket comparisons: iperf3 and sockperf p50 when librspreload ran
# them, rstream (its 64 KiB rate, its mean 64 B latency) otherwise
if [[ $rs_iperf == ok ]]; then thr_key=iperf thr_how="iperf3"; else thr_key=rs_bw thr_how="rstream 64 KiB"; fi
if [[ $rs_sockperf == ok ]]; then lat_key=p50 lat_how="sockperf p50"; else lat_key=rs_lat lat_how="rstream 64 B mean"; fi
rsock_variant="librspreload.so under iperf3, sockperf and connrate; rstream"
if [[ $rs_iperf != ok || $rs_sockperf != ok ]]; then
	can=(connrate) cant=()
	for p in "iperf3:$rs_iperf" "sockperf:$rs_sockperf"; do
		if [[ ${p#*:} == ok ]]; then can+=("${p%%:*}"); else cant+=("${p%%:*}"); fi
	done
	can_s=${can[*]} cant_s=${cant[*]}
	rsock_variant="rstream, and librspreload.so under ${can_s// / and } (it cannot run ${cant_s// / or } here)"
fi
# RATIO-NAME RATIO TARGET-OP TARGET-LIMIT: the ratio lines
declare -a rlines=()
rl() {
	local r=$1 val=$2 op=${3:-} lim=${4:-} tgt="" met=""
	if [[ -n $op ]]; then
		tgt="$([[ $op == ge ]] && echo '>=' || echo '<=') ${lim}x"
		met=$(within "$val" "$op" "$lim")
	fi
	rlines+=("$r|$val|$tgt|$met")
}
rl "throughput: ffnet RDMA / rsocket ($thr_how)" "$(ratio "${m[$thr_key.rdma]:-}" "${m[$thr_key.rsocket]:-}")" ge 1.0
rl "throughput: ffnet RDMA iperf3 / native ib_write_bw 64 KiB" "$(ratio "${m[iperf.rdma]:-}" "${m[write_bw.native]:-}")" ge 0.8
rl "throughput: ffnet RDMA rstream / native ib_write_bw 64 KiB" "$(ratio "${m[rs_bw.rdma]:-}" "${m[write_bw.native]:-}")"
rl "throughput: ffnet RDMA iperf3 / native ib_send_bw 64 KiB" "$(ratio "${m[iperf.rdma]:-}" "${m[send_bw.native]:-}")"
rl "latency: ffnet RDMA / rsocket ($lat_how)" "$(ratio "${m[$lat_key.rdma]:-}" "${m[$lat_key.rsocket]:-}")" le 1.0
rl "connects/s: ffnet RDMA / rsocket (connrate)" "$(ratio "${m[conns.rdma]:-}" "${m[conns.rsocket]:-}")" ge 1.0
rl "ffnet RDMA / ffnet TCP: iperf3" "$(ratio "${m[iperf.rdma]:-}" "${m[iperf.tcp]:-}")"
rl "ffnet RDMA / ffnet TCP: rstream 64 KiB" "$(ratio "${m[rs_bw.rdma]:-}" "${m[rs_bw.tcp]:-}")"
rl "ffnet RDMA / ffnet TCP: sockperf p50" "$(ratio "${m[p50.rdma]:-}" "${m[p50.tcp]:-}")"
rl "ffnet RDMA / ffnet TCP: connrate" "$(ratio "${m[conns.rdma]:-}" "${m[conns.tcp]:-}")"

printf '\nffnet sockets over RDMA: median of %d interleaved runs; rxe under QEMU TCG, kernel %s, %s vCPUs; VM %d s\n' \
	"$BENCH_RUNS" "$kernel" "$cpus" "$vm_secs"
printf 'ffnet RDMA: a (h1, rxe0) -> b (h2, rxe1), one RC QP between the routers; ffnet TCP: c (h1t) -> d (h2t), routers --sock-rdma off\n'
printf 'rsocket: %s (%s, librdmacm1 %s); native: perftest %s, rxe1 -> rxe0\n' "$rsock_variant" "$rsp" "$rdmacm" "$perftest"
printf 'iperf3 and sockperf -t %s; rstream %s; ffnet %s built in %s; router options: %s\n' "$BENCH_SECS" \
	"$([[ ${BENCH_RS_MODE:-} == b ]] && echo 'blocking (-T b)' || echo 'non-blocking, busy (its default)')" \
	"$commit" "$FF_BUILD" "${FF_ROUTER_ARGS:-none}"
printf 'host load average before: %s, after: %s\n' "$load0" "$load1"
printf 'under TCG rxe is slower than the kernel TCP over a veth: ffnet RDMA / ffnet TCP is for information; compare within RDMA\n\n'
printf '%-34s %11s %11s %11s %11s\n' metric "ffnet RDMA" "ffnet TCP" rsocket native
for k in "${metrics[@]}"; do
	printf '%-34s %11s %11s %11s %11s\n' "${label[$k]}" "$(cell "$k" rdma)" "$(cell "$k" tcp)" \
		"$(cell "$k" rsocket)" "$(cell "$k" native)"
done
printf '(a number in parentheses: the runs a median rests on, when some failed; - not measured)\n\n'
printf '%-60s %7s  %-8s %s\n' ratio value target ""
for l in "${rlines[@]}"; do
	IFS='|' read -r r val tgt met <<<"$l"
	printf '%-60s %6sx  %-8s %s\n' "$r" "$val" "$tgt" "$met"
done
printf '(targets from issue 13, printed, not enforced)\n'
nfail=$(wc -l <"$raw/failures.tsv")
if ((nfail)); then
	printf '\nfigures left out (%d):\n' "$nfail"
	awk -F'\t' '{ printf "  run %s %-8s %-9s %s\n", $3, $2, $1, $4 }' "$raw/failures.tsv"
fi
if [[ $rs_iperf != ok || $rs_sockperf != ok ]]; then
	printf '\nrsocket: %s; %s\n' "$rs_iperf" "$rs_sockperf"
fi
nlog=$(cat "$raw"/logs/router-*.log 2>/dev/null | grep -Eic 'warn|error|fail' || true)
printf 'router logs: %s lines with warn/error/fail (%s/logs/router-*.log)\n' "$nlog" "$raw"

json=$out/rdma-sockets.json
{
	printf '{"runs": %d, "seconds": %s, "backend": "rxe in QEMU TCG", "kernel": "%s", "cpus": %s, "columns": 5,\n' \
		"$BENCH_RUNS" "$BENCH_SECS" "$kernel" "$cpus"
	printf ' "commit": "%s", "build": "%s", "router_args": "%s", "vm_seconds": %d,\n' "$commit" "$FF_BUILD" \
		"${FF_ROUTER_ARGS:-}" "$vm_secs"
	printf ' "host_load": {"before": "%s", "after": "%s"},\n' "$load0" "$load1"
	printf ' "rsocket": {"variant": %s, "iperf3": %s, "sockperf": %s, "librdmacm1": "%s"},\n' \
		"$(jq -Rn --arg s "$rsock_variant" '$s')" "$(jq -Rn --arg s "$rs_iperf" '$s')" \
		"$(jq -Rn --arg s "$rs_sockperf" '$s')" "$rdmacm"
	printf ' "sizes": {"rstream_count": %d, "rstream_iters": %d, "perftest_iters": %d}, "rstream_mode": "%s",\n "metrics": {' \
		"$BENCH_RS_COUNT" "$BENCH_RS_ITERS" "$BENCH_PERF_ITERS" "$([[ ${BENCH_RS_MODE:-} == b ]] && echo blocking || echo nonblocking)"
	json_metrics rdma=ffnet_rdma tcp=ffnet_tcp
	printf '},\n "ratios": ['
	sep=
	for l in "${rlines[@]}"; do
		IFS='|' read -r r val tgt met <<<"$l"
		printf '%s\n  {"name": %s, "value": %s, "target": %s, "met": %s}' "$sep" "$(jq -Rn --arg s "$r" '$s')" \
			"$([[ $val == - ]] && echo null || echo "$val")" "$([[ -n $tgt ]] && echo "\"$tgt\"" || echo null)" \
			"$(case $met in met) echo true ;; MISSED) echo false ;; *) echo null ;; esac)"
		sep=,
	done
	printf '],\n "failures": %s}\n' "$(jq -Rsc 'split("\n") | map(select(length > 0) | split("\t") |
		{metric: .[0], setup: .[1], run: (.[2] | tonumber), why: .[3]})' <"$raw/failures.tsv")"
} >"$json"
jq . "$json" >/dev/null || die "wrote invalid JSON to $json"
echo "JSON: $json"
chart "$json" "$out/rdma-sockets.png"
