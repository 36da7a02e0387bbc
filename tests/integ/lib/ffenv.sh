# shellcheck shell=bash
# ffnet on top of the container test bed (testbed.sh): a router on the host,
# containers that have the shim preloaded and their router directory mounted
# at /run/ffnet. Used by the integration tests, the demo and the benchmarks.
#
#   . tests/integ/lib/ffenv.sh
#   ff_init NAME || exit $?          # 77 when no container backend works here
#   ff_router_start
#   ff_pair 10.77.1.0/24              # containers c1 (.2) and c2 (.3), registered
#   ff_x c2 -- iperf3 -c "$FF_IP1"    # with the shim
#   tb_exec c2 -- iperf3 -c "$FF_IP1" # without it
#
# The image holds the programs the tests use, the shim at
# /usr/lib/ffnet/libffshim.so, ffconform and loadgen. The router's run
# directory is short (unix socket paths must stay under 108 bytes).

[[ -n ${_FF_ENV_LOADED:-} ]] && return 0
_FF_ENV_LOADED=1
FF_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
FF_BUILD=${FF_BUILD:-$FF_TOP/build}
FF_SHIM_IN=/usr/lib/ffnet/libffshim.so
FF_EXEC_IN=/usr/lib/ffnet/ffexec
FF_IMAGE=ffapp
# shellcheck source=testbed.sh
. "$FF_TOP/tests/integ/lib/testbed.sh"

ff_log() { printf '%s: %s\n' "${FF_NAME:-ffnet}" "$*" >&2; }

# Results: one line per check, counted for the summary.
FF_PASS=0
FF_FAIL=0
ff_ok() { FF_PASS=$((FF_PASS + 1)); echo "ok - $*"; }
ff_nok() { FF_FAIL=$((FF_FAIL + 1)); echo "not ok - $*"; }
ff_check() { # DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then ff_ok "$d"; else ff_nok "$d"; fi
}
ff_summary() {
	echo "# $FF_PASS passed, $FF_FAIL failed"
	((FF_FAIL == 0))
}

ffctl() { "$FF_BUILD/ffctl/ffctl" --rundir "$FF_RUNDIR" "$@"; }

# The files every test image carries (SRC or SRC=DST).
ff_image_files() {
	printf '%s\n' /usr/bin/iperf3 /usr/bin/sockperf /usr/sbin/nginx /etc/nginx/mime.types \
		"$FF_TOP/tests/integ/lib/nginx.conf=/etc/nginx/nginx.conf" \
		/usr/bin/redis-server /usr/bin/redis-benchmark /usr/bin/redis-cli \
		/usr/bin/curl /usr/bin/wrk \
		"$FF_BUILD/libffshim/libffshim.so=$FF_SHIM_IN" \
		"$FF_BUILD/tests/conform/ffconform=/usr/bin/ffconform" \
		"$FF_BUILD/bench/loadgen=/usr/bin/loadgen" \
		"$FF_BUILD/ffexec/ffexec=$FF_EXEC_IN" /bin/busybox
	# the programs LD_PRELOAD cannot reach (tests/progs), those built here
	local p
	for p in rawnet muslnet gonet; do
		[[ -x $FF_BUILD/tests/progs/$p ]] && echo "$FF_BUILD/tests/progs/$p=/usr/bin/$p"
	done
	return 0
}

# ff_init NAME: test bed up, image built. Returns 77 when no backend works.
ff_init() {
	local rc=0 files
	FF_NAME=$1
	FF_RUNDIR=${FF_RUNDIR:-/run/ffnet-t}
	FF_WORK=${FF_WORK:-/var/tmp/ffnet-testbed/$FF_NAME}
	if [[ ! -x $FF_BUILD/ffrouter/ffrouter || ! -f $FF_BUILD/libffshim/libffshim.so ]]; then
		ff_log "build first (scripts/build.sh): $FF_BUILD has no ffrouter/libffshim"
		return 1
	fi
	trap ff_cleanup EXIT
	tb_init "$FF_WORK" || rc=$?
	if ((rc == 2)); then
		echo "SKIP: no container backend can run here (reasons above)"
		return 77
	fi
	((rc == 0)) || return 1
	# a fresh router state per test (the test bed lock makes it ours)
	rm -rf "$FF_RUNDIR"
	tb_ensure iperf3 sockperf nginx:nginx-light redis-server redis-benchmark:redis-tools \
		curl wrk jq || return 1
	mapfile -t files < <(ff_image_files)
	tb_image "$FF_IMAGE" "${files[@]}" || return 1
	ff_log "backend $(tb_backend)"
}

# ff_docker_init: the test bed for a test that is about Docker (FF_NAME,
# FF_WORK set). 77 after saying why where no Docker engine runs (the netns
# backend is no stand-in), 1 on an error.
ff_docker_init() {
	local rc=0
	tb_init "$FF_WORK" || rc=$?
	if ((rc == 2)); then
		echo "SKIP: no Docker engine can run here (reasons above)"
		return 77
	fi
	((rc == 0)) || return 1
	if [[ $(tb_backend) != docker ]]; then
		echo "SKIP: the test bed's backend is $(tb_backend); this test is about Docker"
		return 77
	fi
}

# ff_runtime_json [LOG]: a daemon.json (for TB_DOCKERD_JSON) whose runtime
# "ffnet" is this build's ffnet-runtime for FF_RUNDIR, logging to LOG.
ff_runtime_json() {
	jq -nc --arg rt "$(realpath -e "$FF_BUILD/runtime/ffnet-runtime")" --arg rd "$FF_RUNDIR" \
		--arg shim "$(realpath -e "$FF_BUILD/libffshim/libffshim.so")" \
		--arg exec "$(realpath -e "$FF_BUILD/ffexec/ffexec")" --arg log "${1:-}" \
		'{runtimes: {ffnet: {path: $rt, runtimeArgs: (["--ffnet-rundir=\($rd)", "--ffnet-shim=\($shim)",
		  "--ffnet-exec=\($exec)"] + (if $log == "" then [] else ["--ffnet-log=\($log)"] end))}}}'
}

