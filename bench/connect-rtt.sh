#!/usr/bin/env bash
# bench/connect-rtt: connection set-up across hosts when the network has a
# round trip, as real hosts do (issue 13). The emulated hosts of
# cross-host.sh have none (a veth: a few microseconds), and this machine's
# kernel has no netem; the rxe VM's Debian kernel has it, so this runs
# there (tests/vm/ffvm, layout single, no RDMA used).
#   host   two network namespaces joined by a veth pair, each end delayed
#          DELAY ms by netem (a round trip of 2 x DELAY): connrate from
#          one to the other, plain kernel TCP
#   warm   ffnet across hosts: routers h1 (ingress 127.0.0.1:7946) and h2
#          (127.0.0.2:7946), loopback delayed DELAY ms as well, so the
#          routers' connections have the same round trip; containers a on
#          h1 and b on h2 (no link: only ffnet joins them). Default
#          --warm-conns: a connect sends its preamble on a connection
#          opened ahead of need, and the shim reads the answer itself
#   cold   the same with a second router pair started --warm-conns 0
#          (ports 7947): each connect opens its own router connection
# bench/connrate (connect, read the server's close) for BENCH_SECS, the
# median of BENCH_RUNS interleaved runs, at each delay of BENCH_DELAYS
# (ms, default "5 20"). A plain connect takes a round trip before it
# returns and one more until the server's close arrives; through warm
# connections the connect needs no handshake of its own, and cold ones
# pay a handshake to the other router. Target (issue 13): warm >= 0.8x
# host. Table, bench/out/connect-rtt.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
top=$(cd "$here/.." && pwd -P)
# shellcheck source=../tests/vm/lib.sh
. "$top/tests/vm/lib.sh"
# shellcheck source=stats.sh
. "$here/stats.sh"

# ---------------------------------------------------------------- guest --

guest_pair() { # H1 H2 PORT [ROUTER-ARGS...]: two routers on loopback addresses
	local a=$1 b=$2 port=$3
	shift 3
	vb_router "$a" none --host-id "$a" --ingress "127.0.0.1:$port" --secret-file "$SECRET" "$@"
	vb_router "$b" none --host-id "$b" --ingress "127.0.0.2:$port" --secret-file "$SECRET" "$@"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$a]}" host add "$b" --addr "127.0.0.2:$port" >/dev/null ||
		fail "host add $b on $a"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$b]}" host add "$a" --addr "127.0.0.1:$port" >/dev/null ||
		fail "host add $a on $b"
}

guest_conns() { # WHERE PORT SECS: connections/s (0 if connrate failed)
	local w=$1 port=$2 secs=$3 srv cli out c i ip ns
	case $w in
	host) srv=(ip netns exec ffv-n2) cli=(ip netns exec ffv-n1) ip=10.79.0.2 ns=n2 ;;
	warm) srv=(vb_ct b) cli=(vb_ct a) ip=10.78.0.2 ns=b ;;
	cold) srv=(vb_ct d) cli=(vb_ct c) ip=10.78.0.2 ns=d ;;
	esac
	"${srv[@]}" "$CONNRATE" server "$port" >/dev/null 2>&1 &
	local spid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -n $(ip netns exec "ffv-$ns" ss -Hltn "sport = :$port") ]] && break
		sleep 0.1
	done
	out=$("${cli[@]}" timeout $((secs + 30)) "$CONNRATE" client "$ip" "$port" "$secs" 2>&1 || true)
	pkill -f "$CONNRATE server $port\$" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	c=$(sed -n 's/^\([0-9]*\) connections\/s$/\1/p' <<<"$out" | head -n 1)
	[[ -n $c ]] || printf 'connrate %s: %s\n' "$w" "$(tail -n 1 <<<"$out")" >&2
	echo "${c:-0}"
}

