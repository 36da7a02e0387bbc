#!/usr/bin/env bash
# Across two emulated hosts (tests/integ/lib/xhosts.sh: network namespaces,
# containers behind a bridge with NAT on each host, one router per host):
# - the program list (iperf3 -P 1/-P 4/-R/--bidir, sockperf, redis, nginx +
#   curl 100 MB + wrk) from a container on A to one on B, each flow shown
#   by router A as a tcp connection to b1@B;
# - the conformance program: natively over a routed path (same addresses)
#   vs through ffnet: identical transcripts (the path is real TCP);
# - refusals: no listener -> ECONNREFUSED; a forged preamble is refused and
#   reaches no app; router B killed: established flows go on, new connects
#   fail fast with ECONNREFUSED; B back: connects work again;
# - publish (docker -p without NAT) and policy host (a host socket);
# - static programs under ffexec (rawnet, Go's net/http) from a1 to b1.
#   t-xhost.sh [STORE]   STORE: file (default) or etcd
set -uo pipefail
store=${1:-file}
here=$(cd "$(dirname "$0")" && pwd -P)
. "$here/lib/xhosts.sh"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
gt0() { awk -v x="$1" 'BEGIN { exit !(x + 0 > 0) }'; }
B1=${XH_CIP[b1]}

xh_init || exit $?
for t in iperf3 sockperf redis-server redis-benchmark nginx curl wrk jq ss; do
	command -v "$t" >/dev/null || { echo "SKIP: $t is not installed (scripts/deps.sh)"; exit 77; }
done
case $store in
file)
	xh_router A && xh_router B && xh_static_map || { nok "routers and map"; exit 1; }
	;;
etcd)
	. "$here/lib/etcd.sh"
	xh_etcd_start || exit $?
	xh_router A --store "$XH_ETCD" && xh_router B --store "$XH_ETCD" || { nok "routers"; exit 1; }
	xh_ctl A register a1 --ip "${XH_CIP[a1]}" >/dev/null &&
		xh_ctl A register a2 --ip "${XH_CIP[a2]}" >/dev/null &&
		xh_ctl B register b1 --ip "$B1" >/dev/null || { nok "register in etcd"; exit 1; }
	xh_etcd_converged || { nok "the routers did not see each other's containers"; exit 1; }
	ok "routers learned each other's hosts and containers through etcd"
	;;
*) echo "usage: $0 [file|etcd]" >&2; exit 2 ;;
esac

# a tcp flow a1 -> b1:PORT in router A's status, with bytes
flow() {
	local i
	for ((i = 0; i < 40; i++)); do
		xh_ctl A status --json | jq -e --arg p ":$1" '[.conns[] | select(.path == "tcp" and
			.client == "a1" and .server == "b1@B" and (.server_addr | endswith($p)) and
			(.bytes_c2s + .bytes_s2c) > 0)] | length > 0' >/dev/null && return 0
		sleep 0.05
	done
	return 1
}
total() { xh_ctl A status --json | jq -r .conns_total; }
bg() { # LOG CONTAINER -- CMD...: background with the shim, its pid in XH_PID
	local log=$1
	shift
	xh_spawn x "$@" >"$XH_WORK/$log" 2>&1
}

# ---- programs
ticks() { awk '{ print $14 + $15 }' "/proc/${XH_ROUTER[$1]}/stat"; }
iperf() {
	local label=$1 spid cpid out bps f=1 ta tb
	shift
	bg srv.log b1 -- iperf3 -s -1 -p 5201
	spid=$XH_PID
	xh_wait_port b1 5201
	ta=$(ticks A) tb=$(ticks B)
	bg cli.log a1 -- iperf3 -c "$B1" -p 5201 -t 2 -J "$@"
	cpid=$XH_PID
	sleep 1
	flow 5201 || f=0
	wait $cpid
	wait $spid
	# no router is on the data path: neither may be busy meanwhile
	ta=$(($(ticks A) - ta)) tb=$(($(ticks B) - tb))
	((ta < 20 && tb < 20)) && ok "iperf3 $label: routers idle during the transfer ($ta, $tb ticks)" ||
		nok "iperf3 $label: routers busy during the transfer: A $ta, B $tb ticks"
	out=$(cat "$XH_WORK/cli.log")
	bps=$(jq -r '.end.sum_received.bits_per_second // 0' <<<"$out" 2>/dev/null || echo 0)
	if gt0 "$bps" && ((f)); then
		ok "iperf3 $label across hosts: $(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e9 }') Gbit/s, shown as tcp a1 -> b1@B"
	else
		nok "iperf3 $label: bps=$bps flow=$f $(head -c 300 <<<"$out")"
	fi
}
iperf "-P 1"
iperf "-P 4" -P 4
iperf "-R" -R
iperf "--bidir" --bidir

