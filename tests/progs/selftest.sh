#!/usr/bin/env bash
# shellcheck disable=SC2317 # check() and the traps call functions indirectly
# Self-test of the programs in tests/progs, with no ffnet involved: each
# server/client pair runs natively on loopback and the test asserts on what
# both print (byte counts, the addresses each end sees), not only on exit 0.
# Env (set by meson for what it built): RAWNET, MUSLNET, GONET; busybox comes
# from PATH. Prints one "ok"/"not ok" line per check, then "N passed, N failed".
# A program missing here (no go or musl-gcc at configure time, no busybox) is
# reported; with no failure elsewhere the test then exits 77 (skip).
set -uo pipefail

wd=$(mktemp -d /tmp/progs-selftest.XXXXXX)
npass=0 nfail=0 missing=() pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$wd"
}
trap cleanup EXIT

ok() { npass=$((npass + 1)); echo "ok - $*"; }
nok() { nfail=$((nfail + 1)); echo "not ok - $*"; }
check() { # DESCRIPTION CMD...: pass if CMD succeeds
	local d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}
has() { grep -qE -- "$2" "$1"; } # FILE ERE
field() { sed -nE "s/$2/\\1/p" "$1" | head -n1; } # FILE SED-ERE-WITH-ONE-GROUP
same() { [[ -n $1 && $1 == "$2" ]]; }

# start NAME CMD...: runs a server that prints "listening ADDR" in the
# background; sets srv_pid and srv_addr (empty if it never listened).
start() {
	local name=$1 i
	shift
	"$@" >"$wd/$name.out" 2>"$wd/$name.err" &
	srv_pid=$! srv_addr=
	pids+=("$srv_pid")
	for ((i = 0; i < 100; i++)); do
		srv_addr=$(field "$wd/$name.out" '^listening (.*)$')
		[[ -n $srv_addr ]] && return 0
		kill -0 "$srv_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "# $name did not listen: $(cat "$wd/$name.out" "$wd/$name.err")"
	return 1
}

# finish PID: waits up to 10 s for a server to exit by itself; returns its
# status, or 124 after killing it.
finish() {
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && kill -KILL "$1" && { wait "$1" 2>/dev/null; return 124; }
	wait "$1"
}

# client NAME CMD...: runs a client with a time limit; output in $wd/NAME.out.
client() {
	local name=$1
	shift
	timeout 30 "$@" >"$wd/$name.out" 2>"$wd/$name.err"
}

is_static() { ! readelf -lW "$1" 2>/dev/null | grep -qE '^ *(INTERP|DYNAMIC) ' && [[ -s $1 ]]; }
port_of() { echo "${1##*:}"; }

# C pair (rawnet or muslnet): blocking then non-blocking connect against one
# server, the server's "peer" matching the client's "local" each time.
test_c() {
	local n=$1 bin=$2 p port cl sp
	check "$n is statically linked" is_static "$bin"
	start "$n-srv" "$bin" serve -k 2 127.0.0.1 0 || { nok "$n serve listens"; return; }
	sp=$srv_pid port=$(port_of "$srv_addr")
	for mode in block nb; do
		local args=() && [[ $mode == nb ]] && args=(-nb)
		client "$n-$mode" "$bin" connect "${args[@]}" 127.0.0.1 "$port" 1000000
		p="^ok 1000000 local (127\.0\.0\.1:[0-9]+) peer 127\.0\.0\.1:$port\$"
		check "$n connect $mode: 1000000 bytes echoed and checked" has "$wd/$n-$mode.out" "$p"
		cl=$(field "$wd/$n-$mode.out" "$p")
		check "$n server's peer is the $mode client's local ($cl)" \
			has "$wd/$n-srv.out" "^peer $cl\$"
	done
	check "$n nb-connect says EINPROGRESS or 0" has "$wd/$n-nb.out" '^nb-connect (EINPROGRESS|0)$'
	check "$n server exits 0 after 2 connections" finish "$sp"
	check "$n server echoed 1000000 twice" \
		[ "$(grep -c '^echoed 1000000$' "$wd/$n-srv.out")" = 2 ]
	check "$n server's local is where it listens" has "$wd/$n-srv.out" "^local 127\.0\.0\.1:$port\$"
	client "$n-refused" "$bin" connect -nb 127.0.0.1 "$port" 10
	check "$n connect -nb to a closed port exits 1" same "$?" 1
	check "$n connect -nb to a closed port: bad SO_ERROR" \
		has "$wd/$n-refused.out" '^bad SO_ERROR: Connection refused$'
	if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/'; then
		start "$n-srv6" "$bin" serve ::1 0 || { nok "$n serve ::1 listens"; return; }
		client "$n-6" "$bin" connect -nb ::1 "$(port_of "$srv_addr")" 70000
		check "$n over ::1" has "$wd/$n-6.out" '^ok 70000 local \[::1\]:[0-9]+ peer \[::1\]:'
		check "$n ::1 server exits 0" finish "$srv_pid"
	fi
}

