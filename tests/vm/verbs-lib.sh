# shellcheck shell=bash
# Helpers for the vm-verbs-* tests (sourced after lib.sh, in the guest).
#
# A "host" is an ffrouter on one rxe device with its own run directory; a
# "container" is a network namespace joined to the others by a veth pair,
# registered with the router, whose programs run with the shim preloaded and
# FFNET_SOCK pointing at its own container socket. The guest runs with
# FFVM_RDMA_NETNS=exclusive: a namespace sees no RDMA device of its own, so
# every verb a container issues goes through ffnet (vb_no_device proves it).
#
# The build directory comes from FF_BUILD (meson sets it; ffvm passes FF*
# variables into the guest).

VB_BUILD=${FF_BUILD:-$(cd "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)/build}
VB_SHIM=$VB_BUILD/libffshim/libffshim.so
VB_ROUTER=$VB_BUILD/ffrouter/ffrouter
VB_FFCTL=$VB_BUILD/ffctl/ffctl
VB_LOGS=$(mktemp -d /tmp/vb.XXXXXX)
VB_PORT=18600
declare -A VB_RUNDIR VB_NS VB_IP VB_PID
# The routers' verbs data path (ffrouter --verbs-path): the test script's
# first argument (or VB_VERBS_PATH), else auto (direct on rxe).
VB_VERBS_PATH=${VB_VERBS_PATH:-${1:-auto}}

[[ -x $VB_ROUTER && -f $VB_SHIM ]] || fail "no build in $VB_BUILD (set FF_BUILD)"

# vb_router HOST DEV [ARGS...]: starts a router for rxe device DEV with run
# directory /tmp/vb-HOST (and any further router arguments) and waits for
# its admin socket.
vb_router() {
	local host=$1 dev=$2 dir=/tmp/vb-$1 i
	shift 2
	mkdir -p "$dir"
	"$VB_ROUTER" --rundir "$dir" --rdma-dev "$dev" --log-level "${VB_ROUTER_LOG:-info}" \
		--verbs-path "$VB_VERBS_PATH" "$@" \
		>"$VB_LOGS/router-$host.log" 2>&1 &
	VB_PID[$host]=$!
	VB_RUNDIR[$host]=$dir
	for ((i = 0; i < 100; i++)); do
		[[ -S $dir/ffrouter.sock ]] && return 0
		sleep 0.05
	done
	cat "$VB_LOGS/router-$host.log" >&2
	fail "router $host did not start"
}

# vb_linked NAME1 IP1 NAME2 IP2: network namespaces ffv-NAME1 and
# ffv-NAME2 joined by a veth pair (vb-NAME1, vb-NAME2) holding IP1/24 and
# IP2/24: plain kernel networking between them, nothing registered.
vb_linked() {
	local n
	ip netns add "ffv-$1"
	ip netns add "ffv-$3"
	ip link add "vb-$1" type veth peer name "vb-$3"
	ip link set "vb-$1" netns "ffv-$1"
	ip link set "vb-$3" netns "ffv-$3"
	ip -n "ffv-$1" addr add "$2/24" dev "vb-$1"
	ip -n "ffv-$3" addr add "$4/24" dev "vb-$3"
	for n in "$1" "$3"; do
		ip -n "ffv-$n" link set lo up
		ip -n "ffv-$n" link set "vb-$n" up
	done
}

# vb_containers IP-A IP-B: network namespaces ffv-a and ffv-b joined by a
# veth pair (10.78.0.0/24), so the programs' own TCP exchanges can flow.
vb_containers() {
	vb_linked a "$1" b "$2"
	VB_IP[a]=$1
	VB_IP[b]=$2
}

# vb_hosts ADDR-1 DEV-1 ADDR-2 DEV-2: two emulated hosts h1 and h2, each a
# router on its own rxe device with its ingress on ADDR-n:7946, sharing a
# cluster secret, each declaring the other (with RDMA) in its locality map.
VB_XPORT=7946
vb_hosts() {
	local secret=$VB_LOGS/secret
	head -c 32 /dev/urandom >"$secret"
	chmod 600 "$secret"
	vb_router h1 "$2" --host-id h1 --ingress "$1:$VB_XPORT" --secret-file "$secret"
	vb_router h2 "$4" --host-id h2 --ingress "$3:$VB_XPORT" --secret-file "$secret"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[h1]}" host add h2 --addr "$3:$VB_XPORT" --rdma >/dev/null ||
		fail "host add h2 on h1"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[h2]}" host add h1 --addr "$1:$VB_XPORT" --rdma >/dev/null ||
		fail "host add h1 on h2"
}

