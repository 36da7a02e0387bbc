#!/usr/bin/env bash
# Programs LD_PRELOAD cannot reach, between two containers on one host,
# under ffexec (seccomp user notification, the router's supervisor):
# static glibc with raw syscalls (rawnet), musl (muslnet), static Go
# (gonet: net/http and a TCP echo), static busybox (nc, httpd + wget).
# Each pair must move its bytes intact, see the overlay addresses as TCP
# would show them, and be accelerated: the router counts one more
# connection for it (no kernel TCP flow crosses the bridge). Then the same
# with the router stopped: ffexec runs the programs over the container
# network, untouched. A static Go server keeps its listener across a
# router crash. And a dynamic glibc program under ffexec with the
# shim preloaded is served once, by the shim. Exits 77 without a container
# backend or without seccomp user notification.
set -euo pipefail
. "$(dirname "$0")/lib/ffenv.sh"

ff_init ffexec || exit $?
ff_router_start
ff_pair 10.77.13.0/24
ip1=$FF_IP1 ip2=$FF_IP2

# pair WHAT SERVER-CMD -- CLIENT-CMD: runs the server in c1 and the client
# in c2, both under ffexec (port: $port); sets out (client) and slog (server).
out="" slog=""
pair() {
	local id
	shift
	local srv=() cli=()
	while [[ $1 != -- ]]; do srv+=("$1"); shift; done
	shift
	cli=("$@")
	id=$(ff_e_bg c1 -- "${srv[@]}")
	tb_wait_port c1 "$port" || true
	out=$(ff_e c2 -- "${cli[@]}" 2>&1) || true
	tb_wait "$id" 20 || true
	slog=$(tb_bg_log "$id")
}

if ! tb_exec c1 -- "$FF_EXEC_IN" /bin/busybox true; then
	echo "SKIP: ffexec cannot run in this container"
	exit 77
fi

n=1000000
# ---- static glibc, raw syscalls; blocking and non-blocking connect
for nb in "" -nb; do
	port=7001
	ff_mark
	pair "rawnet$nb" rawnet serve "$ip1" "$port" -- rawnet connect $nb "$ip1" "$port" "$n"
	ff_check "rawnet$nb: bytes echoed intact ($out)" grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"
	ff_check "rawnet$nb: the server sees the client's overlay address" grep -q "^peer $ip2:" <<<"$slog"
	ff_check "rawnet$nb: accelerated" ff_accelerated 1
done

# ---- musl
if tb_exec c1 -- test -x /usr/bin/muslnet; then
	port=7002
	ff_mark
	pair muslnet muslnet serve "$ip1" "$port" -- muslnet connect -nb "$ip1" "$port" "$n"
	ff_check "muslnet: bytes echoed intact ($out)" grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"
	ff_check "muslnet: the server sees the client's overlay address" grep -q "^peer $ip2:" <<<"$slog"
	ff_check "muslnet: accelerated" ff_accelerated 1
else
	ff_nok "muslnet is in the image (musl-tools missing at build time?)"
fi

# ---- static Go: net/http and a TCP echo
if tb_exec c1 -- test -x /usr/bin/gonet; then
	port=7003
	ff_mark
	id=$(ff_e_bg c1 -- gonet serve "$ip1:$port" -n 2)
	tb_wait_port c1 "$port" || true
	out=$(ff_e c2 -- gonet get "http://$ip1:$port/bytes" -n "$n" 2>&1) || true
	ff_check "gonet get: $n bytes checked ($out)" grep -q "^ok $n\$" <<<"$out"
	out=$(ff_e c2 -- gonet get "http://$ip1:$port/whoami" 2>&1) || true
	ff_check "gonet: the server sees the client's overlay address ($out)" \
		grep -q "^server remote=$ip2:[0-9]* local=$ip1:$port\$" <<<"$out"
	ff_check "gonet: the client sees the overlay addresses" \
		grep -q "^client local=$ip2:[0-9]* remote=$ip1:$port\$" <<<"$out"
	ff_check "gonet serve ended after 2 requests" tb_wait "$id" 20
	ff_check "gonet http: accelerated" ff_accelerated 2
	port=7004
	ff_mark
	pair gonet-echo gonet echo-serve "$ip1:$port" -n 1 -- gonet echo "$ip1:$port" -n "$n"
	ff_check "gonet echo: bytes intact ($out)" grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"
	ff_check "gonet echo: accelerated" ff_accelerated 1
else
	ff_nok "gonet is in the image (golang-go missing at build time?)"
fi

# ---- static busybox: nc, and httpd + wget
port=7005
blob=$FF_WORK/blob
head -c 300000 /dev/urandom >"$blob"
ff_mark
id=$(ff_e_bg c1 -- /bin/busybox nc -l -p "$port" -e /bin/busybox cat)
tb_wait_port c1 "$port" || true
back=$(ff_e c2 -- /bin/busybox nc -w 5 "$ip1" "$port" <"$blob" | sha256sum) || true
ff_check "busybox nc: 300000 bytes echoed intact" test "$back" = "$(sha256sum <"$blob")"
tb_kill "$id"
tb_wait "$id" 5 || true
ff_check "busybox nc: accelerated" ff_accelerated 1

