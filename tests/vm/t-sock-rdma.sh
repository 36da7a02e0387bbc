#!/bin/bash
# vm-sock-rdma: unmodified socket programs between containers on two hosts,
# whose TCP connections ffnet carries over RDMA between the routers (issue
# 13). Pair layout as in vm-verbs-cross: router h1 on rxe0 (10.77.0.1),
# router h2 on rxe1 (10.77.0.2), both declared --rdma in each other's map;
# container a on h1 and b on h2 have no link at all, so their TCP can only
# flow through ffnet. Every program runs under `timeout -k`: a hang fails.
#
# The path every connection must take is $want: rdma by default. With
# SR_WANT_PATH=tcp (development and comparison only, never from meson) both
# routers run with --sock-rdma off and the same programs must go over the
# host-TCP hand-off instead, with the same results.
#
# A connection "went over $want" (path_check) when, around the program,
# no router counted a fallback from RDMA to TCP (.rsock.fallbacks), and
#   rdma: both routers' .rsock.conns_total grew by at least the connections
#     the program opened; h1's pair with h2 sent at least the bytes b
#     received and received at least those a received, h2's the converse;
#     rxe0 and rxe1 sent at least one packet per 4 KiB (the largest RoCE
#     MTU) of the data in their direction; and the host's TCP sent fewer
#     than a quarter of the segments those bytes need over TCP (MSS of the
#     veth);
#   tcp: .rsock.conns_total unchanged on both routers, h1's hand-off count
#     grew by the connections, the host's TCP sent at least a segment per
#     MSS of the data, and the rxe devices sent less than a quarter of the
#     packets the data needs over RDMA.
# And while long programs run, both routers list their connections with
# .path == $want (wait_path).
#
#  1. iperf3 a -> b -P 1, -P 4, -R, --bidir (-t 3 -J): exit 0 on both
#     sides; in every direction the receiver counted bytes (> 0) and never
#     more than the sender sent (iperf3's server closes its streams at the
#     end of the test without draining them, so "equal" cannot be asked);
#     all control and data connections on path $want, byte counts above.
#  2. sockperf sr in b; pp --tcp -t 3 (latency line, replies received,
#     no dropped, duplicated or out-of-order message) and tp --tcp -t 3
#     (message rate and bandwidth line) from a.
#  3. redis-server in b: a 4 MB random value SET from a comes back
#     identical from GET; redis-benchmark -t set,get -n 2000 (50 clients),
#     then with -P 16: exit 0, a requests-per-second line for SET and GET.
#  4. nginx in b (master and 2 workers, sendfile) serves a 100 MB random
#     file; curl in a saves it: same sha256, path $want while it ran.
#  4b. ffconform (server in b, client in a) over the path: its transcript
#     must be identical to a native run between the same addresses over
#     plain kernel TCP (namespaces joined by a veth), no deviation allowed.
#  5. kill -9 of an endless iperf3 -P 2 client in a mid-transfer: the
#     server in b sees the end and exits within 15 s; within 10 s more
#     both routers are back at their baselines, exactly: .rsock.conns,
#     .conns, .health.fds_open, and the number of pairs, their registered
#     memory (mem_bytes) and staged bytes.
#  6. h1 redeclares h2 without --rdma: new connections (iperf3 -P 2, curl
#     16 MB with its sha256) go over tcp, .rsock.conns_total unchanged on
#     both routers. Redeclared --rdma: the next connection takes $want again.
#  7. last: router h2 is killed during a curl a <- b limited to 2 MB/s.
#     rdma (100 MB file): the router was on the data path, so curl must
#     fail (not time out) within 15 s (the time is printed), h1 logs a
#     line about h2, h1's .rsock.conns goes back to its baseline and its
#     fds do not grow; tcp (16 MB file): the routers are not on the data
#     path, so curl completes with the right sha256. Both: a new connect
#     to b fails within 10 s (curl exit 7), and h1 still answers.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	# ffvm passes only FF* variables into the guest
	[[ -z ${SR_WANT_PATH:-} ]] || export FF_SR_WANT_PATH=$SR_WANT_PATH
	FFVM_RDMA_NETNS=exclusive run_vm --layout pair --mem 1536 --timeout 560 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

want=${FF_SR_WANT_PATH:-rdma}
[[ $want == rdma || $want == tcp ]] || fail "SR_WANT_PATH='$want': rdma or tcp"
[[ $FFVM_HOSTS == "10.77.0.1:rxe0 10.77.0.2:rxe1" ]] || fail "FFVM_HOSTS='$FFVM_HOSTS'"
for p in iperf3 sockperf redis-server redis-benchmark redis-cli nginx curl jq ss sha256sum; do
	command -v "$p" >/dev/null || fail "$p is not installed on the host (tests/vm/deps.txt)"
