#!/usr/bin/env bash
# The CNI plugin `ffnet` driven the way a runtime drives it: environment
# plus the configuration on stdin, chained after Debian's `bridge` and
# `host-local` plugins, which make two real network namespaces with their
# addresses. Checks ADD (prevResult printed back, the container registered
# with its IP and namespace, a shim'd connection between the two then
# accelerated), an ADD retried, CHECK, DEL, DEL again, DEL while the router
# is down (the stale registration cleared by a later ADD or GC), STATUS,
# GC, VERSION, and bad input (no prevResult, bad JSON, unknown command, bad
# version, no router): each a CNI error with its code, nothing registered
# by mistake. One ADD/CHECK/DEL round runs under valgrind.
# Needs root, `ip netns` and the plugins (containernetworking-plugins);
# exits 77 otherwise.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd -P)
build=${FF_BUILD:-$top/build}
plugin=$build/runtime/ffnet
cni_path=${CNI_PATH_DIRS:-/usr/lib/cni:/opt/cni/bin}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { # DESCRIPTION CONDITION...
	local d=$1
	shift
	if "$@" >/dev/null; then ok "$d"; else nok "$d"; fi
}

bridge_bin=
IFS=: read -ra dirs <<<"$cni_path"
for d in "${dirs[@]}"; do [[ -x $d/bridge && -x $d/host-local ]] && bridge_bin=$d/bridge && break; done
if ((EUID != 0)) || ! command -v ip >/dev/null || ! command -v jq >/dev/null || [[ -z $bridge_bin ]]; then
	echo "SKIP: needs root, iproute2, jq and the bridge + host-local CNI plugins in $cni_path"
	exit 77
fi
work=$(mktemp -d /tmp/ffcni.XXXXXX)
rundir=$work/run
br=ffcni$$ net=ffcni-$$ subnet=10.77.20.0/24
nsa=ffcni-a-$$ nsb=ffcni-b-$$
router=
# Debian's bridge plugin turns the host's ip_forward on and leaves it so:
# put back what the machine had (a fresh one has 0)
forward=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
	[[ -n $router ]] && kill -TERM "$router" 2>/dev/null && wait "$router" 2>/dev/null
	echo "$forward" >/proc/sys/net/ipv4/ip_forward
	for ns in "$nsa" "$nsb"; do ip netns del "$ns" 2>/dev/null; done
	ip link del "$br" 2>/dev/null
	iptables -D FORWARD -i "$br" -j ACCEPT 2>/dev/null
	iptables -D FORWARD -o "$br" -j ACCEPT 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
if ! ip netns add "$nsa" 2>/dev/null || ! ip netns add "$nsb"; then
	echo "SKIP: cannot create network namespaces here"
	exit 77
fi
# dockerd leaves FORWARD DROP behind; the plain path across our bridge
# must work for the baseline check
iptables -I FORWARD -i "$br" -j ACCEPT 2>/dev/null
iptables -I FORWARD -o "$br" -j ACCEPT 2>/dev/null

ffctl() { "$build/ffctl/ffctl" --rundir "$rundir" "$@"; }
start() {
	"$build/ffrouter/ffrouter" --rundir "$rundir" --log-level warn 2>>"$work/router.log" &
	router=$!
	for ((i = 0; i < 200; i++)); do [[ -S $rundir/ffrouter.sock ]] && return 0; sleep 0.02; done
	return 1
}
stop() {
	kill -TERM "$router" && wait "$router"
	router=
}
# Container IDs as runtimes make them: 64 hex digits; the router's name
# is the first 63.
cid() { echo "$1-$$" | sha256sum | cut -c1-64; }
ida=$(cid a) idb=$(cid b) idc=$(cid c)
name() { echo "${1:0:63}"; }

