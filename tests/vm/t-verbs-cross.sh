#!/bin/bash
# vm-verbs-cross: RDMA verbs between containers on two hosts, through
# ffnet. Pair layout: host h1 is a router on rxe0 (10.77.0.1, veth0), host
# h2 a router on rxe1 (10.77.0.2, veth1), each with its ingress on its host
# address and a shared cluster secret, each declaring the other host and
# its container in its locality map. Container a (on h1) and container b
# (on h2) are network namespaces with no link at all and no RDMA device
# (namespaces exclusive): the programs' own TCP exchange flows through
# ffnet's cross-host hand-off (a host TCP connection from router to
# ingress), and their RDMA traffic through the routers' QPs.
#   - ibv_rc_pingpong -g 1 -c: 100 iterations of 64 KiB on both sides,
#     and its own check of the received bytes (vb_pingpong);
#   - ffverbs data: RDMA_WRITE, SEND and RDMA_READ of 1 B to 8 MiB, every
#     byte checked where it landed (vb_data), and the bytes crossed the
#     veth in both directions;
#   - ib_write_bw, ib_send_bw, ib_read_bw (64 KiB x 200): the result line,
#     and the bytes crossed the veth in the direction of the data;
#   - ib_write_lat, ib_send_lat, ib_read_lat (2 B x 200): the latency line;
#   - native ib_write_bw and ib_send_lat between rxe1 and rxe0 in the same
#     run, for comparison (printed, not asserted);
#   - rdma_cm across hosts (the routers carry the connect request over an
#     authenticated TCP connection that stays open as the lifeline):
#     rping -C 100 with its data pattern, ucmatose, ib_write_bw -R;
#   - refusals come back with the IB CM reason: 8 for a port nobody
#     listens on, 12 for a source the other router's map does not know; a
#     container on a host declared without RDMA is an ADDR_ERROR;
#   - killing the server in the middle of an endless rping: its router
#     closes the lifeline, and the client sees DISCONNECTED and exits 0;
#   - both routers count their cross-host TCP hand-offs and rdma_cm
#     connections, and hold no RDMA object afterwards.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	FFVM_RDMA_NETNS=exclusive run_vm --layout pair --timeout 860 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

[[ $FFVM_HOSTS == "10.77.0.1:rxe0 10.77.0.2:rxe1" ]] || fail "FFVM_HOSTS='$FFVM_HOSTS'"
vb_logs_on_failure
vb_alone a 10.78.0.1
vb_alone b 10.78.0.2
vb_hosts 10.77.0.1 rxe0 10.77.0.2 rxe1
vb_register h1 a
vb_register_remote h1 b h2
vb_register h2 b
vb_register_remote h2 a h1
vb_no_device a
vb_no_device b
pass "hosts h1 (rxe0) and h2 (rxe1); container a on h1, b on h2, no link between them"

tx() { echo $(($(<"/sys/class/net/$1/statistics/tx_bytes"))); }

# --- native rxe1 -> rxe0, for comparison (figures printed, not asserted)
native() { # NAME PORT KIND SIZE CMD...: server on rxe0, client on rxe1
	local name=$1 port=$2 kind=$3 size=$4 rc spid
	shift 4
	for _ in 1 2 3; do
		rc=0
		"$@" -d rxe0 -p "$port" >"$VB_LOGS/$name.server" 2>&1 &
		spid=$!
		wait_listen "$port"
		"$@" -d rxe1 -p "$port" 10.77.0.1 >"$VB_LOGS/$name.client" 2>&1 || rc=$?
		wait "$spid" || rc=$?
		((rc == 0)) || {
			show "$name server" "$VB_LOGS/$name.server" >&2
			show "$name client" "$VB_LOGS/$name.client" >&2
			fail "native $name exited $rc"
		}
		vb_clock_failed "$VB_LOGS/$name.client" "$size" 200 || break
	done
	if vb_clock_failed "$VB_LOGS/$name.client" "$size" 200; then
		echo "(unknown: perftest's clock estimate failed 3 times)"
	else
		"vb_${kind}_line" "$VB_LOGS/$name.client" "$size" 200
	fi
}
native_bw=$(native native_write_bw 18590 bw 65536 ib_write_bw -x 1 -F -s 65536 -n 200)
native_lat=$(native native_send_lat 18591 lat 2 ib_send_lat -x 1 -F -n 200)
# the native pair tests the test bed, not ffnet: a reference, not a check
echo "note: native rxe1 -> rxe0, for comparison: ib_write_bw 64 KiB $native_bw MB/s, ib_send_lat $native_lat us"