done
vb_logs_on_failure
L=$VB_LOGS
W=/tmp/sr
mkdir -p "$W"

# ffvm loads the sock_diag modules (the guest cannot load modules on
# demand): ss needs them, and so does the routers' view of TCP sockets
[[ -d /sys/module/tcp_diag && -d /sys/module/unix_diag ]] || fail "ffvm did not load tcp_diag and unix_diag"

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# strip sockperf's colours and redis-benchmark's carriage returns
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr '\r' '\n'; }

# sr_hosts ROUTER-ARGS...: vb_hosts, with ROUTER-ARGS for both routers
sr_hosts() {
	local secret=$VB_LOGS/secret
	head -c 32 /dev/urandom >"$secret"
	chmod 600 "$secret"
	vb_router h1 rxe0 --host-id h1 --ingress "10.77.0.1:$VB_XPORT" --secret-file "$secret" "$@"
	vb_router h2 rxe1 --host-id h2 --ingress "10.77.0.2:$VB_XPORT" --secret-file "$secret" "$@"
	host_decl h1 h2 10.77.0.2 --rdma
	host_decl h2 h1 10.77.0.1 --rdma
}
host_decl() { # ON HOST ADDR [--rdma]
	"$VB_FFCTL" --rundir "${VB_RUNDIR[$1]}" host add "$2" --addr "$3:$VB_XPORT" "${@:4}" \
		>/dev/null || fail "host add $2 ${*:4} on $1"
}

vb_alone a 10.78.0.1
vb_alone b 10.78.0.2
if [[ $want == rdma ]]; then
	vb_hosts 10.77.0.1 rxe0 10.77.0.2 rxe1
else
	sr_hosts --sock-rdma off
fi
vb_register h1 a
vb_register_remote h1 b h2
vb_register h2 b
vb_register_remote h2 a h1
vb_no_device a
vb_no_device b
if [[ $want == rdma ]]; then
	for h in h1 h2; do
		vb_status "$h" --json | jq -e '.rsock | type == "object"' >/dev/null ||
			fail "router $h reports no .rsock in ffctl status --json: no sockets over RDMA"
	done
fi
B=${VB_IP[b]}
pass "hosts h1 (rxe0) and h2 (rxe1) with RDMA; container a on h1, b on h2, no link; expected path: $want"

peer() { [[ $1 == h1 ]] && echo h2 || echo h1; }
status() { vb_status "$1" --json || fail "ffctl status --json on $1 failed"; }
next_port() { VB_PORT=$((VB_PORT + 1)); }

