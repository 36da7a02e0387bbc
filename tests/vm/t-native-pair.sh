#!/bin/bash
# vm-native-pair: in the pair layout, native perftest and libibverbs
# programs run between rxe0 (10.77.0.1, server) and rxe1 (10.77.0.2,
# client): ib_write_bw, ib_send_lat and ibv_rc_pingpong must each report
# their full iteration count with a positive rate and no errors, and the
# bytes must cross the veth pair (not lo).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	run_vm --layout pair -- "$0"
	exit
fi

[[ $FFVM_HOSTS == "10.77.0.1:rxe0 10.77.0.2:rxe1" ]] || fail "FFVM_HOSTS='$FFVM_HOSTS'"
logs=$(mktemp -d)
SERVER=10.77.0.1
ITERS=200
SIZE=65536

# serve PORT NAME CMD...: start a server in the background, wait until it
# listens.  Its pid is in $server_pid, its output in $logs/NAME.server.
serve() {
	local port=$1 name=$2
	shift 2
	"$@" >"$logs/$name.server" 2>&1 &
	server_pid=$!
	wait_listen "$port"
}

# finish NAME CLIENT-STATUS: reap the server, show both outputs, check them.
finish() {
	local name=$1 crc=$2 src=0
	wait "$server_pid" || src=$?
	show "$name server" "$logs/$name.server"
	show "$name client" "$logs/$name.client"
	((crc == 0)) || fail "$name client exited $crc"
	((src == 0)) || fail "$name server exited $src"
	no_errors "$name server" "$logs/$name.server"
	no_errors "$name client" "$logs/$name.client"
}

tx_bytes() { echo $(($(<"/sys/class/net/$1/statistics/tx_bytes"))); }

# --- ib_write_bw: rxe1 writes ITERS x SIZE into rxe0's memory.
veth1_tx=$(tx_bytes veth1)
serve 18515 write_bw ib_write_bw -d rxe0 -x 1 -F -s "$SIZE" -n "$ITERS" -p 18515
rc=0
ib_write_bw -d rxe1 -x 1 -F -s "$SIZE" -n "$ITERS" -p 18515 "$SERVER" >"$logs/write_bw.client" 2>&1 || rc=$?
finish write_bw "$rc"
line=$(grep -E "^[[:space:]]*${SIZE}[[:space:]]+${ITERS}[[:space:]]+[0-9.]+[[:space:]]+[0-9.]+" "$logs/write_bw.client") ||
	fail "ib_write_bw printed no '$SIZE $ITERS <peak> <average>' line"
read -r _ _ peak avg _ <<<"$line"
awk -v a="$avg" 'BEGIN { exit !(a > 0) }' || fail "ib_write_bw average bandwidth is $avg MB/s"
sent=$(($(tx_bytes veth1) - veth1_tx))
((sent >= SIZE * ITERS)) || fail "veth1 sent $sent bytes, want >= $((SIZE * ITERS)): RDMA took another path"
pass "ib_write_bw: $ITERS x $SIZE B, peak $peak MB/s, average $avg MB/s; veth1 sent $sent B"

# --- ib_send_lat: ITERS ping-pongs of 2-byte sends.
serve 18516 send_lat ib_send_lat -d rxe0 -x 1 -F -n "$ITERS" -p 18516
rc=0
ib_send_lat -d rxe1 -x 1 -F -n "$ITERS" -p 18516 "$SERVER" >"$logs/send_lat.client" 2>&1 || rc=$?
finish send_lat "$rc"
line=$(grep -E "^[[:space:]]*2[[:space:]]+${ITERS}[[:space:]]+[0-9.]+" "$logs/send_lat.client") ||
	fail "ib_send_lat printed no '2 $ITERS <t_min> ...' line"
read -r _ _ tmin _ _ tavg _ <<<"$line"
awk -v a="$tavg" 'BEGIN { exit !(a > 0) }' || fail "ib_send_lat t_avg is $tavg us"
pass "ib_send_lat: $ITERS iterations, t_min $tmin us, t_avg $tavg us"

# --- ibv_rc_pingpong (libibverbs example): 100 RC round trips on GID 1.
serve 18517 rc_pingpong ibv_rc_pingpong -d rxe0 -g 1 -n 100 -p 18517
rc=0
ibv_rc_pingpong -d rxe1 -g 1 -n 100 -p 18517 "$SERVER" >"$logs/rc_pingpong.client" 2>&1 || rc=$?
finish rc_pingpong "$rc"
for side in server client; do
	grep -Eq '^[0-9]+ bytes in [0-9.]+ seconds = [0-9.]+ Mbit/sec$' "$logs/rc_pingpong.$side" ||
		fail "ibv_rc_pingpong $side printed no bandwidth line"
	grep -Eq '^100 iters in [0-9.]+ seconds = [0-9.]+ usec/iter$' "$logs/rc_pingpong.$side" ||
		fail "ibv_rc_pingpong $side did not report 100 iterations"
done
pass "ibv_rc_pingpong: 100 iterations on both sides ($(grep -o '[0-9.]* usec/iter' "$logs/rc_pingpong.client"))"