guest() { # RUNS SECS DELAYS...
	local runs=$1 secs=$2 d r w port=18900
	shift 2
	[[ -n ${FFVM_OUT:-} ]] || fail "no /ffvm/out in the guest (ffvm --out missing)"
	# shellcheck disable=SC2034 # read by verbs-lib.sh
	VB_VERBS_PATH=auto
	# shellcheck source=../tests/vm/verbs-lib.sh
	. "$top/tests/vm/verbs-lib.sh"
	CONNRATE=${VB_BUILD:?}/bench/connrate
	[[ -x $CONNRATE ]] || fail "no $CONNRATE: build first"
	SECRET=$VB_LOGS/secret
	head -c 32 /dev/urandom >"$SECRET"
	chmod 600 "$SECRET"
	vb_linked n1 10.79.0.1 n2 10.79.0.2
	vb_alone a 10.78.0.1
	vb_alone b 10.78.0.2
	vb_alone c 10.78.0.1
	vb_alone d 10.78.0.2
	guest_pair h1 h2 7946
	guest_pair h1c h2c 7947 --warm-conns 0
	vb_register h1 a
	vb_register_remote h1 b h2
	vb_register h2 b
	vb_register_remote h2 a h1
	vb_register h1c c
	vb_register_remote h1c d h2c
	vb_register h2c d
	vb_register_remote h2c c h1c
	: >"$FFVM_OUT/results.tsv"
	for d in "$@"; do
		tc qdisc replace dev lo root netem delay "${d}ms" || fail "no netem in this kernel"
		ip netns exec ffv-n1 tc qdisc replace dev vb-n1 root netem delay "${d}ms"
		ip netns exec ffv-n2 tc qdisc replace dev vb-n2 root netem delay "${d}ms"
		for ((r = 0; r < runs; r++)); do
			for w in host warm cold; do
				port=$((port + 1))
				printf '%s\t%s\t%s\n' "$d" "$w" "$(guest_conns "$w" "$port" "$secs")" \
					>>"$FFVM_OUT/results.tsv"
			done
		done
	done
	tc qdisc del dev lo root
	vb_status h1 --json | jq -c .cluster >"$FFVM_OUT/h1-cluster.json"
	vb_status h1c --json | jq -c .cluster >"$FFVM_OUT/h1c-cluster.json"
}

if in_vm; then
	guest "$@"
	exit
fi

# ----------------------------------------------------------------- host --

: "${BENCH_RUNS:=3}" "${BENCH_SECS:=5}" "${BENCH_DELAYS:=5 20}" "${BENCH_VM_TIMEOUT:=1500}"
out=${BENCH_OUT:-$here/out}
export FF_BUILD=${FF_BUILD:-$top/build}
die() { printf 'bench/connect-rtt: %s\n' "$1" >&2; exit "${2:-1}"; }
[[ -x $FF_BUILD/ffrouter/ffrouter && -f $FF_BUILD/libffshim/libffshim.so && -x $FF_BUILD/bench/connrate ]] ||
	die "no ffrouter, libffshim.so or bench/connrate in $FF_BUILD: build first (scripts/build.sh)"
((EUID == 0)) || die "run as root (the VM reads the host's / as the caller)"
raw=$out/connect-rtt
rm -rf "$raw"
mkdir -p "$raw"
rc=0
# shellcheck disable=SC2086 # the delays, a word list
"$FFVM" --layout single --timeout "$BENCH_VM_TIMEOUT" --out "$raw" --log "$raw/console.log" -- \
	"$here/connect-rtt.sh" "$BENCH_RUNS" "$BENCH_SECS" $BENCH_DELAYS >&2 || rc=$?
((rc != 77)) || die "the rxe VM cannot run here (reason above)" 77
((rc == 0)) || die "the VM run failed (status $rc); see $raw/console.log" "$rc"

declare -A v=()
while IFS=$'\t' read -r d w c; do
	v[$d.$w]+=" $c"
done <"$raw/results.tsv"
printf '\nffnet connection set-up with a network round trip (rxe VM, TCG): median of %d runs of %s s\n\n' \
	"$BENCH_RUNS" "$BENCH_SECS"
printf '%-12s %10s %10s %10s %10s %10s\n' "RTT (ms)" host warm cold warm/host cold/host
json="{\"runs\": $BENCH_RUNS, \"seconds\": $BENCH_SECS, \"backend\": \"rxe VM, netem\", \"delays\": ["
sep=
for d in $BENCH_DELAYS; do
	# shellcheck disable=SC2086 # word lists
	h=$(median ${v[$d.host]}) wm=$(median ${v[$d.warm]}) cd=$(median ${v[$d.cold]})
	printf '%-12s %10s %10s %10s %9sx %9sx\n' "$((2 * d))" "$h" "$wm" "$cd" "$(ratio "$wm" "$h")" \
		"$(ratio "$cd" "$h")"
	json+="$sep{\"rtt_ms\": $((2 * d)), \"host\": $h, \"warm\": $wm, \"cold\": $cd,"
	json+=" \"runs\": {\"host\": [$(tr -s ' ' ',' <<<"${v[$d.host]# }")], \"warm\": [$(tr -s ' ' ',' <<<"${v[$d.warm]# }")],"
	json+=" \"cold\": [$(tr -s ' ' ',' <<<"${v[$d.cold]# }")]},"
	json+=" \"target_warm_0.8x_host\": \"$(awk -v a="$wm" -v b="$h" 'BEGIN { print (b > 0 && a / b >= 0.8) ? "met" : "MISSED" }')\"}"
	sep=", "
done
json+="], \"router_h1\": $(cat "$raw/h1-cluster.json"), \"router_h1c\": $(cat "$raw/h1c-cluster.json")}"
mkdir -p "$out"
jq . <<<"$json" >"$out/connect-rtt.json"
printf '\n(connections/s; warm: --warm-conns 4, the shim reads the answer; cold: --warm-conns 0)\n'
echo "JSON: $out/connect-rtt.json"
