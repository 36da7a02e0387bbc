#!/usr/bin/env bash
# bench/verbs: RDMA verbs through ffnet against native soft-RoCE, in one run
# of the rxe VM (tests/vm/ffvm, layout single, RDMA namespaces exclusive):
#   ib_write_bw, ib_send_bw   4 KiB and 64 KiB, BW average (MB/s)
#   ib_write_lat, ib_send_lat 2 B and 64 B, t_avg and t_typical (the median,
#                             in us), as perftest prints them
# Each figure is the median of BENCH_RUNS (3) runs. Native and ffnet take
# turns for every test, and the one that goes first alternates from run to
# run, so drift on this shared machine hits both alike.
#   native  both perftest ends in the guest's initial network namespace on
#           rxe0 (-d rxe0), the client dialling 10.77.0.1: loopback through
#           rxe0. Exclusive mode hides rxe0 only from namespaces created
#           later; the script checks that the initial one still sees it.
#   ffnet   server in container a, client in container b (network
#           namespaces with no RDMA device), shim preloaded, -d ffnet0; one
#           router on rxe0, so the same device loops the traffic back.
# Both use -x 1 -F and perftest's defaults otherwise (TX depth, CQ
# moderation, inline size). Latency tests are pinned, the server to vCPU 1
# and the client to vCPU 0 (taskset), native and ffnet alike: unpinned,
# both setups flip between ~15 and ~25 us per round trip from one run to
# the next, and a median of 3 is a coin toss. With the ring data path the
# router needs a vCPU of its own, so there nothing is pinned (BENCH_PIN=0
# turns pinning off, BENCH_PIN=1 forces it). Bandwidth tests are never
# pinned: rxe's work runs beside them.
# Iteration counts (-n, not -D): under TCG, perftest 4.5's duration mode
# runs the bandwidth tests with CQ moderation 1 (a fraction of the -n
# figure at 64 KiB) and its latency tests print t_avg only.
# Noise: with the host busy (other VMs on its 2 cores), native rxe latency
# turns bimodal, ~25 us or one guest tick (~4 ms) per round trip, from one
# run to the next; nice/SCHED_IDLE on perftest did not change that, a quiet
# host does. The table header shows the host's load average before and
# after; compare runs made at similar load.
#
#   bench/verbs.sh                (root; after scripts/build.sh)
# Prints a table on stdout (progress on stderr), writes bench/out/verbs.json
# and keeps every perftest output in bench/out/verbs/. A perftest that
# fails or prints no result line stops the run with a non-zero status.
# Exits 77 when the VM cannot run here, 124 when it times out.
# Targets (printed, never enforced): ffnet bandwidth >= 0.9x native at
# 64 KiB and >= 0.8x at 4 KiB; latency <= 1.3x native.
# Targets are judged on paired ratios: run r's ffnet figure over run r's
# native one, which ran right before or after it, and the median of those
# over the runs. Both setups flip between two speeds with the host's
# scheduling of the guest (~15 or ~25 us per round trip, a whole run at a
# time, pinned or not), and a pair measured back to back mostly shares one;
# the ratio of the two medians, also printed, mixes them.
# Environment: BENCH_RUNS (3), BENCH_PIN (auto), BENCH_SETTLE (3 s before
# each pair), BENCH_BW4K_ITERS (5000), BENCH_BW64K_ITERS
# (1000), BENCH_LAT_ITERS (1000), BENCH_VM_TIMEOUT (3600 s), BENCH_OUT
# (bench/out), FF_BUILD (build/), BENCH_ROUTER_ARGS (extra ffrouter options,
# e.g. "--rdma-poll-us 20000").
set -euo pipefail
here=$(cd "$(dirname -- "$(readlink -f -- "$0")")" && pwd -P)
top=$(dirname -- "$here")
# shellcheck source=../tests/vm/lib.sh
. "$top/tests/vm/lib.sh"