bridge_conf() {
	jq -nc --arg br "$br" --arg net "$net" --arg sub "$subnet" --arg data "$work/ipam" \
		'{cniVersion: "1.0.0", name: $net, type: "bridge", bridge: $br, isGateway: true,
		  ipam: {type: "host-local", subnet: $sub, dataDir: $data}}'
}
# ffnet's configuration as a runtime builds it for the second plugin of
# the list: the list's name and version, the plugin's keys, prevResult.
ffnet_conf() { # PREV-RESULT-FILE
	jq -c --arg net "$net" --arg rd "$rundir" \
		'{cniVersion: "1.0.0", name: $net, type: "ffnet", rundir: $rd, prevResult: .}' "$1"
}
# cni PROGRAM COMMAND CONTAINER-ID NETNS-NAME STDIN-STRING: stdout in
# $work/out, stderr in $work/err, the exit status in $rc
cni() {
	local prog=$1 cmd=$2 id=$3 ns=$4 conf=$5
	rc=0
	# shellcheck disable=SC2086 # FFCNI_WRAP is a word list (valgrind and its options)
	printf '%s' "$conf" | env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" \
		CNI_NETNS="${ns:+/run/netns/$ns}" CNI_IFNAME=eth0 CNI_PATH="$cni_path" \
		${FFCNI_WRAP:-} "$prog" >"$work/out" 2>"$work/err" || rc=$?
}
# expect_err DESCRIPTION CODE: the last call failed with CNI error CODE
expect_err() {
	local d=$1 code=$2
	if ((rc == 1)) && jq -e --argjson c "$code" '.code == $c and (.msg | length > 0) and
	    (.cniVersion | type == "string")' "$work/out" >/dev/null; then
		ok "$d: CNI error $code ($(jq -r .msg "$work/out" | head -c 90))"
	else
		nok "$d: exit $rc, wanted CNI error $code: $(cat "$work/out" "$work/err")"
	fi
}
registered() { ffctl list --json | jq -e --arg n "$1" 'any(.[]; .name == $n)' >/dev/null; }
ips_of() { ffctl list --json | jq -r --arg n "$1" '.[] | select(.name == $n) | .ips | join(",")'; }
nregistered() { ffctl list --json | jq length; }

# -- VERSION and input errors need no router --------------------------------
cni "$plugin" VERSION "" "" '{"cniVersion": "1.1.0"}'
check "VERSION lists 1.0.0 and 1.1.0: $(cat "$work/out")" \
	jq -e '(.supportedVersions | index("1.0.0") and index("1.1.0")) and .cniVersion == "1.1.0"' "$work/out"

# -- the interfaces, by the bridge plugin ------------------------------------
for x in a b; do
	ns=nsa id=$ida
	[[ $x == b ]] && ns=nsb id=$idb
	cni "$bridge_bin" ADD "$id" "${!ns}" "$(bridge_conf)"
	cp "$work/out" "$work/prev-$x.json"
	if ((rc != 0)); then
		echo "Bail out! the bridge plugin failed for $x: $(cat "$work/out" "$work/err")"
		exit 1
	fi
done
ipa=$(jq -r '.ips[0].address | split("/")[0]' "$work/prev-a.json")
ipb=$(jq -r '.ips[0].address | split("/")[0]' "$work/prev-b.json")
echo "# bridge + host-local gave $nsa $ipa and $nsb $ipb"

cni "$plugin" ADD "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
expect_err "ADD without a router" 11
start || { echo "Bail out! the router did not start: $(cat "$work/router.log")"; exit 1; }
check "nothing registered by the failed ADD" test "$(nregistered)" = 0

# -- ADD ---------------------------------------------------------------------
cni "$plugin" ADD "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "ADD a: exit $rc, prevResult printed back unchanged" \
	test "$rc" = 0 -a "$(jq -S 'del(.cniVersion)' "$work/out")" = "$(jq -S 'del(.cniVersion)' "$work/prev-a.json")"
check "ADD a: the result carries the configuration's cniVersion" jq -e '.cniVersion == "1.0.0"' "$work/out"
check "ADD a: ffctl list shows $(name "$ida") with $ipa" test "$(ips_of "$(name "$ida")")" = "$ipa"
mark=$rundir/cni/$(name "$ida")
check "ADD a: its record is root-only (dir 0700, file 0600)" \
	test "$(stat -c %a "$rundir/cni")" = 700 -a "$(stat -c %a "$mark" 2>/dev/null)" = 600
cni "$plugin" ADD "$idb" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
check "ADD b: exit $rc, $(name "$idb") with $ipb" test "$rc" = 0 -a "$(ips_of "$(name "$idb")")" = "$ipb"
cni "$plugin" ADD "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "ADD a retried by the runtime: exit $rc, still registered once" \
	test "$rc" = 0 -a "$(nregistered)" = 2
