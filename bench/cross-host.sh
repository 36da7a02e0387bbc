#!/usr/bin/env bash
# bench/cross-host: two emulated hosts (tests/integ/lib/xhosts.sh), four
# ways from a client on A to a server on B:
#   host    host A to host B directly (the floor: no containers)
#   nat     container a1 to container b1 over bridge + NAT on both hosts
#           (b1 published through DNAT on B, as `docker -p` does)
#   ffnet   a1 to b1's own address through ffnet (host TCP handed over)
#   ffexec  the same as ffnet, the programs under ffexec (no LD_PRELOAD:
#           the routers' seccomp supervisors accelerate their sockets)
# iperf3 (1 and 4 streams), sockperf ping-pong p50/p99 (both ends on one
# CPU), and connection set-up (bench/connrate, connections/s, with the two
# routers' CPU per connection; and static Go's, gonet rate, where no shim
# is meant to reach it: nat, ffexec).
# Median of BENCH_RUNS (3) interleaved runs; table,
# bench/out/cross-host.json, .png.
# Targets: ffnet >= 0.97x host throughput, p50 <= 1.05x host; ffexec the
# shim's within noise (>= 0.9x ffnet's throughput, p50 <= 1.1x) and
# >= 0.7x ffnet's connections/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/../tests/integ/lib/xhosts.sh"
. "$here/stats.sh"
: "${BENCH_RUNS:=3}" "${BENCH_SECS:=5}"
out=${BENCH_OUT:-$here/out}
ncpu=$(nproc)
srv_cpu=$((ncpu > 1 ? 1 : 0)) cli_cpu=0
mkdir -p "$out"
connrate=$XH_BUILD/bench/connrate gonet=$XH_BUILD/tests/progs/gonet
[[ -x $connrate ]] || { echo "build first (scripts/build.sh)" >&2; exit 1; }

rc=0
xh_init || rc=$?
((rc == 0)) || exit $rc
xh_router A && xh_router B && xh_static_map
# the container network's way to b1: host B's port +1000 (its own ports stay
# free for the host-to-host runs)
for p in 5301 11311 7400 7401; do xh_dnat B $((p + 1000)) b1 $p; done

# xe C CPU -- CMD...: in XE, the command line that runs CMD in container C
# under ffexec, pinned to CPU (as tests/integ/t-xhost.sh's xe())
xe() {
	local c=$1 cpu=$2
	shift 3
	XE=(ip netns exec "$(xh_ns "$c")" env FFNET_SOCK="$(xh_rundir "${XH_CHOST[$c]}")/c/$c/ffrouter.sock"
		taskset -c "$cpu" "$XH_BUILD/ffexec/ffexec" "$@")
}

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
	ffexec:client) xe a1 "$cpu" -- "$@" && "${XE[@]}" ;;
	esac
}
target() { # WHERE: the address the client dials
	case $1 in
	host | nat) echo "${XH_HOSTIP[B]}" ;;
	ffnet | ffexec) echo "${XH_CIP[b1]}" ;;
	esac
}
dport() { # WHERE PORT: the port the client dials
	[[ $1 == nat ]] && echo $(($2 + 1000)) || echo "$2"
}
server_ns() { [[ $1 == host ]] && echo B || echo b1; }

