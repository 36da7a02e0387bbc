#!/usr/bin/env bash
# bench/cross-host: two emulated hosts (tests/integ/lib/xhosts.sh), three
# ways from a client on A to a server on B:
#   host   host A to host B directly (the floor: no containers)
#   nat    container a1 to container b1 over bridge + NAT on both hosts
#          (b1 published through DNAT on B, as `docker -p` does)
#   ffnet  a1 to b1's own address through ffnet (host TCP handed over)
# iperf3 (1 and 4 streams), sockperf ping-pong p50/p99 (both ends on one
# CPU), and connection set-up (bench/connrate, connections/s). Median of
# BENCH_RUNS (3) interleaved runs; table, bench/out/cross-host.json, .png.
# Targets: ffnet >= 0.97x host throughput, p50 <= 1.05x host.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/../tests/integ/lib/xhosts.sh"
. "$here/stats.sh"
: "${BENCH_RUNS:=3}" "${BENCH_SECS:=5}"
out=${BENCH_OUT:-$here/out}
ncpu=$(nproc)
srv_cpu=$((ncpu > 1 ? 1 : 0)) cli_cpu=0
mkdir -p "$out"
connrate=$XH_BUILD/bench/connrate
[[ -x $connrate ]] || { echo "build first (scripts/build.sh)" >&2; exit 1; }

rc=0
xh_init || rc=$?
((rc == 0)) || exit $rc
xh_router A && xh_router B && xh_static_map
# the container network's way to b1: host B's port +1000 (its own ports stay
# free for the host-to-host runs)
for p in 5301 11311 7400; do xh_dnat B $((p + 1000)) b1 $p; done

# run WHERE SIDE CPU -- CMD: SIDE server or client
run() {
	local w=$1 side=$2 cpu=$3
	shift 4
	case $w:$side in
	host:server) xh_in B -- taskset -c "$cpu" "$@" ;;
	host:client) xh_in A -- taskset -c "$cpu" "$@" ;;
	nat:server) xh_plain b1 -- taskset -c "$cpu" "$@" ;;
	nat:client) xh_plain a1 -- taskset -c "$cpu" "$@" ;;
	ffnet:server) xh_x b1 -- taskset -c "$cpu" "$@" ;;
	ffnet:client) xh_x a1 -- taskset -c "$cpu" "$@" ;;
	esac
}
target() { # WHERE: the address the client dials
	case $1 in
	host | nat) echo "${XH_HOSTIP[B]}" ;;
	ffnet) echo "${XH_CIP[b1]}" ;;
	esac
}
dport() { # WHERE PORT: the port the client dials
	[[ $1 == nat ]] && echo $(($2 + 1000)) || echo "$2"
}
server_ns() { [[ $1 == host ]] && echo B || echo b1; }

start_server() { # WHERE PORT -- CMD: pid in SRV
	local w=$1 port=$2 who
	shift 3
	case $w in host) who=in ;; nat) who=plain ;; ffnet) who=x ;; esac
	xh_spawn "$who" "$(server_ns "$w")" -- taskset -c "$srv_cpu" "$@" >/dev/null 2>&1
	SRV=$XH_PID
	xh_wait_port "$(server_ns "$w")" "$port"
}
stop_server() {
	kill "$SRV" 2>/dev/null
	wait "$SRV" 2>/dev/null || true
}

measure_iperf() { # WHERE STREAMS
	local o
	start_server "$1" 5301 -- iperf3 -s -p 5301
	o=$(run "$1" client "$cli_cpu" -- iperf3 -c "$(target "$1")" -p "$(dport "$1" 5301)" -t "$BENCH_SECS" -P "$2" -J 2>/dev/null || true)
	stop_server
	iperf_gbps "$o"
}
measure_sockperf() { # WHERE: "p50 p99"
	local o
	start_server "$1" 11311 -- sockperf sr --tcp -i 0.0.0.0 -p 11311
	o=$(run "$1" client "$srv_cpu" -- sockperf pp --tcp -i "$(target "$1")" -p "$(dport "$1" 11311)" -t "$BENCH_SECS" 2>&1 || true)
	stop_server
	sockperf_pcts "$o"
}
conns() { # WHERE: connections/s
	local o
	start_server "$1" 7400 -- "$connrate" server 7400
	o=$(run "$1" client "$cli_cpu" -- "$connrate" client "$(target "$1")" "$(dport "$1" 7400)" "$BENCH_SECS" 2>&1 || true)
	stop_server
	sed -n 's/^\([0-9]*\) connections\/s/\1/p' <<<"$o" | head -n 1
}

wheres=(host nat ffnet)
conns_run() { # WHERE: its connections/s, appended to v
	v[conns.$1]+=" $(c=$(conns "$1"); echo "${c:-0}")"
}
declare -A v=()
net_runs xh_log conns_run
accel=$(xh_ctl A status --json | jq -r .conns_total)

declare -A m=()
medians
metrics=(iperf1 iperf4 p50 p99 conns)
declare -A label=([iperf1]="iperf3 1 stream (Gbit/s)" [iperf4]="iperf3 4 streams (Gbit/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [conns]="connections/s")
declare -A lower=([p50]=1 [p99]=1)
vs() { # METRIC BASE: ffnet relative to BASE, for the table (value ratio, not speed-up)
	ratio "${m[$1.ffnet]}" "${m[$1.$2]}"
}

printf '\nffnet cross-host benchmark: median of %d runs of %ss; 2 emulated hosts on %d CPUs\n' \
	"$BENCH_RUNS" "$BENCH_SECS" "$ncpu"
printf 'throughput: server on CPU %s, client on CPU %s; latency: both on CPU %s\n\n' "$srv_cpu" "$cli_cpu" "$srv_cpu"
printf '%-26s %12s %14s %12s %12s %12s\n' metric host-to-host "bridge+NAT" ffnet ffnet/host ffnet/NAT
for k in "${metrics[@]}"; do
	printf '%-26s %12s %14s %12s %11sx %11sx\n' "${label[$k]}" "${m[$k.host]}" "${m[$k.nat]}" \
		"${m[$k.ffnet]}" "$(vs "$k" host)" "$(vs "$k" nat)"
done
t1=$(awk -v r="$(vs iperf1 host)" 'BEGIN { print (r != "-" && r >= 0.97) ? "met" : "MISSED" }')
t2=$(awk -v r="$(vs iperf4 host)" 'BEGIN { print (r != "-" && r >= 0.97) ? "met" : "MISSED" }')
t3=$(awk -v r="$(vs p50 host)" 'BEGIN { print (r != "-" && r <= 1.05) ? "met" : "MISSED" }')
printf '\ntargets: throughput >= 0.97x host: 1 stream %s, 4 streams %s; p50 <= 1.05x host: %s\n' "$t1" "$t2" "$t3"
printf '(ratios are ffnet value / other value: for throughput and connections/s higher is better,\n for latency lower is better; router A handed over %s connections)\n' "$accel"

json=$out/cross-host.json
{
	printf '{"runs": %d, "seconds": %s, "backend": "emulated hosts", "cpus": %d,\n "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$ncpu"
	json_metrics host=host2host
	printf '},\n "targets": {"throughput_1_vs_host": "%s", "throughput_4_vs_host": "%s", "p50_vs_host": "%s"}}\n' "$t1" "$t2" "$t3"
} >"$json"
jq . "$json" >/dev/null
echo "JSON: $json"
chart "$json" "$out/cross-host.png"