cni "$plugin" ADD "$idc" "$nsa" "$(ffnet_conf "$work/prev-b.json")"
expect_err "ADD c with b's address" 100
check "ADD c: not registered" test "$(nregistered)" = 2 -a ! -e "$rundir/cni/$(name "$idc")"

# -- the registration works: a shim'd connection a -> b goes by the router ---
echo_srv='import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7300)); s.listen(4); print("listening", flush=True)
c,_=s.accept(); d=b""
while len(d) < 5:
    d += c.recv(100)
c.sendall(d[::-1]); c.close()'
echo_cli='import socket,sys
s=socket.create_connection((sys.argv[1], 7300), timeout=10); s.sendall(b"hello")
d=b""
while len(d) < 5:
    d += s.recv(100)
print(d.decode())'
shim() { # NS CONTAINER-ID PROGRAM...
	local ns=$1 id=$2
	shift 2
	ip netns exec "$ns" env LD_PRELOAD="$build/libffshim/libffshim.so" \
		FFNET_SOCK="$rundir/c/$(name "$id")/ffrouter.sock" "$@"
}
before=$(ffctl status --json | jq .conns_total)
shim "$nsb" "$idb" python3 -c "$echo_srv" "$ipb" >"$work/srv" 2>&1 &
srv=$!
for ((i = 0; i < 200; i++)); do grep -q listening "$work/srv" && break; sleep 0.05; done
reply=$(shim "$nsa" "$ida" timeout 20 python3 -c "$echo_cli" "$ipb" 2>&1)
wait $srv
after=$(ffctl status --json | jq .conns_total)
check "a -> b through the shim: reply '$reply', router connections $before -> $after" \
	test "$reply" = olleh -a "$after" -gt "$before"

# -- CHECK -------------------------------------------------------------------
cni "$plugin" CHECK "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "CHECK a: exit $rc, no output" test "$rc" = 0 -a ! -s "$work/out"
cni "$plugin" CHECK "$ida" "$nsa" "$(ffnet_conf "$work/prev-b.json")"
expect_err "CHECK a against b's addresses" 102
ffctl unregister "$(name "$ida")" >/dev/null
cni "$plugin" CHECK "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
expect_err "CHECK a after a hand unregister" 101
cni "$plugin" ADD "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "ADD a again: exit $rc" test "$rc" = 0 -a "$(ips_of "$(name "$ida")")" = "$ipa"

# -- DEL ---------------------------------------------------------------------
cni "$plugin" DEL "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "DEL a: exit $rc, gone from ffctl list, its record removed" \
	test "$rc" = 0 -a ! -s "$work/out" -a ! -e "$mark" -a "$(nregistered)" = 1
cni "$plugin" DEL "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
check "DEL a again: exit $rc, no output" test "$rc" = 0 -a ! -s "$work/out"
cni "$plugin" DEL "$ida" "" '{"cniVersion": "1.0.0", "name": "n", "type": "ffnet"}'
check "DEL with no netns and no prevResult (runtimes do that): exit $rc" test "$rc" = 0
ffctl register byhand --ip 10.77.21.5 >/dev/null
cni "$plugin" DEL byhand "$nsa" "$(ffnet_conf "$work/prev-a.json")"
test "$rc" = 0 && registered byhand
check "DEL of a name ffnet did not register: exit $rc, the hand registration kept" test $? = 0
ffctl unregister byhand >/dev/null

# -- STATUS ------------------------------------------------------------------
cni "$plugin" STATUS "" "" "$(jq -nc --arg rd "$rundir" '{cniVersion: "1.1.0", name: "n", type: "ffnet", rundir: $rd}')"
check "STATUS with a router: exit $rc" test "$rc" = 0

# -- the router down at DEL: stale registrations ----------------------------
cni "$plugin" ADD "$ida" "$nsa" "$(ffnet_conf "$work/prev-a.json")"
stop
cni "$plugin" STATUS "" "" "$(jq -nc --arg rd "$rundir" '{cniVersion: "1.1.0", name: "n", type: "ffnet", rundir: $rd}')"
expect_err "STATUS without a router" 50
cni "$plugin" DEL "$idb" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
check "DEL b with the router down: exit $rc (left for later), record kept" \
	test "$rc" = 0 -a -e "$rundir/cni/$(name "$idb")"
