#!/usr/bin/env bash
# bench/same-host: host loopback vs the container bridge vs ffnet (the shim)
# vs ffexec (the same programs under the seccomp launcher), on one host:
# iperf3 (1 and 4 streams), sockperf ping-pong p50/p99 (client and server
# pinned to one CPU), redis-benchmark requests/s, connection set-up
# (bench/connrate, connections/s), the cost of a getsockname and of a
# setsockopt on a connection (what ffexec traps: connrate calls) and, where
# no shim is meant to reach it (bridge, ffexec), static Go's (gonet rate:
# one request per connection).
# Median of BENCH_RUNS (3) runs, interleaved so drift hits all alike.
# Prints a table and writes bench/out/same-host.json and same-host.png;
# then runs bench/rings.sh (issue 14: the rings, spinning, CPU per side)
# unless BENCH_RINGS=0.
#   bench/same-host.sh            (root; installs what it needs)
# Targets: ffnet >= 1.5x the bridge's and >= 1.2x loopback's iperf3
# throughput, and sockperf p50 no worse than loopback; ffexec's data path
# the shim's within noise (iperf3 >= 0.9x, sockperf p50 <= 1.1x ffnet's)
# and its connections/s >= 0.7x ffnet's.
# The router runs without rings here (--same-host-rings 0), so that ffnet
# and ffexec share one data path, the socketpair; the rings, on by
# default, are bench/rings.sh's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/lib.sh"
: "${BENCH_RUNS:=3}"
out=${BENCH_OUT:-$here/out}
mkdir -p "$out"

FF_ROUTER_ARGS="${FF_ROUTER_ARGS:-} --same-host-rings 0" bench_setup bench-same-host 10.77.8.0/24 || exit $?
wheres=(host bridge ffnet ffexec)
more_run() { # WHERE: its redis SET and GET requests/s, connections/s and the cost of
	# the calls ffexec traps, appended to v
	local set get gsn sso
	read -r set get < <(measure_redis "$1")
	v[set.$1]+=" ${set:-0}"
	v[get.$1]+=" ${get:-0}"
	v[conns.$1]+=" $(measure_connrate "$1")"
	read -r gsn sso < <(measure_calls "$1")
	v[gsn.$1]+=" ${gsn:-0}"
	v[sso.$1]+=" ${sso:-0}"
	if bench_gonet && [[ $1 == bridge || $1 == ffexec ]]; then
		v[gonet.$1]+=" $(measure_gonet "$1")"
	fi
	return 0
}
declare -A v=()
net_runs ff_log more_run
total=$(ff_conns_total)

declare -A m=()
medians

metrics=(iperf1 iperf4 p50 p99 set get conns gsn sso)
bench_gonet && metrics+=(gonet)
declare -A label=([iperf1]="iperf3 1 stream (Gbit/s)" [iperf4]="iperf3 4 streams (Gbit/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [set]="redis SET (req/s)"
	[get]="redis GET (req/s)" [conns]="connrate (conn/s)" [gonet]="gonet rate (conn/s)"
	[gsn]="getsockname (us/call)" [sso]="setsockopt (us/call)")
declare -A lower=([p50]=1 [p99]=1 [gsn]=1 [sso]=1)

# speed-up of A (default ffnet) over X: higher is better for every metric
speedup() { # METRIC X [A]
	local a=${3:-ffnet}
	if [[ -n ${lower[$1]:-} ]]; then
		[[ -n ${m[$1.$a]:-} ]] && ratio "${m[$1.$2]:-}" "${m[$1.$a]}" || echo -
	else
		ratio "${m[$1.$a]:-}" "${m[$1.$2]:-}"
	fi
}
verdict() { # RATIO MIN: met when RATIO >= MIN
	awk -v r="$1" -v t="$2" 'BEGIN { print (r != "-" && r + 0 >= t) ? "met" : "MISSED" }'
}
cell() { echo "${m[$1.$2]:--}"; } # METRIC WHERE: its median, "-" if not measured

