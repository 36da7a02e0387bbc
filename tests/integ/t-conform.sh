#!/usr/bin/env bash
# The socket-semantics conformance program between two containers, run
# natively (no shim), through ffnet with the shim, and through ffnet under
# ffexec (seccomp, no shim); the transcripts must be identical apart from
# the documented deviations of the same-host path
# (tests/conform/deviations-same-host.txt, printed when they occur).
# Without `rings`, the router runs with --same-host-rings 0 (the socketpair
# alone). With `rings` first, as by default, it gives same-host connections
# shared-memory rings (issue 14): the ffnet run must be identical, without
# the list (no deviation is left over rings),
# every accelerated connection must have had rings, and ffexec (whose
# connections never do) is not run again; the client spins
# (FFNET_SPIN_US=20), the server does not.
#   t-conform.sh [rings] [ffconform options]    default: full sizes (1 GiB, 1000 conns)
set -euo pipefail
. "$(dirname "$0")/lib/ffenv.sh"
rings=false
if [[ ${1:-} == rings ]]; then
	rings=true
	shift
	# 1000 connections at once: 1 GiB of rings (touched only as used)
	FF_ROUTER_ARGS="${FF_ROUTER_ARGS:-} --max-ring-mem 1200"
else
	FF_ROUTER_ARGS="${FF_ROUTER_ARGS:-} --same-host-rings 0"
fi
args=("$@")

ff_init "conform$($rings && echo -rings)" || exit $?
ff_router_start
ff_pair 10.77.2.0/24

run() { # OUT WRAPPER: server in c1, client in c2; 0 if both exit 0
	local out=$1 x=$2 srv rc=0
	srv=$($x"_bg" c1 -- ffconform server --bind "$FF_IP1" --port 7000 --timeout 120 "${args[@]}")
	tb_wait_port c1 7000
	$x c2 -- ffconform client --connect "$FF_IP1" --port 7000 --timeout 120 "${args[@]}" \
		>"$FF_WORK/$out.c" 2>"$FF_WORK/$out.c.err" || rc=$?
	tb_wait "$srv" 120 || rc=$((rc ? rc : $?))
	tb_bg_log "$srv" | grep -v '^ffconform ' >"$FF_WORK/$out.s" || true
	cat "$FF_WORK/$out.c" "$FF_WORK/$out.s" >"$FF_WORK/$out"
	return $rc
}
plain() { tb_exec "$@"; }
plain_bg() { tb_exec_bg "$@"; }
spin() { local n=$1; shift; ff_x "$n" --env FFNET_SPIN_US=20 "$@"; }
spin_bg() { ff_x_bg "$@"; }

before=$(ff_conns_total)
ff_check "native run passes every check" run native plain
after_native=$(ff_conns_total)
((after_native == before)) && ff_ok "native run bypassed the router" || ff_nok "native run went through the router"
rc=0
run ffnet "$($rings && echo spin || echo ff_x)" || rc=$?
ff_log "ffnet run exit status $rc (its FAIL lines are compared below)"
total=$(ff_conns_total)
(((total - after_native) >= 1000)) && ff_ok "ffnet run: $((total - after_native)) connections accelerated" ||
	ff_nok "ffnet run: only $((total - after_native)) connections accelerated"
# over rings, no deviation is allowed (the shim answers poll and tagged
# epoll registrations as TCP would)
allow=(--allow "$FF_TOP/tests/conform/deviations-same-host.txt")
$rings && allow=()
if "$FF_TOP/tests/conform/compare.sh" "${allow[@]}" "$FF_WORK/native" "$FF_WORK/ffnet"; then
	ff_ok "transcripts match ($(grep -c '^[CS] ' "$FF_WORK/native") lines)"
else
	ff_nok "transcripts differ"
fi
if $rings; then
	n=$(ffctl status --json | jq '.rings.conns_total')
	((n >= total - after_native)) && ff_ok "every accelerated connection had rings ($n)" ||
		ff_nok "only $n of $((total - after_native)) accelerated connections had rings"
	grep -h 'bulk.*MiB' "$FF_WORK"/native.c.err "$FF_WORK"/ffnet.c.err 2>/dev/null | sed 's/^/# /' || true
	ff_check "router stops cleanly" ff_router_stop
	ff_summary
	exit
fi
rc=0
before=$(ff_conns_total)
run ffexec ff_e || rc=$?
ff_log "ffexec run exit status $rc (its FAIL lines are compared below)"
total=$(ff_conns_total)
(((total - before) >= 1000)) && ff_ok "ffexec run: $((total - before)) connections accelerated" ||
	ff_nok "ffexec run: only $((total - before)) connections accelerated"
cat "$FF_TOP"/tests/conform/deviations-{same-host,ffexec}.txt >"$FF_WORK/deviations-ffexec"
if "$FF_TOP/tests/conform/compare.sh" --allow "$FF_WORK/deviations-ffexec" \
	"$FF_WORK/native" "$FF_WORK/ffexec"; then
	ff_ok "ffexec transcripts match ($(grep -c '^[CS] ' "$FF_WORK/native") lines)"
else
	ff_nok "ffexec transcripts differ"
fi
grep -h 'bulk.*MiB' "$FF_WORK"/native.c.err "$FF_WORK"/ffnet.c.err "$FF_WORK"/ffexec.c.err 2>/dev/null | sed 's/^/# /' || true
ff_check "router stops cleanly" ff_router_stop
ff_summary