# gonet: HTTP bytes, whoami, the connect-rate client, -once, the echo pair.
test_go_http() {
	local g=$1 base sp r l cl cr
	start go-srv "$g" serve 127.0.0.1:0 || { nok "gonet serve listens"; return; }
	sp=$srv_pid base=http://$srv_addr
	client go-bytes "$g" get "$base/bytes" -n 3000000
	check "gonet get /bytes: 3000000 bytes checked" has "$wd/go-bytes.out" '^ok 3000000$'
	client go-who "$g" get "$base/whoami"
	r=$(field "$wd/go-who.out" '^server remote=([^ ]+) local=.*')
	l=$(field "$wd/go-who.out" '^server remote=[^ ]+ local=([^ ]+)$')
	cl=$(field "$wd/go-who.out" '^client local=([^ ]+) remote=.*')
	cr=$(field "$wd/go-who.out" '^client local=[^ ]+ remote=([^ ]+)$')
	check "gonet whoami: server's remote is the client's local ($cl)" same "$r" "$cl"
	check "gonet whoami: server's local is the client's remote ($cr)" same "$l" "$cr"
	check "gonet whoami: the client's remote is where the server listens" same "$cr" "$srv_addr"
	client go-400 "$g" get "$base/bytes?n=x"
	check "gonet get of a bad request exits 1" same "$?" 1
	check "gonet get of a bad request: bad status 400" has "$wd/go-400.out" '^bad status 400$'
	client go-rate "$g" rate "$base/bytes?n=100" -d 1
	check "gonet rate: requests > 0, errors 0" \
		has "$wd/go-rate.out" '^requests [1-9][0-9]* errors 0 per_sec [0-9.]+$'
	client go-ratej "$g" rate "$base/whoami" -d 0.5 -c 2 -json
	check "gonet rate -json -c 2" \
		has "$wd/go-ratej.out" '^\{.*"workers":2,.*"requests":[1-9][0-9]*,"errors":0,"per_sec":[0-9.]+'
	kill -TERM "$sp"
	check "gonet serve exits 0 on SIGTERM" finish "$sp"
	check "gonet serve says how many it served" has "$wd/go-srv.out" '^served [1-9][0-9]*$'

	start go-once "$g" serve -once 127.0.0.1:0 || { nok "gonet serve -once listens"; return; }
	client go-once-get "$g" get "http://$srv_addr/bytes?n=0"
	check "gonet get /bytes?n=0" has "$wd/go-once-get.out" '^ok 0$'
	check "gonet serve -once exits 0 by itself" finish "$srv_pid"
	check "gonet serve -once served 1" has "$wd/go-once.out" '^served 1$'
}