# The tests, in the order they run: KEY PROGRAM SIZE ITERS-VARIABLE.
TESTS=(
	"write_bw_4k ib_write_bw 4096 BW4K"
	"write_bw_64k ib_write_bw 65536 BW64K"
	"send_bw_4k ib_send_bw 4096 BW4K"
	"send_bw_64k ib_send_bw 65536 BW64K"
	"send_lat_2 ib_send_lat 2 LAT"
	"send_lat_64 ib_send_lat 64 LAT"
	"write_lat_2 ib_write_lat 2 LAT"
	"write_lat_64 ib_write_lat 64 LAT"
)

# ---------------------------------------------------------------- guest --

# on WHERE ROLE CMD...: CMD on the server or client side of WHERE
on() {
	local where=$1 role=$2
	shift 2
	if [[ $where == native ]]; then
		"$@"
	elif [[ $role == server ]]; then
		vb_ct a "$@"
	else
		vb_ct b "$@"
	fi
}

# pt WHERE LOG PROG ARGS...: one perftest server/client pair on WHERE, the
# outputs in LOG.server and LOG.client. Both must exit 0 and print nothing
# that looks like an error; otherwise their outputs go to stderr and the
# run stops.
pt() {
	local where=$1 log=$2 prog=$3 dev=rxe0 ip=10.77.0.1 spid crc=0 src=0 pins=() pinc=()
	shift 3
	if [[ $prog == *_lat && $BV_PIN == 1 ]]; then
		pins=(taskset -c 1)
		pinc=(taskset -c 0)
	fi
	if [[ $where == ffnet ]]; then
		dev=ffnet0
		ip=${VB_IP[a]}
	fi
	BV_PORT=$((BV_PORT + 1))
	on "$where" server "${pins[@]}" timeout -k 5 "$BV_TIMEOUT" "$prog" -d "$dev" -x 1 -F "$@" -p "$BV_PORT" \
		>"$log.server" 2>&1 &
	spid=$!
	if [[ $where == native ]]; then wait_listen "$BV_PORT"; else vb_wait_listen a "$BV_PORT"; fi
	on "$where" client "${pinc[@]}" timeout -k 5 "$BV_TIMEOUT" "$prog" -d "$dev" -x 1 -F "$@" -p "$BV_PORT" "$ip" \
		>"$log.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	if ((crc != 0 || src != 0)); then
		show "$log.server" "$log.server" >&2
		show "$log.client" "$log.client" >&2
		fail "$where $prog $*: client exited $crc, server $src"
	fi
	no_errors "$where $prog server" "$log.server"
	no_errors "$where $prog client" "$log.client"
}

# bw_result FILE SIZE ITERS: the BW average (MB/s) from perftest's result
# line for SIZE x ITERS, which must be there with a positive average and
# message rate.
bw_result() {
	local line avg rate num='[0-9]+(\.[0-9]+)?'
	line=$(grep -E "^[[:space:]]*$2[[:space:]]+$3[[:space:]]+${num}[[:space:]]+${num}[[:space:]]+$num" "$1") ||
		fail "$1: no '$2 $3 <peak> <average> <msg rate>' result line"
	read -r _ _ _ avg rate _ <<<"$line"
	awk -v a="$avg" -v r="$rate" 'BEGIN { exit !(a > 0 && r > 0) }' ||
		fail "$1: BW average $avg MB/s, message rate $rate Mpps"
	echo "$avg"
}

# lat_result FILE SIZE ITERS: "T_TYPICAL T_AVG" from perftest's result line
# for SIZE x ITERS (cycles with -C); both must be finite and positive.
lat_result() {
	local line typ avg num='[0-9]+(\.[0-9]+)?'
	line=$(grep -E "^[[:space:]]*$2[[:space:]]+$3([[:space:]]+$num){4}" "$1") ||
		fail "$1: no '$2 $3 <t_min> <t_max> <t_typical> <t_avg>' result line"
	read -r _ _ _ _ typ avg _ <<<"$line"
	awk -v t="$typ" -v a="$avg" 'BEGIN { exit !(t > 0 && a > 0) }' ||
		fail "$1: t_typical $typ us, t_avg $avg us"
	echo "$typ $avg"
}