# ff_flat TEXT: on one line, for a check's description
ff_flat() { printf '%s' "${1//$'\n'/ }"; }

ff_cleanup() {
	local rc=$?
	ff_router_stop quiet
	tb_cleanup
	return $rc
}

# ff_router_start [ARGS...]: a router on FF_RUNDIR (state kept across restarts
# within a test), logging to $FF_WORK/router.log. FF_ROUTER_WRAP (e.g.
# "valgrind --error-exitcode=99") runs it under a wrapper.
ff_router_start() {
	local i
	mkdir -p "$FF_WORK"
	# shellcheck disable=SC2086 # FF_ROUTER_WRAP is a word list on purpose
	# shellcheck disable=SC2086 # FF_ROUTER_ARGS too (extra options, by hand)
	${FF_ROUTER_WRAP:-} "$FF_BUILD/ffrouter/ffrouter" --rundir "$FF_RUNDIR" --log-level info ${FF_ROUTER_ARGS:-} "$@" \
		>>"$FF_WORK/router.log" 2>&1 &
	FF_ROUTER_PID=$!
	for ((i = 0; i < 500; i++)); do
		[[ -S $FF_RUNDIR/ffrouter.sock ]] && ffctl list >/dev/null 2>&1 && return 0
		kill -0 "$FF_ROUTER_PID" 2>/dev/null || break
		sleep 0.02
	done
	ff_log "router did not start: $(tail -n 5 "$FF_WORK/router.log")"
	return 1
}

# ff_router_stop [quiet]: SIGTERM and wait; its exit status (0 = clean).
ff_router_stop() {
	local rc=0
	[[ -n ${FF_ROUTER_PID:-} ]] || return 0
	kill -TERM "$FF_ROUTER_PID" 2>/dev/null
	wait "$FF_ROUTER_PID" || rc=$?
	FF_ROUTER_PID=
	[[ ${1:-} == quiet ]] || ((rc == 0)) || ff_log "router exited with $rc: $(tail -n 5 "$FF_WORK/router.log")"
	return $rc
}

# ff_router_kill: SIGKILL, as a crash would.
ff_router_kill() {
	[[ -n ${FF_ROUTER_PID:-} ]] || return 0
	kill -KILL "$FF_ROUTER_PID" 2>/dev/null
	wait "$FF_ROUTER_PID" 2>/dev/null || true
	FF_ROUTER_PID=
	return 0
}

# ff_pair SUBNET: network + registered containers c1 (.2) and c2 (.3) with
# their router directories mounted. Needs a running router (to register).
ff_pair() {
	local base=${1%.*/*}
	FF_IP1=$base.2
	FF_IP2=$base.3
	tb_net ffn "$1" || return 1
	ffctl register c1 --ip "$FF_IP1" >/dev/null || return 1
	ffctl register c2 --ip "$FF_IP2" >/dev/null || return 1
	tb_run c1 "$FF_IMAGE" "$FF_IP1" --mount "$FF_RUNDIR/c/c1:/run/ffnet" || return 1
	tb_run c2 "$FF_IMAGE" "$FF_IP2" --mount "$FF_RUNDIR/c/c2:/run/ffnet" || return 1
}

# ff_x NAME [tb_exec options] -- CMD...: run CMD in the container with the shim.
ff_x() {
	local name=$1
	shift
	tb_exec "$name" --env LD_PRELOAD=$FF_SHIM_IN "$@"
}

ff_x_bg() {
	local name=$1
	shift
	tb_exec_bg "$name" --env LD_PRELOAD=$FF_SHIM_IN "$@"
}

# ff_e NAME [tb_exec options] -- CMD...: run CMD in the container under
# ffexec (no LD_PRELOAD: the programs it is for never see one).
ff_e() {
	local name=$1 opts=()
	shift
	while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	tb_exec "$name" "${opts[@]}" -- "$FF_EXEC_IN" "$@"
}

ff_e_bg() {
	local name=$1 opts=()
	shift
	while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
	shift
	tb_exec_bg "$name" "${opts[@]}" -- "$FF_EXEC_IN" "$@"
}

# ff_status_json: the router's status (empty object if it is down).
ff_status_json() {
	ffctl status --json 2>/dev/null || echo '{}'
}

# ff_same_host_flow CLIENT SERVER PORT: true if the router shows an
# established same-host connection CLIENT -> SERVER:PORT that carried bytes.
ff_same_host_flow() {
	ff_status_json | jq -e --arg c "$1" --arg s "$2" --arg p ":$3" \
		'[.conns[]? | select(.path == "same-host" and .client == $c and .server == $s
		  and (.server_addr | endswith($p)) and (.bytes_c2s + .bytes_s2c) > 0)] | length > 0' \
		>/dev/null
}

# ff_conns_total: connections the router has accelerated so far.
ff_conns_total() {
	ff_status_json | jq -r '.conns_total // 0'
}

# ff_mark, then ff_accelerated N: the router accelerated N connections
# since the mark (for ff_check)
FF_CONNS_MARK=0
ff_mark() { FF_CONNS_MARK=$(ff_conns_total); }
ff_accelerated() {
	local now
	now=$(ff_conns_total)
	((now - FF_CONNS_MARK == $1)) || { ff_log "router counted $((now - FF_CONNS_MARK)) connections, not $1"; return 1; }
}
