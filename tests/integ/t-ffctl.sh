#!/usr/bin/env bash
# ffctl against a real router: what a user sees. Errors must go to stderr
# with a non-zero exit (duplicate name, malformed or used IP, unknown name,
# no router, bad usage); --json output must parse; registrations must
# survive a router restart; status --watch prints frames and stops as
# asked; the router's --metrics endpoint (loopback) counts the containers.
# No containers needed.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd -P)
build=${FF_BUILD:-$top/build}
dir=$(mktemp -d /tmp/ffctl-t.XXXXXX)
router=
pass=0 fail=0
trap '[[ -n $router ]] && kill $router 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
ffctl() { "$build/ffctl/ffctl" --rundir "$dir/run" "$@"; }
# a loopback port free now, for --metrics
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)))
start() {
	"$build/ffrouter/ffrouter" --rundir "$dir/run" --log-level warn --metrics "127.0.0.1:$mport" \
		2>>"$dir/router.log" &
	router=$!
	for ((i = 0; i < 200; i++)); do [[ -S $dir/run/ffrouter.sock ]] && return 0; sleep 0.02; done
	return 1
}
# expect DESCRIPTION EXIT STDERR-PATTERN -- ffctl args...
expect() {
	local d=$1 want=$2 pat=$3 rc=0
	shift 4
	ffctl "$@" >"$dir/out" 2>"$dir/err" || rc=$?
	if ((rc == want)) && grep -qE "$pat" "$dir/err" "$dir/out"; then
		pass=$((pass + 1))
		echo "ok - $d (exit $rc: $(cat "$dir/err" "$dir/out" | head -c 100 | tr '\n' ' '))"
	else
		fail=$((fail + 1))
		echo "not ok - $d: exit $rc (wanted $want), output: $(cat "$dir/err" "$dir/out")"
	fi
}

expect "no router" 1 'cannot reach ffrouter' -- list
start || { echo "not ok - router did not start"; exit 1; }
expect "register" 0 'registered web: mount .*/c/web at /run/ffnet' -- register web --ip 10.33.0.2
expect "register a second" 0 'registered' -- register db --ip 10.33.0.3 --ip fd33::3
expect "duplicate name" 1 "already registered" -- register web --ip 10.33.0.9
expect "address already used" 1 "already used by web" -- register other --ip 10.33.0.2
expect "malformed address" 1 "not a unicast" -- register other --ip 10.33.0.256
expect "loopback address" 1 "not a unicast" -- register other --ip 127.0.0.1
expect "bad name" 1 "invalid container name" -- register 'a/b' --ip 10.33.0.7
expect "no --ip" 2 "usage: ffctl register" -- register lonely
expect "nine addresses" 2 "too many --ip \\(at most 8\\)" -- register many $(for i in 1 2 3 4 5 6 7 8 9; do echo --ip 10.33.1.$i; done)
expect "unknown name" 1 "no container named 'ghost'" -- unregister ghost
expect "unknown command" 2 "unknown command" -- frobnicate
expect "unknown option" 2 "unknown option" -- --frob list
expect "list --json parses" 0 '"name": "db"' -- list --json
jq -e 'length == 2 and (.[] | select(.name == "db") | .ips == ["10.33.0.3", "fd33::3"])' "$dir/out" >/dev/null &&
	{ pass=$((pass + 1)); echo "ok - list --json is valid JSON with both containers"; } ||
	{ fail=$((fail + 1)); echo "not ok - list --json: $(cat "$dir/out")"; }
expect "status --json parses" 0 '"conns_total"' -- status --json
jq -e '.containers | length == 2' "$dir/out" >/dev/null &&
	{ pass=$((pass + 1)); echo "ok - status --json is valid JSON"; } ||
	{ fail=$((fail + 1)); echo "not ok - status --json: $(cat "$dir/out")"; }