# measure RUN WHERE KEY PROG SIZE ITERS: one test, its figures appended to
# results.tsv as "KEY WHERE RUN VALUE" lines. perftest times with the TSC
# and first estimates its rate against gettimeofday; when the guest is
# descheduled during that estimate (often, on this shared host) it says
# "Correlation coefficient r^2 < 0.9" and prints inf or 0 figures. Such a
# pair is run again, up to 3 times, and counted in retries. Latency tests
# report TSC cycles instead (-C), converted with the kernel's TSC rate, so
# only the bandwidth tests depend on that estimate.
measure() {
	local run=$1 where=$2 key=$3 prog=$4 size=$5 iters=$6 log try bw lat typ avg
	log=$BV_LOGS/$key.$where.$run
	# latency in TSC cycles (-C): no clock estimate, converted below with
	# the guest kernel's TSC rate, the same for native and ffnet
	local cyc=()
	[[ $prog == *_lat ]] && cyc=(-C)
	for ((try = 1; ; try++)); do
		# let the previous pair's teardown (MRs unpinned, QPs flushed)
		# finish first: without the pause the setup that ran second,
		# right after a 64 KiB pair, measured up to a third lower
		sleep "$BV_SETTLE"
		pt "$where" "$log" "$prog" "${cyc[@]}" -s "$size" -n "$iters"
		grep -q 'Correlation coefficient' "$log.client" || break
		((try < 3)) || fail "$log.client: perftest could not estimate its clock rate 3 times in a row"
		mv "$log.client" "$log.client.try$try"
		mv "$log.server" "$log.server.try$try"
		echo "$key $where $run" >>"$FFVM_OUT/retries"
		printf 'run %s %-6s %-12s %5s B: perftest could not estimate its clock rate; again\n' \
			"$run" "$where" "$prog" "$size"
	done
	if [[ $prog == *_bw ]]; then
		bw=$(bw_result "$log.client" "$size" "$iters")
		printf '%s %s %s %s\n' "$key" "$where" "$run" "$bw" >>"$BV_RESULTS"
		printf 'run %s %-6s %-12s %5s B x %s: %s MB/s\n' "$run" "$where" "$prog" "$size" "$iters" "$bw"
	else
		lat=$(lat_result "$log.client" "$size" "$iters")
		read -r typ avg <<<"$lat"
		typ=$(awk -v c="$typ" -v m="$BV_MHZ" 'BEGIN { printf "%.2f", c / m }')
		avg=$(awk -v c="$avg" -v m="$BV_MHZ" 'BEGIN { printf "%.2f", c / m }')
		printf '%s_typ %s %s %s\n%s_avg %s %s %s\n' "$key" "$where" "$run" "$typ" \
			"$key" "$where" "$run" "$avg" >>"$BV_RESULTS"
		printf 'run %s %-6s %-12s %5s B x %s: t_typical %s us, t_avg %s us\n' "$run" "$where" \
			"$prog" "$size" "$iters" "$typ" "$avg"
	fi
}

guest_exit() {
	local rc=$?
	vb_cleanup
	cp -f "$VB_LOGS"/router-*.log "$BV_LOGS/" 2>/dev/null || true
	exit "$rc"
}

