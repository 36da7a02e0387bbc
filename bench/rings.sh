#!/usr/bin/env bash
# bench/rings: same-host connections over shared-memory rings (issue 14,
# the router's --same-host-rings) next to today's socketpair path and host
# loopback, in one run: sockperf throughput with 64 B and 1 KiB messages
# (client on CPU $BENCH_CLI_CPU, server on $BENCH_SRV_CPU), sockperf
# ping-pong p50/p99 (both on one CPU, see lib.sh), iperf3 with one stream,
# and redis-benchmark GET with -P 16. The router restarts between the
# socketpair and the rings rounds (its state file keeps the containers).
# Median of BENCH_RUNS (3) interleaved runs; prints a table and writes
# bench/out/rings.json.
#   bench/rings.sh                (root; installs what it needs)
# Targets (issue 14), against loopback in the same run: 64 B message rate
# >= 20x, one iperf3 stream >= 3.5x, ping-pong p50 <= 1.0x without
# spinning, redis GET with -P 16 >= 2x.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$here/lib.sh"
: "${BENCH_RUNS:=3}"
: "${BENCH_RING:=262144}"
out=${BENCH_OUT:-$here/out}
mkdir -p "$out"

bench_setup bench-rings 10.77.10.0/24 || exit $?
wheres=(host socketpair rings)

# router_for WHERE: the router the path needs (restarted when it changes)
router_mode=""
router_for() {
	local want=""
	[[ $1 == rings ]] && want="--same-host-rings $BENCH_RING"
	[[ $1 == host || $want == "$router_mode" ]] && return 0
	ff_router_stop quiet
	FF_ROUTER_ARGS="$want" ff_router_start || return 1
	router_mode=$want
}
# the lib's WHERE for a path here
lib_where() { [[ $1 == host ]] && echo host || echo ffnet; }

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
		v[tp64.$w]+=" $(measure_tp "$w" 64)"
		v[tp1k.$w]+=" $(measure_tp "$w" 1024)"
		read -r p50 p99 < <(measure_sockperf "$(lib_where "$w")")
		v[p50.$w]+=" ${p50:-0}"
		v[p99.$w]+=" ${p99:-0}"
		v[iperf1.$w]+=" $(measure_iperf "$(lib_where "$w")" 1)"
		v[redis.$w]+=" $(measure_redis_p16 "$w")"
	done
done
n_rings=$(ff_status_json | jq -r '.rings.conns_total')

metrics=(tp64 tp1k p50 p99 iperf1 redis)
declare -A label=([tp64]="sockperf tp 64 B (msg/s)" [tp1k]="sockperf tp 1 KiB (msg/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [iperf1]="iperf3 1 stream (Gbit/s)"
	[redis]="redis GET -P 16 (req/s)")
declare -A lower=([p50]=1 [p99]=1)
declare -A target=([tp64]=20 [iperf1]=3.5 [p50]=1.0 [redis]=2)
declare -A m=()
for k in "${metrics[@]}"; do
	for w in "${wheres[@]}"; do
		# shellcheck disable=SC2086 # the runs, one word each
		m[$k.$w]=$(median ${v[$k.$w]})
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
printf '%-26s %12s %12s %12s %10s %10s  %s\n' "" loopback socketpair rings "sp/lo" "rings/lo" "target (rings)"
for k in "${metrics[@]}"; do
	printf '%-26s %12s %12s %12s %10s %10s  %s\n' "${label[$k]}" "${m[$k.host]}" "${m[$k.socketpair]}" \
		"${m[$k.rings]}" "$(speedup "$k" socketpair)" "$(speedup "$k" rings)" "$(verdict "$k")"
done
printf '(ratios: higher is better, for latency too: loopback / path; connections with rings: %s)\n' "$n_rings"

{
	printf '{"runs": %d, "secs": %s, "backend": "%s", "cpus": %d, "ring": %s, "rings_conns": %s, "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$(tb_backend)" "$ncpu" "$BENCH_RING" "${n_rings:-0}"
	sep=""
	for k in "${metrics[@]}"; do
		printf '%s"%s": {"loopback": %s, "socketpair": %s, "rings": %s}' "$sep" "$k" \
			"${m[$k.host]:-0}" "${m[$k.socketpair]:-0}" "${m[$k.rings]:-0}"
		sep=", "
	done
	printf '}}\n'
} | jq . >"$out/rings.json"
echo "wrote $out/rings.json"