# the runtime tears b's namespace down and makes a new one for c, which
# host-local may give b's old address (here: it is given it)
ip netns del "$nsb"
ip netns add "$nsb"
start || { echo "Bail out! the router did not restart"; exit 1; }
check "b's registration survived the router restart" registered "$(name "$idb")"
cni "$plugin" ADD "$idc" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
test "$rc" = 0 && ! registered "$(name "$idb")" && test "$(ips_of "$(name "$idc")")" = "$ipb"
check "ADD c with stale b's address: exit $rc, b cleared, c registered" test $? = 0
grep -q "removing the stale registration of $(name "$idb")" "$work/err" &&
	ok "ADD c said why b went: $(grep stale "$work/err")" || nok "ADD c: $(cat "$work/err")"

# -- GC ----------------------------------------------------------------------
gc_conf=$(jq -nc --arg rd "$rundir" --arg a "$ida" \
	'{cniVersion: "1.1.0", name: "n", type: "ffnet", rundir: $rd,
	  "cni.dev/valid-attachments": [{containerID: $a, ifname: "eth0"}]}')
cni "$plugin" GC "" "" "$gc_conf"
test "$rc" = 0 && ! registered "$(name "$idc")" && registered "$(name "$ida")" &&
	test ! -e "$rundir/cni/$(name "$idc")"
check "GC keeping a: exit $rc, c unregistered, a kept" test $? = 0
cni "$plugin" GC "" "" "$(jq -nc --arg rd "$rundir" '{cniVersion: "1.1.0", name: "n", type: "ffnet", rundir: $rd}')"
expect_err "GC without valid-attachments" 7

# -- bad input: an error with its code, nothing registered -------------------
n0=$(nregistered)
cni "$plugin" ADD "$idb" "$nsb" "$(jq -c 'del(.prevResult)' <<<"$(ffnet_conf "$work/prev-b.json")")"
expect_err "ADD without prevResult" 7
cni "$plugin" ADD "$idb" "$nsb" '{"cniVersion": "1.0.0", "name": '
expect_err "ADD with bad JSON" 6
cni "$plugin" FROB "$idb" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
expect_err "unknown command" 4
cni "$plugin" ADD "$idb" "$nsb" "$(jq -c '.cniVersion = "0.2.0"' <<<"$(ffnet_conf "$work/prev-b.json")")"
expect_err "ADD with an unsupported cniVersion" 1
cni "$plugin" ADD "../x" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
expect_err "ADD with a container ID that is not one" 4
cni "$plugin" ADD "$idb" "" "$(ffnet_conf "$work/prev-b.json")"
expect_err "ADD without CNI_NETNS" 4
cni "$plugin" ADD "$idb" "$nsb" "$(jq -c '.prevResult.ips = [{"address": "127.0.0.1/8"}]' <<<"$(ffnet_conf "$work/prev-b.json")")"
expect_err "ADD with a loopback address" 100
cni "$plugin" ADD "$idb" "$nsb" "$(jq -c '.rundir = 7' <<<"$(ffnet_conf "$work/prev-b.json")")"
expect_err "ADD with a rundir that is not a string" 7
check "nothing registered by the bad calls" test "$(nregistered)" = "$n0" -a ! -e "$rundir/cni/$(name "$idb")"

# -- valgrind: one round -----------------------------------------------------
if command -v valgrind >/dev/null; then
	vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
	vrc=()
	for cmd in ADD CHECK DEL VERSION; do
		FFCNI_WRAP=$vg cni "$plugin" "$cmd" "$idb" "$nsb" "$(ffnet_conf "$work/prev-b.json")"
		vrc+=("$cmd=$rc")
	done
	FFCNI_WRAP=$vg cni "$plugin" ADD "$idb" "$nsb" '{"cniVersion": "1.0.0", "name": '
	vrc+=("bad=$rc")
	check "under valgrind: ${vrc[*]} (99 would be a valgrind error)" \
		test "${vrc[*]}" = "ADD=0 CHECK=0 DEL=0 VERSION=0 bad=1"
fi

cni "$bridge_bin" DEL "$ida" "$nsa" "$(bridge_conf)"
echo "# $pass passed, $fail failed"
((fail == 0))