# guest RUNS BW4K BW64K LAT
guest() {
	local runs=$1 r t key prog size var where order
	local -A iters=([BW4K]=$2 [BW64K]=$3 [LAT]=$4)
	BV_PIN=$5 BV_SETTLE=$6
	[[ -n ${FFVM_OUT:-} ]] || fail "no /ffvm/out in the guest (ffvm --out missing)"
	BV_LOGS=$FFVM_OUT/logs BV_RESULTS=$FFVM_OUT/results.tsv BV_PORT=18700 BV_TIMEOUT=300
	BV_MHZ=$(awk -F': *' '/^cpu MHz/ { print $2; exit }' /proc/cpuinfo)
	awk -v m="$BV_MHZ" 'BEGIN { exit !(m > 0) }' || fail "no TSC rate in /proc/cpuinfo ('$BV_MHZ')"
	mkdir -p "$BV_LOGS"
	: >"$BV_RESULTS"
	: >"$FFVM_OUT/retries"
	# shellcheck disable=SC2034 # read by verbs-lib.sh
	VB_VERBS_PATH=auto # not guest's arguments; BENCH_ROUTER_ARGS may say --verbs-path
	# shellcheck source=../tests/vm/verbs-lib.sh
	. "$top/tests/vm/verbs-lib.sh"
	trap guest_exit EXIT

	rdma system show | grep -q 'netns exclusive' || fail "RDMA namespaces are not exclusive"
	ibv_devices | grep -Eq '^[[:space:]]+rxe0[[:space:]]' ||
		fail "the initial namespace does not see rxe0: no native baseline"
	# shellcheck disable=SC2086 # options, split on purpose
	vb_one_host ${FF_ROUTER_ARGS:-}
	BV_PATH=$(sed -n 's/.*verbs data path: \([a-z]*\).*/\1/p' "$VB_LOGS/router-h1.log")
	if [[ $BV_PIN == auto ]]; then
		BV_PIN=0
		[[ $BV_PATH == direct ]] && BV_PIN=1
	fi
	printf '%s %s\n' kernel "$(uname -r)" cpus "$(nproc)" path "$BV_PATH" pin "$BV_PIN" >"$FFVM_OUT/info"

	for ((r = 1; r <= runs; r++)); do
		order=(native ffnet)
		((r % 2)) || order=(ffnet native)
		for t in "${TESTS[@]}"; do
			read -r key prog size var <<<"$t"
			for where in "${order[@]}"; do
				measure "$r" "$where" "$key" "$prog" "$size" "${iters[$var]}"
			done
		done
	done
}

if in_vm; then
	guest "$@"
	exit
fi

# ----------------------------------------------------------------- host --

# shellcheck source=../tests/integ/lib/testbed.sh
. "$top/tests/integ/lib/testbed.sh"
# shellcheck source=stats.sh
. "$here/stats.sh"
: "${BENCH_RUNS:=3}" "${BENCH_BW4K_ITERS:=5000}" "${BENCH_BW64K_ITERS:=1000}"
: "${BENCH_LAT_ITERS:=1000}" "${BENCH_VM_TIMEOUT:=3600}"
out=${BENCH_OUT:-$here/out}
export FF_BUILD=${FF_BUILD:-$top/build}
export FF_ROUTER_ARGS=${BENCH_ROUTER_ARGS:-}
die() { printf 'bench/verbs: %s\n' "$1" >&2; exit "${2:-1}"; }

[[ -x $FF_BUILD/ffrouter/ffrouter && -f $FF_BUILD/libffshim/libffshim.so && -x $FF_BUILD/ffctl/ffctl ]] ||
	die "no ffrouter, libffshim.so or ffctl in $FF_BUILD: build first (scripts/build.sh)"
((EUID == 0)) || die "run as root (the VM reads the host's / as the caller)"
# the guest runs the host's programs
tb_ensure ib_write_bw:perftest ibv_devices:ibverbs-utils rdma:iproute2 ss:iproute2 jq taskset:util-linux \
	timeout:coreutils || die "missing packages (above)"
# libibverbs only recommends its providers; rxe's is a file, not a command
if ! compgen -G '/usr/lib/*/libibverbs/librxe-*.so' >/dev/null; then
	dpkg-query -W ibverbs-providers >/dev/null 2>&1 && die "ibverbs-providers is installed but has no rxe provider"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ibverbs-providers >&2 ||
		die "no rxe provider for libibverbs, and apt-get install ibverbs-providers failed"
fi

mkdir -p "$out"
raw=$out/verbs
rm -rf "$raw"
mkdir -p "$raw"
printf 'bench/verbs: one VM run, %d runs of %d tests x native/ffnet; logs in %s; router options: %s\n' \
	"$BENCH_RUNS" "${#TESTS[@]}" "$raw" "${FF_ROUTER_ARGS:-none}" >&2
load0=$(cut -d ' ' -f 1-3 /proc/loadavg)
rc=0
FFVM_RDMA_NETNS=exclusive "$FFVM" --layout single --timeout "$BENCH_VM_TIMEOUT" --out "$raw" \
	--log "$raw/console.log" -- "$here/verbs.sh" "$BENCH_RUNS" "$BENCH_BW4K_ITERS" \
	"$BENCH_BW64K_ITERS" "$BENCH_LAT_ITERS" "${BENCH_PIN:-auto}" "${BENCH_SETTLE:-3}" >&2 || rc=$?