start_server() { # WHERE PORT -- CMD: pid in SRV
	local w=$1 port=$2 who
	shift 3
	case $w in host) who=in ;; nat) who=plain ;; ffnet) who=x ;; ffexec) who=e ;; esac
	if [[ $who == e ]]; then
		xe b1 "$srv_cpu" -- "$@"
		(exec "${XE[@]}") >/dev/null 2>&1 &
		SRV=$!
	else
		xh_spawn "$who" "$(server_ns "$w")" -- taskset -c "$srv_cpu" "$@" >/dev/null 2>&1
		SRV=$XH_PID
	fi
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
	[[ $(iperf_gbps "$o") != 0 ]] ||
		xh_log "iperf3 -P $2 in $1 failed: $(jq -r '.error // empty' <<<"$o" 2>/dev/null | tail -n 1)"
	iperf_gbps "$o"
}
measure_sockperf() { # WHERE: "p50 p99"
	local o
	start_server "$1" 11311 -- sockperf sr --tcp -i 0.0.0.0 -p 11311
	o=$(run "$1" client "$srv_cpu" -- sockperf pp --tcp -i "$(target "$1")" -p "$(dport "$1" 11311)" -t "$BENCH_SECS" 2>&1 || true)
	stop_server
	grep -q 'percentile 50.000' <<<"$o" ||
		xh_log "sockperf in $1 failed: $(grep -m 1 ERROR <<<"$o" || tail -n 1 <<<"$o")"
	sockperf_pcts "$o"
}
ticks() { # the CPU ticks (utime + stime) of both routers so far
	awk '{ t += $14 + $15 } END { print t }' "/proc/${XH_ROUTER[A]}/stat" "/proc/${XH_ROUTER[B]}/stat"
}
conns() { # WHERE: "connections/s routers' CPU us per connection" (the latter - for host, nat)
	local o c t0 t1 us=-
	start_server "$1" 7400 -- "$connrate" server 7400
	t0=$(ticks)
	o=$(run "$1" client "$cli_cpu" -- "$connrate" client "$(target "$1")" "$(dport "$1" 7400)" "$BENCH_SECS" 2>&1 || true)
	t1=$(ticks)
	stop_server
	c=$(sed -n 's/^\([0-9]*\) connections\/s$/\1/p' <<<"$o" | head -n 1)
	[[ -n $c ]] || xh_log "connrate in $1 failed: $(tail -n 2 <<<"$o")"
	if [[ $1 == ffnet || $1 == ffexec ]] && ((${c:-0} > 0)); then
		us=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n=$((c * BENCH_SECS)) \
			'BEGIN { printf "%.0f", t * 1e6 / hz / n }')
	fi
	echo "${c:-0} $us"
}
gorate() { # WHERE: requests/s of gonet rate, each on a new connection (0 on any error)
	local o c
	start_server "$1" 7401 -- "$gonet" serve 0.0.0.0:7401
	o=$(run "$1" client "$cli_cpu" -- "$gonet" rate "http://$(target "$1"):$(dport "$1" 7401)/bytes?n=100" \
		-d "$BENCH_SECS" 2>&1 || true)
	stop_server
	c=$(sed -n 's/^requests [0-9]* errors 0 per_sec \([0-9.]*\)$/\1/p' <<<"$o" | head -n 1)
	[[ -n $c ]] || xh_log "gonet rate in $1 failed: $(tail -n 2 <<<"$o")"
	echo "${c:-0}"
}

wheres=(host nat ffnet ffexec)
conns_run() { # WHERE: its connections/s (and the routers' CPU for them), appended to v
	local c us
	read -r c us < <(conns "$1")
	v[conns.$1]+=" $c"
	[[ $us == - ]] || v[rcpu.$1]+=" $us"
	if [[ -x $gonet && ($1 == nat || $1 == ffexec) ]]; then
		v[gonet.$1]+=" $(gorate "$1")"
	fi
	return 0
}
declare -A v=()
net_runs xh_log conns_run
accel=$(xh_ctl A status --json | jq -r .conns_total)

declare -A m=()
medians
metrics=(iperf1 iperf4 p50 p99 conns rcpu)
[[ -x $gonet ]] && metrics+=(gonet)
declare -A label=([iperf1]="iperf3 1 stream (Gbit/s)" [iperf4]="iperf3 4 streams (Gbit/s)"
	[p50]="sockperf p50 (us)" [p99]="sockperf p99 (us)" [conns]="connrate (conn/s)"
	[gonet]="gonet rate (conn/s)" [rcpu]="routers' CPU/conn (us)")