# --- counters around a program
MSS=$(($(<"/sys/class/net/veth0/mtu") - 40))
tcp_outsegs() {
	awk '$1 == "Tcp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "OutSegs") n = i } else print $n }' \
		/proc/net/snmp
}
rxe_sent() { echo $(($(<"/sys/class/infiniband/$1/ports/1/hw_counters/sent_pkts"))); }
declare -A S0 S1
# snap ARRAY: each router's .rsock.conns_total, its pair's tx/rx bytes with
# the other host, its hand-off count (.conns_total) and .rsock.fallbacks;
# rxe packets sent; the host's TCP segments sent.
snap() {
	local -n s=$1
	local h v
	for h in h1 h2; do
		v=$(status "$h" | jq -r --arg p "$(peer "$h")" '[(.rsock.conns_total // 0),
			([.rsock.pairs[]? | select(.host == $p) | .tx_bytes] | add // 0),
			([.rsock.pairs[]? | select(.host == $p) | .rx_bytes] | add // 0),
			.conns_total, (.rsock.fallbacks // 0)] | @tsv')
		read -r "s[$h.total]" "s[$h.tx]" "s[$h.rx]" "s[$h.handoffs]" "s[$h.fallbacks]" <<<"$v"
	done
	s["rxe0"]=$(rxe_sent rxe0)
	s["rxe1"]=$(rxe_sent rxe1)
	s["segs"]=$(tcp_outsegs)
}
d() { echo $((S1[$1] - S0[$1])); }

# path_check LABEL CONNS AB BA: since `snap S0`, the program's CONNS
# connections and the bytes it moved a -> b (AB, as b counted them) and
# b -> a (BA) went over $want (see the top of this file). Sets PATH_NOTE.
path_check() {
	local label=$1 n=$2 ab=$3 ba=$4 h x tcp_need
	snap S1
	tcp_need=$(((ab + ba) / MSS))
	for h in h1 h2; do
		x=$(d "$h.fallbacks")
		((x == 0)) || fail "$label: $h's .rsock.fallbacks grew by $x, want 0 (no connect fell back from RDMA to TCP)"
	done
	if [[ $want == rdma ]]; then
		for h in h1 h2; do
			x=$(d "$h.total")
			((x >= n)) || fail "$label: $h's .rsock.conns_total grew by $x, want >= $n (each connection the program opened)"
		done
		(($(d h1.tx) >= ab && $(d h2.rx) >= ab)) ||
			fail "$label: a -> b: h1's pair with h2 sent $(d h1.tx) B, h2's received $(d h2.rx) B; want both >= $ab (what b received)"
		(($(d h2.tx) >= ba && $(d h1.rx) >= ba)) ||
			fail "$label: b -> a: h2's pair with h1 sent $(d h2.tx) B, h1's received $(d h1.rx) B; want both >= $ba (what a received)"
		(($(d rxe0) >= ab / 4096 && $(d rxe1) >= ba / 4096)) ||
			fail "$label: rxe0 sent $(d rxe0) packets, rxe1 $(d rxe1); want >= $((ab / 4096)) and $((ba / 4096)) (a packet per 4 KiB of data)"
		(($(d segs) < tcp_need / 4 + 200)) ||
			fail "$label: the host's TCP sent $(d segs) segments for $((ab + ba)) B; over RDMA they should need few (want < $((tcp_need / 4 + 200)))"
		PATH_NOTE="rdma: rsock conns +$(d h1.total)/+$(d h2.total), pair bytes h1 tx $(d h1.tx) rx $(d h1.rx), rxe0/rxe1 +$(d rxe0)/+$(d rxe1) pkts, host TCP +$(d segs) segs"
	else
		for h in h1 h2; do
			x=$(d "$h.total")
			((x == 0)) || fail "$label: $h's .rsock.conns_total grew by $x, want 0 (every connection over tcp)"
		done
		x=$(d h1.handoffs)
		((x >= n)) || fail "$label: h1 handed off $x connections, want >= $n"
		(($(d segs) >= tcp_need)) ||
			fail "$label: the host's TCP sent $(d segs) segments, want >= $tcp_need ($((ab + ba)) B at MSS $MSS)"
		(($(d rxe0) + $(d rxe1) < (ab + ba) / 4096 / 4 + 200)) ||
			fail "$label: rxe0/rxe1 sent $(d rxe0)/$(d rxe1) packets for $((ab + ba)) B that should have gone over TCP"
		PATH_NOTE="tcp: h1 hand-offs +$(d h1.handoffs), rsock conns +0, host TCP +$(d segs) segs, rxe0/rxe1 +$(d rxe0)/+$(d rxe1) pkts"
	fi
}

# conns_to PORT PATH: "N1 N2", how many connections a -> b:PORT routers h1
# and h2 list with path PATH (one jq for both: each exec costs under TCG)
conns_to() {
	{ status h1; status h2; } | jq -rs --arg p ":$1" --arg w "$2" '
		def n(c; s): [.conns[] | select(.path == $w and .client == c and .server == s and
			(.server_addr | endswith($p)))] | length;
		"\(.[0] | n("a"; "b@h2")) \(.[1] | n("a@h1"; "b"))"'
}

# wait_path LABEL PORT N PID [PATH]: while PID (the client) runs, both
# routers come to list N or more connections a -> b:PORT with path PATH
# (default $want); within 20 s.
wait_path() {
	local label=$1 port=$2 n=$3 pid=$4 w=${5:-$want} h c1=0 c2=0 end
	end=$(($(now_ms) + 20000))
	while (($(now_ms) < end)); do
		read -r c1 c2 <<<"$(conns_to "$port" "$w")"
		((c1 >= n && c2 >= n)) && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	for h in h1 h2; do
		echo "$h lists: $(status "$h" | jq -c '[.conns[] | {path, client, server, server_addr}]')" >&2
	done
	fail "$label: want >= $n connections a -> b:$port with path $w on both routers while the client ran; saw $c1 on h1, $c2 on h2 (lists above)"
}

# bg_ct VAR NAME SECS CMD...: CMD in container NAME under timeout -k 5 SECS,
# in the background, its output in $L/VAR; the pid in VAR.
bg_ct() {
	local -n pid=$1
	local log=$L/$1
	shift
	vb_ct "$1" timeout -k 5 "$2" "${@:3}" >"$log" 2>&1 &
	pid=$!
}

# stop_bg PID: ends what bg_ct started: $! is the subshell that runs vb_ct,
# whose child is `timeout` (ip netns exec and env exec it), which passes
# the TERM on to the program.
stop_bg() {
	pkill -TERM -P "$1" 2>/dev/null || true
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" || true
}

# (set by bg_ct and curl_get)
srv="" cli="" sps="" spc="" rds="" ngx="" curl="" cp=""

# ===================================================================
# 1. iperf3
# iperf LABEL CONNS ARGS...: iperf3 -s -1 in b, iperf3 -c -t 3 -J ARGS in a;
# CONNS: the connections it opens (one control, one per stream).
iperf() {
	local label=$1 n=$2 srv cli crc=0 src=0 j ab=0 ba=0 dirs="" s r key
	shift 2
	next_port
	snap S0
	bg_ct srv b 60 iperf3 -s -1 -J -B "$B" -p "$VB_PORT"
	vb_wait_listen b "$VB_PORT"
	bg_ct cli a 60 iperf3 -c "$B" -p "$VB_PORT" -t 3 -J "$@"
	wait_path "iperf3 $label" "$VB_PORT" "$n" "$cli"
	wait "$cli" || crc=$?
	wait "$srv" || src=$?
	cp "$L/cli" "$L/iperf3 $label.client.json"
	cp "$L/srv" "$L/iperf3 $label.server.json"
	if ((crc || src)); then
		show "iperf3 $label server" "$L/srv"
		show "iperf3 $label client" "$L/cli"
		fail "iperf3 $label: the client exited $crc, the server $src; want 0 and 0 ($(jq -r '.error // empty' "$L/cli" 2>/dev/null))"
	fi
	j=$L/cli
	# (direction, sent, received) per direction the test has
	for key in "" _bidir_reverse; do
		jq -e ".end.sum_sent$key" "$j" >/dev/null || continue
		s=$(jq ".end.sum_sent$key.bytes" "$j")
		r=$(jq ".end.sum_received$key.bytes" "$j")
		((r > 0 && r <= s)) ||
			fail "iperf3 $label: the receiver counted $r B of the $s B sent; want > 0 and <= sent"
		# -R and the reverse half of --bidir carry b -> a
		if [[ -n $key || " $* " == *" -R "* ]]; then
			ba=$((ba + r)) dirs+=" b->a $r of $s B"
		else
			ab=$((ab + r)) dirs+=" a->b $r of $s B"
		fi
	done
	[[ -n $dirs ]] || fail "iperf3 $label: no .end.sum_sent in its JSON"
	path_check "iperf3 $label" "$n" "$ab" "$ba"
	pass "iperf3 $label a -> b: $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$j") Mbit/s; received of sent:$dirs; $PATH_NOTE"
}
iperf "-P 1" 2 -P 1
iperf "-P 4" 5 -P 4
iperf "-R" 2 -R
iperf "--bidir" 3 --bidir
if [[ $want == rdma ]]; then
	for h in h1 h2; do
		st=$(status "$h" | jq -c --arg p "$(peer "$h")" '[.rsock.pairs[] | select(.host == $p) | .state]')
		[[ $st == '["up"]' ]] || fail "$h's pairs with $(peer "$h"): states $st, want one, up"
	done
	pass "each router has one pair with the other, up: $(status h1 | jq -c '.rsock.pairs[] | {host, conns, mem_bytes, staged_bytes}')"
fi

# ===================================================================
# 2. sockperf
next_port
SP=$VB_PORT
bg_ct sps b 120 sockperf sr --tcp -i "$B" -p "$SP"
vb_wait_listen b "$SP"

snap S0
bg_ct spc a 60 sockperf pp --tcp -i "$B" -p "$SP" -t 3
wait_path "sockperf pp" "$SP" 1 "$spc"
crc=0
wait "$spc" || crc=$?
clean "$L/spc" >"$L/sockperf-pp"
((crc == 0)) || { show "sockperf pp" "$L/sockperf-pp"; fail "sockperf pp exited $crc, want 0"; }
lat=$(sed -n 's/.*Summary: Latency is \([0-9.]*\) usec.*/\1/p' "$L/sockperf-pp")
p50=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' "$L/sockperf-pp")
p99=$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' "$L/sockperf-pp")
rcvd=$(sed -n 's/.*Valid Duration.*ReceivedMessages=\([0-9]*\).*/\1/p' "$L/sockperf-pp")
[[ -n $lat && -n $p50 && ${rcvd:-0} -gt 0 ]] || {
	show "sockperf pp" "$L/sockperf-pp"
	fail "sockperf pp: want a 'Latency is' line, a p50 and replies; saw latency '$lat', p50 '$p50', received '$rcvd'"
}
grep -q '# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0' "$L/sockperf-pp" || {
	show "sockperf pp" "$L/sockperf-pp"
	fail "sockperf pp: want no dropped, duplicated or out-of-order message; saw: $(grep 'dropped messages' "$L/sockperf-pp")"
}
path_check "sockperf pp" 1 0 0
pass "sockperf ping-pong a -> b: average $lat us, p50 $p50 us, p99 $p99 us, $rcvd replies, none dropped, duplicated or out of order; $PATH_NOTE"

snap S0
bg_ct spc a 60 sockperf tp --tcp -i "$B" -p "$SP" -t 3 --msg-size 1472
wait_path "sockperf tp" "$SP" 1 "$spc"
crc=0
wait "$spc" || crc=$?
clean "$L/spc" >"$L/sockperf-tp"
((crc == 0)) || { show "sockperf tp" "$L/sockperf-tp"; fail "sockperf tp exited $crc, want 0"; }
rate=$(sed -n 's/.*Summary: Message Rate is \([0-9]*\) .*/\1/p' "$L/sockperf-tp")
bw=$(sed -n 's/.*Summary: BandWidth is \(.*\)$/\1/p' "$L/sockperf-tp")
sent=$(sed -n 's/.*Total of \([0-9]*\) messages sent.*/\1/p' "$L/sockperf-tp")
[[ ${rate:-0} -gt 0 && ${sent:-0} -gt 0 && -n $bw ]] || {
	show "sockperf tp" "$L/sockperf-tp"
	fail "sockperf tp: want a message rate > 0, messages sent and a bandwidth line; saw rate '$rate', sent '$sent', bandwidth '$bw'"
}
# (sockperf sr prints no count of what it received: no byte figure to ask)
path_check "sockperf tp" 1 0 0
pass "sockperf throughput a -> b: $rate msg/s of 1472 B ($bw), $sent messages; $PATH_NOTE"
stop_bg "$sps"

# ===================================================================
# 3. redis
next_port
RP=$VB_PORT
bg_ct rds b 120 redis-server --bind "$B" --port "$RP" --save '' --appendonly no --protected-mode no
vb_wait_listen b "$RP"
rcli() { vb_ct a timeout -k 5 60 redis-cli -h "$B" -p "$RP" "$@"; }
head -c 3000000 /dev/urandom | base64 -w0 >"$W/value"
snap S0
out=$(rcli -x set ffnet-key <"$W/value" 2>&1) || fail "redis-cli SET of 4 MB: exit $?: $out"
[[ $out == OK ]] || fail "redis-cli SET of 4 MB: want OK, saw '$out'"
rcli --raw get ffnet-key | head -c -1 >"$W/value.got" || fail "redis-cli GET exited non-zero"
cmp -s "$W/value" "$W/value.got" ||
	fail "redis GET returned $(stat -c %s "$W/value.got") B that differ from the $(stat -c %s "$W/value") B SET (sha256 $(sha256sum <"$W/value.got" | cut -c1-16) vs $(sha256sum <"$W/value" | cut -c1-16))"
vsize=$(stat -c %s "$W/value")
path_check "redis SET/GET" 2 "$vsize" "$vsize"
pass "redis-cli: a 4 MB random value SET from a and read back by GET, identical; $PATH_NOTE"

# redis_bench LABEL ARGS...: redis-benchmark -t set,get -n 2000 -c 50 -q ARGS
redis_bench() {
	local label=$1 rc=0 set get
	shift
	snap S0
	vb_ct a timeout -k 5 120 redis-benchmark -h "$B" -p "$RP" -t set,get -n 2000 -c 50 -q "$@" \
		>"$L/rb" 2>&1 || rc=$?
	clean "$L/rb" >"$L/redis-benchmark$label"
	((rc == 0)) || { show "redis-benchmark$label" "$L/redis-benchmark$label"; fail "redis-benchmark$label exited $rc, want 0"; }
	set=$(sed -n 's/^ *SET: \([0-9.]*\) requests per second.*/\1/p' "$L/redis-benchmark$label" | tail -n 1)
	get=$(sed -n 's/^ *GET: \([0-9.]*\) requests per second.*/\1/p' "$L/redis-benchmark$label" | tail -n 1)
	[[ -n $set && -n $get ]] || {
		show "redis-benchmark$label" "$L/redis-benchmark$label"
		fail "redis-benchmark$label: want 'SET: N requests per second' and 'GET: ...'; saw SET '$set', GET '$get'"
	}
	! grep -Ei 'error|refused|reset' "$L/redis-benchmark$label" >&2 ||
		fail "redis-benchmark$label printed errors (above)"
	# 50 clients for SET, 50 for GET
	path_check "redis-benchmark$label" 100 0 0
	pass "redis-benchmark -n 2000 -c 50$label a -> b: SET $set, GET $get requests/s; $PATH_NOTE"
}
redis_bench ""
redis_bench " -P 16" -P 16
rcli shutdown nosave >/dev/null 2>&1 || true
wait "$rds" || true

# ===================================================================
# 4. nginx + curl, 100 MB
mkdir -p "$W/www" "$W/nginx"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$W/www/big.bin"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$W/www/mid.bin"
echo "hello from b" >"$W/www/index.html"
sum_big=$(sha256sum <"$W/www/big.bin" | cut -d' ' -f1)
sum_mid=$(sha256sum <"$W/www/mid.bin" | cut -d' ' -f1)
next_port
NP=$VB_PORT
cat >"$W/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
user root;
pid $W/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
	default_type application/octet-stream;
	access_log off;
	sendfile on;
	client_body_temp_path $W/nginx/body;
	proxy_temp_path $W/nginx/proxy;
	fastcgi_temp_path $W/nginx/fastcgi;
	uwsgi_temp_path $W/nginx/uwsgi;
	scgi_temp_path $W/nginx/scgi;
	server {
		listen $B:$NP;
		root $W/www;
	}
}
EOF
bg_ct ngx b 590 nginx -e stderr -c "$W/nginx.conf"
vb_wait_listen b "$NP"
URL=http://$B:$NP

# curl_get VAR FILE ARGS...: curl in a fetches FILE from b's nginx into
# $W/got (ARGS added; CURL_SECS: its timeout, default 120), in the
# background (pid in VAR)
curl_get() {
	local -n cpid=$1
	rm -f "$W/got"
	bg_ct curl a "${CURL_SECS:-120}" curl -sS -o "$W/got" -w '%{http_code} %{size_download} %{speed_download}\n' \
		"${@:3}" "$URL/$2"
	# shellcheck disable=SC2034 # a nameref: the caller's variable
	cpid=$curl
}
snap S0
t0=$(now_ms)
curl_get cp big.bin
wait_path "curl 100 MB" "$NP" 1 "$cp"
rc=0
wait "$cp" || rc=$?
t=$(($(now_ms) - t0))
((rc == 0)) || { show curl "$L/curl"; fail "curl of 100 MB exited $rc, want 0"; }
read -r code size speed <"$L/curl"
got=$(sha256sum <"$W/got" | cut -d' ' -f1)
[[ $code == 200 && $got == "$sum_big" ]] ||
	fail "curl of 100 MB: HTTP $code, $size B, sha256 $got; want 200, $((100 * 1024 * 1024)) B, $sum_big"
path_check "curl 100 MB" 1 0 "$size"
rm -f "$W/got"
pass "curl a <- nginx in b: 100 MB in $t ms ($((${speed%.*} / 1000000)) MB/s), sha256 as served; $PATH_NOTE"

# ===================================================================
# 4b. ffconform: the socket-semantics transcript over the path, compared
# with a native run between the same addresses (namespaces ffv-na and
# ffv-nb joined by a veth: plain kernel TCP), with no deviation allowed
CONFORM=${FF_BUILD:-$VB_BUILD}/tests/conform/ffconform
[[ -x $CONFORM ]] || fail "no $CONFORM in the build"
CARGS=(--big-mib 16 --conns 200 --timeout 120)
vb_linked na "${VB_IP[a]}" nb "${VB_IP[b]}"
ip netns exec ffv-nb timeout -k 5 180 "$CONFORM" server --bind "${VB_IP[b]}" --port 7000 \
	"${CARGS[@]}" >"$L/conf-native.s" 2>/dev/null &
srv=$!
for ((i = 0; i < 100; i++)); do
	[[ -n $(ip netns exec ffv-nb ss -Hltn "sport = :7000") ]] && break
	sleep 0.05
done
ip netns exec ffv-na timeout -k 5 180 "$CONFORM" client --connect "${VB_IP[b]}" --port 7000 \
	"${CARGS[@]}" >"$L/conf-native.c" 2>"$L/conf-native.e" || fail "native ffconform client failed: $(tail -3 "$L/conf-native.e")"
wait "$srv" || fail "native ffconform server failed"
cat "$L/conf-native.c" "$L/conf-native.s" >"$L/conf-native"
snap S0
bg_ct srv b 180 "$CONFORM" server --bind "${VB_IP[b]}" --port 7000 "${CARGS[@]}"
vb_wait_listen b 7000
rc=0
vb_ct a timeout -k 5 180 "$CONFORM" client --connect "${VB_IP[b]}" --port 7000 "${CARGS[@]}" \
	>"$L/conf-ffnet.c" 2>"$L/conf-ffnet.e" || rc=$?
wait "$srv" || rc=$((rc ? rc : $?))
grep -v '^ffconform ' "$L/srv" >"$L/conf-ffnet.s" || true
cat "$L/conf-ffnet.c" "$L/conf-ffnet.s" >"$L/conf-ffnet"
"$(dirname -- "$(readlink -f -- "$0")")/../conform/compare.sh" "$L/conf-native" "$L/conf-ffnet" ||
	fail "ffconform over $want: the transcript differs from native TCP's (above); exit $rc"
((rc == 0)) || fail "ffconform over $want exited $rc with the same transcript as native"
path_check "ffconform" 200 0 0
pass "ffconform a -> b over $want: the transcript is native TCP's ($(grep -c '^[CS] ' "$L/conf-native") lines, no deviation); $PATH_NOTE"

# ===================================================================
# 5. kill -9 of the client mid-transfer: both routers back at baseline
# base HOST: .rsock.conns, .conns length, fds_open, and the pairs' count,
# registered and staged bytes, as one string
base() {
	status "$1" | jq -r '"\(.rsock.conns // 0) \(.conns | length) \(.health.fds_open) \(.rsock.pairs // [] |
		"\(length) \(map(.mem_bytes) | add // 0) \(map(.staged_bytes) | add // 0)")"'
}
declare -A BASE
for h in h1 h2; do BASE[$h]=$(base "$h"); done
next_port
bg_ct srv b 90 iperf3 -s -1 -B "$B" -p "$VB_PORT"
vb_wait_listen b "$VB_PORT"
bg_ct cli a 90 iperf3 -c "$B" -p "$VB_PORT" -t 60 -P 2
wait_path "endless iperf3" "$VB_PORT" 3 "$cli"
sleep 1
ipid=""
for p in $(ip netns pids ffv-a); do
	[[ $(</proc/"$p"/comm) == iperf3 ]] && ipid=$p
done
[[ -n $ipid ]] || fail "no iperf3 process in container a"
kill -KILL "$ipid"
t0=$(now_ms)
wait "$cli" || true
end=$((t0 + 15000))
while kill -0 "$srv" 2>/dev/null && (($(now_ms) < end)); do sleep 0.1; done
if kill -0 "$srv" 2>/dev/null; then
	stop_bg "$srv"
	show "iperf3 server" "$L/srv"
	fail "15 s after its client's kill -9 the iperf3 server in b still runs: want it to see the connections end and exit"
fi
src=0
wait "$srv" || src=$?
ts=$(($(now_ms) - t0))
end=$(($(now_ms) + 10000))
ok=0
while (($(now_ms) < end)); do
	ok=1
	for h in h1 h2; do
		[[ $(base "$h") == "${BASE[$h]}" ]] || ok=0
	done
	((ok)) && break
	sleep 0.1
done
t=$(($(now_ms) - t0))
((ok)) || fail "10 s after the iperf3 server exited: h1 has rsock conns, conns, fds, pairs, pair memory, staged bytes '$(base h1)', h2 '$(base h2)'; want their baselines '${BASE[h1]}' and '${BASE[h2]}'"
pass "kill -9 of an iperf3 -P 2 client in a mid-transfer: the server in b exited after $ts ms ($(grep -m1 -o 'the client has unexpectedly closed the connection\|error.*' "$L/srv" || echo "status $src")); both routers back to their baselines (rsock conns, conns, fds, pairs, pair memory, staged bytes: h1 '${BASE[h1]}', h2 '${BASE[h2]}') $t ms after the kill"

# ===================================================================
# 6. h2 redeclared on h1 without --rdma: new connections go over tcp
# redeclare RDMA-ARG...: h2 on h1 with (or without) --rdma; host rm needs
# its containers unregistered first (host add of a known host: EEXIST)
redeclare() {
	"$VB_FFCTL" --rundir "${VB_RUNDIR[h1]}" unregister b >/dev/null || fail "unregister b on h1"
	"$VB_FFCTL" --rundir "${VB_RUNDIR[h1]}" host rm h2 >/dev/null || fail "host rm h2 on h1"
	host_decl h1 h2 10.77.0.2 "$@"
	vb_register_remote h1 b h2
}
redeclare
out=$(status h1 | jq -c '[.hosts[] | select(.name == "h2") | .rdma]')
[[ $out == '[false]' ]] || fail "h1 lists h2 with rdma $out, want [false]: $(status h1 | jq -c .hosts)"
save_want=$want
want=tcp
iperf "-P 2 (h2 declared without RDMA on h1)" 3 -P 2
snap S0
CURL_SECS=60 curl_get cp mid.bin --limit-rate 4M
wait_path "curl 16 MB (h2 declared without RDMA on h1)" "$NP" 1 "$cp" tcp
rc=0
wait "$cp" || rc=$?
((rc == 0)) || { show curl "$L/curl"; fail "curl of 16 MB over tcp exited $rc, want 0"; }
read -r code size speed <"$L/curl"
got=$(sha256sum <"$W/got" | cut -d' ' -f1)
[[ $code == 200 && $got == "$sum_mid" ]] ||
	fail "curl of 16 MB over tcp: HTTP $code, $size B, sha256 $got; want 200, $sum_mid"
path_check "curl 16 MB (h2 declared without RDMA on h1)" 1 0 "$size"
want=$save_want
pass "h2 declared without RDMA on h1: iperf3 and curl (16 MB, sha256 as served) went over tcp; $PATH_NOTE"
redeclare --rdma
snap S0
out=$(vb_ct a timeout -k 5 30 curl -sS "$URL/index.html" 2>&1) || fail "curl index.html after h2 was declared with RDMA again: $out"
[[ $out == "hello from b" ]] || fail "curl index.html: want 'hello from b', saw '$out'"
path_check "curl index.html (h2 declared with RDMA again)" 1 0 0
pass "h2 declared with RDMA again: the next connection goes over $want; $PATH_NOTE"

# ===================================================================
# 7. router h2 killed in the middle of a transfer a <- b
BASE[h1]=$(base h1)
read -r rs1 _ fd1 _ <<<"${BASE[h1]}"
log_lines=$(wc -l <"$L/router-h1.log")
# at 2 MB/s, killed after ~2 s: over rdma the 100 MB file, far more than
# the routers and sockets can hold, so the transfer is surely under way;
# over tcp, where it must complete, the 16 MB one (~8 s)
file=big.bin
[[ $want == rdma ]] || file=mid.bin
CURL_SECS=30 curl_get cp "$file" --limit-rate 2M
wait_path "curl 16 MB before h2 dies" "$NP" 1 "$cp"
sleep 2
kill -KILL "${VB_PID[h2]}"
wait "${VB_PID[h2]}" 2>/dev/null || true
unset 'VB_PID[h2]'
t0=$(now_ms)
rc=0
wait "$cp" || rc=$?
t=$(($(now_ms) - t0))
show "curl after h2 died" "$L/curl"
if [[ $want == rdma ]]; then
	((rc != 124 && rc != 137)) || fail "router h2 killed: curl in a hung until its timeout (30 s), want an error within 15 s"
	((rc != 0)) || fail "router h2 killed mid-transfer: curl exited 0, want an error (the router carried the data)"
	((t <= 15000)) || fail "router h2 killed: curl in a saw the error after $t ms, want <= 15 s"
	sed -n "$((log_lines + 1)),\$p" "$L/router-h1.log" | grep -q 'h2' ||
		fail "router h2 killed: h1 logged nothing about h2 since (its log above)"
	end=$(($(now_ms) + 10000))
	while :; do
		read -r rs _ fd _ <<<"$(base h1)"
		((rs <= rs1 && fd <= fd1 || $(now_ms) >= end)) && break
		sleep 0.1
	done
	((rs <= rs1 && fd <= fd1)) ||
		fail "router h2 killed: 10 s later h1 has $rs rsock conns and $fd fds, want <= $rs1 and <= $fd1 (before the transfer)"
	what="curl exited $rc $t ms after the kill ($(grep -m1 '^curl:' "$L/curl" || echo 'no message')); h1 logged: $(sed -n "$((log_lines + 1)),\$p" "$L/router-h1.log" | grep -m1 h2 | cut -d' ' -f3-); h1: $rs rsock conns, $fd fds"
else
	# the host-TCP path does not pass through the routers (DESIGN, rule 2)
	((rc == 0)) || fail "router h2 killed: curl over the tcp path exited $rc, want 0 (the routers are not on its data path)"
	got=$(sha256sum <"$W/got" | cut -d' ' -f1)
	[[ $got == "$sum_mid" ]] || fail "router h2 killed: curl over tcp saved sha256 $got, want $sum_mid"
	what="curl over tcp went on and completed $t ms later, sha256 as served"
fi
pass "router h2 killed mid-transfer: $what"

t0=$(now_ms)
rc=0
vb_ct a timeout -k 5 30 curl -sS -o /dev/null "$URL/index.html" >"$L/curl" 2>&1 || rc=$?
t=$(($(now_ms) - t0))
((rc == 7 && t < 10000)) || { show curl "$L/curl"; fail "a new connect to b with h2 down: curl exited $rc after $t ms, want 7 (could not connect) within 10 s"; }
out=$(vb_status h1 --json | jq -r .host) || out="(no answer)"
[[ $out == h1 ]] || fail "h1 does not answer ffctl status after h2 died: $out"
kill -0 "${VB_PID[h1]}" || fail "router h1 exited after h2 died"
pass "with h2 down a new connect to b fails at once ($t ms, curl: $(cut -c1-80 "$L/curl")); h1 still runs and answers"
stop_bg "$ngx"
