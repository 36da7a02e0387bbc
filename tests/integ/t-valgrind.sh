#!/usr/bin/env bash
# The shim and the router under valgrind, through the conformance program
# (small sizes): two network namespaces joined by a veth pair stand for two
# containers, the router runs on the host under valgrind, and server and
# client (and the server's exec'd image) run under valgrind with the shim
# preloaded. Any valgrind error or definite/indirect leak in any of them
# fails the test, and so does a conformance difference.
# Without arguments the router runs with --same-host-rings 0 (the
# socketpair alone); with `rings`, same-host connections get shared-memory
# rings (issue 14): the shim's ring code runs under valgrind too.
# Needs root and `ip netns`; exits 77 otherwise.
set -euo pipefail
rings=false
router_args=(--same-host-rings 0)
[[ ${1:-} != rings ]] || { rings=true; router_args=(--same-host-rings 65536 --max-ring-mem 1024); }
top=$(cd "$(dirname "$0")/../.." && pwd -P)
build=${FF_BUILD:-$top/build}
work=$(mktemp -d /tmp/ffvg.XXXXXX)
rundir=$work/run
nsa=ffvg-a-$$ nsb=ffvg-b-$$
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }

if ((EUID != 0)) || ! command -v ip >/dev/null || ! command -v valgrind >/dev/null; then
	echo "SKIP: needs root, iproute2 and valgrind"
	exit 77
fi
router=
cleanup() {
	[[ -n $router ]] && kill -TERM "$router" 2>/dev/null && wait "$router" 2>/dev/null
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
if ! ip netns add "$nsa" 2>/dev/null || ! ip netns add "$nsb"; then
	echo "SKIP: cannot create network namespaces here"
	exit 77
fi
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$nsa"
ip link set "vb$$" netns "$nsb"
ip -n "$nsa" addr add 10.78.0.1/24 dev "va$$"
ip -n "$nsb" addr add 10.78.0.2/24 dev "vb$$"
for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
ip -n "$nsa" link set "va$$" up
ip -n "$nsb" link set "vb$$" up

vg=(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
	--errors-for-leak-kinds=definite,indirect --child-silent-after-fork=no)
sizes=(--big-mib 8 --conns 40 --timeout 300)
# valgrind runs vfork as fork (the parent goes on before the exec):
# ffconform's noshim check then uses fork for both of its connections
export FFC_NO_VFORK=1

conform() { # OUT PRELOAD(0|1)
	local out=$1 pre=$2 ea=() eb=() spid rc=0
	if ((pre)); then
		ea=(env "LD_PRELOAD=$build/libffshim/libffshim.so" "FFNET_SOCK=$rundir/c/a/ffrouter.sock")
		eb=(env "LD_PRELOAD=$build/libffshim/libffshim.so" "FFNET_SOCK=$rundir/c/b/ffrouter.sock")
	fi
	ip netns exec "$nsa" "${ea[@]}" "${vg[@]}" --trace-children=yes --log-file="$work/$out.s.vg.%p" \
		"$build/tests/conform/ffconform" server --bind 10.78.0.1 --port 7100 "${sizes[@]}" \
		>"$work/$out.s" 2>"$work/$out.s.err" &
	spid=$!
	for ((i = 0; i < 300; i++)); do
		ip netns exec "$nsa" ss -ltn 2>/dev/null | grep -q ':7100 ' && break
		sleep 0.05
	done
	ip netns exec "$nsb" "${eb[@]}" "${vg[@]}" --log-file="$work/$out.c.vg.%p" \
		"$build/tests/conform/ffconform" client --connect 10.78.0.1 --port 7100 "${sizes[@]}" \
		>"$work/$out.c" 2>"$work/$out.c.err" || rc=$?
	wait "$spid" || rc=$((rc ? rc : $?))
	cat "$work/$out.c" "$work/$out.s" >"$work/$out"
	return $rc
}

# valgrind's verdicts: ERROR SUMMARY 0 and no definite/indirect leak
vg_clean() { # GLOB
	local f bad=0
	for f in $1; do
		if ! grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
			bad=1
			sed -n '/==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|definitely\|indirectly\)/,+8p' "$f" | head -40
		fi
	done
	return $bad
}

conform native 0 && ok "native run under valgrind passes" || nok "native run failed"
"${vg[@]}" --log-file="$work/router.vg" "$build/ffrouter/ffrouter" --rundir "$rundir" \
	--log-level warn "${router_args[@]}" 2>"$work/router.log" &
router=$!
for ((i = 0; i < 200; i++)); do [[ -S $rundir/ffrouter.sock ]] && break; sleep 0.05; done
"$build/ffctl/ffctl" --rundir "$rundir" register a --ip 10.78.0.1 >/dev/null
"$build/ffctl/ffctl" --rundir "$rundir" register b --ip 10.78.0.2 >/dev/null
rc=0
conform ffnet 1 || rc=$?
total=$("$build/ffctl/ffctl" --rundir "$rundir" status --json | jq -r .conns_total)
((total >= 40)) && ok "ffnet run accelerated $total connections" || nok "ffnet run accelerated $total connections"
if $rings; then
	n=$("$build/ffctl/ffctl" --rundir "$rundir" status --json | jq -r .rings.conns_total)
	((n >= total)) && ok "every one had rings ($n)" || nok "only $n of $total had rings"
fi
if "$top/tests/conform/compare.sh" --allow "$top/tests/conform/deviations-same-host.txt" \
	"$work/native" "$work/ffnet"; then
	ok "transcripts match under valgrind"
else
	nok "transcripts differ (ffnet exit $rc)"
fi
vg_clean "$work/ffnet.[cs].vg.*" && ok "shim: no valgrind errors or leaks in $(ls "$work"/ffnet.[cs].vg.* | wc -l) processes" ||
	nok "shim: valgrind errors or leaks"
kill -TERM "$router"
wait "$router" && ok "router stops cleanly under valgrind" || nok "router exit status $?"
router=
vg_clean "$work/router.vg" && ok "router: no valgrind errors or leaks" || nok "router: valgrind errors or leaks"
echo "# $pass passed, $fail failed"
((fail == 0))