expect "status" 0 'connections accelerated' -- status
# ok DESCRIPTION CONDITION...: counts the check
ok() {
	local d=$1
	shift
	if "$@"; then
		pass=$((pass + 1))
		echo "ok - $d"
	else
		fail=$((fail + 1))
		echo "not ok - $d"
	fi
}
rc=0
ffctl status --watch 0.2 --count 3 >"$dir/out" 2>"$dir/err" || rc=$?
frames=$(grep -c '^ffrouter .* connections accelerated' "$dir/out")
ok "status --watch 0.2 --count 3: exit $rc, $frames frames, no terminal codes in a pipe" \
	test "$rc" = 0 -a "$frames" = 3 -a "$(grep -c $'\033' "$dir/out")" = 0
# frames after the first start after a blank line
ok "status --watch frames are separated by a blank line" \
	test "$(grep -B1 '^ffrouter ' "$dir/out" | grep -c '^$')" = 2
"$build/ffctl/ffctl" --rundir "$dir/run" status --watch 0.2 >"$dir/out" 2>"$dir/err" &
wpid=$! # ffctl itself, not a subshell, gets the SIGINT
sleep 0.5
kill -INT $wpid
rc=0
wait $wpid || rc=$?
ok "status --watch stops on SIGINT with exit 0 (exit $rc)" test "$rc" = 0
expect "status --watch 0 is bad usage" 2 'bad --watch interval' -- status --watch 0
curl -s "http://127.0.0.1:$mport/metrics" >"$dir/metrics"
ok "curl /metrics: ffnet_containers 2 ($(grep '^ffnet_containers ' "$dir/metrics"))" \
	grep -qx 'ffnet_containers 2' "$dir/metrics"
ok "curl /metrics: per-container gauges with a container label" \
	grep -qx 'ffnet_container_channels{container="db"} 0' "$dir/metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")
ok "curl /other: 404 (got $code)" test "$code" = 404
# a watch whose router goes away says so and exits 1
"$build/ffctl/ffctl" --rundir "$dir/run" status --watch 0.2 >"$dir/wout" 2>"$dir/werr" &
wpid=$!
sleep 0.3
kill -TERM $router
wait $router && { pass=$((pass + 1)); echo "ok - router exits 0 on SIGTERM"; } ||
	{ fail=$((fail + 1)); echo "not ok - router exit status $?"; }
rc=0
wait $wpid || rc=$?
ok "status --watch without its router: exit 1, $(head -c 80 "$dir/werr")" \
	test "$rc" = 1 -a -s "$dir/werr"
router=
start
expect "registrations survive a restart" 0 'web' -- list
expect "unregister" 0 'unregistered web' -- unregister web
[[ ! -e $dir/run/c/web ]] && { pass=$((pass + 1)); echo "ok - unregister removed c/web"; } ||
	{ fail=$((fail + 1)); echo "not ok - c/web still there"; }
# the router's own usage errors: exit 2 and a message, nothing started
rc=0
"$build/ffrouter/ffrouter" --rundir "$dir/run2" --verbs-path fast >"$dir/out" 2>&1 || rc=$?
((rc == 2)) && grep -q "bad verbs path 'fast' (auto, direct or ring)" "$dir/out" &&
	[[ ! -e $dir/run2/ffrouter.sock ]] &&
	{ pass=$((pass + 1)); echo "ok - ffrouter --verbs-path fast: exit 2, $(head -1 "$dir/out")"; } ||
	{ fail=$((fail + 1)); echo "not ok - ffrouter --verbs-path fast: exit $rc, $(cat "$dir/out")"; }
rc=0
"$build/ffrouter/ffrouter" --rundir "$dir/run2" --metrics 127.0.0.1 >"$dir/out" 2>&1 || rc=$?
((rc == 2)) && grep -q "bad --metrics '127.0.0.1'" "$dir/out" && [[ ! -e $dir/run2/ffrouter.sock ]] &&
	{ pass=$((pass + 1)); echo "ok - ffrouter --metrics 127.0.0.1: exit 2, $(head -1 "$dir/out")"; } ||
	{ fail=$((fail + 1)); echo "not ok - ffrouter --metrics 127.0.0.1: exit $rc, $(cat "$dir/out")"; }
echo "# $pass passed, $fail failed"
((fail == 0))