# --- verbs programs, server in a (h1), client in b (h2)
vb_pingpong rc_pingpong a b
pass "ibv_rc_pingpong -g 1 -c a <- b: 100 x 64 KiB, the server's check of the bytes passed ($(grep -o '[0-9.]* usec/iter' "$VB_LOGS/rc_pingpong.client"))"

# the client (b) writes and sends through veth1, reads come through veth0
b1=$(tx veth1) b0=$(tx veth0)
vb_data data a b
s1=$(($(tx veth1) - b1)) s0=$(($(tx veth0) - b0))
((s1 >= 2 * VB_DATA_BYTES && s0 >= VB_DATA_BYTES)) ||
	fail "ffverbs data: veth1 sent $s1 B, veth0 $s0 B; want >= $((2 * VB_DATA_BYTES)) and $VB_DATA_BYTES"
pass "ffverbs data a <- b: RDMA_WRITE, SEND and RDMA_READ of 1 B to 8 MiB across hosts, every byte checked where it landed; veth1 sent $s1 B, veth0 $s0 B"

PT=(-d ffnet0 -x 1 -F)
SIZE=65536
ITERS=200
for t in write send read; do
	# the data goes from the client (b, veth1) except for reads
	dev=veth1
	[[ $t == read ]] && dev=veth0
	before=$(tx "$dev")
	vb_perf bw "${t}_bw" a b "$SIZE" "$ITERS" "ib_${t}_bw" "${PT[@]}" -s "$SIZE" -n "$ITERS"
	sent=$(($(tx "$dev") - before))
	((sent >= SIZE * ITERS)) || fail "ib_${t}_bw: $dev sent $sent B, want >= $((SIZE * ITERS))"
	pass "ib_${t}_bw a <- b: $ITERS x 64 KiB, average $VB_AVG MB/s; $dev sent $sent B"
done
for t in write send read; do
	vb_perf lat "${t}_lat" a b 2 "$ITERS" "ib_${t}_lat" "${PT[@]}" -n "$ITERS"
	pass "ib_${t}_lat a <- b: $ITERS x 2 B, t_avg $VB_AVG us"
done

for h in h1 h2; do
	n=$(vb_status "$h" --json | jq '.conns_total')
	((n >= 7)) || fail "router $h made $n TCP hand-offs, want >= 7 (one per program)"
done
pass "the programs' TCP went through the routers' cross-host hand-off"

# --- rdma_cm across hosts (server in b on h2, client in a on h1)
before=$(tx veth0)
VB_WAIT=cm vb_run_args rping b a stdbuf -oL rping -s -v -a @IP@ -p @PORT@ -- \
	stdbuf -oL rping -c -v -V -C 100 -a @IP@ -p @PORT@
vb_rping_lines "$VB_LOGS/rping.client" "ping data: " 100
vb_rping_lines "$VB_LOGS/rping.server" "server ping data: " 100
pass "rping a -> b across hosts: 100 pings with rping's data pattern; veth0 sent $(($(tx veth0) - before)) B"

VB_WAIT=cm vb_run_args ucmatose b a stdbuf -oL ucmatose -b @IP@ -p @PORT@ -- \
	stdbuf -oL ucmatose -s @IP@ -p @PORT@
for l in "initiating data transfers" "completing sends" "receiving data transfers" \
	"data transfers complete" "disconnected" "return status 0"; do
	grep -qx "$l" "$VB_LOGS/ucmatose.server" || fail "ucmatose server did not print '$l'"
done
for l in "receiving data transfers" "sending replies" "data transfers complete" "return status 0"; do
	grep -qx "$l" "$VB_LOGS/ucmatose.client" || fail "ucmatose client did not print '$l'"
done
pass "ucmatose a -> b across hosts: connect, data transfers and disconnect on both sides"

before=$(tx veth0)
VB_WAIT=cm vb_perf bw write_bw_cm b a "$SIZE" "$ITERS" ib_write_bw -R "${PT[@]}" -s "$SIZE" -n "$ITERS"
sent=$(($(tx veth0) - before))
grep -q 'rdma_cm QPs[[:space:]]*: ON' "$VB_LOGS/write_bw_cm.client" || fail "ib_write_bw -R did not use rdma_cm"
((sent >= SIZE * ITERS)) || fail "ib_write_bw -R: veth0 sent $sent B, want >= $((SIZE * ITERS))"
pass "ib_write_bw -R a -> b across hosts: $ITERS x 64 KiB, average $VB_AVG MB/s; veth0 sent $sent B"