declare -A lower=([p50]=1 [p99]=1 [rcpu]=1)
vs() { # METRIC BASE [A]: A's value (default ffnet) relative to BASE's (a value ratio, not speed-up)
	ratio "${m[$1.${3:-ffnet}]:-}" "${m[$1.$2]:-}"
}
cell() { echo "${m[$1.$2]:--}"; } # METRIC WHERE: its median, "-" if not measured
within() { # RATIO OP LIMIT: met when RATIO OP LIMIT (OP: ge or le)
	awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { ok = op == "ge" ? r + 0 >= t : r + 0 <= t
		print (r != "-" && ok) ? "met" : "MISSED" }'
}

printf '\nffnet cross-host benchmark: median of %d runs of %ss; 2 emulated hosts on %d CPUs\n' \
	"$BENCH_RUNS" "$BENCH_SECS" "$ncpu"
printf 'throughput: server on CPU %s, client on CPU %s; latency: both on CPU %s\n\n' "$srv_cpu" "$cli_cpu" "$srv_cpu"
printf '%-26s %12s %11s %10s %10s %11s %10s %13s\n' metric host-to-host "bridge+NAT" ffnet ffexec \
	ffnet/host ffnet/NAT ffexec/ffnet
for k in "${metrics[@]}"; do
	printf '%-26s %12s %11s %10s %10s %10sx %9sx %12sx\n' "${label[$k]}" "$(cell "$k" host)" \
		"$(cell "$k" nat)" "$(cell "$k" ffnet)" "$(cell "$k" ffexec)" "$(vs "$k" host)" "$(vs "$k" nat)" \
		"$(vs "$k" ffnet ffexec)"
done
t1=$(within "$(vs iperf1 host)" ge 0.97)
t2=$(within "$(vs iperf4 host)" ge 0.97)
t3=$(within "$(vs p50 host)" le 1.05)
e1=$(within "$(vs iperf1 ffnet ffexec)" ge 0.9)
e2=$(within "$(vs iperf4 ffnet ffexec)" ge 0.9)
e3=$(within "$(vs p50 ffnet ffexec)" le 1.1)
e4=$(within "$(vs conns ffnet ffexec)" ge 0.7)
printf '\ntargets: throughput >= 0.97x host: 1 stream %s, 4 streams %s; p50 <= 1.05x host: %s\n' "$t1" "$t2" "$t3"
printf 'ffexec vs ffnet: iperf3 >= 0.9x: 1 stream %s, 4 streams %s; sockperf p50 <= 1.1x: %s; connrate >= 0.7x: %s\n' \
	"$e1" "$e2" "$e3" "$e4"
printf '(ratios are value / other value: for throughput and connections/s higher is better,\n for latency lower is better; router A handed over %s connections)\n' "$accel"
if [[ -x $gonet ]]; then
	printf '(gonet is static Go, which the shim cannot reach: bridge+NAT and ffexec only; ffexec/NAT %sx)\n' \
		"$(vs gonet nat ffexec)"
fi

json=$out/cross-host.json
{
	printf '{"runs": %d, "seconds": %s, "backend": "emulated hosts", "cpus": %d,\n "metrics": {' \
		"$BENCH_RUNS" "$BENCH_SECS" "$ncpu"
	json_metrics host=host2host
	printf '},\n "targets": {"throughput_1_vs_host": "%s", "throughput_4_vs_host": "%s", "p50_vs_host": "%s",' \
		"$t1" "$t2" "$t3"
	printf '\n  "ffexec_iperf1_vs_ffnet_0.9x": "%s", "ffexec_iperf4_vs_ffnet_0.9x": "%s",' "$e1" "$e2"
	printf ' "ffexec_p50_vs_ffnet_1.1x": "%s", "ffexec_conns_vs_ffnet_0.7x": "%s"}}\n' "$e3" "$e4"
} >"$json"
jq . "$json" >/dev/null
echo "JSON: $json"
chart "$json" "$out/cross-host.png"
