#!/usr/bin/env bash
# bench/rings: same-host connections over shared-memory rings (issue 14,
# the router's --same-host-rings) next to today's socketpair path and host
# loopback and the container bridge, in one run: sockperf throughput with
# 64 B and 1 KiB messages (client on CPU $BENCH_CLI_CPU, server on
# $BENCH_SRV_CPU), sockperf ping-pong p50/p99 (both on one CPU, see
# lib.sh), ping-pong p50 pinned apart without and (rings) with
# FFNET_SPIN_US=$BENCH_SPIN, iperf3 with one stream, and redis-benchmark
# GET with -P 16; and how busy each side's CPU was during the 64 B
# throughput, iperf3 and the spinning ping-pong (from /proc/stat: a gain bought
# with a spinning core shows). The router restarts between the socketpair
# and the rings rounds (its state file keeps the containers).
# Median of BENCH_RUNS (3) interleaved runs; prints a table and writes
# bench/out/rings.json. bench/same-host.sh runs it after its own table.
#   bench/rings.sh                (root; installs what it needs)
# Targets (issue 14), against loopback in the same run: 64 B message rate
# >= 20x, one iperf3 stream >= 3.5x, ping-pong p50 <= 1.0x without
# spinning and <= 0.1x with it (pinned apart), redis GET with -P 16 >= 2x.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$here/lib.sh"
: "${BENCH_RUNS:=3}"
: "${BENCH_RING:=524288}"
: "${BENCH_SPIN:=50}"
out=${BENCH_OUT:-$here/out}
mkdir -p "$out"

bench_setup bench-rings 10.77.10.0/24 || exit $?
wheres=(host bridge socketpair rings)

# router_for WHERE: the router the path needs (restarted when it changes)
router_mode=""
router_for() {
	local want="--same-host-rings 0"
	[[ $1 == rings ]] && want="--same-host-rings $BENCH_RING"
	[[ $1 == host || $1 == bridge || $want == "$router_mode" ]] && return 0
	ff_router_stop quiet
	FF_ROUTER_ARGS="$want" ff_router_start || return 1
	router_mode=$want
}
# the lib's WHERE for a path here
lib_where() { [[ $1 == host || $1 == bridge ]] && echo "$1" || echo ffnet; }

# The busy and total jiffies of CPU N so far (/proc/stat).
cpu_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
# busy_pct "BUSY TOTAL" "BUSY TOTAL": % of the time between the two
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; print (t > 0 ? int(100 * (y[1] - x[1]) / t + 0.5) : 0) }'; }

# cpu_around KEY CMD...: runs CMD; the client's and server's CPU busy %
# meanwhile go to v[cpucli.KEY] and v[cpusrv.KEY]
cpu_around() {
	local k=$1 c0 s0
	shift
	c0=$(cpu_ticks "$BENCH_CLI_CPU")
	s0=$(cpu_ticks "$BENCH_SRV_CPU")
	"$@"
	v[cpucli.$k]+=" $(busy_pct "$c0" "$(cpu_ticks "$BENCH_CLI_CPU")")"
	v[cpusrv.$k]+=" $(busy_pct "$s0" "$(cpu_ticks "$BENCH_SRV_CPU")")"
}

measure_tp() { # WHERE SIZE: sockperf tp messages/s
	local w srv o port=11312
	w=$(lib_where "$1")
	srv=$(bx_bg "$w" c1 "$BENCH_SRV_CPU" -- sockperf sr --tcp -i 0.0.0.0 -p $port)
	bx_wait_port "$w" $port || { bx_stop "$srv"; echo 0; return 0; }
	o=$(bx "$w" c2 "$BENCH_CLI_CPU" -- sockperf tp --tcp -i "$(bench_ip "$w")" -p $port \
		-t "$BENCH_SECS" --msg-size "$2" 2>&1 || true)
	bx_stop "$srv"
	o=$(sed -n 's/.*Message Rate is \([0-9]*\).*/\1/p' <<<"$o" | head -n 1)
	[[ -n $o ]] || ff_log "sockperf tp $2 B in $1 failed"
	echo "${o:-0}"
}

