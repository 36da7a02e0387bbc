#!/bin/bash
# vm-verbs-cm: librdmacm's own example programs between two containers on
# one host, through ffnet's rdma_cm (the router sets the connections up;
# the containers have no RDMA device). Single layout, namespaces exclusive.
#   - rping: the client (-C 100 -v -V) prints the 100 "ping data:
#     rdma-ping-N: ..." lines with rping's data pattern, the server the
#     same 100 "server ping data:" lines (RDMA read and write, send/recv,
#     completion channels, a CM event thread);
#   - ucmatose: both sides print their progress lines up to "data
#     transfers complete", "test complete" and "return status 0"
#     (rdma_getaddrinfo, rdma_create_qp on the id, polled CQs,
#     disconnect events);
#   - ucmatose -m (rdma_migrate_id after the transfers) is not offered:
#     both sides must fail with "Operation not supported", neither hang nor
#     crash, the shim must log why, and the router must carry on; so must
#     rdma_server/rdma_client (synchronous endpoints) and mckey (multicast);
#   - afterwards the router holds no rdma_cm listener and no context.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/lib.sh"

if ! in_vm; then
	FFVM_RDMA_NETNS=exclusive run_vm --layout single --timeout 500 -- "$0" "$@"
	exit
fi
# shellcheck source=verbs-lib.sh
. "$(dirname -- "$(readlink -f -- "$0")")/verbs-lib.sh"

vb_logs_on_failure
vb_one_host

# stdout line-buffered: it shares the log with stderr
VB_WAIT=cm vb_run_args rping b a stdbuf -oL rping -s -v -a @IP@ -p @PORT@ -- \
	stdbuf -oL rping -c -v -V -C 100 -a @IP@ -p @PORT@
vb_rping_lines "$VB_LOGS/rping.client" "ping data: " 100
vb_rping_lines "$VB_LOGS/rping.server" "server ping data: " 100
pass "rping: 100 pings, each read, written back and checked, with rping's data pattern"

VB_WAIT=cm vb_run_args ucmatose b a stdbuf -oL ucmatose -b @IP@ -p @PORT@ -- \
	stdbuf -oL ucmatose -s @IP@ -p @PORT@
for l in "cmatose: starting server" "initiating data transfers" "completing sends" \
	"receiving data transfers" "data transfers complete" "cmatose: disconnecting" "disconnected" \
	"test complete" "return status 0"; do
	grep -qx "$l" "$VB_LOGS/ucmatose.server" || fail "ucmatose server did not print '$l'"
done
for l in "cmatose: starting client" "cmatose: connecting" "receiving data transfers" \
	"sending replies" "data transfers complete" "test complete" "return status 0"; do
	grep -qx "$l" "$VB_LOGS/ucmatose.client" || fail "ucmatose client did not print '$l'"
done
pass "ucmatose: connect, data transfers and disconnect on both sides"

# ucmatose -m moves its ids to a new event channel after the transfers
# (rdma_migrate_id): not offered on ffnet0. Both sides must fail as programs
# do on a call that is not supported (no hang, no crash), the shim must say
# why, and the router must carry on.
VB_PORT=$((VB_PORT + 1))
crc=0
src=0
vb_ct b timeout -k 5 60 stdbuf -oL ucmatose -m -b "${VB_IP[b]}" -p "$VB_PORT" \
	>"$VB_LOGS/migrate.server" 2>&1 &
spid=$!
vb_wait_cm h1 "$VB_PORT"
vb_ct a timeout -k 5 60 stdbuf -oL ucmatose -m -s "${VB_IP[b]}" -p "$VB_PORT" \
	>"$VB_LOGS/migrate.client" 2>&1 || crc=$?
wait "$spid" || src=$?
for side in server client; do
	show "ucmatose -m $side" "$VB_LOGS/migrate.$side"
	rc=$crc
	[[ $side == server ]] && rc=$src
	((rc != 0 && rc != 124 && rc != 137 && (rc < 129 || rc > 159))) ||
		fail "ucmatose -m $side exited $rc: want a failure, neither a hang nor a crash"
	grep -qx 'data transfers complete' "$VB_LOGS/migrate.$side" ||
		fail "ucmatose -m $side: no data transfers before the migration"
	grep -q 'failure migrating to channel: Operation not supported' "$VB_LOGS/migrate.$side" ||
		fail "ucmatose -m $side: rdma_migrate_id did not fail with EOPNOTSUPP"
	grep -q 'rdma_migrate_id is not supported on the virtual RDMA device' "$VB_LOGS/migrate.$side" ||
		fail "ucmatose -m $side: the shim logged nothing about rdma_migrate_id"
done
vb_status h1 >/dev/null || fail "the router is gone after ucmatose -m"
pass "ucmatose -m (rdma_migrate_id): EOPNOTSUPP with a log line on both sides, the router carries on"

# Programs that need what ffnet0 does not offer fail cleanly, never crash
# (librdmacm itself crashed on the shim's ids before these were
# interposed): synchronous ids and endpoints (rdma_server/rdma_client),
# multicast (mckey: a group address is no container's, so ADDR_ERROR).
refused() { # NAME CONTAINER WANT-LINE CMD...
	local name=$1 ct=$2 want=$3 rc=0
	shift 3
	vb_ct "$ct" timeout -k 5 60 stdbuf -oL "$@" >"$VB_LOGS/$name" 2>&1 || rc=$?
	show "$name" "$VB_LOGS/$name"
	((rc != 0 && rc != 124 && rc != 137 && (rc < 129 || rc > 159))) ||
		fail "$name exited $rc: want a failure, neither a hang nor a crash"
	grep -qx "$want" "$VB_LOGS/$name" || fail "$name: no '$want' line"
}
refused rdma_server b "rdma_create_ep: Operation not supported" rdma_server -s "${VB_IP[b]}"
grep -q 'rdma_create_ep (synchronous ids) is not supported' "$VB_LOGS/rdma_server" ||
	fail "rdma_server: the shim logged nothing about rdma_create_ep"
refused rdma_client a "rdma_create_ep: Operation not supported" rdma_client -s "${VB_IP[b]}"
refused mckey a "mckey: event: RDMA_CM_EVENT_ADDR_ERROR, error: -113" mckey -m 239.1.1.1 -b "${VB_IP[a]}"
vb_status h1 >/dev/null || fail "the router is gone"
pass "rdma_server, rdma_client, mckey: a clean EOPNOTSUPP or ADDR_ERROR, no crash"

st=$(vb_status h1 --json)
[[ $(jq '.rdma.cm_listeners | length' <<<"$st") == 0 ]] || fail "rdma_cm listeners left: $st"
[[ $(jq '.rdma.contexts | length' <<<"$st") == 0 ]] || fail "contexts left in the router: $st"
[[ $(jq '.rdma.cm_conns_total' <<<"$st") == 3 ]] || fail "rdma_cm connections (want rping's and two of ucmatose's): $st"
pass "after the programs exit the router holds no rdma_cm id or context"