# --- refusals across hosts: ucmatose's connect event must say why
cm_refused() { # NAME FROM TO WANT-LINE
	local rc=0
	VB_PORT=$((VB_PORT + 1))
	vb_ct "$2" timeout -k 5 60 stdbuf -oL ucmatose -s "${VB_IP[$3]}" -p "$VB_PORT" \
		>"$VB_LOGS/$1" 2>&1 || rc=$?
	show "$1" "$VB_LOGS/$1"
	((rc != 0 && rc != 124 && rc != 137)) || fail "$1: ucmatose exited $rc"
	grep -qx "$4" "$VB_LOGS/$1" || fail "$1: no '$4' line"
}
cm_refused no_listener a b "cmatose: event: RDMA_CM_EVENT_REJECTED, error: 8"
pass "rdma_cm a -> b:port with no listener: REJECTED, reason 8 (invalid service id), from h2"
vb_alone c 10.78.0.3
vb_register h1 c # h2 has not heard of it
cm_refused unknown_source c b "cmatose: event: RDMA_CM_EVENT_REJECTED, error: 12"
grep -q 'connect request from c@h1 refused: its source is not a container of that host' \
	"$VB_LOGS/router-h2.log" || fail "h2 did not log why it refused c's request"
pass "rdma_cm from c, which h2's locality map does not know: REJECTED, reason 12, logged by h2"
"$VB_FFCTL" --rundir "${VB_RUNDIR[h1]}" host add h3 --addr 10.77.0.9:$VB_XPORT >/dev/null ||
	fail "host add h3 on h1"
VB_IP[d]=10.78.0.4
vb_register_remote h1 d h3
cm_refused no_rdma a d "cmatose: event: RDMA_CM_EVENT_ADDR_ERROR, error: -113"
pass "rdma_cm to d, on a host declared without RDMA: ADDR_ERROR (EHOSTUNREACH) at once"

# --- the lifeline: the server is killed in the middle of an endless
# rping; its router closes the connection to the client's router, whose
# app must see DISCONNECTED and stop at once.
VB_PORT=$((VB_PORT + 1))
conns=$(vb_status h1 --json | jq '.rdma.cm_conns_total')
vb_ct b rping -s -a "${VB_IP[b]}" -p "$VB_PORT" >"$VB_LOGS/lifeline.server" 2>&1 &
vb_wait_cm h2 "$VB_PORT"
crc=0
vb_ct a timeout -k 5 120 rping -c -a "${VB_IP[b]}" -p "$VB_PORT" >"$VB_LOGS/lifeline.client" 2>&1 &
cpid=$!
for ((i = 0; i < 200; i++)); do
	(($(vb_status h1 --json | jq '.rdma.cm_conns_total') > conns)) && break
	sleep 0.1
done
((i < 200)) || fail "the endless rping did not connect in 20 s"
sleep 2
ip netns pids ffv-b | xargs -r kill -KILL
killed=$SECONDS
wait "$cpid" || crc=$?
show "lifeline client" "$VB_LOGS/lifeline.client"
((crc == 0)) || fail "rping client exited $crc after its server was killed"
grep -qx 'client DISCONNECT EVENT...' "$VB_LOGS/lifeline.client" ||
	fail "rping client saw no DISCONNECTED event"
pass "server killed mid-rping: the client saw DISCONNECTED and exited 0 within $((SECONDS - killed)) s"

for h in h1 h2; do
	st=$(vb_status "$h" --json)
	[[ $(jq '.rdma.contexts | length' <<<"$st") == 0 ]] || fail "contexts left in $h: $st"
	[[ $(jq '.rdma.bad_wqes' <<<"$st") == 0 ]] || fail "bad work requests in $h: $st"
	[[ $(jq '.rdma.cm_listeners | length' <<<"$st") == 0 ]] || fail "rdma_cm listeners left in $h: $st"
	n=$(jq '.rdma.cm_conns_total' <<<"$st")
	((n >= 5)) || fail "$h counted $n rdma_cm connections, want 5 or more (rping twice, ucmatose, ib_write_bw -R: 2 a run)"
done
pass "after the programs exit neither router holds an RDMA object"