measure_pp_apart() { # WHERE: sockperf ping-pong p50 (us), client and server on their own CPUs
	local w srv o port=11313
	w=$(lib_where "$1")
	srv=$(bx_bg "$w" c1 "$BENCH_SRV_CPU" -- sockperf sr --tcp -i 0.0.0.0 -p $port)
	bx_wait_port "$w" $port || { bx_stop "$srv"; echo 0; return 0; }
	o=$(bx "$w" c2 "$BENCH_CLI_CPU" -- sockperf pp --tcp -i "$(bench_ip "$w")" -p $port \
		-t "$BENCH_SECS" 2>&1 || true)
	bx_stop "$srv"
	o=$(sockperf_pcts "$o")
	echo "${o%% *}"
}

measure_redis_p16() { # WHERE: redis-benchmark GET requests/s with -P 16
	local w srv o port=6390 n=$((BENCH_SECS * 200000))
	w=$(lib_where "$1")
	srv=$(bx_bg "$w" c1 "$BENCH_SRV_CPU" -- redis-server --port $port --save '' \
		--appendonly no --protected-mode no)
	bx_wait_port "$w" $port || { bx_stop "$srv"; echo 0; return 0; }
	o=$(bx "$w" c2 "$BENCH_CLI_CPU" -- redis-benchmark -h "$(bench_ip "$w")" -p $port \
		-t get -n "$n" -c 50 -P 16 -q 2>&1 | tr '\r' '\n' || true)
	bx_stop "$srv"
	o=$(sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' <<<"$o" | tail -n 1)
	echo "${o:-0}"
}

declare -A v=()
for ((run = 1; run <= BENCH_RUNS; run++)); do
	for w in "${wheres[@]}"; do
		ff_log "run $run/$BENCH_RUNS: $w"
		router_for "$w"
		cpu_around "tp64.$w" eval 'v[tp64.$w]+=" $(measure_tp "$w" 64)"'
		v[tp1k.$w]+=" $(measure_tp "$w" 1024)"
		read -r p50 p99 < <(measure_sockperf "$(lib_where "$w")")
		v[p50.$w]+=" ${p50:-0}"
		v[p99.$w]+=" ${p99:-0}"
		v[p50a.$w]+=" $(measure_pp_apart "$w")"
		if [[ $w == rings ]]; then
			BX_SPIN=$BENCH_SPIN cpu_around "p50s.$w" eval 'v[p50s.$w]+=" $(measure_pp_apart "$w")"'
		fi
		cpu_around "iperf1.$w" eval 'v[iperf1.$w]+=" $(measure_iperf "$(lib_where "$w")" 1)"'
		v[redis.$w]+=" $(measure_redis_p16 "$w")"
	done
done
n_rings=$(ff_status_json | jq -r '.rings.conns_total')

metrics=(tp64 tp1k p50 p99 p50a p50s iperf1 redis)
declare -A label=([tp64]="sockperf tp 64 B (msg/s)" [tp1k]="sockperf tp 1 KiB (msg/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [p50a]="p50 pinned apart (us)"
	[p50s]="p50 apart, spin $BENCH_SPIN us" [iperf1]="iperf3 1 stream (Gbit/s)"
	[redis]="redis GET -P 16 (req/s)")
declare -A lower=([p50]=1 [p99]=1 [p50a]=1 [p50s]=1)
declare -A target=([tp64]=20 [iperf1]=3.5 [p50]=1.0 [p50s]=0.1 [redis]=2)

declare -A m=()
for k in "${metrics[@]}"; do
	for w in "${wheres[@]}"; do
		# shellcheck disable=SC2086 # the runs, one word each
		m[$k.$w]=$(median ${v[$k.$w]:-})
	done
done
# the spinning ping-pong runs over rings only; loopback's figure for it is
# its ping-pong pinned apart (a kernel socket has nothing to spin on)
m[p50s.host]=${m[p50a.host]}
for k in cpucli cpusrv; do
	for x in tp64.host tp64.bridge tp64.socketpair tp64.rings p50s.rings \
		iperf1.host iperf1.bridge iperf1.socketpair iperf1.rings; do
		# shellcheck disable=SC2086 # the runs, one word each
		m[$k.$x]=$(median ${v[$k.$x]:-})
	done
done
speedup() { # METRIC WHERE: WHERE over loopback, higher is better
	if [[ -n ${lower[$1]:-} ]]; then ratio "${m[$1.host]}" "${m[$1.$2]}"; else ratio "${m[$1.$2]}" "${m[$1.host]}"; fi
}
verdict() { # METRIC: the rings' figure against the issue's target
	local t=${target[$1]:-} r
	[[ -n $t ]] || { echo "-"; return; }
	if [[ -n ${lower[$1]:-} ]]; then
		r=$(ratio "${m[$1.rings]}" "${m[$1.host]}")
		awk -v r="$r" -v t="$t" 'BEGIN { print (r != "-" && r + 0 <= t) ? "met (<= " t "x)" : "MISSED (<= " t "x)" }'
	else
		r=$(speedup "$1" rings)
		awk -v r="$r" -v t="$t" 'BEGIN { print (r != "-" && r + 0 >= t) ? "met (>= " t "x)" : "MISSED (>= " t "x)" }'
	fi
}

printf '\nffnet same-host rings benchmark: median of %d runs of %ss; %s; %s CPUs; rings of %s B\n' \
	"$BENCH_RUNS" "$BENCH_SECS" "$(tb_backend) containers" "$ncpu" "$BENCH_RING"
printf '%-28s %11s %11s %11s %11s %8s %8s  %s\n' "" loopback bridge socketpair rings "sp/lo" "rings/lo" \
	"target (rings)"
for k in "${metrics[@]}"; do
	printf '%-28s %11s %11s %11s %11s %8s %8s  %s\n' "${label[$k]}" "${m[$k.host]}" "${m[$k.bridge]:--}" \
		"${m[$k.socketpair]:--}" "${m[$k.rings]}" "$(speedup "$k" socketpair)" "$(speedup "$k" rings)" \
		"$(verdict "$k")"
done
printf '(ratios: higher is better, for latency too: loopback / path; the spinning row against\n'
printf ' loopback pinned apart; connections with rings: %s)\n' "$n_rings"
printf '\nCPU busy, %% of client CPU %s / server CPU %s (whole CPU, other load included):\n' \
	"$BENCH_CLI_CPU" "$BENCH_SRV_CPU"
printf '%-28s %11s %11s %11s %11s\n' "" loopback bridge socketpair rings
printf '%-28s %11s %11s %11s %11s\n' "sockperf tp 64 B" \
	"${m[cpucli.tp64.host]}/${m[cpusrv.tp64.host]}" "${m[cpucli.tp64.bridge]}/${m[cpusrv.tp64.bridge]}" \
	"${m[cpucli.tp64.socketpair]}/${m[cpusrv.tp64.socketpair]}" "${m[cpucli.tp64.rings]}/${m[cpusrv.tp64.rings]}"
printf '%-28s %11s %11s %11s %11s\n' "iperf3 1 stream" \
	"${m[cpucli.iperf1.host]}/${m[cpusrv.iperf1.host]}" "${m[cpucli.iperf1.bridge]}/${m[cpusrv.iperf1.bridge]}" \
	"${m[cpucli.iperf1.socketpair]}/${m[cpusrv.iperf1.socketpair]}" "${m[cpucli.iperf1.rings]}/${m[cpusrv.iperf1.rings]}"
printf '%-28s %11s %11s %11s %11s\n' "ping-pong, spin $BENCH_SPIN us" - - - \
	"${m[cpucli.p50s.rings]}/${m[cpusrv.p50s.rings]}"

{
	printf '{"runs": %d, "secs": %s, "backend": "%s", "cpus": %d, "ring": %s, "rings_conns": %s, "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$(tb_backend)" "$ncpu" "$BENCH_RING" "${n_rings:-0}"
	sep=""
	for k in "${metrics[@]}"; do
		printf '%s"%s": {"loopback": %s, "bridge": %s, "socketpair": %s, "rings": %s}' "$sep" "$k" \
			"${m[$k.host]:-0}" "${m[$k.bridge]:-0}" "${m[$k.socketpair]:-0}" "${m[$k.rings]:-0}"
		sep=", "
	done
	printf '}, "cpu_busy_pct": {'
	sep=""
	for x in tp64.host tp64.bridge tp64.socketpair tp64.rings p50s.rings \
		iperf1.host iperf1.bridge iperf1.socketpair iperf1.rings; do
		printf '%s"%s": {"client": %s, "server": %s}' "$sep" "$x" "${m[cpucli.$x]:-0}" "${m[cpusrv.$x]:-0}"
		sep=", "
	done
	printf '}}\n'
} | jq . >"$out/rings.json"
echo "wrote $out/rings.json"