test_go_echo() {
	local g=$1 sp cl
	start go-echo-srv "$g" echo-serve -n 2 127.0.0.1:0 || { nok "gonet echo-serve listens"; return; }
	sp=$srv_pid
	client go-echo "$g" echo "$srv_addr" -n 2000000
	check "gonet echo: 2000000 bytes checked" \
		has "$wd/go-echo.out" "^ok 2000000 local 127\.0\.0\.1:[0-9]+ peer $srv_addr\$"
	cl=$(field "$wd/go-echo.out" '^ok [0-9]+ local ([^ ]+) peer .*')
	if [[ -n ${RAWNET:-} ]]; then # the same byte pattern: rawnet against gonet
		client go-echo-raw "$RAWNET" connect 127.0.0.1 "$(port_of "$srv_addr")" 500000
		check "rawnet connect against gonet echo-serve" has "$wd/go-echo-raw.out" '^ok 500000 '
	else
		client go-echo2 "$g" echo "$srv_addr" -n 1
	fi
	check "gonet echo-serve exits 0 after -n 2" finish "$sp"
	check "gonet echo-serve: peer is the client's local ($cl)" \
		has "$wd/go-echo-srv.out" "^peer $cl echoed 2000000\$"
}

# a TCP port nothing listens on now (for busybox, which cannot print one)
free_port() {
	local p
	for ((p = 20000 + RANDOM % 20000; ; p++)); do
		ss -Htan "( sport = :$p or dport = :$p )" | grep -q . || break
	done
	echo "$p"
}
wait_listen() { # PORT
	local i
	for ((i = 0; i < 100; i++)); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

test_busybox() {
	local port pid
	head -c 1000000 /dev/urandom >"$wd/blob"
	port=$(free_port)
	busybox nc -l -p "$port" -e busybox cat >/dev/null 2>"$wd/bb-nc.err" &
	pid=$!
	pids+=("$pid")
	wait_listen "$port"
	timeout 30 busybox nc 127.0.0.1 "$port" <"$wd/blob" >"$wd/bb-nc.back"
	check "busybox nc -l -e busybox cat / nc: 1000000 bytes echoed" cmp -s "$wd/blob" "$wd/bb-nc.back"
	check "busybox nc -l exits 0 after one connection" finish "$pid"

	mkdir -p "$wd/www"
	cp "$wd/blob" "$wd/www/blob"
	port=$(free_port)
	busybox httpd -f -vv -p "127.0.0.1:$port" -h "$wd/www" 2>"$wd/bb-httpd.err" &
	pid=$!
	pids+=("$pid")
	wait_listen "$port"
	timeout 30 busybox wget -q -O - "http://127.0.0.1:$port/blob" >"$wd/bb-wget.bin"
	check "busybox httpd / wget: 1000000 bytes" cmp -s "$wd/blob" "$wd/bb-wget.bin"
	timeout 30 busybox wget -O - "http://127.0.0.1:$port/none" >/dev/null 2>"$wd/bb-404.err"
	check "busybox wget of a missing file exits 1" same "$?" 1
	check "busybox wget of a missing file: 404" has "$wd/bb-404.err" '404 Not Found$'
	check "busybox httpd -vv logs the peer and 200" \
		has "$wd/bb-httpd.err" '^127\.0\.0\.1:[0-9]+: response:200$'
	kill "$pid"
	wait "$pid" 2>/dev/null
}

if [[ -n ${RAWNET:-} ]]; then test_c rawnet "$RAWNET"; else missing+=("rawnet (not built)"); fi
if [[ -n ${MUSLNET:-} ]]; then
	test_c muslnet "$MUSLNET"
else
	missing+=("muslnet: no musl-gcc at configure time (apt-get install musl-tools)")
fi
if [[ -n ${GONET:-} ]]; then
	check "gonet is statically linked" is_static "$GONET"
	test_go_http "$GONET"
	test_go_echo "$GONET"
else
	missing+=("gonet: no go at configure time (apt-get install golang-go)")
fi
if command -v busybox >/dev/null && command -v ss >/dev/null; then
	test_busybox
else
	missing+=("busybox checks: busybox or ss missing (busybox-static, iproute2)")
fi

if ((nfail > 0)); then
	for f in "$wd"/*.out "$wd"/*.err; do
		[[ -s $f ]] && { echo "# --- ${f##*/}"; head -n 20 "$f"; }
	done
fi
echo "$npass passed, $nfail failed"
((nfail > 0)) && exit 1
if ((${#missing[@]} > 0)); then
	printf 'skipped: %s\n' "${missing[@]}"
	exit 77
fi
exit 0