bg sock.log b1 -- sockperf sr --tcp -i 0.0.0.0 -p 11111
spid=$XH_PID
xh_wait_port b1 11111
out=$(xh_x a1 -- sockperf pp --tcp -i "$B1" -p 11111 -t 2 2>&1)
p50=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' <<<"$out")
[[ -n $p50 ]] && ok "sockperf ping-pong across hosts: p50 $p50 us" || nok "sockperf pp: $(tail -n 3 <<<"$out")"
out=$(xh_x a1 -- sockperf tp --tcp -i "$B1" -p 11111 -t 2 --msg-size 1472 2>&1)
rate=$(sed -n 's/.*Message Rate is \([0-9]*\).*/\1/p' <<<"$out")
gt0 "${rate:-0}" && ok "sockperf throughput across hosts: $rate msg/s" || nok "sockperf tp: $(tail -n 3 <<<"$out")"
kill $spid 2>/dev/null
wait $spid 2>/dev/null

bg redis.log b1 -- redis-server --port 6379 --save '' --appendonly no --protected-mode no
rpid=$XH_PID
xh_wait_port b1 6379
xh_x a1 -- redis-cli -h "$B1" set k v1 >/dev/null
[[ $(xh_x a1 -- redis-cli -h "$B1" get k) == v1 ]] && ok "redis-cli set/get across hosts" || nok "redis-cli"
out=$(xh_x a1 -- redis-benchmark -h "$B1" -t set,get -n 50000 -c 50 -q 2>&1 | tr '\r' '\n')
set_rps=$(sed -n 's/^ *SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
get_rps=$(sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out" | tail -n 1)
gt0 "${set_rps:-0}" && gt0 "${get_rps:-0}" && ok "redis-benchmark across hosts: SET $set_rps GET $get_rps rps" ||
	nok "redis-benchmark: $(tail -n 3 <<<"$out")"

www=$XH_WORK/www
mkdir -p "$www"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$www/big.bin"
echo hello >"$www/index.html"
sed "s|/srv/www|$www|; s|^\(\s*\)listen .*|\1listen 80;|" "$XH_TOP/tests/integ/lib/nginx.conf" >"$XH_WORK/nginx.conf"
sed -i "s|^pid .*|pid $XH_WORK/nginx.pid;|" "$XH_WORK/nginx.conf"
grep -q '^pid ' "$XH_WORK/nginx.conf" || sed -i "1i pid $XH_WORK/nginx.pid;" "$XH_WORK/nginx.conf"
bg nginx.log b1 -- nginx -c "$XH_WORK/nginx.conf" -e stderr
npid=$XH_PID
xh_wait_port b1 80
n0=$(total)
got=$(xh_x a1 -- curl -sS "http://$B1/big.bin" | sha256sum | cut -d' ' -f1)
want=$(sha256sum "$www/big.bin" | cut -d' ' -f1)
[[ $got == "$want" ]] && (($(total) > n0)) && ok "curl: 100 MB from nginx across hosts, sha256 matches" ||
	nok "curl: sha256 $got, wanted $want"
out=$(xh_x a1 -- wrk -t 2 -c 32 -d 2s "http://$B1/index.html" 2>&1)
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
gt0 "${rps:-0}" && ! grep -qE 'Socket errors|Non-2xx' <<<"$out" && ok "wrk across hosts: $rps requests/s, no errors" ||
	nok "wrk: $out"

# ---- programs the shim cannot reach, under ffexec (the routers' seccomp
# supervisors): static glibc raw syscalls and static Go, across hosts
xe() { # C -- CMD...: run CMD in container C under ffexec
	local c=$1
	shift 2
	ip netns exec "$(xh_ns "$c")" env FFNET_SOCK="$(xh_rundir "${XH_CHOST[$c]}")/c/$c/ffrouter.sock" \
		"$XH_BUILD/ffexec/ffexec" "$@"
}
A1=${XH_CIP[a1]}
raw=$XH_BUILD/tests/progs/rawnet gon=$XH_BUILD/tests/progs/gonet
if [[ -x $raw ]]; then
	(xe b1 -- "$raw" serve "$B1" 7101 >"$XH_WORK/raw.s" 2>&1) &
	rspid=$!
	xh_wait_port b1 7101
	n0=$(total)
	out=$(xe a1 -- "$raw" connect -nb "$B1" 7101 1000000 2>&1)
	wait $rspid
	grep -q "^ok 1000000 local $A1:[0-9]* peer $B1:7101\$" <<<"$out" && grep -q "^peer $A1:" "$XH_WORK/raw.s" &&
		(($(total) == n0 + 1)) && ok "ffexec rawnet -nb across hosts: bytes intact, overlay names, accelerated" ||
		nok "ffexec rawnet across hosts: $out / $(cat "$XH_WORK/raw.s") / conns $n0 -> $(total)"
else
	nok "tests/progs/rawnet is built"
fi
if [[ -x $gon ]]; then
	(xe b1 -- "$gon" serve "$B1:7102" -n 2 >"$XH_WORK/go.s" 2>&1) &
	gspid=$!
	xh_wait_port b1 7102
	n0=$(total)
	out=$(xe a1 -- "$gon" get "http://$B1:7102/bytes" -n 1000000 2>&1)
	who=$(xe a1 -- "$gon" get "http://$B1:7102/whoami" 2>&1)
	wait $gspid
	grep -q "^ok 1000000\$" <<<"$out" && grep -q "^server remote=$A1:[0-9]* local=$B1:7102\$" <<<"$who" &&
		(($(total) == n0 + 2)) && ok "ffexec gonet (static Go net/http) across hosts: bytes, RemoteAddr, accelerated" ||
		nok "ffexec gonet across hosts: $out / $who / conns $n0 -> $(total)"
else
	nok "tests/progs/gonet is built"
fi

# ---- publish: host B's port 8080 -> b1:80, reached from host A without NAT
xh_ctl B publish b1 8080:80 >/dev/null
got=$(xh_in A -- curl -sS "http://${XH_HOSTIP[B]}:8080/index.html" 2>&1)
acc=$(xh_ctl B status --json | jq '.publishes[] | select(.host_port == 8080) | .accepted')
[[ $got == hello && $acc -ge 1 ]] && ok "published port: host B :8080 -> b1:80 ($acc accepted)" ||
	nok "published port: got '$got', accepted '$acc'"
xh_ctl B unpublish b1 8080 >/dev/null

# ---- refusals
out=$(xh_x a1 -- redis-cli -h "$B1" -p 9 ping 2>&1)
grep -q 'Connection refused' <<<"$out" && ok "no listener on b1:9: connection refused" || nok "no listener: $out"
# A non-blocking connect does not wait for the other host: with router B
# frozen, EINPROGRESS at once and no event, then (B continued) POLLOUT and
# SO_ERROR 0 for a thread asleep in poll and for an edge-triggered epoll
# registration made before connect, and ECONNREFUSED where nothing listens;
# a socket closed while it connects leaves its number to the next one.
# (Before, the shim waited for B's answer: 3 s, then ETIMEDOUT.)
out=$(xh_x a1 -- /usr/bin/python3 "$XH_TOP/tests/integ/lib/nbconnect.py" "$B1" 80 9 "${XH_ROUTER[B]}" 2>&1)
for want in "poll EINPROGRESS - OUT 0 HTTP/1.1_200_OK" "epoll EINPROGRESS - OUT 0 HTTP/1.1_200_OK" \
	"closed EINPROGRESS - same-fd fresh -" "refused EINPROGRESS - IN|OUT|ERR|HUP ECONNREFUSED -"; do
	name=${want%% *}
	line=$(awk -v n="$name" '$1 == n' <<<"$out")
	got=$(awk '{ $3 = ""; print }' <<<"$line" | tr -s ' ')
	ms=$(awk '{ print $3 }' <<<"$line")
	[[ $got == "$want" ]] && ((${ms:-9999} < 500)) &&
		ok "non-blocking connect, router B frozen ($name): EINPROGRESS in $ms ms, then the result" ||
		nok "non-blocking connect ($name): wanted '$want' at once, got '$line' / $(tail -n 2 <<<"$out")"
done
# a host whose router cannot be reached (no route: EHOSTUNREACH at once),
# and one that never answers (SYNs dropped: ETIMEDOUT after --xconnect-ms)
xh_ctl A host add C --addr 10.99.0.1:7946 >/dev/null
xh_ctl A host add D --addr "${XH_HOSTIP[B]}:7947" >/dev/null
xh_ctl A register c3 --ip 10.200.3.2 --host C >/dev/null
xh_ctl A register d4 --ip 10.200.4.2 --host D >/dev/null
xh_in A -- ip route add unreachable 10.99.0.0/24
xh_in B -- iptables -w -A INPUT -p tcp --dport 7947 -j DROP
pyconn='import errno, socket, sys, time
s = socket.socket(); t = time.time()
try:
    s.connect((sys.argv[1], 80)); print("connected")
except OSError as e:
    print(errno.errorcode[e.errno], round(time.time() - t))'
got=$(xh_x a1 -- /usr/bin/python3 -c "$pyconn" 10.200.3.2)
[[ $got == "EHOSTUNREACH 0" ]] && ok "host C unreachable: connect fails with EHOSTUNREACH at once" ||
	nok "host C unreachable: $got"
got=$(xh_x a1 -- /usr/bin/python3 -c "$pyconn" 10.200.4.2)
[[ $got == "ETIMEDOUT 3" ]] && ok "host D silent: connect fails with ETIMEDOUT after 3 s" ||
	nok "host D silent: $got"
xh_in B -- iptables -w -D INPUT -p tcp --dport 7947 -j DROP
xh_ctl A unregister c3 >/dev/null
xh_ctl A unregister d4 >/dev/null

bad0=$(xh_ctl B status --json | jq .bad_messages)
xh_in A -- bash -c "exec 3<>/dev/tcp/${XH_HOSTIP[B]}/$XH_PORT; printf '\x00\x40%064d' 0 >&3; sleep 0.3; cat <&3 >/dev/null" 2>/dev/null
bad1=$(xh_ctl B status --json | jq .bad_messages)
((bad1 > bad0)) && ok "a forged preamble is refused (bad messages $bad0 -> $bad1)" || nok "forged preamble not noticed"

# ---- router B dies: established flows go on, new connects fail fast
bg srv.log b1 -- iperf3 -s -1 -p 5202
spid=$XH_PID
xh_wait_port b1 5202
bg cli.log a1 -- iperf3 -c "$B1" -p 5202 -t 4 -i 1 -J
cpid=$XH_PID
sleep 1
xh_router_stop B KILL
t0=$(date +%s%N)
out=$(xh_x a1 -- redis-cli -h "$B1" get k 2>&1)
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q 'Connection refused' <<<"$out" && ((ms < 1000)) && ok "router B down: connect refused in ${ms} ms" ||
	nok "router B down: '$out' after ${ms} ms"
wait $cpid
wait $spid
# nginx (a master and forked workers) while its router is away: its
# listener keeps working (the shim's watcher forwards kernel connections)
# and nothing spins
t1=$(awk '{ print $14 + $15 }' /proc/$npid/stat)
sleep 2
t2=$(awk '{ print $14 + $15 }' /proc/$npid/stat)
((t2 - t1 < 20)) && ok "nginx master idle while router B is down ($((t2 - t1)) ticks in 2 s)" ||
	nok "nginx master busy while router B is down: $((t2 - t1)) ticks in 2 s"
got=$(xh_in B -- curl -sS -m 5 "http://$B1/index.html" 2>&1)
[[ $got == hello ]] && ok "router B down: b1's nginx still serves its host (kernel path)" ||
	nok "router B down: nginx unreachable from host B: $got"
kill $npid 2>/dev/null
wait $npid 2>/dev/null
n=$(jq '[.intervals[].sum.bytes | select(. > 0)] | length' "$XH_WORK/cli.log" 2>/dev/null || echo 0)
((n >= 4)) && ok "iperf3 across hosts kept flowing while router B was down ($n of 4 intervals)" ||
	nok "iperf3 during router B's outage: $n intervals"
if [[ $store == etcd ]]; then
	# a dead host's lease runs out: its containers leave the others' maps
	for ((i = 0; i < 200; i++)); do
		xh_ctl A list --json | jq -e 'any(.[]; .name == "b1")' >/dev/null || break
		sleep 0.1
	done
	((i < 200)) && ok "router B's containers expired from A's map $((i / 10)) s after B died" ||
		nok "b1 still in A's map 20 s after router B died"
	xh_router B --store "$XH_ETCD"
	xh_etcd_converged && ok "router B back: it registered its containers again" ||
		nok "router B back: not in A's map"
else
	xh_router B
fi
sleep 0.5
[[ $(xh_x a1 -- redis-cli -h "$B1" get k 2>&1) == v1 ]] && ok "router B back: connects work again" ||
	nok "router B back: redis unreachable"
kill $rpid 2>/dev/null
wait $rpid 2>/dev/null

# ---- policy host: a connect outside the overlay gets a host socket
xh_ctl A unregister a2 >/dev/null
xh_ctl A register a2 --ip "${XH_CIP[a2]}" --policy host >/dev/null
xh_spawn in B -- /usr/bin/python3 -m http.server 8090 --bind "${XH_HOSTIP[B]}" >/dev/null 2>&1
hpid=$XH_PID
xh_wait_port B 8090
lip=$(xh_x a2 -- curl -sS -o /dev/null -w '%{local_ip}' "http://${XH_HOSTIP[B]}:8090/")
nip=$(xh_x a1 -- curl -sS -o /dev/null -w '%{local_ip}' "http://${XH_HOSTIP[B]}:8090/")
[[ $lip == "${XH_HOSTIP[A]}" && $nip == "${XH_CIP[a1]}" ]] &&
	ok "policy host: a2 goes out from the host ($lip), a1 from its container ($nip)" ||
	nok "policy host: a2 local ip '$lip', a1 '$nip'"
kill $hpid 2>/dev/null

# ---- conformance: natively over a routed path vs through ffnet
xh_route_direct
xh_spawn plain b1 -- "$XH_BUILD/tests/conform/ffconform" server --bind "$B1" --port 7000 >"$XH_WORK/nat.s" 2>/dev/null
spid=$XH_PID
xh_wait_port b1 7000
xh_plain a1 -- "$XH_BUILD/tests/conform/ffconform" client --connect "$B1" --port 7000 >"$XH_WORK/nat.c" 2>/dev/null &&
	ok "native conformance run (routed, same addresses) passes" || nok "native conformance run"
wait $spid
n0=$(total)
xh_spawn x b1 -- "$XH_BUILD/tests/conform/ffconform" server --bind "$B1" --port 7000 >"$XH_WORK/ff.s" 2>/dev/null
spid=$XH_PID
xh_wait_port b1 7000
xh_x a1 -- "$XH_BUILD/tests/conform/ffconform" client --connect "$B1" --port 7000 >"$XH_WORK/ff.c" 2>"$XH_WORK/ff.c.err"
wait $spid
cat "$XH_WORK/nat.c" "$XH_WORK/nat.s" >"$XH_WORK/nat"
cat "$XH_WORK/ff.c" "$XH_WORK/ff.s" >"$XH_WORK/ff"
((($(total) - n0) >= 1000)) && ok "ffnet conformance run: $(($(total) - n0)) connections across hosts" ||
	nok "ffnet conformance run: only $(($(total) - n0)) connections through router A"
"$XH_TOP/tests/conform/compare.sh" "$XH_WORK/nat" "$XH_WORK/ff" && ok "conformance transcripts identical across hosts" ||
	nok "conformance transcripts differ"

for h in A B; do xh_router_stop "$h" && ok "router $h stops cleanly" || nok "router $h exit status"; done
echo "# $pass passed, $fail failed"
((fail == 0))