# vb_alone NAME IP: network namespace ffv-NAME with only lo and a dummy
# device holding IP/24: no link to anything, so TCP between it and another
# container can only flow through ffnet (the cross-host hand-off).
vb_alone() {
	ip netns add "ffv-$1"
	ip -n "ffv-$1" link set lo up
	ip -n "ffv-$1" link add "vb-$1" type dummy
	ip -n "ffv-$1" addr add "$2/24" dev "vb-$1"
	ip -n "ffv-$1" link set "vb-$1" up
	VB_IP[$1]=$2
}

# vb_register_remote HOST NAME OTHER: tells HOST's router that container
# NAME (with the address vb_containers or vb_alone gave it) lives on OTHER.
vb_register_remote() {
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$1]}" register "$2" --ip "${VB_IP[$2]}" --host "$3" \
		>/dev/null || fail "register $2 (on $3) on $1"
}

# vb_register HOST NAME [ARGS...]: registers container NAME (netns ffv-NAME)
# on HOST's router, with the address vb_containers gave it.
vb_register() {
	local host=$1 name=$2
	shift 2
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$host]}" register "$name" --ip "${VB_IP[$name]}" \
		--netns "/run/netns/ffv-$name" "$@" >/dev/null || fail "register $name on $host"
	VB_NS[$name]=$host
}

# vb_one_host [ROUTER-ARGS...]: the same-host layout of the vm-verbs tests:
# containers a (10.78.0.1) and b (10.78.0.2), router h1 on rxe0 with both
# registered, and neither container seeing an RDMA device of its own.
vb_one_host() {
	vb_containers 10.78.0.1 10.78.0.2
	vb_router h1 rxe0 "$@"
	vb_register h1 a
	vb_register h1 b
	vb_no_device a
	vb_no_device b
}

# vb_ct NAME CMD...: runs CMD in container NAME with the shim preloaded.
vb_ct() {
	local name=$1
	shift
	ip netns exec "ffv-$name" env LD_PRELOAD="$VB_SHIM" \
		FFNET_SOCK="${VB_RUNDIR[${VB_NS[$name]}]}/c/$name/ffrouter.sock" "$@"
}

vb_status() { "$VB_FFCTL" --rundir "${VB_RUNDIR[$1]}" status "${@:2}"; }