printf '\nffnet same-host benchmark: median of %d runs of %ss; %s; %s CPUs\n' "$BENCH_RUNS" \
	"$BENCH_SECS" "$(tb_backend) containers" "$ncpu"
printf 'throughput: server on CPU %s, client on CPU %s; latency: both on CPU %s\n\n' \
	"$BENCH_SRV_CPU" "$BENCH_CLI_CPU" "$BENCH_SRV_CPU"
printf '%-26s %10s %10s %10s %10s %13s %15s %13s\n' metric loopback bridge ffnet ffexec \
	ffnet/bridge ffnet/loopback ffexec/ffnet
for k in "${metrics[@]}"; do
	printf '%-26s %10s %10s %10s %10s %12sx %14sx %12sx\n' "${label[$k]}" "$(cell "$k" host)" \
		"$(cell "$k" bridge)" "$(cell "$k" ffnet)" "$(cell "$k" ffexec)" "$(speedup "$k" bridge)" \
		"$(speedup "$k" host)" "$(speedup "$k" ffnet ffexec)"
done
t1=$(verdict "$(speedup iperf1 bridge)" 1.5)
t2=$(verdict "$(speedup iperf1 host)" 1.2)
t3=$(verdict "$(speedup p50 host)" 1.0)
# ffexec against ffnet: p50 <= 1.1x is a speed-up >= 1/1.1
e1=$(verdict "$(speedup iperf1 ffnet ffexec)" 0.9)
e2=$(verdict "$(speedup iperf4 ffnet ffexec)" 0.9)
e3=$(verdict "$(speedup p50 ffnet ffexec)" "$(awk 'BEGIN { print 1 / 1.1 }')")
e4=$(verdict "$(speedup conns ffnet ffexec)" 0.7)
printf '\ntargets: iperf3 >= 1.5x bridge: %s; >= 1.2x loopback: %s; sockperf p50 <= loopback: %s\n' \
	"$t1" "$t2" "$t3"
printf 'ffexec vs ffnet: iperf3 >= 0.9x: 1 stream %s, 4 streams %s; sockperf p50 <= 1.1x: %s; connrate >= 0.7x: %s\n' \
	"$e1" "$e2" "$e3" "$e4"
printf '(ratios are speed-ups: above 1 means the first named is better; the router accelerated %s connections)\n' "$total"
printf '(a call ffexec traps costs %s us more than on the bridge: getsockname %s us against %s us)\n' \
	"$(awk -v a="$(cell gsn ffexec)" -v b="$(cell gsn bridge)" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.1f", a - b }')" \
	"$(cell gsn ffexec)" "$(cell gsn bridge)"
if bench_gonet; then
	printf '(gonet is static Go, which the shim cannot reach: bridge and ffexec only; ffexec/bridge %sx)\n' \
		"$(speedup gonet bridge ffexec)"
fi

json=$out/same-host.json
{
	printf '{"runs": %d, "seconds": %s, "backend": "%s", "cpus": %d,\n "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$(tb_backend)" "$ncpu"
	json_metrics
	printf '},\n "targets": {"iperf_vs_bridge_1.5x": "%s", "iperf_vs_loopback_1.2x": "%s", "p50_vs_loopback": "%s",' \
		"$t1" "$t2" "$t3"
	printf '\n  "ffexec_iperf1_vs_ffnet_0.9x": "%s", "ffexec_iperf4_vs_ffnet_0.9x": "%s",' "$e1" "$e2"
	printf ' "ffexec_p50_vs_ffnet_1.1x": "%s", "ffexec_conns_vs_ffnet_0.7x": "%s"}}\n' "$e3" "$e4"
} >"$json"
jq . "$json" >/dev/null
echo "JSON: $json"
chart "$json" "$out/same-host.png"
if [[ ${BENCH_RINGS:-1} != 0 ]]; then
	# this test bed goes first: rings.sh makes its own
	trap - EXIT
	ff_cleanup || true
	exec "$here/rings.sh"
fi