case $rc in
0) ;;
77) die "the rxe VM cannot run here (reason above)" 77 ;;
124) die "the VM run timed out after $BENCH_VM_TIMEOUT s (BENCH_VM_TIMEOUT); partial results in $raw" 124 ;;
125) die "the VM failed around the benchmark (see above and $raw/console.log)" 125 ;;
*) die "the benchmark failed in the VM (status $rc, see above); perftest outputs in $raw/logs" "$rc" ;;
esac

load1=$(cut -d ' ' -f 1-3 /proc/loadavg)
retries=$(wc -l <"$raw/retries")
declare -A v=() m=()
while read -r key where run val; do
	v[$key.$where]+=" $val"
done <"$raw/results.tsv"
metrics=(write_bw_4k write_bw_64k send_bw_4k send_bw_64k
	send_lat_2_typ send_lat_2_avg send_lat_64_typ send_lat_64_avg
	write_lat_2_typ write_lat_2_avg write_lat_64_typ write_lat_64_avg)
declare -A label=() target=()
for k in "${metrics[@]}"; do
	for w in native ffnet; do
		# shellcheck disable=SC2086 # the values are a word list
		set -- ${v[$k.$w]:-}
		(($# == BENCH_RUNS)) || die "$k $w: $# results for $BENCH_RUNS runs in $raw/results.tsv"
		m[$k.$w]=$(median "$@")
	done
	m[$k.ratio]=$(ratio "${m[$k.ffnet]}" "${m[$k.native]}")
	# run r's ffnet figure against run r's native one (measured back to
	# back), the median of those ratios
	read -ra fv <<<"${v[$k.ffnet]}"
	read -ra nv <<<"${v[$k.native]}"
	pr=()
	for ((i = 0; i < BENCH_RUNS; i++)); do
		pr+=("$(ratio "${fv[i]}" "${nv[i]}")")
	done
	m[$k.pruns]=${pr[*]}
	if [[ " ${pr[*]} " == *" - "* ]]; then m[$k.paired]=-; else m[$k.paired]=$(median "${pr[@]}"); fi
	case $k in
	*_bw_4k) label[$k]="ib_${k%_bw_4k}_bw 4 KiB (MB/s)" target[$k]=">=0.8" ;;
	*_bw_64k) label[$k]="ib_${k%_bw_64k}_bw 64 KiB (MB/s)" target[$k]=">=0.9" ;;
	*_lat_*)
		size=${k#*_lat_}
		size=${size%_*}
		label[$k]="ib_${k%%_lat_*}_lat $size B $([[ $k == *_avg ]] && echo t_avg || echo t_typical) (us)"
		target[$k]="<=1.3"
		;;
	esac
	m[$k.met]=$(awk -v r="${m[$k.paired]}" -v t="${target[$k]}" 'BEGIN {
		if (r == "-") { print "MISSED"; exit }
		op = substr(t, 1, 2); x = substr(t, 3) + 0
		print ((op == ">=" && r + 0 >= x) || (op == "<=" && r + 0 <= x)) ? "met" : "MISSED" }')
done
kernel=$(awk '$1 == "kernel" { print $2 }' "$raw/info")
cpus=$(awk '$1 == "cpus" { print $2 }' "$raw/info")
path=$(awk '$1 == "path" { print $2 }' "$raw/info")
pin=$(awk '$1 == "pin" { print $2 }' "$raw/info")
perftest=$(dpkg-query -W -f='${Version}' perftest 2>/dev/null || echo unknown)
# the state of the tree FF_BUILD was built from ("unknown" if not a git tree)
src=$(jq -r .directories.source "$FF_BUILD/meson-info/meson-info.json" 2>/dev/null || echo "$top")
commit=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)

printf '\nffnet RDMA verbs benchmark: median of %d interleaved runs; rxe under QEMU TCG, kernel %s, %s vCPUs\n' \
	"$BENCH_RUNS" "$kernel" "$cpus"