# vb_no_device NAME: without the shim the container sees no RDMA device.
vb_no_device() {
	local out
	out=$(ip netns exec "ffv-$1" ibv_devices 2>&1 | tail -n +3)
	[[ -z ${out//[[:space:]]/} ]] || fail "container $1 sees an RDMA device of its own: $out"
	out=$(ip netns exec "ffv-$1" rdma dev 2>&1)
	[[ -z $out ]] || fail "rdma dev in container $1: $out"
	out=$(ip netns exec "ffv-$1" sh -c 'ls /sys/class/infiniband 2>/dev/null')
	[[ -z $out ]] || fail "container $1 has /sys/class/infiniband/$out"
}

# vb_wait_cm HOST PORT: until an rdma_cm id listens on PORT at HOST's router.
vb_wait_cm() {
	local i
	for ((i = 0; i < 200; i++)); do
		vb_status "$1" --json | jq -e ".rdma.cm_listeners[] | select(.addr | endswith(\":$2\"))" \
			>/dev/null && return 0
		sleep 0.05
	done
	fail "no rdma_cm listener on port $2 after 10 s"
}

vb_wait_listen() { # NAME PORT
	local i
	for ((i = 0; i < 200; i++)); do
		[[ -n $(ip netns exec "ffv-$1" ss -Hltn "sport = :$2") ]] && return 0
		sleep 0.05
	done
	fail "nothing listens on port $2 in container $1 after 10 s"
}

# vb_run NAME SERVER CLIENT PROG ARGS...: runs PROG ARGS in container SERVER
# and PROG ARGS SERVER-IP in CLIENT (a fresh port each time). Outputs go to
# $VB_LOGS/NAME.{server,client}; both must exit 0 and print no error. The
# client starts once the server listens: on TCP, or with VB_WAIT=cm on
# rdma_cm (through the router).
vb_run() {
	local name=$1 srv=$2 cli=$3 crc=0 src=0 spid
	shift 3
	VB_PORT=$((VB_PORT + 1))
	vb_ct "$srv" timeout -k 5 "${VB_TIMEOUT:-120}" "$@" -p "$VB_PORT" >"$VB_LOGS/$name.server" 2>&1 &
	spid=$!
	if [[ ${VB_WAIT:-tcp} == cm ]]; then
		vb_wait_cm "${VB_NS[$srv]}" "$VB_PORT"
	else
		vb_wait_listen "$srv" "$VB_PORT"
	fi
	vb_ct "$cli" timeout -k 5 "${VB_TIMEOUT:-120}" "$@" -p "$VB_PORT" "${VB_IP[$srv]}" \
		>"$VB_LOGS/$name.client" 2>&1 || crc=$?
	wait "$spid" || src=$?
	show "$name server" "$VB_LOGS/$name.server"
	show "$name client" "$VB_LOGS/$name.client"
	((crc == 0)) || fail "$name client exited $crc"
	((src == 0)) || fail "$name server exited $src"
	no_errors "$name server" "$VB_LOGS/$name.server"
	no_errors "$name client" "$VB_LOGS/$name.client"
}

# vb_run_args NAME SERVER CLIENT SERVER-CMD... -- CLIENT-CMD...: like
# vb_run, for programs that take no "-p PORT SERVER-IP" at the end: in both
# command lines the word @PORT@ becomes a fresh port and @IP@ the server's
# address. The client starts once the server listens (VB_WAIT as for
# vb_run); both must exit 0 and print no error.
vb_run_args() {
	local name=$1 srv=$2 cli=$3 crc=0 src=0 spid w
	local -a scmd=() ccmd=()
	shift 3
	VB_PORT=$((VB_PORT + 1))
	while (($#)) && [[ $1 != -- ]]; do
		w=${1//@PORT@/$VB_PORT}
		scmd+=("${w//@IP@/${VB_IP[$srv]}}")
		shift
	done
	(($#)) || fail "vb_run_args $name: no -- before the client's command"
	shift
	for w; do
		w=${w//@PORT@/$VB_PORT}
		ccmd+=("${w//@IP@/${VB_IP[$srv]}}")
	done
	vb_ct "$srv" timeout -k 5 "${VB_TIMEOUT:-120}" "${scmd[@]}" >"$VB_LOGS/$name.server" 2>&1 &
	spid=$!
	if [[ ${VB_WAIT:-tcp} == cm ]]; then
		vb_wait_cm "${VB_NS[$srv]}" "$VB_PORT"
	else
		vb_wait_listen "$srv" "$VB_PORT"
	fi
	vb_ct "$cli" timeout -k 5 "${VB_TIMEOUT:-120}" "${ccmd[@]}" >"$VB_LOGS/$name.client" 2>&1 ||
		crc=$?
	wait "$spid" || src=$?
	show "$name server" "$VB_LOGS/$name.server"
	show "$name client" "$VB_LOGS/$name.client"
	((crc == 0)) || fail "$name client exited $crc"
	((src == 0)) || fail "$name server exited $src"
	no_errors "$name server" "$VB_LOGS/$name.server"
	no_errors "$name client" "$VB_LOGS/$name.client"
}

# vb_rping_lines FILE PREFIX COUNT: FILE has exactly the COUNT lines
# "PREFIXrdma-ping-N: <data>" rping -v prints for N = 0..COUNT-1, with
# rping's data pattern for its default 64-byte buffer: letters from 'A'+N
# on (wrapping after 'z' to 'A'), up to 63 characters in all.
vb_rping_lines() {
	local want got
	want=$(awk -v n="$3" -v p="$2" 'BEGIN {
		for (i = 0; i < n; i++) {
			s = sprintf("rdma-ping-%d: ", i); c = 65 + i % 58
			while (length(s) < 63) { s = s sprintf("%c", c); if (++c > 122) c = 65 }
			print p s
		}
	}')
	got=$(grep -F "$2rdma-ping-" "$1" || true)
	[[ $got == "$want" ]] || {
		diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -n 10 >&2
		fail "$(basename "$1"): not the $3 '${2}rdma-ping-N: ...' lines rping -v prints"
	}
}

# vb_data NAME SERVER CLIENT: the payload check perftest leaves out (it
# counts completions and never looks at the bytes). This build's ffverbs
# data-server in SERVER and data-client in CLIENT move a pattern by
# RDMA_WRITE and SEND (client to server) and RDMA_READ (server to client),
# 1 B to 8 MiB at unaligned offsets, and the receiving side checks every
# byte and the byte after the end. Fails unless both exit 0 and print a
# line for every transfer. VB_DATA_BYTES: the bytes moved each way.
VB_DATA_SIZES=(1 4095 65536 1048593 8388608)
vb_data() {
	local name=$1 srv=$2 cli=$3 fv=$VB_BUILD/tests/vm/ffverbs n op side
	[[ -x $fv ]] || fail "$fv was not built (no libibverbs development files): no payload check"
	vb_run_args "$name" "$srv" "$cli" "$fv" data-server -p @PORT@ -- \
		"$fv" data-client @IP@ -p @PORT@
	VB_DATA_BYTES=0
	for n in "${VB_DATA_SIZES[@]}"; do
		for op in RDMA_WRITE SEND; do
			grep -Eq "^ok: data-server: $op: $n bytes at offset [0-9]+, every byte as sent, nothing outside$" \
				"$VB_LOGS/$name.server" || fail "$name: the server did not check the $op of $n bytes"
		done
		grep -Eq "^ok: data-client: RDMA_READ: $n bytes from offset [0-9]+, every byte as the server wrote them$" \
			"$VB_LOGS/$name.client" || fail "$name: the client did not check the RDMA_READ of $n bytes"
		VB_DATA_BYTES=$((VB_DATA_BYTES + n))
	done
	for side in server client; do
		grep -q "^ok: data-$side: all 15 transfers checked" "$VB_LOGS/$name.$side" ||
			fail "$name: the $side did not finish its checks"
	done
}

# vb_pingpong NAME SERVER CLIENT: ibv_rc_pingpong -g 1 -n 100 -s 65536 -c
# between the two: both sides report the 100 iterations and the bytes, and
# the server's own check of what it received (-c: the client zeroes the
# first byte of each page of its buffer, 0x7b elsewhere, and the server
# checks those 16 bytes of the last message) found nothing wrong: it prints
# "invalid data in page N" otherwise, and still exits 0.
vb_pingpong() {
	local name=$1 side
	vb_run "$name" "$2" "$3" ibv_rc_pingpong -g 1 -n 100 -s 65536 -c
	for side in server client; do
		grep -Eq '^100 iters in [0-9.]+ seconds = [0-9.]+ usec/iter$' "$VB_LOGS/$name.$side" ||
			fail "ibv_rc_pingpong $side did not report 100 iterations"
		grep -Eq '^13107200 bytes in [0-9.]+ seconds' "$VB_LOGS/$name.$side" ||
			fail "ibv_rc_pingpong $side did not move 13107200 bytes"
	done
	! grep -i 'invalid data' "$VB_LOGS/$name.server" ||
		fail "ibv_rc_pingpong -c: the server received other bytes than the client sent"
}

# vb_bw_line FILE SIZE ITERS: perftest's bandwidth result line for SIZE;
# prints the average MB/s, fails unless it is there with a figure
# (vb_figure: a positive average or message rate; tiny sizes round to
# 0.00 MB/s).
vb_bw_line() {
	local line avg rate
	line=$(grep -E "^[[:space:]]*$2[[:space:]]+$3[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+" "$1") ||
		fail "$(basename "$1"): no '$2 $3 <peak> <average> <rate>' line"
	read -r _ _ _ avg rate _ <<<"$line"
	vb_figure bw "$line" || fail "$(basename "$1"): $2 B: average $avg MB/s, message rate $rate Mpps"
	echo "$avg"
}

# vb_lat_line FILE SIZE ITERS: perftest's latency line; prints t_avg (us).
vb_lat_line() {
	local line avg
	line=$(grep -E "^[[:space:]]*$2[[:space:]]+$3[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+" "$1") ||
		fail "$(basename "$1"): no '$2 $3 <t_min> ...' line"
	read -r _ _ _ _ _ avg _ <<<"$line"
	vb_figure lat "$line" || fail "$(basename "$1"): t_avg $avg"
	echo "$avg"
}

# vb_clock_failed FILE SIZE ITERS: perftest said its CPU clock estimate
# failed ("Correlation coefficient r^2 < 0.9", a loaded TCG guest) and so
# printed its SIZE x ITERS figures as zeros: such a run proves nothing
# about the rate either way.
vb_clock_failed() {
	grep -q 'Correlation coefficient' "$1" &&
		grep -Eq "^[[:space:]]*$2[[:space:]]+$3[[:space:]]+(0\.00|inf|-?nan)[[:space:]]+(0\.00|inf|-?nan)[[:space:]]" "$1"
}

# vb_figure KIND LINE: LINE, a perftest result line, has a figure: for bw
# a positive average or message rate (2 B rounds to 0.00 MB/s, 8 MiB to
# 0.000000 Mpps), for lat a positive t_avg. A line printed after perftest's
# CPU clock estimate failed has zeros, inf or nan instead, none of which
# counts (awk alone would take "inf" for a number above 0).
vb_figure() {
	local col
	# shellcheck disable=SC2016 # awk's fields, not the shell's
	case $1 in
	bw) col='num($4) > 0 || num($5) > 0' ;;
	lat) col='num($6) > 0' ;;
	*) fail "vb_figure: kind '$1'" ;;
	esac
	awk "function num(x) { return match(x, /^[0-9]+(\\.[0-9]+)?/) ? substr(x, 1, RLENGTH) + 0 : 0 }
	     { exit !($col) }" <<<"$2"
}

# vb_perf KIND NAME SERVER CLIENT SIZE ITERS PROG ARGS...: vb_run NAME
# SERVER CLIENT PROG ARGS, then the client's result line for SIZE x ITERS
# (KIND bw: vb_bw_line, lat: vb_lat_line), whose figure goes to VB_AVG. A
# run whose clock estimate failed (vb_clock_failed) is run again, at most
# three times in all, saying so (VB_TRIES: how many runs). If every try
# fails that way, the test fails: the figure it reports cannot be read.
vb_perf() {
	local kind=$1 name=$2 srv=$3 cli=$4 size=$5 iters=$6 try
	shift 6
	for try in 1 2 3; do
		# shellcheck disable=SC2034 # for the caller
		VB_TRIES=$try
		vb_run "$name" "$srv" "$cli" "$@"
		if vb_clock_failed "$VB_LOGS/$name.client" "$size" "$iters"; then
			echo "note: $name: perftest could not estimate the CPU clock (try $try)"
			continue
		fi
		# shellcheck disable=SC2034 # for the caller
		VB_AVG=$(vb_"$kind"_line "$VB_LOGS/$name.client" "$size" "$iters")
		return 0
	done
	fail "$name: $iters iterations done, but perftest could not estimate the CPU clock in 3 runs: no $kind figure for $size B"
}

# vb_sizes KIND NAME SERVER CLIENT ITERS PROG ARGS...: vb_run NAME SERVER
# CLIENT PROG ARGS -a -n ITERS; the table must have a line for every power
# of two from 2 B to 8 MiB (perftest prints it once that size's iterations
# are done), each with a figure (vb_figure). perftest estimates the CPU
# clock again for each line; under TCG on a loaded host
# that estimate fails now and then ("Correlation coefficient r^2 < 0.9")
# and the line comes out as zeros. Each size without a figure is then run
# alone (PROG ARGS -s SIZE -n ITERS, through vb_perf: three tries), and
# must produce its figure there, or the test fails. VB_REDONE: the sizes
# run alone.
vb_sizes() {
	local kind=$1 name=$2 srv=$3 cli=$4 iters=$5 s line
	shift 5
	VB_REDONE=()
	vb_run "$name" "$srv" "$cli" "$@" -a -n "$iters"
	for ((s = 2; s <= 8388608; s *= 2)); do
		line=$(grep -E "^[[:space:]]*${s}[[:space:]]+${iters}[[:space:]]+([0-9.]+|inf|-?nan)[[:space:]]" \
			"$VB_LOGS/$name.client") || fail "$name: no line for $s B x $iters"
		vb_figure "$kind" "$line" || VB_REDONE+=("$s")
	done
	for s in "${VB_REDONE[@]}"; do
		echo "note: $name: no figure for $s B in the -a table (perftest's clock estimate failed): that size alone"
		vb_perf "$kind" "$name-$s" "$srv" "$cli" "$s" "$iters" "$@" -s "$s" -n "$iters"
	done
}

# vb_logs_on_failure: when the test fails, the routers' logs go to its
# output too (vb_cleanup still runs).
vb_logs_on_failure() { trap vb_exit_logs EXIT; }
vb_exit_logs() {
	local rc=$? f
	if ((rc)); then
		for f in "$VB_LOGS"/router-*.log; do
			show "$(basename "$f")" "$f"
		done
		# what rxe itself counted: retries, sequence errors, RNR waits
		for f in /sys/class/infiniband/*/ports/1/hw_counters; do
			[[ -d $f ]] || continue
			echo "----- ${f#/sys/class/infiniband/} (non-zero)"
			grep -H . "$f"/* 2>/dev/null | sed -n 's|.*/||; /:0$/!p' | paste -sd' '
		done
		# packets the kernel dropped on the way (softnet backlog: 2nd column)
		echo "----- /proc/net/softnet_stat (hex; 2nd column: backlog drops)"
		cut -d' ' -f1-3 /proc/net/softnet_stat
	fi
	vb_cleanup
}

vb_cleanup() {
	local h
	for h in "${!VB_PID[@]}"; do
		kill -TERM "${VB_PID[$h]}" 2>/dev/null && wait "${VB_PID[$h]}" 2>/dev/null
	done
	return 0
}
trap vb_cleanup EXIT
