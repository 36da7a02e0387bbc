#!/usr/bin/env bash
# bench/same-host: host loopback vs the container bridge vs ffnet, on one
# host: iperf3 (1 and 4 streams), sockperf ping-pong p50/p99 (client and
# server pinned to one CPU), redis-benchmark requests/s. Median of
# BENCH_RUNS (3) runs, interleaved so drift hits all three alike. Prints a
# table and writes bench/out/same-host.json and same-host.png.
#   bench/same-host.sh            (root; installs what it needs)
# Targets (this issue): ffnet >= 1.5x the bridge's and >= 1.2x loopback's
# iperf3 throughput, and sockperf p50 no worse than loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/lib.sh"
: "${BENCH_RUNS:=3}"
out=${BENCH_OUT:-$here/out}
mkdir -p "$out"

bench_setup bench-same-host 10.77.8.0/24 || exit $?
wheres=(host bridge ffnet)
redis_run() { # WHERE: its redis SET and GET requests/s, appended to v
	local set get
	read -r set get < <(measure_redis "$1")
	v[set.$1]+=" ${set:-0}"
	v[get.$1]+=" ${get:-0}"
}
declare -A v=()
net_runs ff_log redis_run
total=$(ff_conns_total)

declare -A m=()
medians

metrics=(iperf1 iperf4 p50 p99 set get)
declare -A label=([iperf1]="iperf3 1 stream (Gbit/s)" [iperf4]="iperf3 4 streams (Gbit/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [set]="redis SET (req/s)"
	[get]="redis GET (req/s)")
declare -A lower=([p50]=1 [p99]=1)

# speedup of ffnet over X: higher is better for every metric
speedup() { # METRIC X
	if [[ -n ${lower[$1]:-} ]]; then ratio "${m[$1.$2]}" "${m[$1.ffnet]}"; else ratio "${m[$1.ffnet]}" "${m[$1.$2]}"; fi
}
verdict() { # RATIO MIN
	awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r + 0 >= t) ? "met" : "MISSED" }'
}

printf '\nffnet same-host benchmark: median of %d runs of %ss; %s; %s CPUs\n' "$BENCH_RUNS" \
	"$BENCH_SECS" "$(tb_backend) containers" "$ncpu"
printf 'throughput: server on CPU %s, client on CPU %s; latency: both on CPU %s\n\n' \
	"$BENCH_SRV_CPU" "$BENCH_CLI_CPU" "$BENCH_SRV_CPU"
printf '%-26s %12s %12s %12s %14s %14s\n' metric loopback bridge ffnet ffnet/bridge ffnet/loopback
for k in "${metrics[@]}"; do
	printf '%-26s %12s %12s %12s %13sx %13sx\n' "${label[$k]}" "${m[$k.host]}" "${m[$k.bridge]}" \
		"${m[$k.ffnet]}" "$(speedup "$k" bridge)" "$(speedup "$k" host)"
done
t1=$(verdict "$(speedup iperf1 bridge)" 1.5)
t2=$(verdict "$(speedup iperf1 host)" 1.2)
t3=$(verdict "$(speedup p50 host)" 1.0)
printf '\ntargets: iperf3 >= 1.5x bridge: %s; >= 1.2x loopback: %s; sockperf p50 <= loopback: %s\n' \
	"$t1" "$t2" "$t3"
printf '(ratios are speed-ups: above 1 means ffnet is better; the router accelerated %s connections)\n' "$total"

json=$out/same-host.json
{
	printf '{"runs": %d, "seconds": %s, "backend": "%s", "cpus": %d,\n "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$(tb_backend)" "$ncpu"
	json_metrics
	printf '},\n "targets": {"iperf_vs_bridge_1.5x": "%s", "iperf_vs_loopback_1.2x": "%s", "p50_vs_loopback": "%s"}}\n' \
		"$t1" "$t2" "$t3"
} >"$json"
jq . "$json" >/dev/null
echo "JSON: $json"
chart "$json" "$out/same-host.png"