printf 'native: both ends on rxe0 in the initial namespace; ffnet: container a <- b through ffnet0 on one router, %s data path\n' \
	"${path:-unknown}"
printf 'latency tests %s\n' "$([[ $pin == 1 ]] && echo 'pinned: server on vCPU 1, client on vCPU 0' || echo 'not pinned')"
printf 'iterations: bw 4 KiB %d, bw 64 KiB %d, latency %d; perftest %s; ffnet %s built in %s; router options: %s\n' \
	"$BENCH_BW4K_ITERS" "$BENCH_BW64K_ITERS" "$BENCH_LAT_ITERS" "$perftest" "$commit" "$FF_BUILD" "${FF_ROUTER_ARGS:-none}"
printf 'host load average before: %s, after: %s; pairs re-run after a failed clock estimate: %d\n\n' \
	"$load0" "$load1" "$retries"
printf '%-34s %10s %10s %13s %8s  %s\n' metric native ffnet ffnet/native paired target
met=0
for k in "${metrics[@]}"; do
	printf '%-34s %10s %10s %12sx %7sx  %sx %s\n' "${label[$k]}" "${m[$k.native]}" "${m[$k.ffnet]}" \
		"${m[$k.ratio]}" "${m[$k.paired]}" "${target[$k]}" "${m[$k.met]}"
	[[ ${m[$k.met]} == met ]] && met=$((met + 1))
done
printf '\nffnet/native: of the medians; paired: the median of each run'"'"'s ffnet/native (one back-to-back pair), which the targets are judged on\n'
printf 'targets met: %d of %d (bandwidth >= 0.9x native at 64 KiB, >= 0.8x at 4 KiB; latency <= 1.3x)\n' \
	"$met" "${#metrics[@]}"

json=$out/verbs.json
{
	printf '{"runs": %d, "backend": "rxe in QEMU TCG", "kernel": "%s", "cpus": %s, "perftest": "%s", "commit": "%s",\n "build": "%s", "router_args": "%s", "data_path": "%s", "latency_pinned": %s,' \
		"$BENCH_RUNS" "$kernel" "$cpus" "$perftest" "$commit" "$FF_BUILD" "${FF_ROUTER_ARGS:-}" "${path:-unknown}" \
		"$([[ $pin == 1 ]] && echo true || echo false)"
	printf ' "iterations": {"bw_4k": %d, "bw_64k": %d, "lat": %d},\n' \
		"$BENCH_BW4K_ITERS" "$BENCH_BW64K_ITERS" "$BENCH_LAT_ITERS"
	printf ' "host_load": {"before": "%s", "after": "%s"}, "clock_retries": %d,\n "metrics": {' \
		"$load0" "$load1" "$retries"
	sep=
	for k in "${metrics[@]}"; do
		printf '%s\n  "%s": {"label": "%s", "lower_is_better": %s' "$sep" "$k" "${label[$k]}" \
			"$([[ $k == *_lat_* ]] && echo true || echo false)"
		for w in native ffnet; do
			# shellcheck disable=SC2086
			printf ', "%s": {"median": %s, "runs": [%s]}' "$w" "${m[$k.$w]}" "$(echo ${v[$k.$w]} | tr ' ' ',')"
		done
		printf ', "ratio": %s, "paired_ratio": %s, "paired_runs": [%s], "target": "%s", "met": %s}' \
			"$([[ ${m[$k.ratio]} == - ]] && echo null || echo "${m[$k.ratio]}")" \
			"$([[ ${m[$k.paired]} == - ]] && echo null || echo "${m[$k.paired]}")" \
			"$(tr ' ' '\n' <<<"${m[$k.pruns]}" | sed 's/^-$/null/' | paste -sd,)" \
			"${target[$k]}" "$([[ ${m[$k.met]} == met ]] && echo true || echo false)"
		sep=,
	done
	printf '},\n "targets_met": %d, "targets": %d}\n' "$met" "${#metrics[@]}"
} >"$json"
jq . "$json" >/dev/null || die "wrote invalid JSON to $json"
echo "JSON: $json"