port=7006
tb_exec c1 -- mkdir -p /tmp/www
tb_exec c1 -- sh -c 'cat >/tmp/www/file' <"$blob"
ff_mark
id=$(ff_e_bg c1 -- /bin/busybox httpd -f -vv -p "$ip1:$port" -h /tmp/www)
tb_wait_port c1 "$port" || true
back=$(ff_e c2 -- /bin/busybox wget -q -O - "http://$ip1:$port/file" | sha256sum) || true
ff_check "busybox httpd + wget: the file intact" test "$back" = "$(sha256sum <"$blob")"
tb_kill "$id"
tb_wait "$id" 5 || true
ff_check "busybox httpd logged the client's overlay address" grep -q "$ip2:[0-9]*: response:200" <<<"$(tb_bg_log "$id")"
ff_check "busybox httpd: accelerated" ff_accelerated 1

# ---- a dynamic glibc program with the shim under ffexec: served once
port=7007
ff_mark
id=$(ff_x_bg c1 -- "$FF_EXEC_IN" iperf3 -s -1 -p "$port")
tb_wait_port c1 "$port" || true
out=$(ff_x c2 -- "$FF_EXEC_IN" iperf3 -c "$ip1" -p "$port" -t 1 -J 2>&1) || true
iperf_moved() { jq -e '.end.sum_received.bytes > 0' <<<"$out" >/dev/null; }
ff_check "iperf3 (shim + ffexec) moved bytes" iperf_moved
tb_wait "$id" 10 || true
# iperf3 opens a control and a data connection
ff_check "iperf3 (shim + ffexec): each connection accelerated once" ff_accelerated 2

# ---- sockperf sends with sendto(server address) on its TCP socket: under
# ffexec --sendto the supervisor sends those bytes (AF_UNIX says EISCONN)
port=7009
ff_mark
id=$(ff_e_bg c1 -- --sendto sockperf sr --tcp -i 0.0.0.0 -p "$port")
tb_wait_port c1 "$port" || true
out=$(ff_e c2 -- --sendto sockperf pp --tcp -i "$ip1" -p "$port" -t 1 2>&1) || true
tb_kill "$id" || true
ff_check "sockperf (ffexec --sendto): round trips measured" grep -q "percentile 50.000" <<<"$out"
ff_check "sockperf (ffexec --sendto): accelerated" ff_accelerated 1

# crash_router WHAT: kill -9 of the router and a new one; c1's listener on
# $port must come back to it (the router logs each listener it takes)
listens() { grep -c "c1: listening on $ip1:$port " "$FF_WORK/router.log" || true; }
relistened() { (($(listens) > before)); }
crash_router() {
	before=$(listens)
	ff_router_kill
	ff_router_start
	for ((i = 0; i < 100; i++)); do relistened && break; sleep 0.1; done
	ff_check "the keeper handed $1's listener back to the new router" relistened
}

# ---- a static Go server outlives a router crash: its keeper holds the
# listener's queue (no EOF in the server's accept) and hands it back to
# the next router, which accelerates the server's next connections
if tb_exec c1 -- test -x /usr/bin/gonet; then
	port=7010
	id=$(ff_e_bg c1 -- gonet serve "$ip1:$port" -n 2)
	tb_wait_port c1 "$port" || true
	out=$(ff_e c2 -- gonet get "http://$ip1:$port/bytes" -n "$n" 2>&1) || true
	ff_check "gonet before the router's crash: $n bytes checked ($out)" grep -q "^ok $n\$" <<<"$out"
	crash_router gonet
	ff_mark
	out=$(ff_e c2 -- gonet get "http://$ip1:$port/whoami" 2>&1) || true
	ff_check "gonet after the crash: served, the client's overlay address seen ($out)" \
		grep -q "^server remote=$ip2:[0-9]* local=$ip1:$port\$" <<<"$out"
	ff_check "gonet after the crash: accelerated" ff_accelerated 1
	ff_check "gonet serve ended after 2 requests" tb_wait "$id" 20
fi

# ---- a blocking accept the router had parked when it crashed: the keeper
# holds it and hands it to the next router, which serves it
port=7011
id=$(ff_e_bg c1 -- rawnet serve "$ip1" "$port")
tb_wait_port c1 "$port" || true
sleep 0.2 # (its accept parked in the router)
crash_router rawnet
ff_mark
out=$(ff_e c2 -- rawnet connect -t 20 "$ip1" "$port" "$n" 2>&1) || true
ff_check "rawnet's blocking accept across the router's crash: bytes echoed intact ($out)" \
	grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"
ff_check "rawnet after the crash: accelerated" ff_accelerated 1
ff_check "rawnet serve ended" tb_wait "$id" 20
slog=$(tb_bg_log "$id")
ff_check "rawnet serve saw the client's overlay address ($(ff_flat "$slog"))" grep -q "^peer $ip2:" <<<"$slog"

# ---- no router: untouched, over the container network
ff_router_stop
port=7008
pair rawnet-norouter rawnet serve "$ip1" "$port" -- rawnet connect -nb "$ip1" "$port" "$n"
ff_check "no router: rawnet over the container network ($out)" \
	grep -q "^ok $n local $ip2:[0-9]* peer $ip1:$port\$" <<<"$out"

ff_summary
